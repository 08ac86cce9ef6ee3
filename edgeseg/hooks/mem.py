"""An in-memory hook: keeps every delivered frame and its wire bytes (the test fixture)."""

from __future__ import annotations

from edgeseg import protocol
from edgeseg.hooks.base import Hook, HookItem, LinkSequence
from edgeseg.hooks.options import split_options


class MemoryHook(Hook):
    """Stores delivered items and the protocol bytes a serial link would carry.

    Attributes:
        items: Delivered :class:`HookItem` objects, in order.
        wire: Concatenated COBS-framed messages, as a serial hook writes them.
    """

    name = "mem"

    def __init__(self, **opts) -> None:
        super().__init__(**opts)
        self.items: list[HookItem] = []
        self.wire = bytearray()
        self._seq = LinkSequence()

    @classmethod
    def from_url(cls, url: str, **opts) -> MemoryHook:
        _, q = split_options(url, {})
        return cls(**{**q, **opts})

    def messages(self) -> list[protocol.Message]:
        """Decodes :attr:`wire` back into messages."""
        return protocol.StreamDecoder().feed(bytes(self.wire))

    def _deliver(self, item: HookItem) -> None:
        self.items.append(item)
        self.wire += protocol.encode(self._seq.grasps(item))
