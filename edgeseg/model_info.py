"""Which model's class ids a robot link speaks of: the MODEL message body (protocol 1.2).

Class ids in GRASPS records index the bundle's ``classes``; a controller
that maps ids to names must know which bundle that is. A link sends one
MODEL message when it comes up (and again after every reconnect): the
bundle's name, the first 8 bytes of the sha256 of its ``manifest.json`` and
its class count. Layout of the body (after the 22-byte header, no records)::

    u8 name_len | name (UTF-8, <= 64 bytes) | 8 bytes manifest sha256 prefix | u16 class count (LE)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MAX_NAME = 64
_TAIL = struct.Struct("<8sH")


@dataclass(frozen=True)
class ModelInfo:
    """A bundle's identity on the wire.

    Attributes:
        name: Manifest name (UTF-8, cut to 64 bytes on a character boundary).
        manifest_sha256: Hex of the first 8 bytes of ``sha256(manifest.json)``.
        classes: Number of classes the ids index.
    """

    name: str
    manifest_sha256: str
    classes: int

    @classmethod
    def of_bundle(cls, bundle) -> ModelInfo:
        """The identity of a loaded :class:`~edgeseg.bundle.Bundle`."""
        from edgeseg.filecheck import sha256_file

        digest = sha256_file(Path(bundle.root) / "manifest.json")[:16]
        return cls(bundle.manifest.name, digest, len(bundle.manifest.classes))

    def to_body(self) -> bytes:
        name = self.name.encode("utf-8")[:MAX_NAME].decode("utf-8", "ignore").encode("utf-8")
        return bytes([len(name)]) + name + _TAIL.pack(bytes.fromhex(self.manifest_sha256), self.classes & 0xFFFF)

    @classmethod
    def from_body(cls, body: bytes) -> ModelInfo:
        """Parses a MODEL body; raises ValueError naming what is short or malformed."""
        if not body or len(body) < 1 + body[0] + _TAIL.size:
            raise ValueError(f"MODEL body of {len(body)} bytes is shorter than its name length says")
        n = body[0]
        digest, count = _TAIL.unpack_from(body, 1 + n)
        return cls(body[1 : 1 + n].decode("utf-8", "replace"), digest.hex(), count)

    def to_dict(self) -> dict:
        return {"name": self.name, "manifest_sha256": self.manifest_sha256, "classes": self.classes}
