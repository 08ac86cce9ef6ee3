"""A hook that calls a Python function in its worker thread."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edgeseg.hooks.base import Hook, HookItem
from edgeseg.result import Result


class CallbackHook(Hook):
    """Calls ``fn(result, grasps)`` for each frame, off the inference thread.

    Args:
        fn: Called with the frame's Result and its grasps (a tuple, best first).
        **opts: :class:`~edgeseg.hooks.base.Hook` options.
    """

    name = "callback"

    def __init__(self, fn: Callable[[Result, Sequence], object], **opts) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        super().__init__(**opts)
        self.fn = fn

    @classmethod
    def from_url(cls, url: str, *, fn: Callable | None = None, **opts) -> CallbackHook:
        if fn is None:
            raise ValueError("the callback hook needs fn=<callable> (open_hook('callback', fn=...))")
        return cls(fn, **opts)

    def _deliver(self, item: HookItem) -> None:
        self.fn(item.result, item.grasps)
