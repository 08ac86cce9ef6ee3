"""COCO box and mask mAP of edgeseg-nano weights or of any bundle, through the runtime.

Both sides share one code path: a *predictor* is any callable
``predict(image_bgr, *, score_threshold, max_detections) -> edgeseg.Result``.
A bundle's predictor is ``edgeseg.load(bundle)``; PyTorch weights run as
:class:`export.accuracy.TorchSegmenter` (the runtime's own preprocessor and
decoder around the PyTorch forward), so the thresholds, NMS and mask decoding
are identical and any difference in the numbers is the exported model's.

CLI (prints pycocotools' tables, then a summary; ``--weights`` and
``--bundle`` together also print their difference)::

    python -m export.evaluate --data data/synth/val --weights export/weights/edgeseg-nano.safetensors
    python -m export.evaluate --data data/synth/val --bundle edgeseg/assets/edgeseg-nano
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from edgeseg.result import Result
from export.data.coco import annotations_by_image, load_coco

Predictor = Callable[..., Result]
"""``predict(image_bgr (H, W, 3) uint8, *, score_threshold, max_detections) -> Result``."""

EVAL_SCORE_THRESHOLD = 0.001
EVAL_MAX_DETECTIONS = 100


@dataclass(frozen=True)
class Metrics:
    """COCO metrics in [0, 1].

    Attributes:
        mask_map: Mask AP@[.50:.95].
        mask_map50: Mask AP@.50.
        box_map: Box AP@[.50:.95].
        box_map50: Box AP@.50.
        images: Images evaluated.
    """

    mask_map: float
    mask_map50: float
    box_map: float
    box_map50: float
    images: int


def torch_predictor(weights: str | Path) -> Predictor:
    """The runtime pipeline around edgeseg-nano PyTorch weights (BN folded, CPU)."""
    from export.accuracy import TorchSegmenter
    from export.bundler import build_manifest
    from export.models.nano import fuse_bn, load_nano
    from export.spec import spec_for_nano

    model, cfg = load_nano(weights)
    manifest = build_manifest(spec_for_nano(cfg), fmt="onnx", precision="fp32", model_file="model.onnx")
    return TorchSegmenter(fuse_bn(model), manifest)


def _read(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return image


def predict_dataset(predict: Predictor, data_dir: str | Path, *, limit: int = 0,
                    score_threshold: float = EVAL_SCORE_THRESHOLD) -> tuple[dict, list[dict], dict[int, Result]]:
    """Runs ``predict`` over a COCO split.

    Args:
        predict: The predictor.
        data_dir: Dataset directory (``annotations.json`` + images).
        limit: Only the first ``limit`` images (0: all).
        score_threshold: Lowest score kept (COCO AP wants the whole PR curve).

    Returns:
        ``(coco_dict restricted to the evaluated images, COCO detections,
        {image_id: Result})``; category id = class id + 1.
    """
    coco, root = load_coco(data_dir)
    images = coco["images"][:limit] if limit else coco["images"]
    ids = {img["id"] for img in images}
    coco = {**coco, "images": images, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}
    dets, results = [], {}
    for img in tqdm(images, desc="predict", unit="img", leave=False, mininterval=5.0):
        r = predict(_read(Path(root) / img["file_name"]), score_threshold=score_threshold,
                    max_detections=EVAL_MAX_DETECTIONS)
        results[img["id"]] = r
        for box, score, cls, mask in zip(r.boxes, r.scores, r.class_ids, r.masks, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            dets.append({"image_id": img["id"], "category_id": int(cls) + 1, "score": float(score),
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "segmentation": mask.rle()})
    return coco, dets, results


def coco_metrics(coco: dict, dets: list[dict], *, verbose: bool = True) -> Metrics:
    """Box and mask mAP of COCO detections against ground truth.

    Args:
        coco: Ground-truth COCO dict.
        dets: Detections (``bbox`` XYWH, ``segmentation`` RLE, ``score``, ``category_id``).
        verbose: Print pycocotools' summary tables.
    """
    gt = COCO()
    gt.dataset = coco
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    stats = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    for iou_type in ("segm", "bbox"):
        if not dets:
            stats[iou_type] = (0.0, 0.0)
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            res = gt.loadRes([dict(d) for d in dets])  # loadRes edits its input
        ev = COCOeval(gt, res, iou_type)
        ev.params.imgIds = [img["id"] for img in coco["images"]]
        ev.params.maxDets = [1, 10, EVAL_MAX_DETECTIONS]
        with quiet:
            if verbose:
                print(f"--- {'mask' if iou_type == 'segm' else 'box'} ---")
            with contextlib.redirect_stdout(io.StringIO()):
                ev.evaluate()
                ev.accumulate()
            ev.summarize()
        stats[iou_type] = (max(0.0, float(ev.stats[0])), max(0.0, float(ev.stats[1])))
    return Metrics(*stats["segm"], *stats["bbox"], images=len(coco["images"]))


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
    p = argparse.ArgumentParser(description="COCO box/mask mAP of edgeseg-nano weights and/or a bundle.")
    p.add_argument("--data", required=True, help="COCO split directory (annotations.json + images)")
    p.add_argument("--weights", help="edgeseg-nano .safetensors (PyTorch, through the runtime decoder)")
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
