"""The ``edgeseg`` command line: one module per subcommand.

Each module in :data:`COMMANDS` has ``register(subparsers)``, which adds its
parser and sets ``func(args) -> int``. Modules are imported only to build
the parser; heavy work (and any optional dependency) is imported inside
``func``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: Subcommand modules, in the order ``edgeseg --help`` lists them.
COMMANDS = ("run", "info", "verify", "sign", "import_model", "export", "bench", "package", "install", "rollback")


def build_parser() -> argparse.ArgumentParser:
    from edgeseg import __version__

    parser = argparse.ArgumentParser(prog="edgeseg", description="Edge instance segmentation runtime.")
    parser.add_argument("--version", action="version", version=f"edgeseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"edgeseg.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("onnxscript", "onnx_ir", "torch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError) as exc:
        # User-caused errors: one clear line, no traceback (use -v to debug).
        if args.verbose:
            raise
        print(f"edgeseg {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
