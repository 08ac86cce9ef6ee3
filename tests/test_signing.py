"""Signed bundles and packages (ed25519): one changed byte after signing is refused, with and without trust keys."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

import edgeseg
from edgeseg.bundle import BundleError, load_bundle, pack_bundle
from edgeseg.cli import main as cli
from edgeseg.deploy.install import install_package
from edgeseg.deploy.verify import PackageError, verify_package
from edgeseg.device_config import load_device_config
from edgeseg.signing import SIGNATURE_NAME, generate_key, key_id, sign_path

NANO = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "edgeseg-nano"


@pytest.fixture()
def keys(tmp_path) -> dict[str, tuple[Path, str]]:
    out = {}
    for name in ("ours", "theirs"):
        path = tmp_path / f"{name}.pem"
        out[name] = (path, generate_key(path))
    return out


@pytest.fixture()
def signed(tmp_path, keys) -> Path:
    root = tmp_path / "nano"
    shutil.copytree(NANO, root)
    sign_path(root, keys["ours"][0])
    return root


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_cli_makes_a_key_and_signs_and_verify_reports_it(tmp_path, capsys):
    root = tmp_path / "b"
    shutil.copytree(NANO, root)
    assert cli(["sign", "--generate-key", str(tmp_path / "k.pem")]) == 0
    public = capsys.readouterr().out.rsplit(" ", 1)[1].strip()
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert cli(["sign", str(root), "--key", str(tmp_path / "k.pem")]) == 0
    assert (root / SIGNATURE_NAME).is_file() and public in capsys.readouterr().out
    assert cli(["verify", str(root)]) == 0
    assert f"signed by key {key_id(public)} (not checked against trust keys)" in capsys.readouterr().out
    config = tmp_path / "board.yaml"
    config.write_text(f"trust: {{keys: ['{public}']}}\n")
    assert cli(["verify", str(root), "--device-config", str(config)]) == 0
    assert f"signed by key {key_id(public)} (trusted)" in capsys.readouterr().out


def test_signed_bundle_loads_trusted_only_with_its_key(signed, keys):
    ours, theirs = keys["ours"][1], keys["theirs"][1]
    assert load_bundle(signed).signature.trusted is False
    assert load_bundle(signed, trust_keys=(ours,)).signature.trusted is True
    with pytest.raises(BundleError, match="does not trust"):
        load_bundle(signed, trust_keys=(theirs,))
    with pytest.raises(BundleError, match="is not signed"):
        load_bundle(NANO, trust_keys=(ours,))
    assert load_bundle(NANO).signature is None  # no policy: unsigned loads


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize("where", ["manifest.json", "model.onnx", SIGNATURE_NAME])
def test_one_changed_byte_after_signing_is_refused(signed, keys, where, trusted):
    path = signed / where
    if where == "manifest.json":  # a byte inside a value the parser accepts either way (the name)
        offset = path.read_bytes().index(b"edgeseg-nano") + 8
    elif where == SIGNATURE_NAME:
        offset = path.read_bytes().index(b'"signature": "') + 20
    else:
        offset = path.stat().st_size // 2
    _flip(path, offset)
    trust = (keys["ours"][1],) if trusted else ()
    with pytest.raises(BundleError, match="does not match|sha256 mismatch|signature"):
        load_bundle(signed, trust_keys=trust)


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize("member", ["manifest.json", "model.onnx"])
def test_a_packed_signed_bundle_changed_by_one_byte_is_refused(signed, keys, tmp_path, member, trusted):
    packed = pack_bundle(signed, tmp_path / "b.edgeseg")
    trust = (keys["ours"][1],) if trusted else ()
    assert load_bundle(packed, trust_keys=trust).signature.key_id == key_id(keys["ours"][1])
    with tarfile.open(packed) as tar:
        m = tar.getmember(member)
        offset = m.offset_data + (tar.extractfile(m).read().index(b"edgeseg-nano") + 8 if member == "manifest.json"
                                  else m.size // 2)
    _flip(packed, offset)
    with pytest.raises(BundleError):
        load_bundle(packed, trust_keys=trust)


def test_the_device_config_trust_keys_gate_edgeseg_load(signed, keys, tmp_path):
    config = tmp_path / "board.yaml"
    config.write_text(f"trust:\n  keys: ['{keys['ours'][1]}']\n")
    assert load_device_config(config).trust.keys == (keys["ours"][1],)
    assert edgeseg.load(signed, device_config=config).bundle.signature.trusted
    with pytest.raises(BundleError, match="is not signed"):
        edgeseg.load(NANO, device_config=config)
    bad = tmp_path / "bad.yaml"
    bad.write_text("trust: {keys: ['not-a-key']}\n")
    with pytest.raises(ValueError, match=r"config.trust.keys\[0\] must be a string matching"):
        load_device_config(bad)


def _package(path: Path) -> Path:
    """A minimal package (structure only: package.json and one 'wheel' member), as verify_package reads it."""
    wheel = b"not really a wheel" * 100
    doc = {"schema": "edgeseg-package/1", "id": "nano-abc", "wheel": "wheels/edgeseg.whl",
           "files": {"wheels/edgeseg.whl": {"sha256": hashlib.sha256(wheel).hexdigest(), "size": len(wheel),
                                            "mode": "0644"}}}
    with tarfile.open(path, "w:") as tar:
        for name, blob in (("package.json", json.dumps(doc).encode()), ("wheels/edgeseg.whl", wheel)):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize("member", ["package.json", "wheels/edgeseg.whl"])
def test_a_signed_package_changed_by_one_byte_is_refused_before_installing(tmp_path, keys, member, trusted):
    pkg = _package(tmp_path / "pkg.tar")
    assert cli(["sign", str(pkg), "--key", str(keys["ours"][0])]) == 0
    trust = (keys["ours"][1],) if trusted else ()
    assert verify_package(pkg, trust_keys=trust).signature.trusted is trusted
    with tarfile.open(pkg) as tar:
        m = tar.getmember(member)
        offset = m.offset_data + (tar.extractfile(m).read().index(b"nano-abc") + 3 if member == "package.json"
                                  else m.size // 2)
    _flip(pkg, offset)
    with pytest.raises(PackageError, match="does not match|tampered"):
        verify_package(pkg, trust_keys=trust)
    with pytest.raises(PackageError):
        install_package(pkg, tmp_path / "root", trust_keys=trust)
    assert not (tmp_path / "root").exists()  # nothing written


def test_unsigned_or_foreign_packages_are_refused_with_trust_keys(tmp_path, keys):
    pkg = _package(tmp_path / "pkg.tar")
    assert verify_package(pkg).signature is None
    with pytest.raises(PackageError, match="is not signed"):
        verify_package(pkg, trust_keys=(keys["ours"][1],))
    sign_path(pkg, keys["theirs"][0])
    with pytest.raises(PackageError, match="does not trust"):
        verify_package(pkg, trust_keys=(keys["ours"][1],))


def test_info_shows_license_source_and_signature(signed, capsys):
    assert cli(["info", str(signed)]) == 0
    out = capsys.readouterr().out
    assert "license      unknown" in out and "source       " in out and "signature    signed by key" in out
