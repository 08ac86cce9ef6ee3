"""``edgeseg pack``: a bundle directory -> one ``.edgeseg`` file (an uncompressed tar, verified before and after).

Example::

    edgeseg pack bundles/best bundles/best.edgeseg
    edgeseg run scene.jpg --bundle bundles/best.edgeseg
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="pack a bundle directory into one .edgeseg file", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE_DIR", help="bundle directory (manifest.json + model file)")
    p.add_argument("out", metavar="OUT.edgeseg", help="file to write")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeseg.bundle import load_bundle, pack_bundle

    out = pack_bundle(args.bundle, args.out)
    bundle = load_bundle(out)  # what was written loads and verifies
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {bundle.manifest.name}, {len(bundle.manifest.files)} files")
    return 0
