"""Installs an edgeseg deploy package atomically, keeping the previous version.

Standard library only, importing nothing from the runtime (which needs
numpy): every package carries this module and :mod:`edgeseg.deploy.verify`
under ``installer/`` so that a fresh board with just ``python3`` (and
``pip``) can install the package it came in
(``PYTHONPATH=installer python3 -m edgeseg.deploy.install pkg.tar``).
``edgeseg install`` runs the same code.

Steps, in order (``on_step`` is called after each; see :data:`STEPS`):

1. ``verified``: every archive member is checked before anything is written:
   plain files only (no absolute names, no ``..``, no links, no devices),
   exactly the files ``package.json`` lists, each with its size and sha256.
2. ``staged:<name>`` / ``staged``: files are streamed into
   ``versions/.staging-<id>-<pid>`` and hashed again while written; then the
   tree is fsynced.
3. ``provisioned``: the runtime wheel (and its dependencies, per ``deps``) is
   pip-installed into ``<staging>/site``, then the whole tree is fsynced.
4. ``committed``: the staging directory is renamed to ``versions/<id>``.
5. ``previous`` / ``switched``: ``previous`` and then ``active`` are
   repointed, each by creating a symlink under a temporary name and
   ``os.replace``-ing it over the old one, followed by an fsync of the
   directory. ``rename(2)`` is atomic, so ``active`` always names either the
   old or the new version, both complete.
6. ``unit`` / ``cleaned``: the systemd unit is written, then versions other
   than ``active`` and ``previous`` and leftovers of killed installs are
   removed (renamed aside first, so a half-deleted directory is never reused).

A kill or power cut at any point leaves ``active`` on a complete version;
rerunning the install finishes the job.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edgeseg.deploy.verify import (
    PACKAGE_MANIFEST,
    PackageError,
    PackageManifest,
    check_members,
    hash_stream,
    verify_package,
)

DEFAULT_PREFIX = "opt/edgeseg"
UNIT_NAME = "edgeseg.service"
UNIT_DIR = "etc/systemd/system"
#: How the runtime's Python dependencies reach ``<version>/site``:
#: ``bundled`` from the package's ``wheels/`` (offline), ``index`` from the
#: package index with the pinned ``requirements.txt``, ``system`` none (the
#: board provides them; only the edgeseg wheel is installed), ``none`` not even
#: the edgeseg wheel (image builders that provision Python themselves).
DEPS_MODES = ("bundled", "index", "system", "none")
#: Fault injection for tests and power-cut drills: the installer SIGKILLs
#: itself right after the step named in this environment variable.
FAULT_ENV = "EDGESEG_INSTALL_FAULT"
STEPS = ("verified", "staged:<name>", "staged", "provisioned", "committed", "previous", "switched", "unit", "cleaned")

StepHook = Callable[[str], None]


@dataclass(frozen=True)
class InstallState:
    """What is installed under one prefix.

    Attributes:
        base: ``ROOT/PREFIX``.
        active: Version id ``active`` points to, or ``None``.
        previous: Version id ``previous`` points to, or ``None``.
        versions: Installed (committed) version ids, sorted.
    """

    base: Path
    active: str | None
    previous: str | None
    versions: tuple[str, ...]


def fsync_dir(path: Path) -> None:
    """Makes a directory's entries (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(top: Path) -> None:
    """fsyncs every file and directory under ``top`` (pip does not)."""
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(Path(dirpath))


def replace_symlink(link: Path, target: str) -> None:
    """Atomically points ``link`` at ``target`` (relative), durable on return."""
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _link_target(link: Path) -> str | None:
    """Version id a ``versions/<id>`` symlink names, or None if absent or not pointing there."""
    try:
        target = os.readlink(link)
    except (FileNotFoundError, OSError):
        return None
    parent, _, vid = target.rpartition("/")
    return vid if parent == "versions" and vid and not vid.startswith(".") else None


