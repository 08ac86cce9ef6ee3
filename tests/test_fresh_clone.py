"""README's first section, followed literally in a fresh clone (a new venv and a C build: ~30 s with pip's cache).

Part of ``make test``; alone: ``.venv/bin/python -m pytest -q -s tests/test_fresh_clone.py``.
It clones the committed HEAD of this checkout into a temporary directory, runs
``make demo`` there (pip may reuse its cache), then every command of the
README's "Set-up" section's example block, in one shell, as written. ``make
test`` is the other set-up command; the whole suite running is its own check.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Set-up")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_first_section_works_in_a_fresh_clone(tmp_path):
    blocks = re.findall(r"```bash\n(.*?)```", _setup_section(), flags=re.S)
    assert len(blocks) == 2 and blocks[0].lstrip().startswith("make demo")
    clone = tmp_path / "edgeseg"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    demo = subprocess.run(["make", "demo"], cwd=clone, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert sorted(p.name for p in (clone / "out" / "demo").glob("*.png"))  # overlays of the sample images
    print(demo.stdout[-2000:], demo.stderr[-2000:])
    # The second block: what to do after `make demo`, as a user types it (comments and all).
    script = "set -e\n" + blocks[1]
    after = subprocess.run(["bash", "-c", script], cwd=clone, capture_output=True, text=True, timeout=600,
                           env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())})
    assert after.returncode == 0, after.stdout[-3000:] + after.stderr[-3000:]
    print(after.stdout[-3000:], after.stderr[-3000:])
    assert "decoder      c" in after.stdout and (clone / "out" / "first" / "scene_00.json").is_file()
    assert "Traceback" not in after.stderr and "Deprecat" not in demo.stderr + after.stderr
