"""Longer fuzzing run of every target in tests/fuzz_support.py; prints and saves the figures.

    .venv/bin/python scripts/fuzz.py --seconds 300 [--seed 1] [--out benchmarks/results/fuzz.json]

Exit status 1 when any target crashed or a sanitizer reported (the first
inputs are in the JSON). ``make test`` runs the same targets for 2 s each.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import fuzz_support as fz  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="budget per target")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeseg-fuzz-") as work:
        reports = fz.run_all(args.seconds, Path(work), seed=args.seed)
    print(f"{'target':42} {'trials':>9} {'accepted':>9} {'crashes':>8} {'sanitizer':>9}")
    for r in reports:
        print(f"{r.target:42} {r.trials:9d} {r.accepted:9d} {r.crashes:8d} {r.sanitizer_reports:9d}")
        for example in r.examples[:3]:
            print("   ", example[:300])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"command": " ".join(sys.argv), "machine": f"{platform.node()} {platform.machine()} "
               f"{platform.processor() or ''}".strip(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "seconds_per_target": args.seconds, "seed": args.seed, "targets": [r.to_dict() for r in reports]}
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return 1 if any(r.crashes or r.sanitizer_reports for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
