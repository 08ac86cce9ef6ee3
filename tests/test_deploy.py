"""Deploy packages: package -> install -> run in a temporary root, tampered archives, rollback.

Runs for real: the wheel is built with ``pip wheel`` from this checkout, the
install pip-installs it into the version's ``site/`` (``--deps system``: the
dependencies are this environment's, as on a board that has them), and the
service launcher from the package runs ``edgeseg run`` with this interpreter
on an image instead of the camera. ~15 s in all, mostly the wheel build and pip.
"""

from __future__ import annotations

import configparser
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import pytest
from deploy_support import (
    DEFAULT_BUNDLE,
    assert_consistent,
    check_version_dir,
    extract_installer,
    package_id,
    run_installer,
    write_config,
)

from edgeseg.deploy.install import install_package, read_state
from edgeseg.deploy.package import build_package, build_wheel, runtime_requirements, source_tree
from edgeseg.deploy.rollback import rollback
from edgeseg.deploy.verify import PackageError, verify_package


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two packages of the same bundle that differ in camera source (so in version id), and the wheel."""
    tmp = tmp_path_factory.mktemp("deploy")
    wheel = build_wheel(source_tree(), tmp / "wheel")
    hooks = tmp / "grasps.jsonl"
    a = build_package(DEFAULT_BUNDLE, write_config(tmp / "a.yaml", source="camera:0", hook_file=hooks), tmp / "a.tar", wheel=wheel)
    b = build_package(DEFAULT_BUNDLE, write_config(tmp / "b.yaml", source="camera:1"), tmp / "b.tar", wheel=wheel)
    return {"a": a, "b": b, "wheel": wheel, "hooks": hooks, "tmp": tmp}


def test_package_holds_everything_a_board_needs(built):
    s = built["a"]
    manifest = verify_package(s.path)  # the installer's own check passes
    assert s.id == manifest.id and s.id.startswith("edgeseg-nano-")
    for member in ("bundle/manifest.json", "bundle/model.onnx", "device_config.yaml", "requirements.txt",
                   "install.sh", "edgeseg.service", "bin/edgeseg-service", "installer/edgeseg/deploy/install.py",
                   "installer/edgeseg/signing.py", "installer/edgeseg/fromdict.py"):
        assert member in manifest.files
    # the bundle's licence and source travel with the package (issue 18); the default bundle is unsigned
    assert manifest.info["bundle"]["license"] == "unknown" and manifest.info["bundle"]["source"] != "unknown"
    assert manifest.info["bundle"]["signed_by"] is None and manifest.signature is None
    assert manifest.files["bin/edgeseg-service"].mode == 0o755
    assert manifest.wheel.startswith("wheels/edgeseg-")
    with tarfile.open(s.path) as tar:
        reqs = tar.extractfile("requirements.txt").read().decode().split()
        launcher = tar.extractfile("bin/edgeseg-service").read().decode()
    # Runtime dependencies only, each pinned to what is installed here.
    names = {r.split("==")[0].lower() for r in reqs if "==" in r}
    assert {"numpy", "onnxruntime", "opencv-python-headless", "pyserial", "pyyaml"} <= names
    assert not names & {"torch", "onnx", "onnxscript", "litert-torch", "pytest"}
    assert "SOURCE=${EDGESEG_SOURCE:-camera:0}" in launcher
    assert f"--hook {shlex.quote('jsonl:' + str(built['hooks']))}" in launcher


def test_wheel_holds_the_runtime_only(built):
    """No workstation code (export/) and no test fixtures in what boards install (issue 19)."""
    import zipfile

    names = zipfile.ZipFile(built["wheel"]).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"edgeseg"}, top
    fixtures = ("synthetic", "virtual_port", "protocol_examples", "tests/", "conftest")
    assert not [n for n in names if any(f in n for f in fixtures)]
    assert "edgeseg/segmenter.py" in names and "edgeseg/assets/samples/scene_00.jpg" in names
    assert any(n.startswith("edgeseg/deploy/templates/") for n in names)
    assert any(n.startswith("edgeseg/_c/_cdecode") and n.endswith(".so") for n in names)  # the C decoder is built in


def test_runtime_requirements_follow_the_bundle_format(built):
    onnx_reqs = runtime_requirements(built["wheel"])
    tflite_reqs = runtime_requirements(built["wheel"], ("tflite",))
    assert not any(r.startswith("ai-edge-litert") for r in onnx_reqs)
    assert [r for r in tflite_reqs if r not in onnx_reqs][0].startswith("ai-edge-litert==")


def test_board_native_formats_bring_their_runtime(built):
    from edgeseg.deploy.package import FORMAT_EXTRAS

    onnx_reqs = runtime_requirements(built["wheel"])
    for fmt in ("openvino", "ncnn"):
        added = [r for r in runtime_requirements(built["wheel"], FORMAT_EXTRAS[fmt]) if r not in onnx_reqs]
        assert [r.split("==")[0] for r in added] == [fmt], added


def test_device_config_is_validated_and_resolved(tmp_path, built):
    parent = write_config(tmp_path / "parent.yaml", source="camera:3")
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\nname: child-board\n")
    s = build_package(DEFAULT_BUNDLE, child, tmp_path / "c.tar", wheel=built["wheel"])
    with tarfile.open(s.path) as tar:
        text = tar.extractfile("device_config.yaml").read().decode()
    assert "\nextends:" not in text and "child-board" in text and "camera:3" in text  # parent merged in
    assert parent.exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbackend: {threads: -1}\n")
    with pytest.raises(ValueError, match="threads"):
        build_package(DEFAULT_BUNDLE, bad, tmp_path / "d.tar", wheel=built["wheel"])
    assert not (tmp_path / "d.tar").exists()


def test_package_install_run_in_a_temporary_root(tmp_path, built, scene):
    root = tmp_path / "root"
    state = install_package(built["a"].path, root, deps="system")
    assert state.active == built["a"].id and state.previous is None
    active = root / "opt/edgeseg/active"
    assert os.readlink(active) == f"versions/{built['a'].id}"  # relative: valid inside an image tree too
    check_version_dir(active)

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(root / "etc/systemd/system/edgeseg.service")
    assert unit["Service"]["ExecStart"] == "/opt/edgeseg/active/bin/edgeseg-service"
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Service"]["StandardOutput"] == "journal"

    # The installed runtime is what runs, not this checkout.
    env = {**os.environ, "PYTHONPATH": str(active / "site")}
    where = subprocess.run([sys.executable, "-c", "import edgeseg; print(edgeseg.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to((root / "opt/edgeseg/versions").resolve())

    # The service launcher, with an image instead of the camera.
    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), scene)
    health, out = tmp_path / "run/health.json", tmp_path / "out"
    env = {**os.environ, "EDGESEG_PYTHON": sys.executable, "EDGESEG_SOURCE": str(image),
           "EDGESEG_HEALTH_FILE": str(health), "EDGESEG_ARGS": f"--out {out}"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(active / "bin/edgeseg-service")], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "scene:" in proc.stdout and "instances" in proc.stdout
    result = json.loads((out / "scene.json").read_text())
    assert result["image_size"] == list(scene.shape[:2]) and isinstance(result["instances"], list)
    beat = json.loads(health.read_text())
    assert beat["status"] == "stopped" and beat["frames"] == 1 and beat["failures"] == 0
    assert built["hooks"].read_text().strip(), "the robot hook from the device config got no frame"


def _rewrite(src: Path, dst: Path, *, change: str | None = None, add: tarfile.TarInfo | None = None,
             add_data: bytes = b"") -> Path:
    """Copies package ``src`` to ``dst``, flipping one byte of member ``change`` and/or adding ``add``."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:", format=tarfile.PAX_FORMAT) as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            if m.name == change:
                data = data[:100] + bytes([data[100] ^ 0x01]) + data[101:]
            tout.addfile(m, io.BytesIO(data))
        if add is not None:
            add.size = len(add_data) if add.isfile() else 0
            tout.addfile(add, io.BytesIO(add_data) if add.isfile() else None)
    return dst


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


