"""``edgeseg verify``: check a bundle's schema and every file hash."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify a bundle's manifest and hashes", description=__doc__)
    p.add_argument("bundle", help="bundle directory or .edgeseg file")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeseg.bundle import load_bundle

    b = load_bundle(args.bundle)
    m = b.manifest
    print(f"OK {args.bundle}: {m.name} {m.family}/{m.format}/{m.precision}, {len(m.files)} file(s) verified")
    return 0
