"""Make the committed Ultralytics YOLO-seg test fixtures (tests/fixtures/ultralytics/).

Trains tiny YOLOv8n-seg, YOLO11n-seg and YOLO26n-seg models with Ultralytics on
edgeseg's synthetic tabletop scenes, exports them with Ultralytics' own
exporter (ONNX; LiteRT/TFLite float32 and static int8 for YOLOv8n-seg) and
records Ultralytics' own ``predict`` of each EXPORTED file (not the .pt) on a
few images as ``predictions*.json``, plus each file's metadata and I/O in
``info.json``. Tests never run this script: they read the committed fixtures,
so neither Ultralytics nor its torch enters ``make test``, and the runtime
never imports Ultralytics. Ultralytics is AGPL-3.0; this script only calls its
public API (YOLO(...).train/export/predict/val) in a throwaway venv.

Venv (outside the repo; torch/torchvision first and pinned, so nothing pulls
other CUDA wheels; the CUDA build of torch 2.14.1 runs on the CPU)::

    python3 -m venv /work/venvs/ultra
    /work/venvs/ultra/bin/pip install torch==2.14.1 torchvision==0.29.1
    /work/venvs/ultra/bin/pip install "ultralytics>=8.4,<8.5" pycocotools tqdm onnx onnxslim onnxruntime
    /work/venvs/ultra/bin/pip install "litert-torch>=0.10.0" "ai-edge-litert>=2.3.0" "ai-edge-quantizer>=0.10.0"
    /work/venvs/ultra/bin/python -c "import torch; assert torch.__version__.startswith('2.14.1')"

Run (from the repository root; nothing is downloaded: models are built from
``.yaml`` configs and Ultralytics' font download is switched off below)::

    YOLO_CONFIG_DIR=/tmp/yolo-cfg MPLCONFIGDIR=/tmp/mpl YOLO_OFFLINE=1 \\
        /work/venvs/ultra/bin/python scripts/ultralytics_fixtures.py \\
        --steps data,train,export,predict --models yolov8n-seg,yolo11n-seg,yolo26n-seg

Steps can be rerun on their own (``--steps predict``); ``--work`` (default
``data/ultra``, git-ignored) holds the generated data and the training runs.
Versions used: ultralytics 8.4.190, torch 2.14.1 (CUDA build on CPU),
onnx 1.23.2, onnxruntime 1.32.0, onnxslim 0.1.98, litert-torch 0.10.0,
ai-edge-litert 2.3.0, ai-edge-quantizer 0.10.0, Python 3.11.
Wall time here (2-core x86_64 VM shared with other jobs, no GPU), about 70
minutes in all: data 30 s; train yolov8n-seg 1467 s + 834 s (25 + 20 epochs),
yolo11n-seg 588 s (12 epochs), yolo26n-seg 1271 s (12 epochs); export, val
and predict under a minute per model (LiteRT float32 + int8: 55 s), the
first LiteRT conversion in a fresh process can take minutes. Details per model
in tests/fixtures/ultralytics/README.md. ``--only model_int8.tflite`` redoes
single files; ``--epochs yolov8n-seg=25+20`` sets the training stages.

What each step does:

* ``data``: renders 400 training scenes (seed 1) and 100 validation scenes
  (seed 1000, the first 100 of the project's data/synth/val split) at 320x320
  with ``python -m export.data.synthetic``, converts the COCO RLE masks to
  Ultralytics' segment labels (one line per instance: class and a normalized
  polygon; an instance split by occlusion into several parts, or with a hole
  (rings), becomes one polygon whose contours are joined by zero-width cuts:
  mean polygon/mask IoU 0.999), writes ``data.yaml``, and
  renders the extra prediction images of other sizes into
  tests/fixtures/ultralytics/images/.
* ``train``: ``YOLO("<model>.yaml").train(...)`` on CPU, imgsz 320, batch 16;
  a second stage (yolov8n-seg) trains on from the first stage's ``last.pt``.
  A stage whose run folder holds ``fixture_train.json`` is kept on a rerun.
* ``export``: exports ``last.pt`` (no checkpoint selection on the val split)
  and copies the files, byte for byte, into the fixture folder; runs
  Ultralytics' val of each exported file on the 100 val scenes.
* ``predict``: Ultralytics' predict of each exported file on the sample images,
  retina masks, written as COCO compressed RLE.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "ultralytics"
IMAGES = FIXTURES / "images"
CLASS_NAMES = ("box", "can", "bottle", "bolt", "ring", "blob")  # export/data/shapes.py, category id - 1
IMGSZ = 320
# Epochs per training stage: a later stage starts from the previous stage's last.pt (a fresh schedule, warm-up
# included). yolov8n-seg is the model for the int8 parity report and the benchmark, so it trains longest.
EPOCHS = {"yolov8n-seg": (25, 20), "yolo11n-seg": (12,), "yolo26n-seg": (12,)}
# Extra prediction images of other sizes/aspect ratios: (file name, height, width, seed), rendered by the generator.
EXTRA_IMAGES = (("synth_640x360.jpg", 360, 640, 7001), ("synth_300x500.jpg", 500, 300, 7002),
                ("synth_333x250.jpg", 250, 333, 7003))
SAMPLES = tuple(f"edgeseg/assets/samples/scene_{i:02d}.jpg" for i in range(6))
# Ultralytics' predict defaults, written out so the fixture records them.
PREDICT_ARGS = {"conf": 0.25, "iou": 0.7, "max_det": 300, "imgsz": IMGSZ, "agnostic_nms": False,
                "retina_masks": True, "device": "cpu"}


def log(msg: str) -> None:
    print(f"[fixtures {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check_env() -> None:
    """Refuses to run without the offline settings (a run that downloads would fail half way here)."""
    missing = [k for k in ("YOLO_CONFIG_DIR", "MPLCONFIGDIR", "YOLO_OFFLINE") if not os.environ.get(k)]
    if missing:
        sys.exit(f"set {', '.join(missing)} (see this script's docstring) before running it")


def ultralytics():
    """Imports Ultralytics with its font look-up switched off (it would try the network for Arial.ttf)."""
    import ultralytics as ul
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.checks as checks

    def no_font(font: str = "Arial.ttf"):  # plots=False everywhere, so no font is needed
        return None

    checks.check_font = no_font
    data_utils.check_font = no_font
    return ul


# ---------------------------------------------------------------------------------------------------- data


def run_generator(out: Path, num: int, seed: int, height: int = IMGSZ, width: int = IMGSZ) -> None:
    if (out / "annotations.json").exists():
        log(f"{out} exists, kept")
        return
    cmd = [sys.executable, "-m", "export.data.synthetic", "--out", str(out), "--num", str(num), "--seed", str(seed),
           "--imgsz", str(height), str(width), "--workers", "2"]
    log(" ".join(cmd[1:]))
    subprocess.run(cmd, cwd=ROOT, check=True)


def _nearest(a, b):
    """Indices (i, j) of the closest pair of points a[i], b[j]."""
    import numpy as np

    d = ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(d.argmin()), d.shape)
    return int(i), int(j)


def mask_polygon(mask):
    """One closed polygon (K, 2) in pixels covering a binary mask, or None for an empty mask.

    Several connected parts and holes are chained: each contour is entered at the
    point nearest the previous one, walked round, and left again by the same cut,
    so the filled polygon covers every part, leaves the holes out, and the cuts
    add no area (one-pixel lines once rasterized).
    """
    import cv2
    import numpy as np

    # RETR_CCOMP: outer boundaries and holes (a ring is an annulus); OpenCV gives holes the opposite orientation,
    # so a hole chained in by a cut is left out of the filled polygon.
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    parts = [c.reshape(-1, 2) for c in contours if len(c) >= 3 and cv2.contourArea(c) >= 2.0]
    if not parts:
        return None
    parts.sort(key=lambda p: -cv2.contourArea(p))
    # Order the parts greedily by distance, starting at the largest.
    order = [parts.pop(0)]
    while parts:
        k = min(range(len(parts)), key=lambda n: ((order[-1][:, None, :] - parts[n][None]) ** 2).sum(-1).min())
        order.append(parts.pop(k))

    def walk(n: int, entry: int) -> list:
        part = order[n]
        ring = np.roll(part, -entry, axis=0)  # starts at the entry point
        if n == len(order) - 1:
            return [*ring, ring[0]]
        exit_i, next_entry = _nearest(ring, order[n + 1])
        return [*ring[: exit_i + 1], *walk(n + 1, next_entry), *ring[exit_i:], ring[0]]

    return np.array(walk(0, 0), dtype=np.float64)


def coco_to_yolo(coco_dir: Path, yolo_dir: Path, split: str) -> int:
    """Writes images/<split>/*.jpg and labels/<split>/*.txt; returns the number of instances written."""
    from pycocotools import mask as mask_utils

    ann = json.loads((coco_dir / "annotations.json").read_text())
    by_image: dict[int, list] = {}
    for a in ann["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    (yolo_dir / "images" / split).mkdir(parents=True, exist_ok=True)
    (yolo_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
    written = 0
    for img in ann["images"]:
        src = coco_dir / img["file_name"]
        name = Path(img["file_name"]).name
        shutil.copyfile(src, yolo_dir / "images" / split / name)
        h, w = img["height"], img["width"]
        lines = []
        for a in by_image.get(img["id"], []):
            m = mask_utils.decode(a["segmentation"])
            poly = mask_polygon(m)
            if poly is None:
                continue
            poly = poly / [w, h]
            coords = " ".join(f"{v:.6f}" for v in poly.clip(0, 1).reshape(-1))
            lines.append(f"{a['category_id'] - 1} {coords}")
            written += 1
        (yolo_dir / "labels" / split / name).with_suffix(".txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return written


def step_data(work: Path) -> None:
    coco = work / "coco"
    run_generator(coco / "train", 400, 1)
    run_generator(coco / "val", 100, 1000)
    yolo = work / "yolo"
    for split in ("train", "val"):
        n = coco_to_yolo(coco / split, yolo, split)
        log(f"{split}: {n} instances as YOLO-seg polygons")
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES))
    (work / "data.yaml").write_text(f"path: {yolo}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name, h, w, seed in EXTRA_IMAGES:
        out = work / "extra" / name.removesuffix(".jpg")
        run_generator(out, 1, seed, h, w)
        shutil.copyfile(out / "images" / "000000.jpg", IMAGES / name)
    log(f"data.yaml and {len(EXTRA_IMAGES)} extra images written")


# ---------------------------------------------------------------------------------------------------- train


def run_name(name: str, stage: int) -> str:
    return name if stage == 0 else f"{name}-stage{stage + 1}"


def final_weights(work: Path, name: str, epochs: dict[str, tuple[int, ...]]) -> Path:
    return work / "runs" / run_name(name, len(epochs[name]) - 1) / "weights" / "last.pt"


def step_train(work: Path, models: list[str], epochs: dict[str, tuple[int, ...]], batch: int) -> None:
    ul = ultralytics()
    for name in models:
        for stage, n_epochs in enumerate(epochs[name]):
            run = work / "runs" / run_name(name, stage)
            if (run / "fixture_train.json").exists():
                log(f"{run} done, kept")
                continue
            t0 = time.time()
            # Stage 1 builds from the packaged config: a .pt name of Ultralytics' would download.
            start = f"{name}.yaml" if stage == 0 else str(work / "runs" / run_name(name, stage - 1) / "weights" / "last.pt")
            model = ul.YOLO(start)
            model.train(data=str(work / "data.yaml"), epochs=n_epochs, imgsz=IMGSZ, batch=batch, workers=0,
                        device="cpu", amp=False, plots=False, project=str(work / "runs"), name=run.name,
                        exist_ok=True, seed=0, verbose=True)
            wall = time.time() - t0
            stats = {"start": Path(start).name if stage == 0 else str(Path(start).relative_to(work)),
                     "epochs": n_epochs, "batch": batch, "imgsz": IMGSZ, "train_wall_s": round(wall, 1),
                     "train_images": 400, "val_images": 100, "results_csv_last": last_results_row(run)}
            (run / "fixture_train.json").write_text(json.dumps(stats, indent=1))
            log(f"{run.name}: trained {n_epochs} epochs in {wall:.0f} s")


def last_results_row(run: Path) -> dict:
    import csv

    rows = list(csv.DictReader((run / "results.csv").open()))
    return {k.strip(): float(v) for k, v in rows[-1].items()} if rows else {}


# ---------------------------------------------------------------------------------------------------- export


def onnx_info(path: Path) -> dict:
    import onnx

    m = onnx.load(str(path), load_external_data=False)

    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]

    def dtype(v):
        return onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)

    return {"file": path.name, "bytes": path.stat().st_size, "opset": [o.version for o in m.opset_import],
            "producer": f"{m.producer_name} {m.producer_version}",
            "metadata_props": {p.key: p.value for p in m.metadata_props},
            "inputs": [{"name": v.name, "shape": dims(v), "dtype": dtype(v)} for v in m.graph.input],
            "outputs": [{"name": v.name, "shape": dims(v), "dtype": dtype(v)} for v in m.graph.output]}


def tflite_info(path: Path) -> dict:
    import zipfile

    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))

    def detail(d):
        q = d.get("quantization_parameters", {})
        return {"name": d["name"], "index": int(d["index"]), "shape": [int(x) for x in d["shape"]],
                "dtype": d["dtype"].__name__, "quantization": [float(x) for x in d["quantization"]],
                "scales_count": int(len(q.get("scales", [])))}

    tensors = it.get_tensor_details()
    quantized = [t for t in tensors if len(t["quantization_parameters"]["scales"])]
    outputs = it.get_output_details()
    # The head's tensors (per-anchor rows and the prototype map): where int8 scales are shared or not.
    anchors = int(outputs[0]["shape"][-1])
    shapes = [list(map(int, o["shape"])) for o in outputs]

    def head(t):
        shape = list(map(int, t["shape"]))
        return (len(shape) == 3 and shape[-1] == anchors) or shape in shapes

    def tensor(t):
        q = t["quantization_parameters"]
        return {"name": t["name"], "index": int(t["index"]), "shape": [int(x) for x in t["shape"]],
                "dtype": t["dtype"].__name__, "scales": [float(x) for x in q["scales"][:4]],
                "zero_points": [int(x) for x in q["zero_points"][:4]]}

    with zipfile.ZipFile(path) as zf:
        metadata = json.loads(zf.read("metadata.json"))
    return {"file": path.name, "bytes": path.stat().st_size, "metadata_json": metadata,
            "inputs": [detail(d) for d in it.get_input_details()],
            "outputs": [detail(d) for d in outputs],
            "tensors": len(tensors), "quantized_tensors": len(quantized),
            "head_tensors": [tensor(t) for t in tensors if head(t)]}


def val_file(ul, path: Path, work: Path, task: str = "segment") -> dict:
    model = ul.YOLO(str(path), task=task)
    r = model.val(data=str(work / "data.yaml"), imgsz=IMGSZ, batch=1, device="cpu", plots=False, verbose=False,
                  project=str(work / "val"), name=path.stem, exist_ok=True)
    d = {k: round(float(v), 5) for k, v in r.results_dict.items()}
    log(f"val {path}: {d}")
    return d


def export_one(ul, pt: Path, dest: Path, out_name: str, **kw) -> Path:
    t0 = time.time()
    f = Path(ul.YOLO(str(pt)).export(imgsz=IMGSZ, device="cpu", **kw))
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(f, dest / out_name)
    log(f"exported {kw} -> {dest / out_name} ({(dest / out_name).stat().st_size / 1e6:.2f} MB, {time.time() - t0:.0f} s)")
    return dest / out_name


def step_export(work: Path, models: list[str], epochs: dict[str, tuple[int, ...]], tflite: list[str],
                only: list[str]) -> None:
    ul = ultralytics()
    for name in models:
        pt = final_weights(work, name, epochs)
        dest = FIXTURES / name
        info = {"name": name, "source": str(pt.relative_to(work)), "train": []}
        for stage in range(len(epochs[name])):
            train_json = work / "runs" / run_name(name, stage) / "fixture_train.json"
            if train_json.exists():
                info["train"].append(json.loads(train_json.read_text()))
        old = dest / "info.json"
        info["files"] = json.loads(old.read_text()).get("files", {}) if old.exists() else {}
        exports = [("model.onnx", dict(format="onnx", dynamic=False, simplify=True))]
        if name.startswith("yolo26"):
            # 8.4.190: the NMS-free end2end head is exported only with nms=False; the default nms=None exports the
            # one-to-many head (raw anchors, NMS left to the caller) like YOLOv8/11.
            exports = [("model.onnx", dict(format="onnx", dynamic=False, simplify=True, nms=False)),
                       ("model_no_end2end.onnx", dict(format="onnx", dynamic=False, simplify=True))]
        if name in tflite:
            # format="tflite"/int8=True are deprecated aliases of these in 8.4.190 (LiteRT via litert-torch).
            exports += [("model_float32.tflite", dict(format="litert")),
                        ("model_int8.tflite", dict(format="litert", quantize=8, data=str(work / "data.yaml"),
                                                   split="train", fraction=0.75))]  # 300 calibration images
        for out_name, kw in exports:
            if only and out_name not in only:
                continue
            try:
                path = export_one(ul, pt, dest, out_name, **kw)
            except Exception as e:  # record why (the TFLite path above all) and go on with the next file
                log(f"export {out_name} failed: {type(e).__name__}: {e}")
                info["files"][out_name] = {"export_args": kw, "error": f"{type(e).__name__}: {e}"}
                continue
            entry = onnx_info(path) if path.suffix == ".onnx" else tflite_info(path)
            entry["export_args"] = kw
            try:
                entry["ultralytics_val"] = val_file(ul, path, work)
            except Exception as e:
                entry["ultralytics_val"] = {"error": f"{type(e).__name__}: {e}"}
            info["files"][out_name] = entry
            (dest / "info.json").write_text(json.dumps(info, indent=1, default=str) + "\n")
        (dest / "info.json").write_text(json.dumps(info, indent=1, default=str) + "\n")


# ---------------------------------------------------------------------------------------------------- predict


def prediction_images() -> list[Path]:
    return [ROOT / s for s in SAMPLES] + [IMAGES / n for n, *_ in EXTRA_IMAGES]


def predictions_name(model_file: str) -> str:
    if model_file == "model.onnx":
        return "predictions.json"
    stem = Path(model_file).stem.removeprefix("model_")
    kind = "tflite_" if model_file.endswith(".tflite") else "onnx_"
    return f"predictions_{kind if not stem.startswith(kind.rstrip('_')) else ''}{stem}.json"


def predict_file(ul, path: Path) -> dict:
    import cv2
    import numpy as np
    import torch
    from pycocotools import mask as mask_utils

    model = ul.YOLO(str(path), task="segment")
    out = {"ultralytics_version": ul.__version__, "torch_version": torch.__version__, "model": path.name,
           "predict_args": dict(PREDICT_ARGS), "names": {str(k): v for k, v in model.names.items()},
           "imgsz": [IMGSZ, IMGSZ], "images": {}}
    for img_path in prediction_images():
        img = cv2.imread(str(img_path))
        h, w = img.shape[:2]
        (r,) = model.predict(str(img_path), verbose=False, **PREDICT_ARGS)
        boxes = r.boxes.xyxy.cpu().numpy().astype(np.float64)
        masks = []
        if r.masks is not None:
            data = r.masks.data.cpu().numpy()
            assert data.shape[1:] == (h, w), f"retina masks {data.shape} for image {(h, w)}"
            for m in data:
                rle = mask_utils.encode(np.asfortranarray((m > 0.5).astype(np.uint8)))
                masks.append({"size": [int(x) for x in rle["size"]], "counts": rle["counts"].decode("ascii")})
        assert len(masks) == len(boxes)
        out["images"][img_path.name] = {
            "path": str(img_path.relative_to(ROOT)), "shape": [h, w],
            "boxes": boxes.tolist(), "scores": r.boxes.conf.cpu().numpy().astype(np.float64).tolist(),
            "classes": [int(c) for c in r.boxes.cls.cpu().numpy()], "masks": masks}
        log(f"{path.parent.name}/{path.name} {img_path.name}: {len(boxes)} detections")
    return out


def step_predict(models: list[str], only: list[str]) -> None:
    ul = ultralytics()
    for name in models:
        dest = FIXTURES / name
        for f in sorted(dest.glob("model*")):
            if f.suffix not in (".onnx", ".tflite") or (only and f.name not in only):
                continue
            pred = predict_file(ul, f)
            (dest / predictions_name(f.name)).write_text(json.dumps(pred, separators=(",", ":")) + "\n")
            log(f"wrote {dest / predictions_name(f.name)}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", default="data,train,export,predict", help="comma list of data,train,export,predict")
    p.add_argument("--models", default=",".join(EPOCHS), help="comma list of model yaml names")
    p.add_argument("--epochs", default="", help="overrides, epochs per stage joined by +, e.g. yolov8n-seg=25+20,yolo11n-seg=5")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--tflite", default="yolov8n-seg", help="models also exported to LiteRT/TFLite float32 and int8")
    p.add_argument("--only", default="", help="export/predict only these files, e.g. model_int8.tflite")
    p.add_argument("--work", type=Path, default=ROOT / "data" / "ultra", help="data and runs (git-ignored)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    args = p.parse_args(argv)
    check_env()
    steps = [s for s in args.steps.split(",") if s]
    unknown = set(steps) - {"data", "train", "export", "predict"}
    if unknown:
        p.error(f"unknown steps {sorted(unknown)}")
    models = [m for m in args.models.split(",") if m]
    epochs = dict(EPOCHS)
    for kv in filter(None, args.epochs.split(",")):
        k, v = kv.split("=")
        epochs[k] = tuple(int(e) for e in v.split("+"))
    work = args.work.resolve()
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    for s in steps:
        ts = time.time()
        if s == "data":
            step_data(work)
        elif s == "train":
            step_train(work, models, epochs, args.batch)
        elif s == "export":
            step_export(work, models, epochs, [m for m in args.tflite.split(",") if m],
                        [f for f in args.only.split(",") if f])
        else:
            step_predict(models, [f for f in args.only.split(",") if f])
        log(f"step {s} took {time.time() - ts:.0f} s")
    log(f"all done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
