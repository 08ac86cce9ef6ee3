"""Nothing unverified loads: ONNX external data, packed-bundle members, extraction directories (issue 18)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from edgeseg.backends import load_backend
from edgeseg.bundle import BundleError, load_bundle, pack_bundle
from edgeseg.device_config import BackendOptions
from edgeseg.packed import PREFIX, remove_stale_workdirs

NANO = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "edgeseg-nano"


def _entry(path: Path) -> dict:
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


@pytest.fixture()
def external_bundle(tmp_path) -> Path:
    """The nano model saved with its weights in ``weights.bin`` (ONNX external data)."""
    onnx = pytest.importorskip("onnx")
    root = tmp_path / "ext"
    root.mkdir()
    model = onnx.load(str(NANO / "model.onnx"))
    onnx.save(model, str(root / "model.onnx"), save_as_external_data=True, location="weights.bin")
    manifest = json.loads((NANO / "manifest.json").read_text())
    manifest["files"] = {"model.onnx": _entry(root / "model.onnx"), "weights.bin": _entry(root / "weights.bin")}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_external_data_listed_with_its_hash_loads_and_runs(external_bundle):
    bundle = load_bundle(external_bundle)
    backend = load_backend(bundle, BackendOptions())
    backend.close()


def test_external_data_missing_from_the_manifest_is_refused(external_bundle):
    path = external_bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["files"]["weights.bin"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"external data 'weights\.bin'.*does not list"):
        load_bundle(external_bundle)


def test_changed_external_data_is_refused(external_bundle):
    weights = external_bundle / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[100] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"weights\.bin.*sha256 mismatch"):
        load_bundle(external_bundle)


def _tar(path: Path, members: dict[str, bytes], sparse: dict[str, int] | None = None) -> Path:
    """A tar of ``members``, then for each name in ``sparse`` a member of that many zero bytes
    written as a hole (the file is as large as claimed but takes no disk)."""
    with open(path, "wb") as f:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            f.write(info.tobuf(tarfile.PAX_FORMAT))
            f.write(data + b"\0" * (-len(data) % 512))
        for name, size in (sparse or {}).items():
            info = tarfile.TarInfo(name)
            info.size = size
            f.write(info.tobuf(tarfile.PAX_FORMAT))
            f.seek(size + (-size % 512), os.SEEK_CUR)
        f.write(b"\0" * 1024)
    return path


def _nano_members() -> dict[str, bytes]:
    return {"manifest.json": (NANO / "manifest.json").read_bytes(), "model.onnx": (NANO / "model.onnx").read_bytes()}


def _workdirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob(f"{PREFIX}*"))


@pytest.fixture()
def private_tmp(tmp_path, monkeypatch) -> Path:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


_LOAD_UNDER_FILE_LIMIT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = 64 << 20
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from edgeseg.bundle import BundleError, load_bundle
try:
    load_bundle(sys.argv[1])
except BundleError as exc:
    print("BundleError:", exc)
"""


def test_an_unlisted_huge_member_is_refused_from_its_header_before_any_extraction(tmp_path):
    """A 2 GiB unlisted member (a hole on disk): refused without writing it, under a 64 MiB file-size limit."""
    packed = _tar(tmp_path / "b.edgeseg", _nano_members(), sparse={"junk.bin": 2 << 30})
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_UNDER_FILE_LIMIT, str(packed)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "BundleError:" in out.stdout and "not listed in its manifest: ['junk.bin']" in out.stdout, out.stdout
    assert _workdirs(tmp) == []


def test_a_member_of_another_size_than_listed_is_refused_before_extraction(tmp_path, private_tmp):
    members = _nano_members()
    members["model.onnx"] = members["model.onnx"] + b"\0"
    with pytest.raises(BundleError, match=r"member 'model\.onnx' has 4598434 bytes, manifest says 4598433"):
        load_bundle(_tar(tmp_path / "b.edgeseg", members))
    assert _workdirs(private_tmp) == []


@pytest.mark.parametrize("cut", [100, 700, 3000, 1_000_000, -20_000])
def test_a_truncated_packed_bundle_is_a_bundle_error(tmp_path, private_tmp, cut):
    packed = pack_bundle(NANO, tmp_path / "good.edgeseg")
    data = packed.read_bytes()
    bad = tmp_path / "cut.edgeseg"
    bad.write_bytes(data[:cut])
    with pytest.raises(BundleError):
        load_bundle(bad)
    assert _workdirs(private_tmp) == []


def test_corrupt_headers_and_duplicates_are_bundle_errors(tmp_path, private_tmp):
    packed = pack_bundle(NANO, tmp_path / "good.edgeseg")
    data = bytearray(packed.read_bytes())
    data[148:156] = b"garbage!"  # the first header's checksum
    bad = tmp_path / "bad.edgeseg"
    bad.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="not a readable bundle archive"):
        load_bundle(bad)
    members = _nano_members()
    dup = tmp_path / "dup.edgeseg"
    with tarfile.open(dup, "w:") as tar:
        for name, blob in [*members.items(), ("model.onnx", members["model.onnx"])]:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(BundleError, match="appears twice"):
        load_bundle(dup)


_CHILD = """
import sys, time
from edgeseg.bundle import load_bundle
b = load_bundle(sys.argv[1])
print(b.root, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_extraction_directory_goes_away_on_sigterm_and_after_sigkill(tmp_path, sig):
    packed = pack_bundle(NANO, tmp_path / "b.edgeseg")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(packed)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        root = Path(child.stdout.readline().strip())
        assert root.parent == tmp and (root / "model.onnx").is_file()
        child.send_signal(sig)
        assert child.wait(30) == -sig
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    if sig == signal.SIGTERM:
        assert not root.exists()
    else:  # nothing can run on SIGKILL: the next extraction sweeps it
        assert root.exists()
        assert remove_stale_workdirs(tmp) == [root]
        assert not root.exists()


def test_a_packed_bundle_in_process_removes_its_directory_when_dropped(tmp_path, private_tmp):
    bundle = load_bundle(pack_bundle(NANO, tmp_path / "b.edgeseg"))
    root = bundle.root
    assert root.parent == private_tmp and root.name.startswith(f"{PREFIX}{os.getpid()}-")
    del bundle
    import gc

    gc.collect()
    assert not root.exists()
    shutil.rmtree(private_tmp)
