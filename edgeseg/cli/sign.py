"""``edgeseg sign``: sign a bundle or deploy package with an ed25519 key (or make a key)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sign", help="sign a bundle or package (ed25519); --generate-key makes a key",
                       description=__doc__, epilog="Boards trust signers through the device config's trust.keys "
                       "(README, 'Signed bundles and packages').")
    p.add_argument("target", nargs="?", type=Path, help="bundle directory, .edgeseg file or pkg.tar to sign in place")
    p.add_argument("--key", type=Path, help="ed25519 private key (PEM) to sign with")
    p.add_argument("--generate-key", type=Path, metavar="KEY", help="write a new private key to KEY (mode 0600) "
                   "and print its public key for trust.keys")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeseg import signing

    if args.generate_key:
        public = signing.generate_key(args.generate_key)
        print(f"wrote private key {args.generate_key}; public key (for trust.keys): {public}")
        return 0
    if args.target is None or args.key is None:
        raise ValueError("sign needs TARGET and --key KEY (or --generate-key KEY)")
    doc = signing.sign_path(args.target, args.key)
    public = signing.public_key_of(args.key)
    print(f"signed {args.target} ({doc}) with key {signing.key_id(public)}: {public}")
    return 0
