"""edgeseg export pipeline (workstation side): PyTorch mask models -> verified bundles.

Needs the ``export`` extra (torch, onnx, onnxscript, litert-torch). The
on-device runtime (:mod:`edgeseg`) never imports this package.
"""

__all__ = ["export_bundles"]


def __getattr__(name: str):
    # Lazy, so that ``import export.data`` stays light (no torch until an export is asked for).
    if name == "export_bundles":
        from export.pipeline import export_bundles

        return export_bundles
    raise AttributeError(f"module 'export' has no attribute {name!r}")
