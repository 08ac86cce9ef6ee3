"""``edgeseg install``: verify a deploy package, install it as a new version, switch ``active`` atomically."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from edgeseg.deploy import install

    p = sub.add_parser("install", help="install a deploy package (atomic; keeps the previous version)",
                       description=__doc__, epilog="Steps and guarantees: see edgeseg/deploy/install.py and README.")
    install.add_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeseg.deploy import install

    return install.run_from_args(args)
