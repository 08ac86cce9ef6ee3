"""A bounded hand-off between two pipeline stages.

Frames from files must all be processed, so ``put`` waits while the channel is
full. Frames from live sources must never hold up the camera, so for them
``put`` drops the oldest queued frame instead and counts the drop.
Hand-written (a deque and a condition) because ``queue.Queue`` cannot drop
its oldest item atomically.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

END = object()  # put after the last item; get returns it to every later caller


class Channel:
    """Bounded FIFO between two threads.

    Args:
        size: Items that may wait (>= 1).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"channel size must be >= 1, got {size}")
        self.size = size
        self.dropped = 0
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._ended = False

    def put(self, item: Any, *, drop_oldest: bool = False) -> None:
        """Queues ``item``; waits while full, or drops the oldest item when ``drop_oldest``."""
        with self._cond:
            while len(self._items) >= self.size and not drop_oldest:
                self._cond.wait()
            if len(self._items) >= self.size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()

    def end(self) -> None:
        """No more items; readers get :data:`END` once the queue is empty."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def get(self) -> Any:
        """The next item, or :data:`END` after :meth:`end` and an empty queue."""
        with self._cond:
            while not self._items and not self._ended:
                self._cond.wait()
            if not self._items:
                return END
            item = self._items.popleft()
            self._cond.notify_all()
            return item
