"""Bundles: a manifest plus model file(s), verified before anything runs.

A bundle is a directory holding ``manifest.json`` and the files it lists, or
the same packed into one uncompressed tar (``.edgeseg`` / ``.tar``). Loading
checks the schema and the sha256 and size of every listed file, and refuses
anything unlisted in a packed bundle, so a half-copied or tampered bundle
fails with a message naming the file instead of running a wrong model.
Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgeseg.filecheck import sha256_file
from edgeseg.manifest import FileEntry, Manifest, ManifestError, parse_manifest
from edgeseg.registry import Registry
from edgeseg.signing import SIGNATURE_NAME, SignatureError, SignatureInfo, check_signature

MANIFEST_NAME = "manifest.json"
PACKED_SUFFIXES = (".edgeseg", ".tar")
#: Manifest ``format`` -> ``reader(model_path) -> [external file locations]`` for formats
#: whose runtime opens files the model names (ONNX external data).
EXTERNAL_DATA: Registry = Registry(
    "external-data reader", {"onnx": "edgeseg.backends.onnx_external:external_files"}
)
#: Largest manifest read (a real one is a few kB).
MAX_MANIFEST_BYTES = 1 << 20


class BundleError(ValueError):
    """A bundle that cannot be used: missing files, bad hashes, bad manifest."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk.

    Attributes:
        root: Directory holding ``manifest.json`` and the model files (for a
            packed bundle, a private extraction directory).
        manifest: The parsed manifest.
        source: What the user passed (directory or packed file).
    """

    root: Path
    manifest: Manifest
    source: Path
    #: The verified signature (:mod:`edgeseg.signing`), ``None`` for an unsigned bundle.
    signature: SignatureInfo | None = None
    # Keeps a packed bundle's extraction directory alive; removed with the Bundle.
    workdir: tempfile.TemporaryDirectory | None = field(default=None, repr=False, compare=False)

    @property
    def model_path(self) -> Path:
        return self.root / self.manifest.model


def _read_small(path: Path, what: str) -> bytes:
    with open(path, "rb") as f:
        raw = f.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes; {what} is a few kB")
    return raw


def _read_manifest(path: Path, trust_keys: tuple[str, ...] = ()) -> tuple[Manifest, SignatureInfo | None]:
    """The validated manifest and its verified signature (see :mod:`edgeseg.signing`)."""
    try:
        raw = _read_small(path, "a manifest")
    except FileNotFoundError:
        raise BundleError(f"bundle {path.parent} has no {MANIFEST_NAME}") from None
    sig_path = path.parent / SIGNATURE_NAME
    signature = _read_small(sig_path, "a signature") if sig_path.is_file() else None
    try:
        info = check_signature(raw, signature, trust_keys, f"bundle {path.parent}")
    except SignatureError as exc:
        raise BundleError(str(exc)) from None
    return manifest_from_bytes(raw, str(path)), info


def require_trusted(bundle: Bundle, trust_keys: tuple[str, ...]) -> None:
    """Raises BundleError unless ``bundle`` carries a signature by one of ``trust_keys`` (none: no policy)."""
    if not trust_keys:
        return
    if bundle.signature is None or bundle.signature.public_key not in trust_keys:
        what = "is not signed" if bundle.signature is None else f"is signed by untrusted key {bundle.signature.key_id}"
        raise BundleError(f"bundle {bundle.source} {what}; the device config trusts only bundles signed by its trust.keys")


def manifest_from_bytes(raw: bytes, where: str) -> Manifest:
    """Parses and validates manifest bytes read from ``where`` (a path, for messages).

    Raises:
        BundleError: too large, not UTF-8, not JSON, nested too deeply, or invalid.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{where} is larger than {MAX_MANIFEST_BYTES} bytes; a manifest is a few kB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BundleError(f"{where} is not UTF-8 text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{where} is not valid JSON (truncated or corrupt?): {exc}") from None
    except RecursionError:
        raise BundleError(f"{where} is nested too deeply to be a manifest") from None
    try:
        return parse_manifest(data)
    except ManifestError as exc:
        raise BundleError(f"{where}: {exc}") from None


def _verify_files(root: Path, manifest: Manifest) -> None:
    for model in manifest.model_files:
        if model not in manifest.files:
            raise BundleError(f"manifest lists model {model!r} but has no hash for it in 'files'")
    for name, entry in manifest.files.items():
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise BundleError(f"manifest file name {name!r} escapes the bundle directory")
        path = root / rel
        if not path.is_file():
            raise BundleError(f"bundle {root} is missing file {name!r} listed in the manifest")
        size = path.stat().st_size
        if size != entry.size:
            raise BundleError(
                f"bundle file {name!r} has {size} bytes, manifest says {entry.size} (truncated or replaced?)"
            )
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise BundleError(
                f"bundle file {name!r} sha256 mismatch: manifest {entry.sha256[:16]}..., file {digest[:16]}..."
            )


