"""One small registry for every kind of plug-in: families, backends, hooks, formats, import sources.

A registry maps a name to either the object itself or a ``"module:attribute"``
string that is imported on first use, so a board without TFLite never imports
the TFLite backend, and a user can add a plug-in from their own code without
editing edgeseg::

    from edgeseg.families import FAMILIES
    FAMILIES.register("toy", "my_package.toy:FAMILY")   # or the object itself

Hand-written because the job is twenty lines; entry points (importlib.metadata)
would need an installed distribution for every plug-in, tests included.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """A name that is not registered (the message lists the known names)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Name -> plug-in, resolved lazily.

    Args:
        kind: What the entries are, for error messages (``"model family"``).
        entries: Initial ``name -> object or "module:attribute"`` pairs.
    """

    def __init__(self, kind: str, entries: dict[str, T | str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = dict(entries or {})

    def register(self, name: str, target: T | str, *, replace: bool = False) -> None:
        """Adds ``name``; ``target`` is the plug-in or its ``"module:attribute"`` path.

        Raises:
            ValueError: ``name`` is taken and ``replace`` is false, or is not a
                non-empty string.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered (pass replace=True to override)")
        self._entries[name] = target

    def unregister(self, name: str) -> None:
        """Removes ``name`` (tests that register a temporary plug-in)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The plug-in registered as ``name``, importing it on first use.

        Raises:
            RegistryError: ``name`` is unknown; the message lists the known ones.
        """
        try:
            target = self._entries[name]
        except (KeyError, TypeError):
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {self.names()}") from None
        if isinstance(target, str):
            target = resolve(target)
            self._entries[name] = target
        return target

    def path(self, name: str) -> str | None:
        """The ``"module:attribute"`` string of a not yet imported entry (else ``None``)."""
        target = self._entries.get(name)
        return target if isinstance(target, str) else None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, plug-in)`` pairs, importing every entry."""
        return [(name, self.get(name)) for name in self.names()]

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def resolve(path: str) -> Any:
    """Imports ``"package.module:attribute"`` (or ``"package.module"`` for the module)."""
    module, _, attr = path.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj
