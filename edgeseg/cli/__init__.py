"""The ``edgeseg`` command line: one module per subcommand.

Each module in :data:`COMMANDS` has ``register(subparsers)``, which adds its
parser and sets ``func(args) -> int``. Modules are imported only to build
the parser; heavy work (and any optional dependency) is imported inside
``func``. A two-word command (``bench report``) is a parser of its own,
registered under the two words; a command whose parser lives elsewhere
(``export``, parsed by :mod:`export.cli` once torch is known to be there)
sets ``raw_argv=True`` and gets every argument after its name untouched.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys

_RST_ROLE = re.compile(r":(?:mod|class|func|meth|attr|data):`~?([^`]+)`")

#: Subcommand modules, in the order ``edgeseg --help`` lists them.
COMMANDS = ("run", "info", "verify", "pack", "sign", "import_model", "export", "bench", "bench_report", "package",
            "install", "rollback", "convert", "prompt")


def build_parser() -> argparse.ArgumentParser:
    from edgeseg import __version__

    parser = argparse.ArgumentParser(prog="edgeseg", description="Edge instance segmentation runtime.")
    parser.add_argument("--version", action="version", version=f"edgeseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"edgeseg.cli.{name}").register(sub)
    for command in sub.choices.values():  # descriptions are module docstrings: show them without RST markup
        if command.description:
            command.description = plain_text(command.description)
    return parser


def plain_text(doc: str) -> str:
    """A docstring without reST markup (``code``, :mod:`x`, ``Example::``), for --help."""
    return _RST_ROLE.sub(r"\1", doc).replace("``", "").replace("::\n", ":\n")


def _route(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parses ``argv``, joining two-word commands and passing raw arguments to commands that parse their own."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    i = next((k for k, tok in enumerate(argv) if not tok.startswith("-")), None)
    if i is None:
        return parser.parse_args(argv)
    if i + 1 < len(argv) and f"{argv[i]} {argv[i + 1]}" in sub.choices:
        argv = [*argv[:i], f"{argv[i]} {argv[i + 1]}", *argv[i + 2:]]
    command = sub.choices.get(argv[i])
    if command is not None and command.get_default("raw_argv"):
        args = parser.parse_args([*argv[: i + 1]])
        args.rest = argv[i + 1:]
        return args
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _route(build_parser(), argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("onnxscript", "onnx_ir", "torch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # `edgeseg info | head`: the reader left; stop quietly (and keep Python's exit flush from failing again).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, TypeError, OSError) as exc:
        # User-caused errors: one clear line, no traceback (use -v to debug).
        if args.verbose:
            raise
        print(f"edgeseg {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
