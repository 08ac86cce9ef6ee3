"""The deploy package format: ``package.json`` and the checks run before installing.

Standard library only and no import of the runtime (which needs numpy), so the
installer can run on a board that has nothing but ``python3``; see
:mod:`edgeseg.deploy.install`.

A package is an uncompressed tar of regular files only. ``package.json``
lists every other member with its sha256, size and mode; an archive with a
member it does not list, a link, a device, an absolute or ``..`` name, or a
byte changed is refused before anything is written. Hashing and the
tar-member rules are :mod:`edgeseg.filecheck`'s, shared with bundles.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tarfile
from dataclasses import dataclass

from edgeseg import filecheck
from edgeseg.signing import SIGNATURE_NAME, SignatureError, SignatureInfo, check_signature

PACKAGE_MANIFEST = "package.json"
#: Largest package.json / signature.json read into memory.
MAX_PACKAGE_JSON = 16 << 20
SCHEMA = "edgeseg-package/1"


class PackageError(filecheck.ArchiveError):
    """A package that must not be installed, or an installation that cannot proceed."""


@dataclass(frozen=True)
class MemberEntry:
    """One file of a package.

    Attributes:
        sha256: Hex digest of the content.
        size: Bytes.
        mode: Permission bits to install with (``0o644`` or ``0o755``).
    """

    sha256: str
    size: int
    mode: int = 0o644


@dataclass(frozen=True)
class PackageManifest:
    """The parsed ``package.json``.

    Attributes:
        id: Version id (bundle name + content hash); the version directory's name.
        wheel: Member path of the edgeseg runtime wheel.
        files: Member path -> entry, for every member except ``package.json``.
        info: The rest of ``package.json`` (bundle, device, build provenance).
    """

    id: str
    wheel: str
    files: dict[str, MemberEntry]
    info: dict
    #: The verified signature of ``package.json`` (:mod:`edgeseg.signing`), or ``None``.
    signature: SignatureInfo | None = None


def check_member_name(name: str) -> None:
    """Raises PackageError unless ``name`` is a clean relative POSIX path inside the package."""
    filecheck.check_member_name(name, what="package", error=PackageError)


def parse_package_manifest(data: object) -> PackageManifest:
    """Validates a decoded ``package.json``; raises PackageError naming what is wrong."""
    if not isinstance(data, dict):
        raise PackageError(f"{PACKAGE_MANIFEST} must be a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA:
        raise PackageError(f"{PACKAGE_MANIFEST} schema must be {SCHEMA!r}, got {data.get('schema')!r}")
    vid, wheel, files = data.get("id"), data.get("wheel"), data.get("files")
    if not isinstance(vid, str) or not vid or "/" in vid or vid.startswith("."):
        raise PackageError(f"{PACKAGE_MANIFEST} id must be a plain directory name, got {vid!r}")
    if not isinstance(files, dict) or not files:
        raise PackageError(f"{PACKAGE_MANIFEST} files must be a non-empty object, got {type(files).__name__}")
    entries = {}
    for name, e in files.items():
        check_member_name(name)
        ok = (
            isinstance(e, dict)
            and isinstance(e.get("sha256"), str)
            and len(e["sha256"]) == 64
            and isinstance(e.get("size"), int)
            and e["size"] >= 0
            and e.get("mode", "0644") in ("0644", "0755")
        )
        if not ok:
            raise PackageError(f"{PACKAGE_MANIFEST} entry for {name!r} must be {{sha256, size, mode 0644|0755}}, got {e!r}")
        entries[name] = MemberEntry(e["sha256"], e["size"], int(e.get("mode", "0644"), 8))
    if PACKAGE_MANIFEST in entries:
        raise PackageError(f"{PACKAGE_MANIFEST} must not list itself")
    if wheel not in entries:
        raise PackageError(f"{PACKAGE_MANIFEST} wheel {wheel!r} is not one of its files")
    info = {k: v for k, v in data.items() if k not in ("schema", "id", "wheel", "files")}
    return PackageManifest(id=vid, wheel=wheel, files=entries, info=info)


def check_members(members: list[tarfile.TarInfo]) -> dict[str, tarfile.TarInfo]:
    """Name and type checks on every member; returns name -> member for regular files."""
    return filecheck.check_members(members, what="package", error=PackageError)


#: sha256 and size of a stream (the shared helper), as the installer calls it.
hash_stream = filecheck.sha256_stream


def verify_package(path: str | os.PathLike, *, trust_keys: tuple[str, ...] = ()) -> PackageManifest:
    """Checks every member of a package without writing anything.

    Args:
        path: The package.
        trust_keys: Base64 ed25519 public keys (the board's ``trust.keys``):
            when given, ``package.json`` must be signed by one of them;
            without, a present signature is still verified.

    Raises:
        PackageError: unreadable archive, a member that is not a plain file
            inside the package, a file missing from or not listed in
            ``package.json``, or a size / sha256 mismatch (each named).
    """
    try:
        tar = tarfile.open(path, "r:")
    except (tarfile.TarError, OSError) as exc:
        raise PackageError(f"{path} is not a readable package (an uncompressed tar): {exc}") from None
    with tar:
        try:
            members = tar.getmembers()
        except tarfile.TarError as exc:
            raise PackageError(f"{path} is a damaged tar archive: {exc}") from None
        files = check_members(members)
        if PACKAGE_MANIFEST not in files:
            raise PackageError(f"{path} has no {PACKAGE_MANIFEST}; not an edgeseg package")
        if files[PACKAGE_MANIFEST].size > MAX_PACKAGE_JSON or files.get(SIGNATURE_NAME, files[PACKAGE_MANIFEST]).size > MAX_PACKAGE_JSON:
            raise PackageError(f"{path}: {PACKAGE_MANIFEST} or {SIGNATURE_NAME} is larger than {MAX_PACKAGE_JSON} bytes")
        raw = tar.extractfile(files[PACKAGE_MANIFEST]).read()
        sig = tar.extractfile(files[SIGNATURE_NAME]).read() if SIGNATURE_NAME in files else None
        try:
            signature = check_signature(raw, sig, tuple(trust_keys), f"package {path}")
        except SignatureError as exc:
            raise PackageError(str(exc)) from None
        try:
            manifest = parse_package_manifest(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise PackageError(f"{path}: {PACKAGE_MANIFEST} is not valid JSON: {exc}") from None
        manifest = dataclasses.replace(manifest, signature=signature)
        extra = sorted(set(files) - set(manifest.files) - {PACKAGE_MANIFEST, SIGNATURE_NAME})
        if extra:
            raise PackageError(f"{path} holds files not listed in {PACKAGE_MANIFEST}: {extra}; refusing the package")
        missing = sorted(set(manifest.files) - set(files))
        if missing:
            raise PackageError(f"{path} is missing files listed in {PACKAGE_MANIFEST}: {missing}")
        for name, entry in manifest.files.items():
            digest, size = hash_stream(tar.extractfile(files[name]))
            if size != entry.size or digest != entry.sha256:
                raise PackageError(
                    f"{path}: member {name!r} has {size} bytes, sha256 {digest[:16]}...; "
                    f"{PACKAGE_MANIFEST} says {entry.size} bytes, {entry.sha256[:16]}... (corrupt or tampered)"
                )
    return manifest
