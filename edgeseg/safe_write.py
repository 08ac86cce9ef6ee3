"""File writes that a full disk cannot tear: whole files replaced atomically, whole lines appended.

* :func:`write_atomic` writes a temporary file next to the target and
  ``os.replace``-s it; on failure the temporary file is removed and the old
  file stays as it was (no ``.tmp`` leftovers, no half files).
* :func:`append_line` appends one line to a file opened in binary mode; when
  the write fails part-way (``ENOSPC``) the file is truncated back to where
  the line began, so every line in the file is whole and nothing already
  written is lost; a partial last line left by a killed writer is cut off
  before the next line goes in, so a new run never appends to it.

Hand-written: the standard library has no "replace atomically or leave
nothing" helper, and these are a few lines each.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replaces ``path`` with ``data`` atomically.

    Raises:
        OSError: The write failed (the old file, if any, is untouched).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def append_line(fh: BinaryIO, line: bytes) -> None:
    """Appends ``line`` (which should end in ``\\n``) to ``fh`` whole or not at all.

    Args:
        fh: A file opened unbuffered in binary append mode (``open(p, "ab", buffering=0)``).
        line: The bytes to append.

    Raises:
        OSError: The write failed; the file was cut back to its previous end.
    """
    fd = fh.fileno()
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        view = memoryview(line)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError:
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass
        raise


def open_lines(path: str | os.PathLike) -> BinaryIO:
    """Opens a JSON-lines file for :func:`append_line` (unbuffered binary append).

    A partial last line (a writer killed mid-line) is cut off first, so this
    run's first line does not glue onto it; every complete line stays.
    """
    fh = open(path, "ab", buffering=0)  # noqa: SIM115 - the caller owns it
    try:
        with open(path, "rb") as rd:
            end = rd.seek(0, os.SEEK_END)
            pos, keep = end, end
            if end and (rd.seek(end - 1), rd.read(1))[1] != b"\n":
                keep = 0
                while pos > 0:
                    start = max(0, pos - (1 << 16))
                    rd.seek(start)
                    cut = rd.read(pos - start).rfind(b"\n")
                    if cut >= 0:
                        keep = start + cut + 1
                        break
                    pos = start
        if keep != end:
            os.ftruncate(fh.fileno(), keep)
    except BaseException:
        fh.close()
        raise
    return fh