def read_state(root: str | os.PathLike = "/", prefix: str = DEFAULT_PREFIX) -> InstallState:
    """Reads ``active``, ``previous`` and the installed versions under ``ROOT/PREFIX``."""
    base = Path(root) / prefix
    vdir = base / "versions"
    versions = sorted(p.name for p in vdir.iterdir() if not p.name.startswith(".")) if vdir.is_dir() else []
    return InstallState(base, _link_target(base / "active"), _link_target(base / "previous"), tuple(versions))


@contextlib.contextmanager
def install_lock(base: Path) -> Iterator[None]:
    """Serializes installs and rollbacks under one prefix (``flock`` on ``.lock``, freed by the kernel on kill)."""
    import fcntl

    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PackageError(f"another install or rollback is running in {base}") from None
        yield
    finally:
        os.close(fd)


def _remove_aside(path: Path) -> None:
    """Renames ``path`` to a dot-name first, so a kill mid-delete never leaves a usable-looking half."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    os.replace(path, trash)
    fsync_dir(path.parent)
    shutil.rmtree(trash, ignore_errors=True)


def _stage(path: Path, manifest: PackageManifest, staging: Path, step: StepHook) -> None:
    with tarfile.open(path, "r:") as tar:
        files = check_members(tar.getmembers())
        for name in [PACKAGE_MANIFEST, *manifest.files]:
            dest = staging / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            mode = manifest.files[name].mode if name in manifest.files else 0o644
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), mode)  # exactly the manifest's mode, whatever the umask
                digest, size = hash_stream(tar.extractfile(files[name]), out)
            entry = manifest.files.get(name)
            if entry is not None and (digest, size) != (entry.sha256, entry.size):
                raise PackageError(f"{path}: member {name!r} changed while installing (sha256 {digest[:16]}...)")
            step(f"staged:{name}")
    _fsync_tree(staging)  # every file and directory, before anything can point at them
    step("staged")


def _provision(staging: Path, manifest: PackageManifest, deps: str, python: str) -> None:
    """pip-installs the runtime into ``<staging>/site`` (``pip install --target``)."""
    if deps == "none":
        return
    cmd = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-warn-script-location",
           "--target", str(staging / "site")]
    wheel = str(staging / manifest.wheel)
    if deps == "system":
        cmd += ["--no-deps", "--no-index", wheel]
    elif deps == "bundled":
        cmd += ["--no-index", "--find-links", str(staging / "wheels"), "-r", str(staging / "requirements.txt"), wheel]
    else:
        cmd += ["-r", str(staging / "requirements.txt"), wheel]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise PackageError(f"pip could not install the runtime ({' '.join(cmd)}):\n{proc.stdout[-3000:]}")
    _fsync_tree(staging)


def _write_unit(root: Path, prefix: str, version_dir: Path) -> Path:
    text = (version_dir / UNIT_NAME).read_text(encoding="utf-8").replace("@PREFIX@", "/" + prefix.strip("/"))
    unit = root / UNIT_DIR / UNIT_NAME
    _write_atomic(unit, text.encode("utf-8"))
    return unit


def _cleanup(base: Path, keep: set[str | None]) -> None:
    vdir = base / "versions"
    for p in vdir.iterdir():
        if p.name.startswith((".staging-", ".trash-")):
            shutil.rmtree(p, ignore_errors=True)
        elif p.name not in keep:
            _remove_aside(p)
    for stale in base.glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)


def install_package(
    path: str | os.PathLike,
    root: str | os.PathLike = "/",
    *,
    prefix: str = DEFAULT_PREFIX,
    deps: str | None = None,
    python: str = sys.executable,
    on_step: StepHook | None = None,
    trust_keys: tuple[str, ...] = (),
) -> InstallState:
    """Verifies ``path`` and makes it the active version under ``ROOT/PREFIX``.

    Args:
        path: The package (``pkg.tar``).
        root: Directory standing for the board's ``/`` (tests, image builders).
        prefix: Install prefix relative to ``root``.
        deps: One of :data:`DEPS_MODES`; default ``bundled`` when the package
            carries dependency wheels, else ``index``.
        python: Interpreter whose pip provisions ``site/`` (the board's python3).
        on_step: Called with each step name of :data:`STEPS` once that step is done.
        trust_keys: The board's ``trust.keys``: when given, the package must be
            signed by one of them (:mod:`edgeseg.signing`).

    Returns:
        The state after the install.

    Raises:
        PackageError: the package fails verification (nothing is written
            then) or pip fails (the active version is left as it was).
    """
    step = on_step or (lambda name: None)
    manifest = verify_package(path, trust_keys=trust_keys)
    has_wheelhouse = bool(manifest.info.get("build", {}).get("wheelhouse"))
    deps = deps or ("bundled" if has_wheelhouse else "index")
    if deps not in DEPS_MODES:
        raise PackageError(f"deps must be one of {list(DEPS_MODES)}, got {deps!r}")
    if deps == "bundled" and not has_wheelhouse:
        raise PackageError("deps='bundled' needs a package built with --wheels-for; this one carries no dependency wheels")
    step("verified")
    root = Path(root)
    with install_lock(root / prefix):
        state = read_state(root, prefix)
        final = _commit_version(Path(path), manifest, state, deps, python, step)
        _write_unit(root, prefix, final)
        step("unit")
        now = read_state(root, prefix)
        _cleanup(now.base, {now.active, now.previous})
        step("cleaned")
    return read_state(root, prefix)


def _commit_version(
    path: Path, manifest: PackageManifest, state: InstallState, deps: str, python: str, step: StepHook
) -> Path:
    """Stages, provisions and activates ``manifest.id`` unless it is already active; returns its directory."""
    vdir = state.base / "versions"
    vdir.mkdir(parents=True, exist_ok=True)
    final = vdir / manifest.id
    if state.active == manifest.id and final.is_dir():
        return final
    if final.exists():  # left by a killed install, or the previous version: rebuild it from this package
        _remove_aside(final)
    staging = vdir / f".staging-{manifest.id}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _stage(path, manifest, staging, step)
        _provision(staging, manifest, deps, python)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    step("provisioned")
    os.replace(staging, final)
    fsync_dir(vdir)
    step("committed")
    if state.active is not None:
        replace_symlink(state.base / "previous", f"versions/{state.active}")
    step("previous")
    replace_symlink(state.base / "active", f"versions/{manifest.id}")
    step("switched")
    return final


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The install command's options (shared by ``edgeseg install`` and the shipped installer)."""
    p.add_argument("package", type=Path, help="deploy package (pkg.tar) from `edgeseg package`")
    p.add_argument("--root", type=Path, default=Path("/"), help="directory standing for / (image builders, tests)")
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"install prefix under ROOT (default {DEFAULT_PREFIX})")
    p.add_argument("--deps", choices=DEPS_MODES, help="where the runtime's Python dependencies come from "
                   "(default: bundled if the package has wheels/, else index)")
    p.add_argument("--python", default=sys.executable, help="interpreter whose pip installs the runtime")
    p.add_argument("--trust-config", type=Path, metavar="CONFIG", help="the board's device config: when it names "
                   "trust.keys, only a package signed by one of them installs")


def run_from_args(args: argparse.Namespace) -> int:
    """Runs an install from parsed :func:`add_arguments`; prints the outcome."""
    fault = os.environ.get(FAULT_ENV)

    def on_step(name: str) -> None:
        if fault and (name == fault or fault.endswith("*") and name.startswith(fault[:-1])):
            os.kill(os.getpid(), signal.SIGKILL)

    before = read_state(args.root, args.prefix)
    trust_keys: tuple[str, ...] = ()
    if getattr(args, "trust_config", None):
        from edgeseg.device_config import load_device_config

        trust_keys = load_device_config(args.trust_config).trust.keys
    state = install_package(args.package, args.root, prefix=args.prefix, deps=args.deps, python=args.python,
                            on_step=on_step, trust_keys=trust_keys)
    if before.active == state.active:
        print(f"{state.active} is already active in {state.base}")
    else:
        print(f"installed {state.active} into {state.base}/versions; active -> {state.active}, previous -> {state.previous}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the shipped copy (``python3 -m edgeseg.deploy.install pkg.tar``)."""
    p = argparse.ArgumentParser(prog="edgeseg-install", description="Install an edgeseg deploy package.")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_from_args(args)
    except (PackageError, OSError) as exc:
        print(f"edgeseg install: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
