"""Hook URL schemes as plain data: which scheme names exist and which module handles each.

Kept apart from :mod:`edgeseg.hooks` (which imports the hook machinery) so
that plain-data readers such as the device config can validate a URL
without importing any hook.
"""

from __future__ import annotations

# scheme -> "module:Class"; extend by adding an entry.
SCHEMES: dict[str, str] = {
    "serial": "edgeseg.hooks.serial:SerialHook",
    "udp": "edgeseg.hooks.udp:UdpHook",
    "jsonl": "edgeseg.hooks.jsonl:JsonlHook",
    "mem": "edgeseg.hooks.mem:MemoryHook",
    "callback": "edgeseg.hooks.callback:CallbackHook",
}
PYSERIAL_SCHEMES = ("loop", "spy", "socket", "rfc2217", "alt", "hwgrid", "cp2110")
for _s in PYSERIAL_SCHEMES:
    SCHEMES[_s] = SCHEMES["serial"]


def scheme_of(url: str) -> str:
    """The registered scheme of ``url`` (a bare device path means serial).

    Raises:
        TypeError: ``url`` is not a non-empty str.
        ValueError: Unknown scheme (the message names the known ones).
    """
    if not isinstance(url, str) or not url:
        raise TypeError(f"hook URL must be a non-empty str, got {url!r}")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ("callback" if url == "callback" else "")
    if not scheme and url.startswith("/"):
        scheme = "serial"
    if scheme not in SCHEMES:
        raise ValueError(f"unknown hook URL {url!r}: expected one of the schemes {sorted(SCHEMES)} "
                         "or a device path like /dev/ttyUSB0")
    return scheme


def is_serial(url: str) -> bool:
    """True when ``url`` goes to the serial hook (``serial://``, pyserial URLs, device paths)."""
    return SCHEMES[scheme_of(url)] == SCHEMES["serial"]
