"""RF-DETR-Seg exported by rfdetr, imported and run: rfdetr's own instances (committed fixtures).

``tests/fixtures/rfdetr/`` holds a tiny RF-DETR-Seg built with rfdetr's own
classes (``RFDETRSegNano`` with a smaller config and DINOv2 backbone, random
weights) and exported by rfdetr's own ONNX exporter, and ``predictions.json``:
what ``RFDETR.predict``'s preprocessing and rfdetr's ``PostProcess`` made of
that very file on five images of three aspect ratios (made by
``scripts/rfdetr_fixtures.py`` in a throwaway venv; rfdetr never enters this
suite). The file goes through ``edgeseg import`` and ``edgeseg run`` from the
command line; the runtime's instances must equal the library's, in its
order: same labels, scores within 1e-4, boxes within 0.01 px, mask IoU >=
0.99. The C and numpy mask paths must agree bit for bit, and the float
resize must give the tensor torch gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from mask_parity import assert_same_results, decode_rle, iou

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "rfdetr"
PRED = json.loads((FIXTURE / "predictions.json").read_text())
SCORE_TOL, BOX_TOL, MASK_IOU = 1e-4, 0.01, 0.99


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """The fixture model imported (class names from the command line) and run on its images."""
    tmp = tmp_path_factory.mktemp("rfdetr")
    exe = [sys.executable, "-m", "edgeseg"]
    out = subprocess.run([*exe, "import", str(FIXTURE / PRED["model"]), "--out", str(tmp / "bundle"),
                          "--names", ",".join(PRED["classes"])], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    images = tmp / "images"
    images.mkdir()
    for name, item in PRED["images"].items():
        (images / name).symlink_to(REPO / item["path"])
    out = subprocess.run([*exe, "run", str(images), "--bundle", str(tmp / "bundle"), "--out", str(tmp / "out")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    results = {name: json.loads((tmp / "out" / f"{Path(name).stem}.json").read_text()) for name in PRED["images"]}
    return tmp / "bundle", results


def test_import_reads_the_library_conventions(cli_run):
    from edgeseg.bundle import load_bundle

    m = load_bundle(cli_run[0]).manifest
    assert m.family == "query" and m.provenance["source"].startswith("rfdetr:")
    assert m.classes == (*PRED["classes"], "class3")  # rfdetr's builder adds one slot beyond num_classes
    assert m.input.letterbox.keep_aspect is False and m.input.letterbox.resample == "torch-bilinear"
    assert m.input.shape == (1, 3, PRED["resolution"], PRED["resolution"]) and m.input.std == (0.229, 0.224, 0.225)
    assert m.output("class_logits").activation == "sigmoid" and m.output("boxes").encoding == "cxcywh"
    t = m.thresholds
    assert (t.score, t.score_strict, t.nms, t.drop_empty_masks, t.max_detections) == (0.5, True, False, False, 30)


def test_same_instances_as_rfdetr_post_processing(cli_run):
    _, results = cli_run
    total = 0
    for name, expected in PRED["images"].items():
        got, exp = results[name]["instances"], expected["instances"]
        assert [g["class_id"] for g in got] == [e["label_id"] for e in exp], name
        for g, e in zip(got, exp, strict=True):
            assert abs(g["score"] - e["score"]) <= SCORE_TOL, (name, e["score"], g["score"])
            assert np.abs(np.subtract(g["box_xyxy"], e["box"])).max() <= BOX_TOL, (name, e["box"], g["box_xyxy"])
            assert iou(decode_rle(g["mask_rle"]), decode_rle(e["mask"])) >= MASK_IOU, name
        total += len(got)
    assert total >= 40, f"the fixture should compare dozens of instances, got {total}"


def test_c_and_numpy_masks_are_equal(cli_run, monkeypatch):
    import edgeseg
    from edgeseg.decode import cpath

    if not cpath.available():
        pytest.skip("C decoder extension not built")
    decoded = {}
    for path in ("numpy", "c"):
        monkeypatch.setenv("EDGESEG_DECODER", path)
        seg = edgeseg.load(cli_run[0])
        decoded[path] = [seg(cv2.imread(str(REPO / item["path"]))) for item in PRED["images"].values()]
    for n, c in zip(decoded["numpy"], decoded["c"], strict=True):
        assert_same_results(c, n)


def test_float_resize_gives_the_tensor_torch_gives(cli_run):
    """``RFDETR.predict``'s preprocessing, written with torch: ``/ 255``, ``interpolate`` (no antialias), normalize."""
    torch = pytest.importorskip("torch")
    import edgeseg

    seg = edgeseg.load(cli_run[0])
    r = PRED["resolution"]
    for item in PRED["images"].values():
        bgr = cv2.imread(str(REPO / item["path"]))
        x = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1))).float() / torch.tensor(255.0)
        x = torch.nn.functional.interpolate(x[None], size=(r, r), mode="bilinear", align_corners=False, antialias=False)
        mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
        tensor, lb = seg.preprocessor(bgr)
        assert tensor.shape == (1, 3, r, r) and tensor.dtype == np.float32 and lb.orig_size == bgr.shape[:2]
        # up to float rounding: torch's kernel rounds its weights differently (up to 1e-5 here after / std;
        # a uint8 resize would be off by up to 0.5 / 255 / 0.225 = 9e-3)
        np.testing.assert_allclose(tensor, ((x - mean) / std).numpy(), rtol=0, atol=2e-5)


def test_bad_names_and_outputs_are_refused(cli_run, tmp_path):
    from edgeseg.bundle import load_bundle
    from edgeseg.families import FAMILIES
    from edgeseg.imports import ImportFailed, ImportOptions, import_model

    with pytest.raises(ImportFailed, match="4 columns .* but 2 class names"):
        import_model(FIXTURE / PRED["model"], tmp_path / "b", options=ImportOptions(names=("a", "b")))
    manifest = load_bundle(cli_run[0]).manifest
    family = FAMILIES.get("query")
    good = {"labels": (1, 30, 4), "masks": (1, 30, 78, 78), "dets": (1, 30, 4)}
    family.check_output_shapes(manifest, good)
    with pytest.raises(ValueError, match="30 queries but boxes have 29"):
        family.check_output_shapes(manifest, {**good, "dets": (1, 29, 4)})
    with pytest.raises(ValueError, match="must have 4 channels"):
        family.check_output_shapes(manifest, {**good, "dets": (1, 30, 5)})
    with pytest.raises(ValueError, match="must have 4 channels"):
        family.check_output_shapes(manifest, {**good, "labels": (1, 30, 5)})
