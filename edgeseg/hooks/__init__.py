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

from edgeseg.hook_urls import SCHEMES, pyserial_handles, scheme_of
from edgeseg.hooks.base import Hook, HookItem, HookStats


def hook_class(url: str) -> type[Hook]:
    """The Hook class that handles ``url`` (by scheme; a bare device path or pyserial URL means serial)."""
    return SCHEMES.get(scheme_of(url))


def open_hook(url: str, **opts) -> Hook:
    """Opens the hook for ``url``; keyword options override query-string ones.

    Example::

        hook = open_hook("serial:///dev/ttyACM0?baud=115200&ack=1")
        hook(result, grasps)   # per frame, never blocks
        hook.close()
    """
    return hook_class(url).from_url(url, **opts)


__all__ = ["Hook", "HookItem", "HookStats", "SCHEMES", "hook_class", "open_hook", "pyserial_handles"]
