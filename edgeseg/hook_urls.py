"""Hook URL schemes as plain data: which scheme names exist and which class handles each.

Kept apart from :mod:`edgeseg.hooks` (which imports the hook machinery) so
that plain-data readers such as the device config can validate a URL
without importing any hook: the registry holds ``"module:Class"`` strings,
imported only when a hook is opened. Any scheme that pyserial's
``serial_for_url`` knows (``loop://``, ``hwgrep://``, ``socket://``, ...)
goes to the serial hook: pyserial itself is asked, no copy of its list is
kept here.
"""

from __future__ import annotations

import importlib.util

from edgeseg.registry import Registry

#: scheme -> Hook class; extend with ``SCHEMES.register("name", "module:Class")``.
SCHEMES: Registry = Registry(
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


def scheme_of(url: str) -> str:
    """The registered scheme that handles ``url`` (a device path or a pyserial URL means serial).

    Raises:
        TypeError: ``url`` is not a non-empty str.
        ValueError: Unknown scheme (the message names the known ones).
    """
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
    return scheme


def is_serial(url: str) -> bool:
    """True when ``url`` goes to the serial hook (``serial://``, pyserial URLs, device paths)."""
    return scheme_of(url) == "serial"
