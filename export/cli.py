"""``edgeseg export`` / ``python -m export``: build bundles from a PyTorch model."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from export.models.loading import load_model

log = logging.getLogger("export")

FORMATS = ("onnx",)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeseg export", description=__doc__)
    p.add_argument(
        "model",
        help="edgeseg-nano .safetensors weights, or 'module:function' returning (torch model, export.spec.ModelSpec)",
    )
    p.add_argument("--formats", default="onnx", help=f"comma-separated, from {', '.join(FORMATS)}")
    p.add_argument("--out", type=Path, required=True, help="output directory (one bundle per format)")
    p.add_argument("--force", action="store_true", help="overwrite existing bundles")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    model, spec = load_model(args.model)
    from export.onnx_export import export_onnx_bundle

    for fmt in formats:
        out = args.out / f"{spec.name}-{fmt}"
        bundle = export_onnx_bundle(model, spec, out, force=args.force)
        print(f"wrote {fmt} bundle {bundle.root} ({bundle.model_path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
