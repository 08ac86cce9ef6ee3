"""Converter chatter goes to a log file, the user's terminal keeps progress bars and edgeseg's own lines.

The converters (torch.export, onnxruntime's quantizer, litert-torch with JAX
and TensorFlow under it) log through Python's root logger, through
``warnings``, and from C++ straight to file descriptor 2 (absl, glog). None
of it is actionable for someone exporting a model, so while an export runs:

* file descriptors 1 and 2 and ``sys.stdout`` point at ``OUT/export.log``
  (C++ logs and litert-torch's step-by-step printout land there),
* ``sys.stderr`` is a new stream on the terminal (tqdm bars, tracebacks),
* log records reach the terminal only from the ``edgeseg`` and ``export``
  loggers (and ERROR from anyone); every record goes to the log file,
* warnings become log records (``py.warnings``), so they go to the file too.

``--verbose`` leaves everything as it is. Hand-written because it is a
dozen lines of ``os.dup2`` and logging handlers, which no library wraps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

LOG_NAME = "export.log"
#: Loggers whose records a user sees on the terminal during an export.
OWN = ("edgeseg", "export")


def _own(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR or record.name.split(".")[0] in OWN


@contextlib.contextmanager
def captured(out_dir: Path, *, verbose: bool = False) -> Iterator[Path | None]:
    """Sends converter output to ``out_dir/export.log`` for the duration (nothing changes when ``verbose``).

    Yields:
        The log file's path, or None when ``verbose``.
    """
    if verbose:
        yield None
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOG_NAME
    root = logging.getLogger()
    old_stderr, old_stdout, old_level = sys.stderr, sys.stdout, root.level
    sys.stderr.flush()
    sys.stdout.flush()
    saved_fd, saved_out = os.dup(2), os.dup(1)
    with open(path, "a", encoding="utf-8", buffering=1) as log_file:
        terminal = os.fdopen(os.dup(saved_fd), "w", buffering=1, encoding=old_stderr.encoding, errors="replace")
        file_handler = logging.StreamHandler(log_file)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        console = [h for h in root.handlers if isinstance(h, logging.StreamHandler) and h.stream is old_stderr]
        filters = []
        try:
            os.dup2(log_file.fileno(), 2)
            os.dup2(log_file.fileno(), 1)
            sys.stderr, sys.stdout = terminal, log_file
            for h in console:
                h.setStream(terminal)
                f = logging.Filter()
                f.filter = _own  # type: ignore[method-assign]
                h.addFilter(f)
                filters.append((h, f))
            root.addHandler(file_handler)
            logging.captureWarnings(True)
            yield path
        finally:
            logging.captureWarnings(False)
            root.removeHandler(file_handler)
            root.setLevel(old_level)
            for h, f in filters:
                h.removeFilter(f)
                h.setStream(old_stderr)
            sys.stderr.flush()
            sys.stdout.flush()
            sys.stderr, sys.stdout = old_stderr, old_stdout
            os.dup2(saved_fd, 2)
            os.dup2(saved_out, 1)
            os.close(saved_fd)
            os.close(saved_out)
            terminal.close()
