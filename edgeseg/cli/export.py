"""``edgeseg export``: PyTorch model -> bundles (needs the ``export`` extra)."""

from __future__ import annotations

import argparse
import sys

EXTRA_HINT = "edgeseg export needs the export extra (torch, onnx, ...): pip install 'edgeseg[export]'"


def register(sub: argparse._SubParsersAction) -> None:
    # The options live in export.cli (torch needed); `edgeseg export --help` prints them from there.
    p = sub.add_parser("export", help="export a PyTorch model to bundles (workstation; --help for options)",
                       description=__doc__, add_help=False)
    p.set_defaults(func=main, raw_argv=True, rest=[])


def main(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401

        from export.cli import main as export_main
    except ImportError as exc:
        print(f"{EXTRA_HINT}\n({exc})", file=sys.stderr)
        return 2
    return export_main(args.rest)
