"""Robot-cell interfaces: servers that robots and PLCs query (``edgeseg run --serve URL``).

Resolved by URL scheme, like hooks::

    tcp://HOST:PORT       pick server: TRIGGER / GET_NEXT / GET_ALL / ACK / REJECT / STATUS
                          (binary or ASCII lines; docs/pick_server.md); ?trigger=1 captures on request
    modbus://HOST:PORT    Modbus TCP server: best grasps in holding registers, trigger coil
                          (pymodbus, the ``cell`` extra; docs/modbus.md)

Each server is a :class:`~edgeseg.hooks.Hook` (the run loop hands it every
frame); in trigger mode it also has a ``trigger_gate`` and the loop wraps its
frames in :func:`triggered_frames`. MQTT, which pushes rather than answers, is
a hook: ``--hook mqtt://HOST:PORT/PREFIX``.
"""

from __future__ import annotations

from edgeseg.cell.trigger import TriggerGate, triggered_frames
from edgeseg.hooks.base import Hook
from edgeseg.registry import Registry

#: scheme -> server class; extend with ``SERVERS.register("name", "module:Class")``.
SERVERS: Registry[type[Hook]] = Registry(
    "server scheme",
    {
        "tcp": "edgeseg.cell.pick_server:PickServer",
        "modbus": "edgeseg.cell.modbus:ModbusServer",
    },
)


def open_server(url: str, options=None, **opts) -> Hook:
    """Opens the server for ``url`` (e.g. ``tcp://0.0.0.0:7000?trigger=1``).

    Args:
        url: Server URL; its query options win over ``options``.
        options: Defaults from the device config (an object with ``trigger``
            and ``reply_timeout_s``, e.g. :class:`edgeseg.device_config.CellOptions`), or None.
        **opts: Further keyword options for the server class.

    Raises:
        ValueError: Unknown scheme or malformed URL.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"server URL must look like tcp://HOST:PORT or modbus://HOST:PORT, got {url!r}")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SERVERS:
        raise ValueError(f"unknown server URL {url!r}: expected one of the schemes {SERVERS.names()}")
    if options is not None:
        opts = {"trigger": options.trigger, "reply_timeout_s": options.reply_timeout_s, **opts}
    return SERVERS.get(scheme).from_url(url, **opts)


__all__ = ["SERVERS", "TriggerGate", "open_server", "triggered_frames"]
