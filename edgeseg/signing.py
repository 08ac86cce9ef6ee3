"""Ed25519 signatures of bundles and deploy packages, and their check on load and install.

What is signed is the document that lists every other file with its sha256
and size: a bundle's ``manifest.json``, a package's ``package.json``. The
signature lives next to it as ``signature.json``::

    {"alg": "ed25519", "public_key": "<base64, 32 bytes>", "signature": "<base64, 64 bytes>"}

so one changed byte anywhere (the signed document, or a file whose hash it
lists) is refused. Checking (:func:`check_signature`):

* the device config names trust keys (``trust.keys``): the artifact must be
  signed by one of them, else it is refused (unsigned, wrong key, bad
  signature);
* no trust keys: a present signature is still verified against the public
  key it carries (a damaged or altered artifact is refused) and reported as
  *untrusted*; an unsigned artifact loads.

Keys: :func:`generate_key` writes a PKCS#8 PEM private key (mode 0600) and
prints the public key as one base64 line to paste into ``trust.keys``.
The crypto is the ``cryptography`` package (imported only when a signature is
made or checked); nothing here is hand-rolled beyond the file format.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from edgeseg.filecheck import check_members, sha256_bytes
from edgeseg.fromdict import Pattern, from_dict

log = logging.getLogger(__name__)

SIGNATURE_NAME = "signature.json"
_B64_32 = "[A-Za-z0-9+/]{43}="
_B64_64 = "[A-Za-z0-9+/]{86}=="


class SignatureError(ValueError):
    """A signature that is missing where required, malformed, untrusted or wrong."""


@dataclass(frozen=True)
class SignatureDoc:
    """The parsed ``signature.json``."""

    alg: Literal["ed25519"]
    public_key: Annotated[str, Pattern(_B64_32)]
    signature: Annotated[str, Pattern(_B64_64)]


@dataclass(frozen=True)
class SignatureInfo:
    """A verified signature.

    Attributes:
        key_id: First 16 hex digits of the sha256 of the raw public key.
        public_key: The signer's public key, base64.
        trusted: Whether the key is one of the device config's trust keys
            (``False`` when none are configured: the signature is intact, but
            anyone could have made it).
    """

    key_id: str
    public_key: str
    trusted: bool

    def describe(self) -> str:
        return f"signed by key {self.key_id} ({'trusted' if self.trusted else 'not checked against trust keys'})"


def _crypto():
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519, serialization, InvalidSignature


def key_id(public_key_b64: str) -> str:
    return sha256_bytes(base64.b64decode(public_key_b64))[:16]


def _public_b64(private) -> str:
    _, serialization, _ = _crypto()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def generate_key(path: str | os.PathLike) -> str:
    """Writes a new ed25519 private key (PEM, mode 0600) to ``path``; returns the public key (base64)."""
    ed25519, serialization, _ = _crypto()
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return _public_b64(private)


def _load_private(path: str | os.PathLike):
    ed25519, serialization, _ = _crypto()
    try:
        private = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        raise SignatureError(f"{path} is a {type(private).__name__}, expected an ed25519 private key")
    return private


def public_key_of(path: str | os.PathLike) -> str:
    """The base64 public key of the private key at ``path`` (the line for ``trust.keys``)."""
    return _public_b64(_load_private(path))


def sign(data: bytes, key_path: str | os.PathLike) -> bytes:
    """``signature.json`` bytes for ``data`` signed with the private key at ``key_path``."""
    private = _load_private(key_path)
    doc = {"alg": "ed25519", "public_key": _public_b64(private),
           "signature": base64.b64encode(private.sign(data)).decode()}
    return (json.dumps(doc, indent=1) + "\n").encode()


def check_signature(data: bytes, signature: bytes | None, trust_keys: tuple[str, ...], what: str) -> SignatureInfo | None:
    """Verifies ``signature`` (``signature.json`` bytes, or ``None``) of ``data``.

    Args:
        data: The signed document's bytes.
        signature: The signature file's bytes; ``None`` when there is none.
        trust_keys: Base64 public keys the device trusts; empty = no policy.
        what: The artifact, for messages.

    Returns:
        The verified signature, or ``None`` for an unsigned artifact without trust keys.

    Raises:
        SignatureError: unsigned while trust keys are set, malformed, made
            by an untrusted key, or not matching ``data`` (changed after signing).
    """
    if signature is None:
        if trust_keys:
            raise SignatureError(f"{what} is not signed; the device config trusts only signed artifacts "
                                 f"(keys {[key_id(k) for k in trust_keys]})")
        return None
    try:
        doc = from_dict(SignatureDoc, json.loads(signature.decode("utf-8")), SIGNATURE_NAME, error=SignatureError)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SignatureError(f"{what}: {SIGNATURE_NAME} is not valid JSON: {exc}") from None
    except SignatureError as exc:
        raise SignatureError(f"{what}: {exc}") from None
    kid = key_id(doc.public_key)
    if trust_keys and doc.public_key not in trust_keys:
        raise SignatureError(f"{what} is signed by key {kid}, which the device config does not trust "
                             f"(trusted: {[key_id(k) for k in trust_keys]})")
    try:
        ed25519, _, invalid = _crypto()
    except ImportError:  # e.g. the standard-library installer on a fresh board
        if trust_keys:
            raise SignatureError(f"checking the signature of {what} needs the cryptography package "
                                 "(pip install cryptography, or apt install python3-cryptography)") from None
        log.warning("%s is signed by key %s, but cryptography is not installed: signature not checked", what, kid)
        return None
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(doc.public_key)).verify(
            base64.b64decode(doc.signature), data)
    except (invalid, ValueError):
        raise SignatureError(f"{what}: the signature by key {kid} does not match (changed after signing?)") from None
    return SignatureInfo(key_id=kid, public_key=doc.public_key, trusted=bool(trust_keys))


# --------------------------------------------------------------------------- signing files

#: The signed document of each kind of artifact.
SIGNED_DOCS = ("manifest.json", "package.json")


def sign_path(path: str | os.PathLike, key_path: str | os.PathLike) -> str:
    """Signs a bundle directory, a packed bundle or a deploy package in place; returns the signed document's name.

    A directory gets ``signature.json`` beside its ``manifest.json``; a tar
    (``.edgeseg`` bundle or ``pkg.tar`` package) is rewritten with
    ``signature.json`` after its ``manifest.json`` / ``package.json``
    (replacing an older signature), then atomically replaced.

    Raises:
        SignatureError: no manifest.json / package.json, or a bad key.
    """
    import tarfile

    path = Path(path)
    if path.is_dir():
        doc = path / SIGNED_DOCS[0]
        if not doc.is_file():
            raise SignatureError(f"{path} has no {SIGNED_DOCS[0]}; not a bundle directory")
        (path / SIGNATURE_NAME).write_bytes(sign(doc.read_bytes(), key_path))
        return SIGNED_DOCS[0]
    try:
        with tarfile.open(path, "r:") as tar:
            vetted = check_members(tar.getmembers(), what="archive", error=SignatureError)  # sign nothing odd
            members = [m for name, m in vetted.items() if name != SIGNATURE_NAME]
            names = {m.name: m for m in members}
            doc_name = next((d for d in SIGNED_DOCS if d in names), None)
            if doc_name is None:
                raise SignatureError(f"{path} holds neither {' nor '.join(SIGNED_DOCS)}; not a bundle or package")
            signature = sign(tar.extractfile(names[doc_name]).read(), key_path)
            tmp = path.with_name(path.name + ".signing")
            with tarfile.open(tmp, "w:", format=tarfile.PAX_FORMAT) as out:
                for m in members:
                    out.addfile(m, tar.extractfile(m) if m.isfile() else None)
                    if m.name == doc_name:
                        info = tarfile.TarInfo(SIGNATURE_NAME)
                        info.size, info.mode, info.mtime = len(signature), 0o644, m.mtime
                        out.addfile(info, io.BytesIO(signature))
    except (tarfile.TarError, OSError) as exc:
        raise SignatureError(f"{path} is not a readable bundle or package archive: {exc}") from None
    os.replace(tmp, path)
    return doc_name
