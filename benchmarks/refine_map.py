"""Mask mAP of a detector alone against detector + promptable refinement, on the synthetic val split.

The detector (default: the bundled edgeseg-nano) runs as on a board; for the
refined run, its detections of each frame become box prompts of the prompt
bundle (``PromptSegmenter.refine``, what ``edgeseg run --refine`` does) and
the masks are replaced. Both runs are scored by :func:`edgeseg.metrics.evaluate`
(pycocotools) on the same images, at the evaluation thresholds (score 0.001,
100 detections), so box mAP is the same and mask mAP says what the masks gained or lost.
Writes ``benchmarks/results/refine_map.json`` with the machine it ran on::

    .venv/bin/python benchmarks/refine_map.py --refine bundles/sam-synth [--limit 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from decode_bench import machine  # noqa: E402

import edgeseg  # noqa: E402
from edgeseg.metrics import evaluate  # noqa: E402
from edgeseg.prompt import load_prompt  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--refine", required=True, help="prompt bundle (SAM-class)")
    p.add_argument("--bundle", help="detector bundle (default: edgeseg-nano)")
    p.add_argument("--val", default="data/synth/val")
    p.add_argument("--limit", type=int, default=0, help="first N images (0: all)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "refine_map.json")
    args = p.parse_args()
    seg = edgeseg.load(args.bundle)
    refiner = load_prompt(args.refine)
    runs = {}
    for name, predict in (
        ("detector", seg),
        ("detector+refine", lambda image, **kw: refiner.refine(image, seg(image, **kw))),
    ):
        t0 = time.perf_counter()
        m = evaluate(predict, args.val, limit=args.limit)
        runs[name] = {"mask_map": round(m.mask_map, 4), "mask_map50": round(m.mask_map50, 4),
                      "box_map": round(m.box_map, 4), "images": m.images,
                      "seconds": round(time.perf_counter() - t0, 1)}
        print(name, runs[name], flush=True)
    record = {"detector": seg.manifest.name, "refiner": refiner.manifest.name, "val": args.val,
              "refiner_provenance": refiner.manifest.provenance, "runs": runs, "machine": machine(),
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
