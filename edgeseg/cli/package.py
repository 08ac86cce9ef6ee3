"""``edgeseg package``: bundle + device config + runtime wheel -> one deploy package for a board."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("package", help="build a deploy package (pkg.tar) for a board", description=__doc__)
    p.add_argument("bundle", help="bundle directory or .edgeseg file")
    p.add_argument("--device-config", required=True, help="the board's config YAML (device_configs/*.yaml)")
    p.add_argument("--out", type=Path, required=True, help="package file to write, e.g. pkg.tar")
    p.add_argument("--wheel", type=Path, help="prebuilt edgeseg wheel (e.g. built on the board's architecture); "
                   "default: build one from this source tree")
    p.add_argument("--wheels-for", metavar="ARCH", help="also bundle the dependencies' wheels for ARCH "
                   "(aarch64, x86_64, armv7l) so the board installs offline; needs the package index here")
    p.add_argument("--python-version", help="the board's Python for --wheels-for (default: this one's, e.g. 3.11)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeseg.deploy.package import build_package

    s = build_package(args.bundle, args.device_config, args.out, wheel=args.wheel,
                      wheels_for=args.wheels_for, python_version=args.python_version)
    print(f"wrote {s.path} ({s.size / 1e6:.1f} MB, {len(s.members)} files): version {s.id}, runtime wheel {s.wheel_tag}")
    print("pinned runtime requirements: " + ", ".join(s.requirements))
    print(f"on the board: tar -xf {s.path.name} install.sh installer && sudo sh install.sh {s.path.name}")
    return 0
