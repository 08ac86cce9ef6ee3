"""COCO box and mask mAP of the project's own weights (edgeseg-nano, solo-nano) or of any bundle, through the runtime.

Both sides share one code path: a *predictor* is any callable
``predict(image_bgr, *, score_threshold, max_detections) -> edgeseg.Result``.
A bundle's predictor is ``edgeseg.load(bundle)``; PyTorch weights run as
:func:`export.accuracy.torch_segmenter` (the runtime's own preprocessor and
decoder around the PyTorch forward), so the thresholds, NMS and mask decoding
are identical and any difference in the numbers is the exported model's.

CLI (prints pycocotools' tables, then a summary; ``--weights`` and
``--bundle`` together also print their difference)::

    python -m export.evaluate --data data/synth/val --weights export/weights/edgeseg-nano.safetensors
    python -m export.evaluate --data data/synth/val --bundle edgeseg/assets/edgeseg-nano
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from edgeseg.metrics import (  # noqa: F401 - re-exported: the one COCO evaluation lives in the runtime
    EVAL_MAX_DETECTIONS,
    EVAL_SCORE_THRESHOLD,
    Metrics,
    Predictor,
    coco_metrics,
    predict_dataset,
)
from edgeseg.result import Result
from export.data.coco import annotations_by_image


def torch_predictor(weights: str | Path) -> Predictor:
    """The runtime pipeline around the project's own PyTorch weights (edgeseg-nano, solo-nano; BN folded, CPU)."""
    from export.accuracy import torch_segmenter
    from export.bundler import build_manifest
    from export.models.loading import load_own

    model, spec = load_own(Path(weights))
    manifest = build_manifest(spec, fmt="onnx", precision="fp32", model_file="model.onnx")
    return torch_segmenter(model, manifest)


@dataclass(frozen=True)
class PairStats:
    """Touching same-class pairs and how the model handled them.

    Attributes:
        separated: Pairs whose two objects are each matched (mask IoU >= 0.5,
            same class) by a different predicted instance.
        merged: Pairs with one predicted instance covering at least half of
            each object (what a semantic, not instance, segmenter produces).
        total: Pairs evaluated.
    """

    separated: int
    merged: int
    total: int


def _enc(rle: dict) -> dict:
    counts = rle["counts"]
    return dict(rle, counts=counts.encode("ascii") if isinstance(counts, str) else counts)


def pair_separation(coco: dict, results: dict[int, Result], *, iou: float = 0.5, score: float = 0.25) -> PairStats:
    """How touching same-class pairs (the images' ``touching_pairs``) come out.

    Args:
        coco: Ground truth with ``touching_pairs`` per image.
        results: Predictions per image id.
        iou: Mask IoU that counts as a match.
        score: Predictions below this score are ignored (the runtime's default threshold).
    """
    by_image = annotations_by_image(coco)
    separated = merged = total = 0
    for img in coco["images"]:
        pairs = img.get("touching_pairs", [])
        if not pairs or img["id"] not in results:
            continue
        r = results[img["id"]]
        keep = [i for i in range(len(r)) if r.scores[i] >= score]
        anns = {a["id"]: a for a in by_image[img["id"]]}
        preds = [_enc(r.masks[i].rle()) for i in keep]
        for pair in pairs:
            total += 1
            if not preds:
                continue
            gts = [_enc(anns[k]["segmentation"]) for k in pair]
            ious = np.asarray(mask_utils.iou(preds, gts, [0, 0]))
            same = np.array([[int(r.class_ids[i]) + 1 == anns[k]["category_id"] for k in pair] for i in keep])
            ok = (ious >= iou) & same
            ia, ib = np.flatnonzero(ok[:, 0]), np.flatnonzero(ok[:, 1])
            separated += any(i != j for i in ia for j in ib)
            areas = [anns[k]["area"] for k in pair]
            merged += any(
                all(mask_utils.area(mask_utils.merge([p, g], intersect=True)) >= 0.5 * a for g, a in zip(gts, areas, strict=True))
                for p in preds
            )
    return PairStats(separated, merged, total)


def evaluate(predict: Predictor, data_dir: str | Path, *, limit: int = 0, verbose: bool = True) -> tuple[Metrics, PairStats]:
    """mAP and touching-pair separation of ``predict`` on a split."""
    coco, dets, results = predict_dataset(predict, data_dir, limit=limit)
    return coco_metrics(coco, dets, verbose=verbose), pair_separation(coco, results)


def _row(name: str, m: Metrics, pairs: PairStats) -> str:
    sep = f"{pairs.separated}/{pairs.total} | {pairs.merged}/{pairs.total}" if pairs.total else "- | -"
    return (f"| {name} | {100 * m.mask_map:.1f} | {100 * m.mask_map50:.1f} | {100 * m.box_map:.1f} | "
            f"{100 * m.box_map50:.1f} | {sep} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="COCO box/mask mAP of edgeseg-nano or solo-nano weights and/or a bundle.")
    p.add_argument("--data", required=True, help="COCO split directory (annotations.json + images)")
    p.add_argument("--weights", help="edgeseg-nano or solo-nano .safetensors (PyTorch, through the runtime decoder)")
    p.add_argument("--bundle", help="bundle directory or .edgeseg file (through edgeseg.load)")
    p.add_argument("--limit", type=int, default=0, help="only the first N images")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no pycocotools tables")
    args = p.parse_args(argv)
    if not args.weights and not args.bundle:
        p.error("give --weights, --bundle or both")
    rows, out = [], {}
    if args.weights:
        print(f"== PyTorch {args.weights}")
        m, pairs = evaluate(torch_predictor(args.weights), args.data, limit=args.limit, verbose=not args.quiet)
        rows.append(_row("PyTorch fp32", m, pairs))
        out["pytorch"] = {**asdict(m), "pairs": asdict(pairs)}
    if args.bundle:
        import edgeseg

        print(f"== bundle {args.bundle}")
        seg = edgeseg.load(args.bundle)
        m, pairs = evaluate(seg, args.data, limit=args.limit, verbose=not args.quiet)
        rows.append(_row(f"bundle {seg.manifest.format} {seg.manifest.precision}", m, pairs))
        out["bundle"] = {**asdict(m), "pairs": asdict(pairs)}
    print(f"\n{out[next(iter(out))]['images']} images from {args.data}\n")
    print("| model | mask mAP50-95 | mask mAP50 | box mAP50-95 | box mAP50 | pairs separated | pairs merged |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if len(out) == 2:
        d = 100 * (out["bundle"]["mask_map"] - out["pytorch"]["mask_map"])
        print(f"\nbundle - PyTorch mask mAP50-95: {d:+.2f} points")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
