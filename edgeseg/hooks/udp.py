"""UDP datagrams: one per frame, the binary protocol (default) or one JSON line."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from edgeseg import protocol
from edgeseg.hooks.base import Hook, HookItem, LinkSequence
from edgeseg.hooks.options import split_options


class UdpHook(Hook):
    """Sends each frame as one datagram to ``host:port``.

    Args:
        host: Destination host name or address.
        port: Destination port.
        format: ``"binary"`` (a COBS-framed protocol message, delimiter
            included) or ``"json"`` (one JSON line, UTF-8).
        **opts: :class:`~edgeseg.hooks.base.Hook` options.
    """

    name = "udp"

    def __init__(self, host: str, port: int, *, format: str = "binary", **opts) -> None:  # noqa: A002
        if format not in ("binary", "json"):
            raise ValueError(f"udp format must be 'binary' or 'json', got {format!r}")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"udp port must be in 1..65535, got {port!r}")
        super().__init__(**opts)
        self.address = (host, port)
        self.format = format
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][0]
        except socket.gaierror as exc:
            raise ValueError(f"udp hook: cannot resolve host {host!r} ({exc.strerror}); expected udp://HOST:PORT "
                             "with a name or address this machine can resolve") from None
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._seq = LinkSequence()

    @classmethod
    def from_url(cls, url: str, **opts) -> UdpHook:
        bare, q = split_options(url, {"format": str})
        parts = urlsplit(bare)
        if not parts.hostname or parts.port is None:
            raise ValueError(f"udp hook URL must be udp://host:port, got {url!r}")
        return cls(parts.hostname, parts.port, **{**q, **opts})

    def _deliver(self, item: HookItem) -> None:
        msg = self._seq.grasps(item)
        data = protocol.encode(msg) if self.format == "binary" else (protocol.message_to_json(msg) + "\n").encode()
        self._sock.sendto(data, self.address)

    def _close_sink(self) -> None:
        self._sock.close()
