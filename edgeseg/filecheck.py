"""The checks on files and archives that bundles and deploy packages share: sha256, tar-member rules.

One place for both, so a bundle (``edgeseg.bundle``) and a deploy package
(``edgeseg.deploy.verify``) hash and vet archive members the same way.
Standard library only and no import of the rest of the runtime: every deploy
package ships this module in its ``installer/``, which runs on a board that
has nothing but ``python3``.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
from typing import BinaryIO

_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """An archive member that must not be extracted (absolute, ``..``, a link, a device, a duplicate)."""


def sha256_stream(f: BinaryIO, sink: BinaryIO | None = None) -> tuple[str, int]:
    """Hex sha256 and byte count of what ``f`` reads, in 1 MiB chunks, each also written to ``sink`` when given."""
    h, n = hashlib.sha256(), 0
    for chunk in iter(lambda: f.read(_CHUNK), b""):
        h.update(chunk)
        n += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return h.hexdigest(), n


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's content (read in chunks)."""
    with open(path, "rb") as f:
        return sha256_stream(f)[0]


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def check_member_name(name: str, *, what: str = "archive", error: type[ValueError] = ArchiveError) -> None:
    """Raises ``error`` unless ``name`` is a clean relative POSIX path (no ``/`` start, ``..``, ``.`` or ``\\``).

    Args:
        name: The member's name as stored in the tar.
        what: The kind of archive, for the message ("package", "bundle").
        error: Exception class to raise (a ValueError).
    """
    if not name or name.startswith("/") or "\\" in name:
        raise error(f"{what} member {name!r} has an absolute or non-POSIX path; refusing the {what}")
    parts = name.split("/")
    if ".." in parts:
        raise error(f"{what} member {name!r} contains '..' (path traversal); refusing the {what}")
    if posixpath.normpath(name) != name or "." in parts:
        raise error(f"{what} member {name!r} is not a normalized path; refusing the {what}")


def _describe(m: tarfile.TarInfo) -> str:
    kinds = ((m.isdir, "a directory"), (m.ischr, "a character device"), (m.isblk, "a block device"), (m.isfifo, "a FIFO"))
    return next((kind for test, kind in kinds if test()), f"tar type {m.type!r}")


def check_members(
    members: list[tarfile.TarInfo], *, what: str = "archive", error: type[ValueError] = ArchiveError,
    top_level: bool = False,
) -> dict[str, tarfile.TarInfo]:
    """Name and type checks on every member; returns name -> member (all regular files).

    Args:
        members: ``TarFile.getmembers()``.
        what: The kind of archive, for the messages.
        error: Exception class to raise.
        top_level: Also refuse names with a directory part (bundles are flat).

    Raises:
        error: A member with a bad name, a link (those pointing outside the
            archive named as such), a directory or device, or a name twice.
    """
    files: dict[str, tarfile.TarInfo] = {}
    for m in members:
        check_member_name(m.name, what=what, error=error)
        if m.issym() or m.islnk():
            # Symlink targets are relative to the link's directory, hard link targets to the archive root.
            base = posixpath.dirname(m.name) if m.issym() else ""
            resolved = posixpath.normpath(posixpath.join(base, m.linkname))
            if m.linkname.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise error(f"{what} member {m.name!r} is a link to {m.linkname!r}, outside the {what}; refusing")
            raise error(f"{what} member {m.name!r} is a link to {m.linkname!r}; {what}s hold regular files only")
        if not m.isfile():
            raise error(f"{what} member {m.name!r} is {_describe(m)}; {what}s hold regular files only")
        if top_level and "/" in m.name:
            raise error(f"{what} member {m.name!r} is not a top-level file; {what}s are flat")
        if m.name in files:
            raise error(f"{what} member {m.name!r} appears twice; refusing the {what}")
        files[m.name] = m
    return files
