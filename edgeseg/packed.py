"""Packed bundles (``.edgeseg`` / ``.tar``): checked member by member before one byte is extracted.

A packed bundle is an uncompressed tar of ``manifest.json`` and the files it
lists, all plain top-level files. :func:`extract_packed` reads the tar headers
and the manifest (bounded by :data:`~edgeseg.bundle.MAX_MANIFEST_BYTES`) only,
refuses any member that is not a plain top-level file, duplicated, unlisted,
missing or of another size than the manifest says, and only then copies each
listed member, exactly its listed size, into a private directory. A truncated
or corrupt archive is a :class:`~edgeseg.bundle.BundleError`.

The directory (``$TMPDIR/edgeseg-bundle-<pid>-*``) lives as long as the
:class:`~edgeseg.bundle.Bundle`; it is removed when the bundle is collected,
at interpreter exit, and on SIGTERM (a handler is installed while a packed
bundle is open, if the process has none of its own; ``edgeseg run`` turns
SIGTERM into a clean exit itself). A process killed with SIGKILL cannot clean
up: the next extraction removes directories whose process is gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import tarfile
import tempfile
import threading
import weakref
from pathlib import Path

from edgeseg.bundle import MANIFEST_NAME, MAX_MANIFEST_BYTES, BundleError, manifest_from_bytes
from edgeseg.filecheck import ArchiveError, check_members
from edgeseg.signing import SIGNATURE_NAME

#: Most members a packed bundle may have (a real one has two to four).
MAX_MEMBERS = 256
PREFIX = "edgeseg-bundle-"

_live: weakref.WeakSet[tempfile.TemporaryDirectory] = weakref.WeakSet()
_handler_lock = threading.Lock()


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    for workdir in list(_live):
        workdir.cleanup()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # die of the signal as before, exit status included


def _install_sigterm_cleanup() -> None:
    """Removes open extraction directories on SIGTERM, unless the process handles SIGTERM itself."""
    if threading.current_thread() is not threading.main_thread():
        return
    with _handler_lock:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_workdirs(tmp: str | os.PathLike | None = None) -> list[Path]:
    """Removes extraction directories left by processes that no longer run (SIGKILL); returns them."""
    removed = []
    for d in Path(tmp or tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = d.name[len(PREFIX) :].split("-", 1)[0]
        if d.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _members(path: Path, tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Headers only: every member must be a plain, unique, top-level file (:func:`edgeseg.filecheck.check_members`)."""
    members = []
    for m in tar:  # reads headers and seeks past the data
        if len(members) >= MAX_MEMBERS:
            raise BundleError(f"{path} has more than {MAX_MEMBERS} members; a bundle has a few")
        members.append(m)
    try:
        return check_members(members, what="bundle", top_level=True)
    except ArchiveError as exc:
        raise BundleError(f"{path}: {exc} (make .edgeseg files with `edgeseg pack BUNDLE_DIR OUT.edgeseg`)") from None


def _copy_exact(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, path: Path) -> None:
    src = tar.extractfile(member)
    left = member.size
    with open(dest, "xb") as out:
        while left:
            chunk = src.read(min(left, 1 << 20))
            if not chunk:
                raise BundleError(f"{path}: member {member.name!r} ends early (truncated archive?)")
            out.write(chunk)
            left -= len(chunk)


def extract_packed(path: Path) -> tempfile.TemporaryDirectory:
    """Checks a packed bundle's members against its manifest, then extracts exactly the listed bytes.

    Args:
        path: The ``.edgeseg`` / ``.tar`` file.

    Returns:
        The private directory holding ``manifest.json`` and the listed files
        (hashes are verified by :func:`edgeseg.bundle.load_bundle` next).

    Raises:
        BundleError: naming the member or the archive problem.
    """
    remove_stale_workdirs()
    try:
        tar = tarfile.open(path, "r:")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{path} is not a readable bundle archive (truncated or corrupt?): {exc}") from None
    with tar:
        try:
            members = _members(path, tar)
            mf = members.get(MANIFEST_NAME)
            if mf is None:
                raise BundleError(f"{path} has no {MANIFEST_NAME}")
            if mf.size > MAX_MANIFEST_BYTES:
                raise BundleError(f"{path}: {MANIFEST_NAME} has {mf.size} bytes; a manifest is a few kB")
            raw = tar.extractfile(mf).read()
            manifest = manifest_from_bytes(raw, f"{path}:{MANIFEST_NAME}")
            extra = sorted(set(members) - set(manifest.files) - {MANIFEST_NAME, SIGNATURE_NAME})
            if extra:
                raise BundleError(f"{path} holds files not listed in its manifest: {extra}")
            for name, entry in manifest.files.items():
                if name not in members:
                    raise BundleError(f"{path} is missing file {name!r} listed in the manifest")
                if members[name].size != entry.size:
                    raise BundleError(
                        f"{path}: member {name!r} has {members[name].size} bytes, manifest says {entry.size} "
                        "(truncated or replaced?)"
                    )
            workdir = tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-")
            _live.add(workdir)
            _install_sigterm_cleanup()
            try:
                dest = Path(workdir.name)
                (dest / MANIFEST_NAME).write_bytes(raw)
                sig = members.get(SIGNATURE_NAME)
                if sig is not None:
                    if sig.size > MAX_MANIFEST_BYTES:
                        raise BundleError(f"{path}: {SIGNATURE_NAME} has {sig.size} bytes; a signature is a few hundred")
                    _copy_exact(tar, sig, dest / SIGNATURE_NAME, path)
                for name in manifest.files:
                    _copy_exact(tar, members[name], dest / name, path)
            except BaseException:
                workdir.cleanup()
                raise
        except (tarfile.TarError, EOFError) as exc:
            raise BundleError(f"{path} is not a readable bundle archive (truncated or corrupt?): {exc}") from None
    return workdir