def _check_external_data(root: Path, manifest: Manifest) -> None:
    """Refuses a model that names weight files the manifest does not list (and so did not hash)."""
    if manifest.format not in EXTERNAL_DATA:
        return
    for model in manifest.model_files:  # the model, and a two-model bundle's prompt decoder
        try:
            locations = EXTERNAL_DATA.get(manifest.format)(root / model)
        except ValueError as exc:
            raise BundleError(f"bundle model {model!r} is not a well-formed {manifest.format} file: {exc}") from None
        model_dir = Path(model).parent
        for loc in locations:
            rel = model_dir / loc
            if Path(loc).is_absolute() or ".." in rel.parts:
                raise BundleError(f"bundle model {model!r} names external data {loc!r} outside the bundle")
            if rel.as_posix() not in manifest.files:
                raise BundleError(
                    f"bundle model {model!r} loads external data {loc!r}, which the manifest's 'files' "
                    "does not list with a hash; refusing unverified weights (re-export, or list it)"
                )


def check_bundle_paths(paths: list[str | Path]) -> None:
    """Raises BundleError naming every path that is neither a bundle directory nor a packed bundle file.

    For commands that take several bundles (``edgeseg bench``): all are checked before any work starts.
    """
    bad = [str(p) for p in map(Path, paths)
           if not ((p / MANIFEST_NAME).is_file() or (p.is_file() and p.suffix in PACKED_SUFFIXES))]
    if bad:
        raise BundleError(f"not a bundle directory (with {MANIFEST_NAME}) or {'/'.join(PACKED_SUFFIXES)} file: "
                          + ", ".join(bad))


def load_bundle(path: str | Path, *, trust_keys: tuple[str, ...] = ()) -> Bundle:
    """Loads and verifies a bundle directory or packed ``.edgeseg`` / ``.tar`` file.

    Args:
        path: The bundle.
        trust_keys: Base64 ed25519 public keys (a device config's
            ``trust.keys``): when given, the bundle must be signed by one.
            Without, a present signature is still verified.

    Raises:
        BundleError: with the problem named (missing file, hash mismatch,
            truncated manifest, unknown schema version, wrong output roles,
            unlisted file in a packed bundle).
    """
    source = Path(path)
    if not source.exists():
        raise BundleError(f"bundle {source} does not exist")
    workdir = None
    if source.is_dir():
        root = source
    elif source.suffix in PACKED_SUFFIXES:
        from edgeseg.packed import extract_packed  # late: it imports this module

        workdir = extract_packed(source)
        root = Path(workdir.name)
    else:
        raise BundleError(f"{source} is neither a bundle directory nor a {'/'.join(PACKED_SUFFIXES)} file")
    manifest, signature = _read_manifest(root / MANIFEST_NAME, tuple(trust_keys))
    _verify_files(root, manifest)
    _check_external_data(root, manifest)
    if root != source:
        extra = {p.name for p in root.iterdir()} - set(manifest.files) - {MANIFEST_NAME, SIGNATURE_NAME}
        if extra:
            raise BundleError(f"{source} holds files not listed in its manifest: {sorted(extra)}")
    return Bundle(root=root, manifest=manifest, source=source, signature=signature, workdir=workdir)


def write_bundle(out_dir: str | Path, manifest: Manifest, files: dict[str, Path], *, force: bool = False) -> Bundle:
    """Writes a bundle directory: copies ``files`` and a manifest with their hashes.

    Args:
        out_dir: Directory to create.
        manifest: Manifest to write; its ``files`` are recomputed here.
        files: Bundle-relative name -> source path; must include ``manifest.model``.
        force: Replace an existing bundle at ``out_dir``.
    """
    out = Path(out_dir)
    if (out / MANIFEST_NAME).exists() and not force:
        raise BundleError(f"{out} already holds a bundle; pass force=True (--force) to overwrite it")
    for model in manifest.model_files:
        if model not in files:
            raise BundleError(f"files must include the model {model!r}")
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, FileEntry] = {}
    for name, src in files.items():
        dst = out / name
        if Path(src).resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        entries[name] = FileEntry(sha256=sha256_file(dst), size=dst.stat().st_size)
    final = manifest.replace(files=entries)
    # Validate what we are about to write with the same parser the device uses.
    parse_manifest(json.loads(final.to_json()))
    tmp = out / (MANIFEST_NAME + ".tmp")
    tmp.write_text(final.to_json(), encoding="utf-8")
    tmp.replace(out / MANIFEST_NAME)
    return Bundle(root=out, manifest=final, source=out)


def pack_bundle(bundle_dir: str | Path, out_file: str | Path) -> Path:
    """Packs a verified bundle directory into one uncompressed tar file."""
    bundle = load_bundle(bundle_dir)
    out = Path(out_file)
    with tarfile.open(out, "w:", format=tarfile.PAX_FORMAT) as tar:
        signed = [SIGNATURE_NAME] if (bundle.root / SIGNATURE_NAME).is_file() else []
        for name in [MANIFEST_NAME, *signed, *bundle.manifest.files]:
            tar.add(bundle.root / name, arcname=name, recursive=False)
    return out
