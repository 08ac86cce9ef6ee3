"""One typed validator for every dict read from a file: manifest, device config, package metadata.

:func:`from_dict` builds a frozen dataclass from a decoded JSON/YAML mapping,
following the field annotations (``int``, ``float``, ``str``, ``bool``,
``tuple[...]``, ``dict[...]``, ``Literal``, unions, nested dataclasses) and
the constraints attached with :data:`typing.Annotated`::

    pad_value: Annotated[int, Range(0, 255)] = 114

Every value is checked for its type (a ``bool`` is not an ``int``, a string
is not a list, an int is accepted for a float), for the limits that hold
everywhere (floats finite, ints within :data:`INT_LIMIT`, strings and lists
bounded, free-form ``Any`` values at most :data:`MAX_DEPTH` deep) and for its
own constraints. Unknown keys and missing required keys are refused. An error
names the key path (``manifest.input.letterbox.pad_value``), what was expected
and what was found, and is raised as the caller's own exception type
(``ManifestError``, ``ConfigError``); a ``ValueError`` from a dataclass's
``__post_init__`` is re-raised the same way with the key path in front.

Hand-written because the job is a hundred lines over :mod:`typing`, and the
runtime stays at numpy + pyyaml (pydantic would add a compiled dependency to
every board for this one job).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

#: Largest magnitude of any integer read from a file (beyond, C code would overflow).
INT_LIMIT = 2**31 - 1
#: Longest string read from a file.
MAX_STR = 65536
#: Most items in a list or mapping read from a file.
MAX_ITEMS = 100_000
#: Deepest nesting of a free-form (``Any``) value.
MAX_DEPTH = 32


@dataclass(frozen=True)
class Range:
    """A number in ``[lo, hi]`` (bounds optional; ``lo_open``/``hi_open`` exclude them)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def check(self, value: Any) -> str | None:
        lo_ok = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        hi_ok = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        if lo_ok and hi_ok:
            return None
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"a number in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"


@dataclass(frozen=True)
class Length:
    """A list (or string) with ``lo`` to ``hi`` items."""

    lo: int = 0
    hi: int = MAX_ITEMS

    def check(self, value: Any) -> str | None:
        return None if self.lo <= len(value) <= self.hi else f"{self.lo} to {self.hi} items"


@dataclass(frozen=True)
class Unique:
    """A list whose items are all different."""

    def check(self, value: Any) -> str | None:
        return None if len(set(value)) == len(value) else "items that are all different"


@dataclass(frozen=True)
class Pattern:
    """A string matching ``regex`` in full."""

    regex: str

    def check(self, value: Any) -> str | None:
        return None if re.fullmatch(self.regex, value) else f"a string matching {self.regex!r}"


NonEmpty = Length(1, MAX_STR)


