"""``edgeseg rollback``: make the previously active version active again."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from edgeseg.deploy.install import DEFAULT_PREFIX

    p = sub.add_parser("rollback", help="switch back to the previously installed version", description=__doc__)
    p.add_argument("--root", type=Path, default=Path("/"), help="directory standing for / (image builders, tests)")
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"install prefix under ROOT (default {DEFAULT_PREFIX})")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeseg.deploy.rollback import main as rollback_main

    return rollback_main(["--root", str(args.root), "--prefix", args.prefix])
