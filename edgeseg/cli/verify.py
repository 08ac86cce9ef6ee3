"""``edgeseg verify``: check a bundle's schema, every file hash and its signature."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify a bundle's manifest and hashes", description=__doc__)
    p.add_argument("bundle", help="bundle directory or .edgeseg file")
    p.add_argument("--device-config", help="apply this board's trust.keys (signed bundles only)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeseg.bundle import load_bundle
    from edgeseg.device_config import load_device_config

    keys = load_device_config(args.device_config).trust.keys if args.device_config else ()
    b = load_bundle(args.bundle, trust_keys=keys)
    m = b.manifest
    print(f"OK {args.bundle}: {m.name} {m.family}/{m.format}/{m.precision}, {len(m.files)} file(s) verified, "
          f"{b.signature.describe() if b.signature else 'unsigned'}; license {m.license}")
    return 0
