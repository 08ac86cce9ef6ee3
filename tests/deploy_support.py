"""Helpers shared by the deploy tests: build real packages, run the shipped installer, check a root.

The packages are real (`pip wheel` of this checkout, the default bundle, a
device config written here). The installer runs the way a fresh board runs
it: ``python -m edgeseg.deploy.install`` with ``PYTHONPATH`` at the
package's own ``installer/`` copy, so the shipped, numpy-free code is what
gets killed and checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = REPO / "edgeseg" / "assets" / "edgeseg-nano"


def write_config(path: Path, *, source: str, hook_file: Path | None = None) -> Path:
    """A small device config with a camera source and (optionally) a JSON-lines robot hook."""
    lines = ["name: test-board", "backend: {threads: 1}", "camera:", f"  source: {json.dumps(source)}"]
    if hook_file is not None:
        lines += ["robot:", f"  url: {json.dumps('jsonl:' + str(hook_file))}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def extract_installer(package: Path, dest: Path) -> Path:
    """Extracts ``installer/`` (and ``install.sh``) from a package, as a board operator does first."""
    with tarfile.open(package) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("installer/") or m.name == "install.sh"]
        tar.extractall(dest, members=members, filter="data")
    return dest / "installer"


def run_installer(
    installer: Path, package: Path, root: Path, *, deps: str = "none", fault: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Runs the shipped installer in a subprocess; ``fault`` makes it SIGKILL itself after that step."""
    env = {**os.environ, "PYTHONPATH": str(installer)}
    env.pop("EDGESEG_INSTALL_FAULT", None)
    if fault is not None:
        env["EDGESEG_INSTALL_FAULT"] = fault
    cmd = [sys.executable, "-m", "edgeseg.deploy.install", str(package), "--root", str(root), "--deps", deps]
    return subprocess.run(cmd, env=env, cwd=installer.parent, capture_output=True, text=True, timeout=timeout)


def installer_cmd(installer: Path, package: Path, root: Path, deps: str = "none") -> tuple[list[str], dict]:
    """Command and environment for starting the shipped installer with ``Popen``."""
    env = {**os.environ, "PYTHONPATH": str(installer)}
    env.pop("EDGESEG_INSTALL_FAULT", None)
    return [sys.executable, "-m", "edgeseg.deploy.install", str(package), "--root", str(root), "--deps", deps], env


def package_id(package: Path) -> str:
    with tarfile.open(package) as tar:
        return json.load(tar.extractfile("package.json"))["id"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_version_dir(vdir: Path) -> None:
    """Raises AssertionError unless every file ``vdir/package.json`` lists is there with its hash."""
    manifest = json.loads((vdir / "package.json").read_text())
    for name, entry in manifest["files"].items():
        path = vdir / name
        assert path.is_file(), f"{path} missing"
        assert _sha256(path) == entry["sha256"], f"{path} content differs from package.json"
    assert manifest["id"] == vdir.resolve().name


def assert_consistent(base: Path, allowed: set[str]) -> str:
    """Checks ``active`` (and ``previous`` if present) name complete versions; returns the active id."""
    target = os.readlink(base / "active")
    assert target.startswith("versions/"), target
    active = target.split("/", 1)[1]
    assert active in allowed, f"active -> {active}, expected one of {allowed}"
    check_version_dir(base / target)
    if (base / "previous").is_symlink():
        prev = os.readlink(base / "previous").split("/", 1)[1]
        assert prev in allowed
        check_version_dir(base / "versions" / prev)
    return active
