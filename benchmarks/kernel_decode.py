"""Kernel-family (SOLOv2) decode time at 1280x720: edgeseg C and numpy against mmdet's post-processing in torch.

mmdet cannot be installed here (mmcv); ``mmdet_solov2`` below is what mmdet
3.x does after the SOLOv2 head (``SOLOV2Head.predict_by_feat``,
``_predict_by_feat_single`` and ``mask_matrix_nms``, read in
open-mmlab/mmdetection), written anew in torch: per level sigmoid and points
NMS (2x2 max-pool, keep local maxima); every (cell, class) above
``score_thr``; the dynamic 1x1 convolution of *all* candidates over the mask
features, sigmoid, ``> mask_thr``, the per-level area filter, maskness;
Matrix NMS (sort, ``nms_pre``, IoU matrix by ``torch.mm``, gaussian decay,
``filter_thr``, ``max_per_img``); the survivors' probability maps upsampled
bilinearly to ``featmap x mask_stride``, cropped to the image and resized
again to the original size, ``> mask_thr``: N full-frame masks.

Input: SOLOv2-shaped raw outputs of a 736 x 1280 model input (the 1280 x 720
image letterboxed; grids 40/36/24/16/12, level strides 8/8/16/32/32, 80
classes, E = 128 mask-feature channels at stride 4: 184 x 320), in which N
objects (elliptic masks, 2-8 % of the image wide, random classes) each fire
one cell at 0.9 and a duplicate cell (the same kernel) at 0.15 in another
level, every other cell -6 (sigmoid 0.0025): 2N candidates; Matrix NMS
decays the duplicates below ``filter_thr`` and every contender returns the N
objects (checked). The edgeseg contenders read the raw logits
(``activation: sigmoid``: sigmoid and points NMS in the decoder) and return
box-cropped masks at 1280 x 720:

* ``mmdet_torch``: the transcription (torch tensors in, full binary masks out);
* ``edgeseg_c``: the ``kernel`` family decoder, C path (steps 2-3 in
  ``es_kernel.c`` / ``es_matrix_nms.c``, masks rendered by ``ES_MODE_MAP``);
* ``edgeseg_numpy``: the same decoder on the numpy reference.

One process, rounds interleaved across contenders, one thread each (torch,
BLAS and OpenCV pinned to 1), medians and ratios against mmdet_torch::

    .venv/bin/python benchmarks/kernel_decode.py                  # N = 10 50 100
    .venv/bin/python benchmarks/kernel_decode.py --n 10 --repeats 3 --out /tmp/k.json

Writes ``benchmarks/results/kernel_decode_<arch>-<cores>c.json``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from decode_bench import interleaved_medians, machine  # noqa: E402

from edgeseg.decode import cpath  # noqa: E402
from edgeseg.families.kernel import FAMILY, KernelDecoder  # noqa: E402
from edgeseg.manifest import parse_manifest  # noqa: E402
from edgeseg.preprocess import LetterboxInfo  # noqa: E402

ORIG, INPUT, MASK_STRIDE = (720, 1280), (736, 1280), 4
GRIDS, STRIDES, CLASSES, CHANNELS = (40, 36, 24, 16, 12), (8, 8, 16, 32, 32), 80, 128
FEAT = (INPUT[0] // MASK_STRIDE, INPUT[1] // MASK_STRIDE)
CFG = {"score_thr": 0.1, "mask_thr": 0.5, "filter_thr": 0.05, "nms_pre": 500, "max_per_img": 100, "sigma": 2.0}


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def outputs(n: int, seed: int = 0, classes: int = CLASSES, radius: tuple[float, float] = (0.01, 0.04),
            ) -> dict[str, np.ndarray]:
    """SOLOv2-shaped raw outputs (edgeseg's layout: cells x classes, cells x E, E x Hm x Wm) with ``n`` objects
    of random classes among the first ``classes`` and radii in ``radius`` x the map width (few classes and
    large objects: many same-class overlaps for Matrix NMS)."""
    rng = np.random.default_rng(seed)
    bounds = np.concatenate([[0], np.cumsum(np.square(GRIDS))])
    s = int(bounds[-1])
    cate = np.full((s, CLASSES), -6.0, np.float32)
    kernels = rng.normal(0, 0.005, (s, CHANNELS)).astype(np.float32)
    feats = rng.normal(0, 0.3, (CHANNELS, *FEAT)).astype(np.float32)
    yy, xx = np.mgrid[0 : FEAT[0], 0 : FEAT[1]].astype(np.float32)

    def cells(level: int, count: int) -> np.ndarray:  # even (y, x) cells: never next to each other (points NMS)
        g = GRIDS[level]
        spots = [(y, x) for y in range(0, g, 2) for x in range(0, g, 2)]
        pick = rng.choice(len(spots), count, replace=False)
        return np.array([bounds[level] + spots[k][0] * g + spots[k][1] for k in pick], np.int64)

    primary = np.concatenate([cells(0, min(n, 400)), cells(1, max(0, n - 400))])[:n]
    duplicate = cells(2, n)
    for i in range(n):
        cx, cy = rng.uniform(0, FEAT[1]), rng.uniform(0, FEAT[0])
        rx, ry = rng.uniform(*radius) * FEAT[1], rng.uniform(*radius) * FEAT[1]
        rx, ry = max(rx, 5.0), max(ry, 5.0)
        d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
        channel = i % CHANNELS
        blob = np.maximum(8.0 * (1.0 - d), -4.0)
        feats[channel] = np.maximum(feats[channel], blob) if i >= CHANNELS else blob
        k = kernels[primary[i]]
        k[channel] = 1.0
        kernels[duplicate[i]] = k
        cls = rng.integers(0, classes)
        cate[primary[i], cls] = _logit(0.9)
        cate[duplicate[i], cls] = _logit(0.15)
    return {"cate": cate[None], "kernels": kernels[None], "mask_features": feats[None]}


def manifest():
    return parse_manifest({
        "schema_version": 1, "name": "bench", "family": "kernel", "format": "onnx", "precision": "fp32",
        "model": "m.onnx", "input": {"name": "images", "shape": [1, 3, *INPUT]},
        "outputs": [{"name": "cate", "role": "cell_scores", "layout": "BAC", "activation": "sigmoid"},
                    {"name": "kernels", "role": "kernels", "layout": "BAC"},
                    {"name": "mask_features", "role": "mask_features", "layout": "NCHW"}],
        "classes": [f"c{i}" for i in range(CLASSES)],
        "thresholds": {"score": CFG["score_thr"], "nms": False, "max_detections": CFG["max_per_img"],
                       "score_strict": True},
        "kernel": {"grids": list(GRIDS), "strides": list(STRIDES), "mask_threshold": CFG["mask_thr"],
                   "matrix_nms": {"kernel": "gaussian", "sigma": CFG["sigma"], "pre_top_k": CFG["nms_pre"],
                                  "update_threshold": CFG["filter_thr"]}},
    })


def mmdet_inputs(raw: dict[str, np.ndarray]):
    """The head's outputs as mmdet holds them: per level (1, C, g, g) logits and (1, E, g, g) kernels."""
    import torch

    bounds = np.concatenate([[0], np.cumsum(np.square(GRIDS))])
    cls, ker = [], []
    for g, a, b in zip(GRIDS, bounds[:-1], bounds[1:], strict=True):
        cls.append(torch.from_numpy(np.ascontiguousarray(raw["cate"][0, a:b].T.reshape(1, CLASSES, g, g))))
        ker.append(torch.from_numpy(np.ascontiguousarray(raw["kernels"][0, a:b].T.reshape(1, CHANNELS, g, g))))
    return ker, cls, torch.from_numpy(raw["mask_features"])


def mmdet_matrix_nms(masks, labels, scores, mask_area, *, nms_pre, max_num, kernel, sigma, filter_thr):
    """mmdet's ``mask_matrix_nms``, as it computes: the full N x N decay matrices."""
    import torch

    scores, order = torch.sort(scores, descending=True)
    keep = order[:nms_pre]
    scores, masks, mask_area, labels = scores[:nms_pre], masks[keep], mask_area[keep], labels[keep]
    n = len(labels)
    flat = masks.reshape(n, -1).float()
    inter = torch.mm(flat, flat.transpose(1, 0))
    area = mask_area.expand(n, n)
    iou = (inter / (area + area.transpose(1, 0) - inter)).triu(diagonal=1)
    same = (labels.expand(n, n) == labels.expand(n, n).transpose(1, 0)).triu(diagonal=1)
    decay_iou = iou * same
    comp = decay_iou.max(0)[0].expand(n, n).transpose(1, 0)
    if kernel == "gaussian":
        decay = (torch.exp(-sigma * decay_iou**2) / torch.exp(-sigma * comp**2)).min(0)[0]
    else:
        decay = ((1 - decay_iou) / (1 - comp)).min(0)[0]
    scores = scores * decay
    kept = scores >= filter_thr
    keep, scores, labels = keep[kept], scores[kept], labels[kept]
    scores, order = torch.sort(scores, descending=True)
    order = order[:max_num]
    return scores[:max_num], labels[order], keep[order]


def mmdet_solov2(kernel_preds, cls_preds, mask_feats, kernel: str = "gaussian"):
    """mmdet's SOLOv2 post-processing for one image (module docstring); returns scores, labels, (N, H, W) masks."""
    import torch
    import torch.nn.functional as F

    flat_cls, flat_ker = [], []
    for cls, ker in zip(cls_preds, kernel_preds, strict=True):
        cls = cls.sigmoid()
        local_max = F.max_pool2d(cls, 2, stride=1, padding=1)
        cls = cls * (local_max[:, :, :-1, :-1] == cls)
        flat_cls.append(cls[0].permute(1, 2, 0).reshape(-1, CLASSES))
        flat_ker.append(ker[0].permute(1, 2, 0).reshape(-1, CHANNELS))
    cls_scores, kernels = torch.cat(flat_cls), torch.cat(flat_ker)
    hit = cls_scores > CFG["score_thr"]
    scores = cls_scores[hit]
    index = hit.nonzero()
    labels, kernels = index[:, 1], kernels[index[:, 0]]
    level_end = torch.tensor(GRIDS).pow(2).cumsum(0)
    strides = torch.ones(int(level_end[-1]))
    start = 0
    for end, stride in zip(level_end.tolist(), STRIDES, strict=True):
        strides[start:end] *= stride
        start = end
    strides = strides[index[:, 0]]
    probs = F.conv2d(mask_feats, kernels.view(len(kernels), -1, 1, 1), stride=1).squeeze(0).sigmoid()
    masks = probs > CFG["mask_thr"]
    area = masks.sum((1, 2)).float()
    keep = area > strides
    masks, probs, area, scores, labels = masks[keep], probs[keep], area[keep], scores[keep], labels[keep]
    scores = scores * (probs * masks).sum((1, 2)) / area
    scores, labels, keep = mmdet_matrix_nms(masks, labels, scores, area, nms_pre=CFG["nms_pre"],
                                            max_num=CFG["max_per_img"], kernel=kernel, sigma=CFG["sigma"],
                                            filter_thr=CFG["filter_thr"])
    up = F.interpolate(probs[keep].unsqueeze(0), size=INPUT, mode="bilinear", align_corners=False)
    up = up[:, :, : ORIG[0], : ORIG[1]]  # img_shape: the resized image inside the padded input
    up = F.interpolate(up, size=ORIG, mode="bilinear", align_corners=False).squeeze(0)
    return scores, labels, up > CFG["mask_thr"]


def contenders(raw: dict[str, np.ndarray]) -> dict:
    m = manifest()
    lb = LetterboxInfo.fit(ORIG, INPUT, center=False)  # mmdet pads bottom/right
    opts = FAMILY.options(m)
    ker, cls, feats = mmdet_inputs(raw)
    runs = {
        "mmdet_torch": lambda: len(mmdet_solov2(ker, cls, feats)[0]),
        "edgeseg_numpy": lambda: len(KernelDecoder(m, "numpy")(raw, lb, opts)),
    }
    if cpath.available():
        runs["edgeseg_c"] = lambda: len(KernelDecoder(m, "c")(raw, lb, opts))
    return runs


def bench(n: int, repeats: int) -> dict:
    raw = outputs(n)
    runs = contenders(raw)
    counts = {name: fn() for name, fn in runs.items()}  # warm-up, and every contender finds the n objects
    if set(counts.values()) != {n}:
        raise RuntimeError(f"contenders disagree on the instance count (expected {n}): {counts}")
    med = interleaved_medians(runs, repeats)
    return {"n": n, "candidates": 2 * n, "median_ms": {k: round(v, 2) for k, v in med.items()},
            "speedup_vs_mmdet_torch": {k: round(med["mmdet_torch"] / v, 2) for k, v in med.items()},
            "repeats": repeats}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[10, 50, 100])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out")
    args = p.parse_args()
    info = machine()
    info.update(torch=torch.__version__, threads=1)
    rows = []
    for n in args.n:
        rows.append(bench(n, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out) if args.out else HERE / "results" / f"kernel_decode_{info['arch']}-{info['cores']}c.json"
    out.write_text(json.dumps({"machine": info, "image": list(ORIG), "input": list(INPUT), "grids": list(GRIDS),
                               "classes": CLASSES, "mask_channels": CHANNELS, "mask_features": list(FEAT),
                               "config": CFG, "results": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