TAMPERED = {
    "changed byte": (dict(change="bundle/model.onnx"), r"member 'bundle/model.onnx' .* \(corrupt or tampered\)"),
    "changed installer": (dict(change="installer/edgeseg/deploy/install.py"), "corrupt or tampered"),
    "extra file": (dict(add=tarfile.TarInfo("bundle/extra.onnx"), add_data=b"x" * 10), "not listed in package.json"),
    "path traversal": (dict(add=tarfile.TarInfo("../../evil.sh"), add_data=b"#!/bin/sh\n"), "path traversal"),
    "absolute path": (dict(add=tarfile.TarInfo("/tmp/evil.sh"), add_data=b"#!/bin/sh\n"), "absolute"),
    "symlink escape": (dict(add=_symlink("bundle/passwd", "../../../../etc/passwd")), "outside the package"),
    "absolute symlink": (dict(add=_symlink("bin/sh", "/bin/sh")), "outside the package"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_package_is_refused_and_active_untouched(tmp_path, built, case):
    kwargs, message = TAMPERED[case]
    root = tmp_path / "root"
    install_package(built["a"].path, root, deps="none")
    before = read_state(root)
    listing = sorted(p.name for p in (root / "opt/edgeseg/versions").iterdir())
    bad = _rewrite(built["b"].path, tmp_path / "bad.tar", **kwargs)
    with pytest.raises(PackageError, match=message):
        install_package(bad, root, deps="none")
    assert read_state(root) == before
    assert sorted(p.name for p in (root / "opt/edgeseg/versions").iterdir()) == listing
    assert_consistent(root / "opt/edgeseg", {built["a"].id})
    assert not (tmp_path / "evil.sh").exists()
    # The shipped installer says the same, in one line, and exits 2.
    proc = run_installer(extract_installer(built["a"].path, tmp_path / "inst"), bad, root)
    assert proc.returncode == 2 and proc.stderr.startswith("edgeseg install: error:"), proc.stderr
    assert read_state(root) == before


def test_install_again_is_a_noop_and_rollback_swaps_versions(tmp_path, built):
    root = tmp_path / "root"
    a, b = built["a"].id, built["b"].id
    with pytest.raises(PackageError, match="nothing is installed"):
        rollback(root)
    install_package(built["a"].path, root, deps="none")
    with pytest.raises(PackageError, match="no previous version"):
        rollback(root)
    install_package(built["a"].path, root, deps="none")
    assert read_state(root).versions == (a,)
    state = install_package(built["b"].path, root, deps="none")
    assert (state.active, state.previous) == (b, a)

    cli = [sys.executable, "-m", "edgeseg", "rollback", "--root", str(root)]
    proc = subprocess.run(cli, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    state = read_state(root)
    assert (state.active, state.previous) == (a, b)
    assert_consistent(root / "opt/edgeseg", {a, b})
    state = rollback(root)  # and back again
    assert (state.active, state.previous) == (b, a)

    # Reinstalling the previous version rebuilds it from the package and makes it active.
    state = install_package(built["a"].path, root, deps="none")
    assert (state.active, state.previous) == (a, b)
    assert_consistent(root / "opt/edgeseg", {a, b})


def test_only_two_versions_are_kept(tmp_path, built):
    root = tmp_path / "root"
    c = build_package(DEFAULT_BUNDLE, write_config(tmp_path / "c.yaml", source="camera:2"), tmp_path / "c.tar",
                      wheel=built["wheel"])
    for s in (built["a"], built["b"], c):
        install_package(s.path, root, deps="none")
    state = read_state(root)
    assert (state.active, state.previous) == (c.id, built["b"].id)
    assert state.versions == tuple(sorted((c.id, built["b"].id)))
    assert not [p for p in (root / "opt/edgeseg/versions").iterdir() if p.name.startswith(".")]


def test_cli_package_then_install(tmp_path, built):
    out = tmp_path / "cli.tar"
    cfg = write_config(tmp_path / "cli.yaml", source="camera:5")
    edgeseg = [sys.executable, "-m", "edgeseg"]
    proc = subprocess.run([*edgeseg, "package", str(DEFAULT_BUNDLE), "--device-config", str(cfg), "--out", str(out),
                           "--wheel", str(built["wheel"])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "pinned runtime requirements: cryptography==" in proc.stdout and " numpy==" in proc.stdout
    root = tmp_path / "root"
    proc = subprocess.run([*edgeseg, "install", str(out), "--root", str(root), "--deps", "none"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert read_state(root).active == package_id(out)
    proc = subprocess.run([*edgeseg, "install", str(tmp_path / "missing.tar"), "--root", str(root)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "not a readable package" in proc.stderr
