"""The runtime never imports torch, tensorflow, onnx or the export package."""

import subprocess
import sys

HEAVY = ("torch", "tensorflow", "onnx", "export", "litert_torch", "ai_edge_litert")


def test_runtime_loads_and_runs_without_heavy_imports():
    code = (
        "import sys, numpy as np, edgeseg\n"
        "seg = edgeseg.load()\n"
        "seg(np.zeros((240, 320, 3), np.uint8))\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_parser_imports_nothing_heavy():
    code = (
        "import sys\nfrom edgeseg.cli import build_parser\nbuild_parser()\n"
        f"sys.exit(1 if any(m in sys.modules for m in {HEAVY!r}) else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
