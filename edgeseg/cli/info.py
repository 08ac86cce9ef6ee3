"""``edgeseg info``: versions, board, decoder path, backends, and a bundle's manifest."""

from __future__ import annotations

import argparse
import json
import platform


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show versions, board, decoder path, backends, manifest", description=__doc__)
    p.add_argument("bundle", nargs="?", help="bundle to describe (default: the bundled model)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    import edgeseg
    from edgeseg.backends import available_backends
    from edgeseg.board import config_for_board, detect_board
    from edgeseg.bundle import load_bundle
    from edgeseg.decode import active_path

    print(f"edgeseg      {edgeseg.__version__}")
    print(f"python       {platform.python_version()} ({platform.machine()}, {platform.system()})")
    print(f"numpy        {np.__version__}")
    print(f"opencv       {cv2.__version__}")
    print(f"decoder      {active_path()}")
    board = detect_board()
    print(f"board        {board}")
    try:
        print(f"board config {config_for_board(board)}")
    except FileNotFoundError as exc:
        print(f"board config none ({exc})")
    for fmt, status in available_backends().items():
        print(f"backend      {fmt}: {status}")
    bundle = load_bundle(args.bundle or edgeseg.DEFAULT_BUNDLE)
    print(f"bundle       {bundle.source}")
    print(f"license      {bundle.manifest.license}")
    print(f"source       {bundle.manifest.source}")
    print(f"signature    {bundle.signature.describe() if bundle.signature else 'unsigned'}")
    print(json.dumps(bundle.manifest.to_dict(), indent=2))
    return 0
