"""JSON lines to stdout (``jsonl:-``) or a file (``jsonl:/path/file.jsonl``), one line per frame.

Lines go to a file whole or not at all (:func:`edgeseg.safe_write.append_line`):
on a full disk the frame is counted as failed and the file keeps every
earlier line intact.
"""

from __future__ import annotations

import sys

from edgeseg import protocol
from edgeseg.hooks.base import Hook, HookItem, LinkSequence
from edgeseg.hooks.options import split_options
from edgeseg.safe_write import append_line, open_lines


class JsonlHook(Hook):
    """Writes each frame as one JSON object per line (see docs/protocol.md, JSON lines).

    Args:
        path: ``"-"`` for stdout, else a file path (appended to).
        **opts: :class:`~edgeseg.hooks.base.Hook` options.
    """

    name = "jsonl"

    def __init__(self, path: str = "-", **opts) -> None:
        super().__init__(**opts)
        self.path = path
        self._fh = sys.stdout if path == "-" else open_lines(path)
        self._seq = LinkSequence()

    @classmethod
    def from_url(cls, url: str, **opts) -> JsonlHook:
        bare, q = split_options(url, {})
        path = bare.split(":", 1)[1]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"jsonl hook needs a path or '-', got {url!r} (e.g. jsonl:- or jsonl:/tmp/g.jsonl)")
        return cls(path, **{**q, **opts})

    def _deliver(self, item: HookItem) -> None:
        line = protocol.message_to_json(self._seq.grasps(item)) + "\n"
        if self._fh is sys.stdout:
            self._fh.write(line)
            self._fh.flush()
        else:
            append_line(self._fh, line.encode())

    def _close_sink(self) -> None:
        if self._fh is not sys.stdout:
            self._fh.close()
