"""Hook options from a URL query string, converted to each option's declared type."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

COMMON = {"queue_size": int, "drop": str, "max_grasps": int}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _convert(key: str, value: str, typ: type) -> Any:
    if typ is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"hook option {key}: expected a boolean (1/0, true/false), got {value!r}")
    try:
        return typ(value)
    except ValueError:
        raise ValueError(f"hook option {key}: expected {typ.__name__}, got {value!r}") from None


def split_options(url: str, known: dict[str, type], *, strict: bool = True) -> tuple[str, dict[str, Any]]:
    """Takes the ``known`` (plus common) options out of ``url``'s query string.

    Args:
        url: The hook URL.
        known: Option name -> type for this hook.
        strict: Raise on unknown options (False: leave them in the URL, e.g.
            for pyserial's own ``?logging=debug``).

    Returns:
        ``(url without the taken options, {name: converted value})``.
    """
    table = {**COMMON, **known}
    parts = urlsplit(url)
    keep, opts = [], {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in table:
            opts[k] = _convert(k, v, table[k])
        elif strict:
            raise ValueError(f"unknown option {k!r} in hook URL {url!r}; expected one of {sorted(table)}")
        else:
            keep.append((k, v))
    base = url.split("?", 1)[0]
    return base + ("?" + urlencode(keep) if keep else ""), opts
