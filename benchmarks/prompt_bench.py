"""Promptable (SAM-class) bundle costs: encoder, decoder, and mask upsampling against the reference post-processing.

Per image, interleaved (a shared machine's noise hits every contender alike), medians:

* ``preprocess``: resize of the longest side + normalize + pad, Pillow-exact
  bilinear (``pil-bilinear``, numpy) and OpenCV's ``INTER_LINEAR``;
* ``encoder``: one image encoder run;
* ``decoder``: N box prompts, one run per prompt (the official export's batch
  of 1), one batched run (a dynamic batch axis), and one batched run of the
  graph cut down to the low-res outputs (``edgeseg import --lowres-only``):
  onnxruntime runs every node whatever is fetched, so the official graph
  pays for its full-size ``masks`` on every prompt; and one prompt fetching
  the low-res logits only or the full-size ``masks`` too;
* ``upsample``: the N low-res logit maps to masks at the original size: the
  runtime's C path (only inside each mask's region, cropped bitmaps), its
  numpy reference, and ``SamPredictor.postprocess_masks``' two full-frame
  bilinear passes (OpenCV, thresholded: ``reference_postprocess``);
* ``size_sweep_480x640``: the C path against the reference by mask size
  (smooth disks covering 0.2 % to 80 % of a 480x640 frame).

Writes ``benchmarks/results/prompt_<arch>-<cores>c.json``::

    .venv/bin/python benchmarks/prompt_bench.py --bundle bundles/sam-synth --batched bundles/sam-synth \\
        --images data/synth/val/images --prompts 8
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from decode_bench import machine  # noqa: E402

from edgeseg.decode.prompt_masks import reference_postprocess, upsample  # noqa: E402
from edgeseg.imports import ImportOptions, import_model  # noqa: E402
from edgeseg.longest_side import PromptFrame, encoder_input, longest_side_size  # noqa: E402
from edgeseg.prompt import Prompts, load_prompt  # noqa: E402

FIX = HERE.parent / "tests" / "fixtures" / "sam"


def _timed(fn, *args):
    """``(milliseconds, fn(*args))``."""
    t0 = time.perf_counter()
    value = fn(*args)
    return (time.perf_counter() - t0) * 1e3, value


def _boxes(shape: tuple[int, int], n: int, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    x0 = rng.uniform(0, 0.8 * w, n)
    y0 = rng.uniform(0, 0.8 * h, n)
    return np.stack([x0, y0, x0 + rng.uniform(0.05, 0.2) * w, y0 + rng.uniform(0.05, 0.2) * h], 1).astype(np.float32)


def run(bundle, batched, lowres, images: list[Path], prompts: int, repeats: int) -> dict:
    seg = load_prompt(bundle)
    lseg = load_prompt(lowres) if lowres else None
    bseg = load_prompt(batched) if batched else (seg if seg.spec.batched else None)
    names = [seg.outputs["low_res_logits"], seg.outputs["iou"]]
    full_name = seg.outputs.get("masks")
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {}
    sizes = set()

    def add(key: str, timed) -> object:
        times.setdefault(key, []).append(timed[0])
        return timed[1]

    spec = seg.manifest.input
    for r in range(repeats):
        for path in images:
            image = cv2.imread(str(path))
            sizes.add(image.shape[:2])
            add("preprocess pil-bilinear", _timed(encoder_input, image, spec, "pil-bilinear"))
            add("preprocess linear", _timed(encoder_input, image, spec, "linear"))
            tensor, frame = encoder_input(image, spec, seg.spec.resize)
            emb = add("encoder", _timed(seg.embed, tensor))
            boxes = _boxes(image.shape[:2], prompts, rng)
            p = Prompts.build(boxes=boxes)
            singles = [Prompts.build(boxes=boxes[i : i + 1]) for i in range(prompts)]
            lows = add(f"decoder {prompts} prompts, one run each", _timed(lambda: [seg.decode(emb, frame, q) for q in singles]))  # noqa: B023
            low = np.concatenate([lo for lo, _ in lows])
            if bseg is not None and bseg.spec.batched:
                add(f"decoder {prompts} prompts, one batched run", _timed(bseg.decode, emb, frame, p))
            if lseg is not None:
                add(f"decoder {prompts} prompts, one batched run, low-res-only graph", _timed(lseg.decode, emb, frame, p))
            if full_name is not None:
                coords, labels = p.decoder_points(frame)
                feeds = seg.feeds(emb, frame, coords[:1], labels[:1])
                add("decoder 1 prompt, low-res only", _timed(seg.session.run, names, feeds))
                add("decoder 1 prompt, + full-size masks output", _timed(seg.session.run, [*names, full_name], feeds))
            low = np.ascontiguousarray(low[:, 0])
            contenders = {
                "upsample C, mask regions": (partial(upsample, path="c"), low, frame),
                "upsample numpy, mask regions": (partial(upsample, path="numpy"), low, frame),
                "upsample reference (2 full-frame passes)": (reference_postprocess, low, frame.input_size,
                                                             frame.resized, frame.orig_size),
            }
            for key in list(contenders) if r % 2 == 0 else list(reversed(contenders)):  # alternate the order
                fn, *fargs = contenders[key]
                add(key, _timed(fn, *fargs))
    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    ref = med["upsample reference (2 full-frame passes)"]
    return {
        "bundle": seg.manifest.name, "input": list(seg.manifest.input.shape), "prompts": prompts,
        "images": len(images), "image_sizes": sorted(list(s) for s in sizes), "repeats": repeats, "median_ms": med,
        "upsample_speedup_c_vs_reference": round(ref / med["upsample C, mask regions"], 2),
    }


def size_sweep(repeats: int, orig: tuple[int, int] = (480, 640)) -> list[dict]:
    """Upsampling cost by mask size: smooth disk-shaped logits covering 0.2 % to 80 % of the frame.

    Contenders interleaved per repeat (order alternating), medians.
    """
    frame = PromptFrame(orig, longest_side_size(orig, 1024), (1024, 1024))
    yy, xx = np.mgrid[0:256, 0:256]
    rows = []
    for radius in (5, 10, 20, 40, 80, 120):
        low = (radius - np.hypot(yy - 96, xx - 128)).astype(np.float32)[None]
        c, ref = [], []
        for r in range(repeats):
            pair = [(c, partial(upsample, path="c"), (low, frame)),
                    (ref, reference_postprocess, (low, frame.input_size, frame.resized, frame.orig_size))]
            for out, fn, fargs in pair if r % 2 == 0 else pair[::-1]:
                out.append(_timed(fn, *fargs)[0])
        share = float(reference_postprocess(low, frame.input_size, frame.resized, frame.orig_size)[0].mean())
        rows.append({"mask_share_of_frame": round(share, 4), "c_region_ms": round(statistics.median(c), 3),
                     "reference_ms": round(statistics.median(ref), 3),
                     "speedup": round(statistics.median(ref) / statistics.median(c), 2)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", help="prompt bundle (default: the tiny SAM fixture, official batch-1 decoder)")
    p.add_argument("--batched", help="the same model with a batched decoder (default: the fixture's; "
                                     "BUNDLE itself when its decoder is batched)")
    p.add_argument("--lowres", help="the same model imported with --lowres-only (default: the fixture's)")
    p.add_argument("--images", default=str(FIX / "images"), help="folder of images")
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    images = sorted(Path(args.images).glob("*.*"))[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        bundle, batched = args.bundle, args.batched
        if bundle is None:
            bundle = import_model(FIX / "encoder.onnx", Path(tmp) / "a", options=ImportOptions(
                decoder=str(FIX / "decoder.onnx"), name="sam-tiny-fixture")).root
            batched = import_model(FIX / "encoder.onnx", Path(tmp) / "b", options=ImportOptions(
                decoder=str(FIX / "decoder_batched.onnx"), name="sam-tiny-fixture")).root
        lowres = args.lowres
        if args.bundle is None:
            from export.sam_decoder import lowres_decoder

            pruned = lowres_decoder(FIX / "decoder_batched.onnx", Path(tmp) / "decoder_low.onnx")
            lowres = import_model(FIX / "encoder.onnx", Path(tmp) / "c", options=ImportOptions(
                decoder=str(pruned), name="sam-tiny-fixture")).root
        record = run(bundle, batched, lowres, images, args.prompts, args.repeats)
    record["size_sweep_480x640"] = size_sweep(max(args.repeats * 4, 11))
    record["machine"] = machine()
    record["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    out = args.out or HERE / "results" / f"prompt_{record['bundle']}_{platform.machine()}-{os.cpu_count()}c.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["median_ms"], indent=1), "\nupsample C vs reference:", record["upsample_speedup_c_vs_reference"],
          "x\nby mask size:", json.dumps(record["size_sweep_480x640"], indent=1), f"\nwrote {out}")


if __name__ == "__main__":
    main()
