"""Bundle loading: every corruption gives a clear error naming the problem."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from edgeseg.bundle import BundleError, load_bundle, pack_bundle


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(tiny_bundle, dst)
    return dst


def _edit_manifest(root: Path, fn) -> None:
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_valid_bundle_loads(tiny_bundle):
    b = load_bundle(tiny_bundle)
    assert b.manifest.family == "proto"
    assert b.model_path.is_file()
    assert [o.role for o in b.manifest.outputs] == ["boxes", "scores", "coeffs", "protos"]


def test_hash_mismatch_names_file(bundle_copy):
    model = bundle_copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.onnx.*sha256 mismatch"):
        load_bundle(bundle_copy)


def test_truncated_model_names_sizes(bundle_copy):
    model = bundle_copy / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(BundleError, match=r"model\.onnx.*1000 bytes.*truncated"):
        load_bundle(bundle_copy)


def test_missing_model(bundle_copy):
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"missing file 'model\.onnx'"):
        load_bundle(bundle_copy)


def test_missing_manifest(bundle_copy):
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="has no manifest.json"):
        load_bundle(bundle_copy)


def test_truncated_manifest(bundle_copy):
    path = bundle_copy / "manifest.json"
    path.write_text(path.read_text()[:200])
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle_copy)


def test_unknown_schema_version(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d.update(schema_version=99))
    with pytest.raises(BundleError, match="unsupported manifest schema_version 99"):
        load_bundle(bundle_copy)


def test_wrong_output_roles(bundle_copy):
    def fn(d):
        d["outputs"][3]["role"] = "masks"

    _edit_manifest(bundle_copy, fn)
    with pytest.raises(BundleError, match=r"family 'proto' needs \['boxes', 'coeffs', 'protos', 'scores'\].*unknown \['masks'\]; missing \['protos'\]"):
        load_bundle(bundle_copy)


def test_duplicate_role(bundle_copy):
    def fn(d):
        d["outputs"][2]["role"] = "scores"

    _edit_manifest(bundle_copy, fn)
    with pytest.raises(BundleError, match="roles"):
        load_bundle(bundle_copy)


def test_unknown_family_and_key(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d.update(family="yolo"))
    with pytest.raises(BundleError, match="family must be one of"):
        load_bundle(bundle_copy)
    _edit_manifest(bundle_copy, lambda d: d.update(family="proto", colour="red"))
    with pytest.raises(BundleError, match=r"unknown key\(s\) \['colour'\]"):
        load_bundle(bundle_copy)


def test_bad_input_layout_and_missing_anchors(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["input"].update(layout="CHWN"))
    with pytest.raises(BundleError, match="input.layout must be one of"):
        load_bundle(bundle_copy)
    _edit_manifest(bundle_copy, lambda d: (d["input"].update(layout="NCHW"), d.update(anchors=None)))
    with pytest.raises(BundleError, match="ltrb.*need 'anchors'"):
        load_bundle(bundle_copy)


def test_model_without_hash_entry(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d.update(files={}))
    with pytest.raises(BundleError, match="no hash for it"):
        load_bundle(bundle_copy)


def test_path_escape_in_manifest(bundle_copy):
    def fn(d):
        d["files"]["../evil"] = {"sha256": "0" * 64, "size": 1}

    _edit_manifest(bundle_copy, fn)
    with pytest.raises(BundleError, match="escapes the bundle"):
        load_bundle(bundle_copy)


def test_packed_roundtrip_and_tampering(tiny_bundle, tmp_path):
    packed = pack_bundle(tiny_bundle, tmp_path / "tiny.edgeseg")
    b = load_bundle(packed)
    assert b.manifest.name == "edgeseg-nano"
    assert b.model_path.read_bytes() == (tiny_bundle / "model.onnx").read_bytes()

    extra = tmp_path / "extra.edgeseg"
    shutil.copy(packed, extra)
    with tarfile.open(extra, "a:") as tar:
        note = tmp_path / "note.txt"
        note.write_text("hi")
        tar.add(note, arcname="note.txt")
    with pytest.raises(BundleError, match=r"not listed in its manifest: \['note.txt'\]"):
        load_bundle(extra)

    evil = tmp_path / "evil.edgeseg"
    with tarfile.open(evil, "w:") as tar:
        tar.add(tiny_bundle / "manifest.json", arcname="../manifest.json")
    with pytest.raises(BundleError, match=r"path traversal.*edgeseg pack"):
        load_bundle(evil)

    corrupt = tmp_path / "corrupt.edgeseg"
    corrupt.write_bytes(packed.read_bytes()[:700])
    with pytest.raises(BundleError):
        load_bundle(corrupt)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")
    f = tmp_path / "model.onnx"
    f.write_bytes(b"x")
    with pytest.raises(BundleError, match="neither a bundle directory"):
        load_bundle(f)
