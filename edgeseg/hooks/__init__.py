"""Robot output hooks: every frame's Result and grasps go to one or more sinks.

A hook is opened from a URL whose scheme picks the module (imported late, as
pyserial does for its URL handlers)::

    serial:///dev/ttyUSB0?baud=115200   binary protocol over a serial port
    loop:// hwgrep://... socket://...  any URL pyserial's serial_for_url handles, same hook
    udp://127.0.0.1:9870               one datagram per frame (binary; ?format=json)
    jsonl:-  jsonl:/path/file.jsonl    JSON lines to stdout or a file
    mem://                             in memory (tests, demos)
    mqtt://HOST:PORT/PREFIX            JSON on MQTT topics (paho-mqtt, the ``cell`` extra)
    callback                           a Python function (pass fn=...)

Options come from the query string (``?queue_size=2&drop=newest``) or as
keyword arguments (which win). Common to all: ``queue_size``, ``drop``,
``max_grasps``; see each hook class for its own.
"""

from __future__ import annotations

import importlib.util

from edgeseg.hooks.base import Hook, HookItem, HookStats
from edgeseg.registry import Registry

# scheme -> Hook class; extend with SCHEMES.register("name", "module:Class"). Any
# other scheme that pyserial's serial_for_url knows (loop://, hwgrep://,
# socket://, ...) goes to the serial hook: pyserial is asked, no copy of its
# list is kept here.
SCHEMES: Registry[type[Hook]] = Registry(
    "hook scheme",
    {
        "serial": "edgeseg.hooks.serial:SerialHook",
        "udp": "edgeseg.hooks.udp:UdpHook",
        "jsonl": "edgeseg.hooks.jsonl:JsonlHook",
        "mem": "edgeseg.hooks.mem:MemoryHook",
        "callback": "edgeseg.hooks.callback:CallbackHook",
        "mqtt": "edgeseg.hooks.mqtt:MqttHook",
    },
)


def pyserial_handles(scheme: str) -> bool:
    """Whether pyserial's ``serial_for_url`` has a URL handler for ``scheme``.

    pyserial looks up ``<package>.protocol_<scheme>`` in each of
    ``serial.protocol_handler_packages`` (extensible by applications); this
    asks the same question without opening anything.
    """
    if not scheme.isidentifier():
        return False
    try:
        import serial  # noqa: PLC0415 - runtime dependency, imported when a URL needs it
    except ImportError:
        return False
    for package in serial.protocol_handler_packages:
        try:
            if importlib.util.find_spec(f"{package}.protocol_{scheme}") is not None:
                return True
        except ImportError:
            continue
    return False


def hook_class(url: str) -> type[Hook]:
    """The Hook class that handles ``url`` (by scheme; a bare device path means serial)."""
    if not isinstance(url, str) or not url:
        raise TypeError(f"hook URL must be a non-empty str, got {url!r}")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ("callback" if url == "callback" else "")
    if not scheme and url.startswith("/"):
        scheme = "serial"
    if scheme not in SCHEMES and pyserial_handles(scheme):
        scheme = "serial"
    if scheme not in SCHEMES:
        raise ValueError(f"unknown hook URL {url!r}: expected one of the schemes {SCHEMES.names()}, "
                         "a pyserial URL (loop://, hwgrep://, socket://, ...) or a device path like /dev/ttyUSB0")
    return SCHEMES.get(scheme)


def open_hook(url: str, **opts) -> Hook:
    """Opens the hook for ``url``; keyword options override query-string ones.

    Example::

        hook = open_hook("serial:///dev/ttyACM0?baud=115200&ack=1")
        hook(result, grasps)   # per frame, never blocks
        hook.close()
    """
    return hook_class(url).from_url(url, **opts)


__all__ = ["Hook", "HookItem", "HookStats", "SCHEMES", "hook_class", "open_hook", "pyserial_handles"]
