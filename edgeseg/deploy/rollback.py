"""Returns the board to the version that was active before the last install.

Standard library only, like :mod:`edgeseg.deploy.install`, whose atomic
symlink switch it reuses: ``active`` is repointed first and ``previous``
second, each by rename. A kill between the two leaves the rolled-back version
active and ``previous`` pointing at it too (nothing left to roll back to),
never a broken ``active``.

Shipped in each package's ``installer/`` too, so a board can roll back
without importing the (possibly broken) active runtime::

    PYTHONPATH=/opt/edgeseg/active/installer python3 -m edgeseg.deploy.rollback
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edgeseg.deploy.install import (
    DEFAULT_PREFIX,
    InstallState,
    StepHook,
    install_lock,
    read_state,
    replace_symlink,
)
from edgeseg.deploy.verify import PACKAGE_MANIFEST, PackageError


def rollback(
    root: str | os.PathLike = "/", *, prefix: str = DEFAULT_PREFIX, on_step: StepHook | None = None
) -> InstallState:
    """Makes ``previous`` active and the current version ``previous``.

    Args:
        root: Directory standing for the board's ``/``.
        prefix: Install prefix relative to ``root``.
        on_step: Called with ``"switched"`` and then ``"previous"`` after each rename.

    Returns:
        The state after the rollback (``active`` and ``previous`` swapped).

    Raises:
        PackageError: nothing is installed, or there is no complete previous
            version different from the active one.
    """
    step = on_step or (lambda name: None)
    base = Path(root) / prefix
    with install_lock(base):
        state = read_state(root, prefix)
        if state.active is None:
            raise PackageError(f"nothing is installed in {base} (no 'active' link)")
        target = state.previous
        if target is None or target == state.active:
            raise PackageError(f"no previous version to roll back to in {base} (active is {state.active})")
        if not (base / "versions" / target / PACKAGE_MANIFEST).is_file():
            raise PackageError(f"previous version {target} is missing or incomplete in {base}/versions")
        replace_symlink(base / "active", f"versions/{target}")
        step("switched")
        replace_symlink(base / "previous", f"versions/{state.active}")
        step("previous")
    return read_state(root, prefix)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the shipped copy; ``edgeseg rollback`` takes the same options."""
    p = argparse.ArgumentParser(prog="edgeseg-rollback", description="Switch back to the previous edgeseg version.")
    p.add_argument("--root", type=Path, default=Path("/"), help="directory standing for / (image builders, tests)")
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"install prefix under ROOT (default {DEFAULT_PREFIX})")
    args = p.parse_args(argv)
    try:
        state = rollback(args.root, prefix=args.prefix)
    except (PackageError, OSError) as exc:
        print(f"edgeseg rollback: error: {exc}", file=sys.stderr)
        return 2
    print(f"active -> {state.active} (previous -> {state.previous}) in {state.base}")
    print("restart the service to run it: systemctl restart edgeseg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
