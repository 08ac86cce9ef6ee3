"""RKNN backend: a ``.rknn`` model on a Rockchip NPU (RK3588 ...) through RKNNLite.

``pip install rknn-toolkit-lite2`` on the board (Rockchip publishes aarch64
wheels only; the ``rknn`` extra installs it there). The NPU cores come from
``backend.rknn.core_mask``. The model takes the float32 NCHW tensor the
preprocessor makes (the normalization is in the manifest, not folded into
the ``.rknn``) and quantizes it on the NPU; RKNNLite returns every output
dequantized to float32, in the model's output order, which the converter
wrote into the manifest in that same order (so names map to positions).

The runtime class is a parameter of :class:`RknnBackend`: the board uses
``rknnlite.api.RKNNLite``; on x86_64 ``scripts/rknn_simulator.py`` passes an
adapter with RKNNLite's interface over rknn-toolkit2's simulator, so this
module's code path runs there too (see README, "Board-native backends").
"""

from __future__ import annotations

import logging

import numpy as np

from edgeseg.backends import BackendUnavailable, check_input
from edgeseg.bundle import Bundle
from edgeseg.device_config import BackendOptions

log = logging.getLogger(__name__)

#: ``backend.rknn.core_mask`` -> the ``RKNNLite`` attribute holding its value.
CORE_MASKS = {"auto": "NPU_CORE_AUTO", "0": "NPU_CORE_0", "1": "NPU_CORE_1", "2": "NPU_CORE_2",
              "0_1": "NPU_CORE_0_1", "0_1_2": "NPU_CORE_0_1_2", "all": "NPU_CORE_ALL"}


def _rknnlite():
    try:
        from rknnlite.api import RKNNLite  # type: ignore[import-not-found]
    except ImportError as exc:
        raise BackendUnavailable(
            "rknn-toolkit-lite2 is not installed (aarch64 Rockchip boards only): pip install 'edgeseg[rknn]'"
        ) from exc
    return RKNNLite


def library_version() -> str:
    _rknnlite()
    import importlib.metadata

    return f"rknn-toolkit-lite2 {importlib.metadata.version('rknn-toolkit-lite2')}"


class RknnBackend:
    """One RKNNLite runtime for a bundle.

    Args:
        bundle: Verified bundle whose model is a ``.rknn`` file.
        options: ``backend.rknn.core_mask``.
        runtime: The class to run it with (default ``RKNNLite``); anything
            with RKNNLite's ``load_rknn``, ``init_runtime(core_mask=)``,
            ``inference(inputs=, data_format=)``, ``release`` and
            ``NPU_CORE_*`` constants.
    """

    def __init__(self, bundle: Bundle, options: BackendOptions, runtime=None) -> None:
        runtime = runtime or _rknnlite()
        manifest = bundle.manifest
        if manifest.input.layout != "NCHW":
            raise ValueError(f"rknn bundles take an NCHW input, manifest says {manifest.input.layout}")
        mask_name = options.rknn.core_mask
        self.rknn = runtime()
        if self.rknn.load_rknn(str(bundle.model_path)) != 0:
            raise ValueError(f"RKNNLite could not load {bundle.model_path}")
        if self.rknn.init_runtime(core_mask=getattr(runtime, CORE_MASKS[mask_name])) != 0:
            self.rknn.release()
            raise ValueError(f"RKNNLite could not start the NPU runtime for {bundle.model_path} (core mask {mask_name})")
        self.device = f"RKNN NPU (core mask {mask_name})"
        log.info("RKNNLite running %s on %s", manifest.name, self.device)
        self._input = manifest.input
        self._names = list(dict.fromkeys(o.name for o in manifest.outputs))

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        check_input(tensor, self._input.shape, self._input.dtype)
        values = self.rknn.inference(inputs=[tensor], data_format=["nchw"])
        if values is None or len(values) != len(self._names):
            got = "nothing" if values is None else f"{len(values)} outputs"
            raise RuntimeError(f"RKNN inference gave {got}, manifest names {len(self._names)}: {self._names}")
        return {name: np.asarray(v) for name, v in zip(self._names, values, strict=True)}

    def close(self) -> None:
        if self.rknn is not None:
            self.rknn.release()
            self.rknn = None


def load(bundle: Bundle, options: BackendOptions) -> RknnBackend:
    return RknnBackend(bundle, options)
