"""The C parity suites again, with the extension built under AddressSanitizer + UBSan.

Builds ``edgeseg/_c`` with ``-fsanitize=address,undefined`` into a temporary
directory, then runs ``tests/test_cdecode.py``, ``tests/test_cgrasp.py`` (grasp geometry, runs, RLE),
``tests/test_cdecode_maskfirst.py`` (mask-first maps), ``tests/test_cdecode_regions.py``
(paste inside regions), ``tests/test_cpose.py`` (gripper poses) and ``tests/test_cdecode_kernel.py``
(kernel family: dynamic-kernel masks, Matrix NMS) in a subprocess that loads
that build instead of the installed one (``LD_PRELOAD`` of libasan, since the
Python interpreter itself is not instrumented). Any heap overflow, use after
free or undefined behaviour aborts the subprocess and fails this test.

The renderer has an SSE2 path (x86) and a scalar one (ARM boards, or any CPU
without SSE2); the installed build takes the SSE2 path here, so a second test
builds with ``-U__SSE2__`` and runs the render parity suites on the scalar path (with
``-DES_NO_CLONES``: es_kernel.c's baseline loop, not its AVX2/AVX-512 clones).
Part of the default run (``make test``); on its own::

    .venv/bin/python -m pytest tests/test_cdecode_asan.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
C_DIR = REPO / "edgeseg" / "_c"
SOURCES = ["es_detect.c", "es_render.c", "es_masks.c", "es_rle.c", "es_grasp.c", "es_pose.c", "es_runs.c",
           "_cdecode_module.c", "_cpost_module.c", "es_kernel.c", "es_matrix_nms.c", "_ckernel_module.c"]
SANITIZE = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]

# Loads the sanitized build under the extension's import name, then runs the parity suite.
RUNNER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("edgeseg._c._cdecode", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
sys.modules["edgeseg._c._cdecode"] = mod
import pytest
from edgeseg.decode import cpath
assert cpath._cdecode is mod, "the sanitized build was not picked up"
# -s: a sanitizer report aborts the process, so it must not sit in pytest's capture
sys.exit(pytest.main(["-q", "-s", "-p", "no:cacheprovider", *sys.argv[2:]]))
"""


def _compiler_runtime(cc: str, name: str) -> str | None:
    out = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    return out if os.path.isabs(out) and os.path.exists(out) else None


SUITES = ["test_cdecode.py", "test_cgrasp.py", "test_cdecode_maskfirst.py", "test_cdecode_regions.py", "test_cpose.py",
          "test_cdecode_kernel.py"]
RENDER_SUITES = ["test_cdecode.py", "test_cdecode_maskfirst.py", "test_cdecode_regions.py", "test_cdecode_kernel.py"]


def _compiler() -> str:
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    return cc


def _build(cc: str, out_dir: Path, flags: list[str]) -> tuple[Path, subprocess.CompletedProcess]:
    ext = out_dir / ("_cdecode_test" + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = [
        cc, "-shared", "-fPIC", "-std=c99", "-ffp-contract=off", "-pthread", *flags,
        "-DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION", f"-I{sysconfig.get_paths()['include']}",
        f"-I{np.get_include()}", f"-I{C_DIR}", *(str(C_DIR / s) for s in SOURCES), "-o", str(ext),
    ]
    return ext, subprocess.run(cmd, capture_output=True, text=True)


def _run_suites(ext: Path, suites: list[str], tmp_path: Path, **env_extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HYPOTHESIS_STORAGE_DIRECTORY=str(tmp_path / "hypothesis"), **env_extra)
    env.pop("EDGESEG_DECODER", None)
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(ext), *(str(REPO / "tests" / name) for name in suites)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900,
    )


def test_parity_suite_under_address_sanitizer(tmp_path):
    cc = _compiler()
    libasan = _compiler_runtime(cc, "libasan.so")
    if libasan is None:
        pytest.skip(f"{cc} has no AddressSanitizer runtime")
    ext, build = _build(cc, tmp_path, ["-O1", "-g", *SANITIZE])
    if build.returncode != 0 and "sanitize" in build.stderr:
        pytest.skip(f"{cc} cannot build with sanitizers: {build.stderr[-300:]}")
    assert build.returncode == 0, build.stderr
    proc = _run_suites(ext, SUITES, tmp_path, LD_PRELOAD=libasan,
                       ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1",
                       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    report = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, report
    assert "ERROR: AddressSanitizer" not in proc.stderr and "runtime error:" not in proc.stderr, report
    assert " passed" in proc.stdout, report


def test_render_parity_on_the_scalar_path(tmp_path):
    """The ARM boards' path: the same suites, bit-exact against numpy, with SSE2 compiled out."""
    cc = _compiler()
    ext, build = _build(cc, tmp_path, ["-O2", "-U__SSE2__", "-DES_NO_CLONES"])  # no AVX clones of es_kernel.c either
    assert build.returncode == 0, build.stderr
    proc = _run_suites(ext, RENDER_SUITES, tmp_path)
    report = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0 and " passed" in proc.stdout, report
