"""Kills during install and rollback never leave a broken ``active``.

Each run starts from a root where version A is active and installs B with
the installer shipped inside the package (a subprocess), which is SIGKILLed:

* after every step, named by ``EDGESEG_INSTALL_FAULT`` (every file staged,
  every rename): ``active`` must be A before the ``switched`` step and B from
  it on, each complete (every file matches its ``package.json``);
* at random moments over many runs (seeded), wherever it happens to be;
* while pip provisions ``site/``.

After each kill, rerunning the install must finish the job: B active, A
previous, no leftovers. Most runs use ``--deps none`` (no pip) to stay fast.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from deploy_support import (
    DEFAULT_BUNDLE,
    assert_consistent,
    extract_installer,
    installer_cmd,
    run_installer,
    write_config,
)

from edgeseg.deploy.install import read_state
from edgeseg.deploy.package import build_package, build_wheel, source_tree
from edgeseg.deploy.verify import verify_package


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Packages A and B, the shipped installer, and a template root with A active."""
    tmp = tmp_path_factory.mktemp("kills")
    wheel = build_wheel(source_tree(), tmp / "wheel")
    a = build_package(DEFAULT_BUNDLE, write_config(tmp / "a.yaml", source="camera:0"), tmp / "a.tar", wheel=wheel)
    b = build_package(DEFAULT_BUNDLE, write_config(tmp / "b.yaml", source="camera:1"), tmp / "b.tar", wheel=wheel)
    installer = extract_installer(b.path, tmp / "installer-b")
    template = tmp / "template"
    proc = run_installer(installer, a.path, template)
    assert proc.returncode == 0, proc.stderr
    return {"a": a, "b": b, "installer": installer, "template": template}


def _fresh_root(setup, tmp_path):
    root = tmp_path / "root"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(setup["template"], root, symlinks=True)
    return root


def _recovers(setup, root, deps="none"):
    """A rerun after the kill completes the install and leaves nothing behind."""
    proc = run_installer(setup["installer"], setup["b"].path, root, deps=deps)
    assert proc.returncode == 0, proc.stderr
    state = read_state(root)
    assert (state.active, state.previous) == (setup["b"].id, setup["a"].id)
    leftovers = [p.name for p in (root / "opt/edgeseg/versions").iterdir() if p.name.startswith(".")]
    leftovers += [p.name for p in (root / "opt/edgeseg").glob(".*.tmp-*")]
    assert not leftovers
    assert_consistent(root / "opt/edgeseg", {setup["a"].id, setup["b"].id})


def _steps(setup):
    files = ["package.json", *verify_package(setup["b"].path).files]
    return ["verified", *[f"staged:{f}" for f in files], "staged", "provisioned", "committed", "previous",
            "switched", "unit", "cleaned"]


def test_kill_after_every_step(setup, tmp_path):
    a, b = setup["a"].id, setup["b"].id
    steps = _steps(setup)
    for i, step in enumerate(steps):
        root = _fresh_root(setup, tmp_path)
        proc = run_installer(setup["installer"], setup["b"].path, root, fault=step)
        assert proc.returncode == -signal.SIGKILL, (step, proc.returncode, proc.stderr)
        active = assert_consistent(root / "opt/edgeseg", {a, b})
        assert active == (b if i >= steps.index("switched") else a), f"killed after {step!r}: active is {active}"
        _recovers(setup, root)


def test_kill_at_random_moments(setup, tmp_path):
    a, b = setup["a"].id, setup["b"].id
    root = _fresh_root(setup, tmp_path)
    t0 = time.perf_counter()
    assert run_installer(setup["installer"], setup["b"].path, root).returncode == 0
    full = time.perf_counter() - t0
    rng = random.Random(8)
    outcomes = {a: 0, b: 0}
    for _ in range(12):
        root = _fresh_root(setup, tmp_path)
        cmd, env = installer_cmd(setup["installer"], setup["b"].path, root)
        proc = subprocess.Popen(cmd, env=env, cwd=setup["installer"].parent,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 1.2 * full))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        outcomes[assert_consistent(root / "opt/edgeseg", {a, b})] += 1
        _recovers(setup, root)
    print(f"full install {full * 1e3:.0f} ms; after random kills active was A {outcomes[a]}x, B {outcomes[b]}x")


def test_kill_while_pip_provisions(setup, tmp_path):
    root = _fresh_root(setup, tmp_path)
    vdir = root / "opt/edgeseg/versions"
    cmd, env = installer_cmd(setup["installer"], setup["b"].path, root, deps="system")
    proc = subprocess.Popen(cmd, env=env, cwd=setup["installer"].parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any((p / "site").exists() for p in vdir.glob(".staging-*")) and proc.poll() is None:
        assert time.monotonic() < deadline, "pip never started writing site/"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert assert_consistent(root / "opt/edgeseg", {setup["a"].id, setup["b"].id}) == setup["a"].id
    _recovers(setup, root, deps="system")
    assert (root / "opt/edgeseg/active/site/edgeseg/__init__.py").is_file()


@pytest.mark.parametrize("fault", ["switched", "previous"])
def test_kill_during_rollback(setup, tmp_path, fault):
    root = _fresh_root(setup, tmp_path)
    assert run_installer(setup["installer"], setup["b"].path, root).returncode == 0
    code = (
        "import os, signal, sys; from edgeseg.deploy.rollback import rollback; "
        "rollback(sys.argv[1], on_step=lambda s: s == sys.argv[2] and os.kill(os.getpid(), signal.SIGKILL))"
    )
    env = {**os.environ, "PYTHONPATH": str(setup["installer"])}
    proc = subprocess.run([sys.executable, "-c", code, str(root), fault], env=env, cwd=setup["installer"].parent,
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # Killed after the first rename: A is active again, complete; `previous` may still name A.
    assert assert_consistent(root / "opt/edgeseg", {setup["a"].id, setup["b"].id}) == setup["a"].id
