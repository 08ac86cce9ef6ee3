"""The ``prompt`` family on segment-anything's own ONNX export (tests/fixtures/sam, scripts/sam_fixtures.py).

The fixtures are a tiny SAM built from the library's classes with random
weights, exported as the official script does, and ``SamPredictor``'s own
low-res logits and final masks for box and point prompts on three images.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg.bundle import BundleError, load_bundle
from edgeseg.decode.prompt_masks import FULL_FRAME_SHARE, reference_postprocess, upsample
from edgeseg.imports import ImportFailed, ImportOptions, import_model
from edgeseg.longest_side import PromptFrame, longest_side_size
from edgeseg.manifest import ManifestError, parse_manifest
from edgeseg.prompt import PromptSegmenter

FIX = Path(__file__).parent / "fixtures" / "sam"
RECORDS = json.loads((FIX / "prompts.json").read_text())


@pytest.fixture(scope="module")
def predictions():
    return dict(np.load(FIX / "predictions.npz"))


@pytest.fixture(scope="module")
def sam_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("sam") / "bundle"
    return import_model(FIX / "encoder.onnx", out, options=ImportOptions(decoder=str(FIX / "decoder.onnx")))


@pytest.fixture(scope="module")
def seg(sam_bundle):
    with edgeseg.load(sam_bundle.root) as s:
        yield s


def _image(record) -> np.ndarray:
    return cv2.imread(str(FIX / "images" / record["image"]))


def _prompt_kwargs(record) -> dict:
    kw = {}
    if "box" in record:
        kw["boxes"] = [record["box"]]
    if "points" in record:
        kw["points"] = [record["points"]]
        kw["labels"] = [record["labels"]]
    return kw


def _ref_masks(predictions, record, shape) -> np.ndarray:
    packed = predictions[record["key"] + "_masks"]
    return np.unpackbits(packed, axis=-1)[..., : shape[1]].astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def test_import_writes_a_two_model_bundle(sam_bundle):
    m = sam_bundle.manifest
    assert m.family == "prompt" and m.model == "encoder.onnx" and m.prompt.model == "decoder.onnx"
    assert set(m.files) == {"encoder.onnx", "decoder.onnx"} and m.input.shape == (1, 3, 1024, 1024)
    assert (m.prompt.mask_tokens, m.prompt.batched, m.prompt.resize) == ("all", False, "pil-bilinear")
    assert {o.role: o.name for o in m.prompt.outputs} == {"low_res_logits": "low_res_masks", "iou": "iou_predictions",
                                                          "masks": "masks"}
    assert load_bundle(sam_bundle.root).manifest == m  # verified again: both files hashed


@pytest.mark.parametrize("record", RECORDS, ids=[r["key"] for r in RECORDS])
def test_runtime_equals_sam_predictor(seg, predictions, record):
    image = _image(record)
    kw = _prompt_kwargs(record)
    multimask = bool(record.get("multimask"))
    low, iou, _ = seg.prompt_logits(image, **kw)
    ref_low, ref_iou = predictions[record["key"] + "_low"], predictions[record["key"] + "_iou"]
    mine = low[0, 1:] if multimask else low[0, :1]
    assert mine.shape == ref_low.shape
    np.testing.assert_allclose(mine, ref_low, atol=1e-4, rtol=0)
    np.testing.assert_allclose(iou[0, 1:] if multimask else iou[0, :1], ref_iou, atol=1e-4, rtol=0)
    ref_masks = _ref_masks(predictions, record, image.shape)
    if multimask:  # the best multimask token by predicted IoU, as the Result carries it
        result = seg.prompt(image, multimask=True, **kw)
        expected = ref_masks[int(np.argmax(ref_iou))]
    else:
        result = seg.prompt(image, **kw)
        expected = ref_masks[0]
    assert len(result) == 1 and result.image_size == image.shape[:2]
    assert expected.mean() > 0.01  # the fixture masks are not empty
    assert _iou(result.full_masks()[0], expected) >= 0.99


def test_c_and_numpy_upsampling_agree_and_lose_nothing_outside_the_region(predictions):
    frame = PromptFrame((480, 640), longest_side_size((480, 640), 1024), (1024, 1024))
    low = np.stack([predictions[r["key"] + "_low"][0] for r in RECORDS if r["image"] == "landscape.png"])
    rng = np.random.default_rng(0)
    smooth = cv2.resize(rng.normal(0, 3, (16, 16)).astype(np.float32), (256, 256)) - 2.0
    yy, xx = np.mgrid[0:256, 0:256]
    ragged = rng.normal(0, 1, (256, 256)).astype(np.float32)
    small = [r - np.hypot(yy - cy, xx - cx) + ragged for r, cy, cx in ((6, 40, 50), (16, 150, 200), (22, 180, 30))]
    low = np.concatenate([low, smooth[None], np.stack(small).astype(np.float32), np.full((1, 256, 256), -1, np.float32)])
    c = upsample(low, frame, path="c")
    ref = upsample(low, frame, path="numpy")
    full = reference_postprocess(low, (1024, 1024), frame.resized, frame.orig_size)
    for i, (a, b) in enumerate(zip(c, ref, strict=True)):
        assert (a.x0, a.y0, a.bitmap.shape) == (b.x0, b.y0, b.bitmap.shape)
        assert np.array_equal(a.bitmap, b.bitmap)
        assert _iou(a.full(), full[i]) >= 0.999
    assert c[-1].bitmap.size == 0 and not full[-1].any()  # no positive cell: nothing rendered
    assert all(0 < m.bitmap.size < FULL_FRAME_SHARE * 480 * 640 for m in c[-4:-1])  # small: only their regions


def test_embeddings_are_cached_per_frame(seg):
    image = _image(RECORDS[0])
    calls = []
    run = seg.encoder.run
    seg.encoder.run = lambda t: calls.append(1) or run(t)
    try:
        seg._cache = None
        first = seg.prompt(image, boxes=[[10, 10, 200, 200], [300, 100, 500, 400]])
        second = seg.prompt(image, points=[[100, 100], [400, 300]])
        seg.prompt(image[:, ::-1].copy(), points=[[100, 100]])
    finally:
        seg.encoder.run = run
    assert len(calls) == 2  # the first frame once for two calls, the flipped frame once
    assert first.timings.preprocess_ms > 0 and second.timings.preprocess_ms == 0
    assert len(first) == 2 and len(second) == 2


def test_batched_decoder_gives_the_per_prompt_answers(tmp_path, seg):
    batched = import_model(FIX / "encoder.onnx", tmp_path / "b",
                           options=ImportOptions(decoder=str(FIX / "decoder_batched.onnx")))
    assert batched.manifest.prompt.batched
    image = _image(RECORDS[0])
    boxes = [[10, 10, 200, 200], [300, 100, 500, 400], [0, 0, 640, 480]]
    with PromptSegmenter(batched) as bseg:
        low_b, iou_b, _ = bseg.prompt_logits(image, boxes=boxes)
    low, iou, _ = seg.prompt_logits(image, boxes=boxes)
    np.testing.assert_allclose(low_b, low, atol=1e-4, rtol=0)
    np.testing.assert_allclose(iou_b, iou, atol=1e-5, rtol=0)


def test_single_mask_export_selects_the_best_multimask_token(tmp_path, predictions):
    """``--return-single-mask`` with a box (two points) returns the best multimask token, not token 0."""
    b = import_model(FIX / "encoder.onnx", tmp_path / "s", options=ImportOptions(decoder=str(FIX / "decoder_single.onnx")))
    assert b.manifest.prompt.mask_tokens == "selected"
    record = next(r for r in RECORDS if r.get("multimask"))
    with PromptSegmenter(b) as s:
        low, iou, _ = s.prompt_logits(_image(record), **_prompt_kwargs(record))
    ref_low, ref_iou = predictions[record["key"] + "_low"], predictions[record["key"] + "_iou"]
    best = int(np.argmax(ref_iou))
    assert low.shape[1] == 1
    np.testing.assert_allclose(low[0, 0], ref_low[best], atol=1e-4, rtol=0)


@pytest.mark.parametrize("size", [(480, 640), (640, 360), (300, 300), (720, 1280), (1080, 1920), (3000, 4000)])
def test_pil_bilinear_is_pillow_bit_for_bit_at_sam_sizes(size):
    from PIL import Image

    from edgeseg.resample import pil_bilinear

    rng = np.random.default_rng(size[0])
    img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    oh, ow = longest_side_size(size, 1024)
    expected = np.asarray(Image.fromarray(img).resize((ow, oh), Image.BILINEAR))
    assert np.array_equal(pil_bilinear(img, (ow, oh)), expected)


def test_bad_prompts_and_calls_are_clear_errors(seg):
    image = _image(RECORDS[0])
    with pytest.raises(ValueError, match=r"boxes must be \(N, 4\)"):
        seg.prompt(image, boxes=[[1, 2, 3]])
    with pytest.raises(ValueError, match="x2 >= x1"):
        seg.prompt(image, boxes=[[10, 10, 5, 20]])
    with pytest.raises(ValueError, match="needs boxes=, points= or both"):
        seg.prompt(image)
    with pytest.raises(ValueError, match="same number of prompts"):
        seg.prompt(image, boxes=[[0, 0, 9, 9]], points=[[1, 1], [2, 2]])
    with pytest.raises(ValueError, match="labels must be"):
        seg.prompt(image, points=[[[1, 1]]], labels=[[2]])
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        seg.prompt(image.astype(np.float32), boxes=[[0, 0, 9, 9]])
    with pytest.raises(ValueError, match="is a prompt bundle"):
        seg(image)


def test_manifest_checks_two_model_bundles(sam_bundle):
    d = sam_bundle.manifest.to_dict()
    no_prompt = {k: v for k, v in d.items() if k != "prompt"}
    with pytest.raises(ManifestError, match="needs 'prompt'"):
        parse_manifest(no_prompt)
    with pytest.raises(ManifestError, match="mask_tokens must be one of"):
        parse_manifest({**d, "prompt": {**d["prompt"], "mask_tokens": "some"}})
    with pytest.raises(ManifestError, match="low_res_logits"):
        parse_manifest({**d, "prompt": {**d["prompt"], "outputs": d["prompt"]["outputs"][1:]}})
    with pytest.raises(ManifestError, match="letterbox.center must be false"):
        parse_manifest({**d, "input": {**d["input"], "letterbox": {"pad_value": 0, "center": True}}})
    nano = load_bundle(Path(edgeseg.__file__).parent / "assets" / "edgeseg-nano").manifest.to_dict()
    assert "prompt" not in nano  # single-model manifests are unchanged
    with pytest.raises(ManifestError, match="takes no 'prompt'"):
        parse_manifest({**nano, "prompt": d["prompt"]})


def test_a_missing_or_changed_decoder_refuses_the_bundle(sam_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(sam_bundle.root, copy)
    with open(copy / "decoder.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="decoder.onnx"):
        load_bundle(copy)
    (copy / "decoder.onnx").unlink()
    with pytest.raises(BundleError, match="missing file 'decoder.onnx'"):
        load_bundle(copy)


def test_import_needs_the_decoder(tmp_path):
    with pytest.raises(ImportFailed, match="--decoder"):
        import_model(FIX / "encoder.onnx", tmp_path / "x")


def test_edgesam_style_decoder_imports_and_matches(tmp_path, predictions):
    """EdgeSAM's decoder contract (points only in, ``scores`` + low-res ``masks`` out) gives the same answers."""
    b = import_model(FIX / "encoder.onnx", tmp_path / "e", options=ImportOptions(decoder=str(FIX / "decoder_edgesam.onnx")))
    spec = b.manifest.prompt
    assert (spec.inputs.mask_input, spec.inputs.has_mask_input, spec.inputs.orig_im_size) == (None, None, None)
    assert {o.role: o.name for o in spec.outputs} == {"low_res_logits": "masks", "iou": "scores"}
    with PromptSegmenter(b) as s:
        for record in RECORDS[:4]:
            low, iou, _ = s.prompt_logits(_image(record), **_prompt_kwargs(record))
            np.testing.assert_allclose(low[0, :1], predictions[record["key"] + "_low"], atol=1e-4, rtol=0)


def test_a_signed_packed_prompt_bundle_loads_and_a_changed_decoder_is_refused(sam_bundle, tmp_path):
    from edgeseg.bundle import pack_bundle
    from edgeseg.device_config import DeviceConfig, TrustOptions
    from edgeseg.signing import generate_key, sign_path

    copy = tmp_path / "b"
    shutil.copytree(sam_bundle.root, copy)
    public = generate_key(tmp_path / "key.pem")
    sign_path(copy, tmp_path / "key.pem")
    packed = pack_bundle(copy, tmp_path / "sam.edgeseg")
    trusted = DeviceConfig(trust=TrustOptions(keys=(public,)))
    with edgeseg.load(packed, trusted) as seg:
        assert len(seg.prompt(_image(RECORDS[0]), boxes=[[10, 10, 200, 200]])) == 1
    data = bytearray((copy / "decoder.onnx").read_bytes())
    data[len(data) // 2] ^= 1
    (copy / "decoder.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="decoder.onnx"):
        edgeseg.load(copy, trusted)
