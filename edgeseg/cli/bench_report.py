"""``edgeseg bench report``: tables (report.md) and plots (stages.png, distribution.png) from bench results.

Example::

    edgeseg bench report benchmarks/results --out benchmarks/report
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_REPORT = Path("benchmarks/report")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench report", help="tables and plots from bench results", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results JSON files or folders (searched recursively)")
    p.add_argument("--out", type=Path, default=DEFAULT_REPORT, help=f"report folder (default: {DEFAULT_REPORT})")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeseg.bench.report import write_report
    from edgeseg.bench.results import load_results

    for name, path in write_report(load_results(args.results), args.out).items():
        print(f"{name:13s} {path}")
    return 0
