"""Path selection: C when built, the numpy reference (one log line) when not, and the override."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeseg.decode import active_path, cpath


def _run(code: str, env_value: str | None = None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != "EDGESEG_DECODER"}
    if env_value is not None:
        env["EDGESEG_DECODER"] = env_value
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


# Hide the extension the way a board without a compiler would lack it.
HIDE = "import sys; sys.modules['edgeseg._c._cdecode'] = None\n"
DECODE_TWICE = (
    "import logging, numpy as np, edgeseg\n"
    "logging.basicConfig(level=logging.INFO, format='LOG %(message)s')\n"
    "from edgeseg.decode import active_path\n"
    "seg = edgeseg.load()\n"
    "seg(np.zeros((120, 160, 3), np.uint8)); seg(np.zeros((120, 160, 3), np.uint8))\n"
    "print('PATH', active_path(), seg.decoder.path)\n"
)


def test_falls_back_to_numpy_with_one_log_line_when_extension_is_missing():
    proc = _run(HIDE + DECODE_TWICE)
    assert proc.returncode == 0, proc.stderr
    assert "PATH numpy numpy" in proc.stdout
    assert (proc.stdout + proc.stderr).count("C decoder extension not built") == 1


def test_env_override(monkeypatch):
    monkeypatch.setenv("EDGESEG_DECODER", "numpy")
    assert active_path() == "numpy"
    monkeypatch.setenv("EDGESEG_DECODER", "fortran")
    with pytest.raises(ValueError, match="must be 'c' or 'numpy', got 'fortran'"):
        active_path()
    proc = _run(HIDE + "from edgeseg.decode import active_path; active_path()", env_value="c")
    assert proc.returncode != 0 and "EDGESEG_DECODER=c but the C decoder extension is not built" in proc.stderr


@pytest.mark.skipif(not cpath.available(), reason="C decoder extension not built")
def test_c_is_picked_and_shown_by_info(monkeypatch):
    monkeypatch.delenv("EDGESEG_DECODER", raising=False)
    assert active_path() == "c"
    proc = _run("from edgeseg.cli import main; main(['info'])")
    assert proc.returncode == 0, proc.stderr
    assert any(line.split() == ["decoder", "c"] for line in proc.stdout.splitlines())