def _show(value: Any) -> str:
    """``type value``, shortened: an error must not print a megabyte of hostile input."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


class _Converter:
    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def fail(self, where: str, expected: str, value: Any) -> typing.NoReturn:
        raise self.error(f"{where} must be {expected}, got {_show(value)}")

    def convert(self, value: Any, tp: Any, where: str) -> Any:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            base, *constraints = typing.get_args(tp)
            out = self.convert(value, base, where)
            for c in constraints:
                expected = c.check(out)
                if expected is not None:
                    self.fail(where, expected, value)
            return out
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            errors = []
            for arg in args:
                if arg is type(None):
                    continue
                try:
                    return self.convert(value, arg, where)
                except self.error as exc:
                    errors.append(str(exc))
            raise self.error(errors[0] if errors else f"{where}: bad value {_show(value)}")
        if origin is typing.Literal:
            if isinstance(value, bool) or value not in args:
                self.fail(where, f"one of {list(args)}", value)
            return value
        if dataclasses.is_dataclass(tp):
            return self.dataclass(tp, value, where)
        if origin is tuple:
            if not isinstance(value, (list, tuple)):
                self.fail(where, "a list", value)
            if len(value) > MAX_ITEMS:
                self.fail(where, f"at most {MAX_ITEMS} items", f"{len(value)} items")
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self.convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
            if len(value) != len(args):
                self.fail(where, f"a list of {len(args)} items", value)
            return tuple(self.convert(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, args, strict=True)))
        if origin is dict or tp is dict:
            if not isinstance(value, dict):
                self.fail(where, "a mapping", value)
            if len(value) > MAX_ITEMS:
                self.fail(where, f"at most {MAX_ITEMS} entries", f"{len(value)} entries")
            if len(args) == 2:
                return {
                    self.convert(k, args[0], f"{where} key"): self.convert(v, args[1], f"{where}.{k}")
                    for k, v in value.items()
                }
            self.free_form(value, where)
            return dict(value)
        if tp is Any:
            self.free_form(value, where)
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(where, "float", value)
            if isinstance(value, int) and abs(value) > 2**53:
                self.fail(where, "a finite number", value)
            if not math.isfinite(value):
                self.fail(where, "a finite number", value)
            return float(value)
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(where, "int", value)
            if abs(value) > INT_LIMIT:
                self.fail(where, f"int in [-{INT_LIMIT}, {INT_LIMIT}]", value)
            return value
        if tp is str:
            if not isinstance(value, str):
                self.fail(where, "str", value)
            if len(value) > MAX_STR:
                self.fail(where, f"at most {MAX_STR} characters", f"{len(value)} characters")
            return value
        if tp is bool:
            if not isinstance(value, bool):
                self.fail(where, "bool (true/false)", value)
            return value
        raise self.error(f"{where}: unsupported field type {_type_name(tp)}")

    def free_form(self, value: Any, where: str) -> None:
        """Checks an ``Any`` value iteratively: JSON-like types, bounded depth, finite floats."""
        stack = [(value, 0)]
        while stack:
            v, depth = stack.pop()
            if depth > MAX_DEPTH:
                self.fail(where, f"nested at most {MAX_DEPTH} deep", "a deeper value")
            if isinstance(v, dict):
                stack.extend((x, depth + 1) for x in (*v.keys(), *v.values()))
            elif isinstance(v, (list, tuple)):
                stack.extend((x, depth + 1) for x in v)
            elif isinstance(v, float) and not math.isfinite(v):
                self.fail(where, "finite numbers", v)
            elif isinstance(v, str) and len(v) > MAX_STR:
                self.fail(where, f"strings of at most {MAX_STR} characters", f"{len(v)} characters")
            elif not (v is None or isinstance(v, (bool, int, float, str))):
                self.fail(where, "plain data (mappings, lists, strings, numbers)", v)

    def dataclass(self, cls: type, data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            self.fail(where, "a mapping", data)
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(str(k) for k in set(data) - set(fields))
        if unknown:
            raise self.error(f"{where} has unknown key(s) {unknown}; allowed: {sorted(fields)}")
        missing = [
            name
            for name, f in fields.items()
            if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise self.error(f"{where} is missing required key(s) {missing}")
        kwargs = {k: self.convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
        try:
            return cls(**kwargs)
        except ValueError as exc:  # a __post_init__ check, or a ValueError from a shared type
            raise self.error(f"{where}: {exc}") from None


def from_dict(cls: type, data: Any, where: str, *, error: type[Exception] = ValueError) -> Any:
    """Builds dataclass ``cls`` from a decoded mapping, validating every value.

    Args:
        cls: A dataclass; its annotations (with :class:`Range`, :class:`Length`,
            :class:`Unique`, :class:`Pattern` constraints) say what is allowed.
        data: The decoded JSON/YAML value.
        where: Key path of ``data`` for messages (``"manifest"``, ``"config"``).
        error: Exception type raised (a ``ValueError`` subclass).

    Returns:
        An instance of ``cls``.

    Raises:
        error: naming the key path, what was expected and what was found.
    """
    return _Converter(error).dataclass(cls, data, where)
