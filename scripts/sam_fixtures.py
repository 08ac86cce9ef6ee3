"""Make the committed Segment Anything test fixtures (tests/fixtures/sam/).

Builds a tiny SAM from segment-anything's own classes (``ImageEncoderViT``,
``PromptEncoder``, ``MaskDecoder``, ``TwoWayTransformer``, ``Sam``) with a
small config and random weights (seed 0): nothing is downloaded, and random
weights suffice for numerical parity of the export contract. Exports the
ONNX pair the official way:

* ``decoder.onnx``: ``segment_anything.utils.onnx.SamOnnxModel`` traced as the
  repository's ``scripts/export_onnx_model.py`` does (same dummy inputs,
  input/output names, ``num_points`` dynamic axes, opset 17,
  ``return_single_mask=False``: all four mask tokens);
* ``decoder_batched.onnx``: the same with a dynamic batch axis on
  ``point_coords`` / ``point_labels`` (one decoder run for many prompts);
* ``decoder_single.onnx``: ``return_single_mask=True`` (the export's
  ``--return-single-mask``: best token by predicted IoU, see README);
* ``decoder_edgesam.onnx``: EdgeSAM's decoder contract (its
  ``scripts/export_onnx_model.py``): points in, ``scores`` and low-res
  ``masks`` out, no mask input or original size;
* ``encoder.onnx``: ``sam.image_encoder`` on its ``(1, 3, 1024, 1024)``
  normalized, padded input (the official repository exports only the
  decoder; this is how MobileSAM / samexporter export the encoder).

The PyPI ``segment-anything==1.0`` wheel's ``SamOnnxModel.mask_postprocessing``
crops with ``int(prepadded_size[0])``, which tracing freezes to the dummy
input's size (every image cropped as 1500x2250 -> 683x1024). The
repository's later commits slice with the tensor itself; :class:`_DynamicCrop`
does that, so the ``masks`` output is right for every image size (the runtime
reads ``low_res_masks`` and upsamples itself either way).

Then ``SamPredictor`` (the library's own pre- and post-processing: PIL
bilinear resize of the longest side to 1024, normalization, padding,
``postprocess_masks``) predicts on the images in ``images/`` with box and
point prompts; ``predictions.npz`` keeps its low-resolution logits
(float32), predicted IoUs and final masks (bit-packed), ``prompts.json`` the
prompts. Tests never run this script.

Venv (outside the repo; a .pth reuses the torch/torchvision of the ultra venv,
see scripts/ultralytics_fixtures.py; from scratch: ``pip install
torch==2.14.1 torchvision==0.29.1 onnx onnxruntime opencv-python-headless``)::

    python3 -m venv /work/venvs/sam
    echo /work/venvs/ultra/lib/python3.11/site-packages > /work/venvs/sam/lib/python3.11/site-packages/ultra.pth
    /work/venvs/sam/bin/pip install --no-deps segment-anything==1.0

Run from the repository root (about 30 s here)::

    /work/venvs/sam/bin/python scripts/sam_fixtures.py

Versions used: segment-anything 1.0, torch 2.14.1 (CUDA build on CPU),
torchvision 0.29.1, Pillow 13.0.0, Python 3.11.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from segment_anything.utils.onnx import SamOnnxModel

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "sam"
SAMPLES = ROOT / "edgeseg" / "assets" / "samples"
OPSET = 17
# A small config of the ViT-B layout: every size but the widths and depth is SAM's own.
IMAGE_SIZE, PATCH, EMBED, DEPTH, HEADS, PROMPT_DIM = 1024, 16, 48, 2, 2, 32


class _DynamicCrop(SamOnnxModel):
    """``SamOnnxModel`` with the repository's later crop: sliced by tensors, not frozen Python ints."""

    def mask_postprocessing(self, masks: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
        masks = torch.nn.functional.interpolate(masks, size=(self.img_size, self.img_size), mode="bilinear",
                                                align_corners=False)
        prepadded = self.resize_longest_image_size(orig_im_size, self.img_size).to(torch.int64)
        masks = masks[..., : prepadded[0], : prepadded[1]]
        orig_im_size = orig_im_size.to(torch.int64)
        return torch.nn.functional.interpolate(masks, size=(orig_im_size[0], orig_im_size[1]), mode="bilinear",
                                               align_corners=False)


class _EdgeSamStyle(SamOnnxModel):
    """EdgeSAM's decoder export contract on SAM's classes: points only in, ``(scores, masks)`` low-res out.

    As EdgeSAM's ``scripts/export_onnx_model.py`` (``SamCoreMLModel``): inputs
    ``image_embeddings``, ``point_coords``, ``point_labels``; no mask input, no
    post-processing; every mask token returned.
    """

    @torch.no_grad()
    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor, point_labels: torch.Tensor):
        sparse = self._embed_points(point_coords, point_labels)
        dense = self.model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        masks, scores = self.model.mask_decoder.predict_masks(
            image_embeddings=image_embeddings, image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
        )
        return scores, masks


@dataclass(frozen=True)
class TinySam:
    """Widths and depths of a small SAM (the library's ``_build_sam`` takes them fixed)."""

    image_size: int = IMAGE_SIZE
    patch: int = PATCH
    embed: int = EMBED
    depth: int = DEPTH
    heads: int = HEADS
    prompt_dim: int = PROMPT_DIM
    window_size: int = 14
    mask_in_chans: int = 4
    decoder_mlp: int = 64
    decoder_heads: int = 2
    iou_hidden: int = 32
    random_rel_pos: bool = True  # rel-pos tables start at zero in SAM; random values exercise them


def build_tiny_sam(seed: int = 0, cfg: TinySam = TinySam()) -> Sam:
    """SAM's ``_build_sam`` with small widths and depth, random weights (eval mode)."""
    torch.manual_seed(seed)
    grid = cfg.image_size // cfg.patch
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg.depth, embed_dim=cfg.embed, img_size=cfg.image_size, mlp_ratio=2,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=cfg.heads, patch_size=cfg.patch,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=[cfg.depth - 1], window_size=cfg.window_size,
            out_chans=cfg.prompt_dim,
        ),
        prompt_encoder=PromptEncoder(embed_dim=cfg.prompt_dim, image_embedding_size=(grid, grid),
                                     input_image_size=(cfg.image_size, cfg.image_size),
                                     mask_in_chans=cfg.mask_in_chans),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=cfg.prompt_dim, mlp_dim=cfg.decoder_mlp,
                                          num_heads=cfg.decoder_heads),
            transformer_dim=cfg.prompt_dim, iou_head_depth=3, iou_head_hidden_dim=cfg.iou_hidden,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    if cfg.random_rel_pos:
        with torch.no_grad():
            for blk in sam.image_encoder.blocks:
                blk.attn.rel_pos_h.normal_(0, 0.02)
                blk.attn.rel_pos_w.normal_(0, 0.02)
    return sam.eval()


def export_encoder(sam: Sam, path: Path) -> None:
    size = sam.image_encoder.img_size
    x = torch.randn(1, 3, size, size)
    torch.onnx.export(sam.image_encoder, x, str(path), input_names=["image"], output_names=["image_embeddings"],
                      opset_version=OPSET, do_constant_folding=True, dynamo=False)


def export_decoder(sam: Sam, path: Path, *, single: bool = False, batched: bool = False) -> None:
    """As segment-anything's scripts/export_onnx_model.py (its dummy inputs and names)."""
    model = _DynamicCrop(sam, return_single_mask=single)
    dims = sam.prompt_encoder.image_embedding_size
    mask_size = [4 * d for d in dims]
    dummy = {
        "image_embeddings": torch.randn(1, sam.prompt_encoder.embed_dim, *dims, dtype=torch.float),
        "point_coords": torch.randint(low=0, high=1024, size=(1, 5, 2), dtype=torch.float),
        "point_labels": torch.randint(low=0, high=4, size=(1, 5), dtype=torch.float),
        "mask_input": torch.randn(1, 1, *mask_size, dtype=torch.float),
        "has_mask_input": torch.tensor([1], dtype=torch.float),
        "orig_im_size": torch.tensor([1500, 2250], dtype=torch.float),
    }
    dynamic = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}
    if batched:
        dynamic = {"point_coords": {0: "num_prompts", 1: "num_points"}, "point_labels": {0: "num_prompts", 1: "num_points"}}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        torch.onnx.export(model, tuple(dummy.values()), str(path), export_params=True, verbose=False,
                          opset_version=OPSET, do_constant_folding=True, input_names=list(dummy),
                          output_names=["masks", "iou_predictions", "low_res_masks"], dynamic_axes=dynamic,
                          dynamo=False)


def export_edgesam_style_decoder(sam: Sam, path: Path) -> None:
    dims = sam.prompt_encoder.image_embedding_size
    dummy = {
        "image_embeddings": torch.randn(1, sam.prompt_encoder.embed_dim, *dims, dtype=torch.float),
        "point_coords": torch.randint(low=0, high=1024, size=(1, 5, 2), dtype=torch.float),
        "point_labels": torch.randint(low=0, high=4, size=(1, 5), dtype=torch.float),
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(_EdgeSamStyle(sam, return_single_mask=False), tuple(dummy.values()), str(path),
                          input_names=list(dummy), output_names=["scores", "masks"], opset_version=OPSET,
                          dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
                          dynamo=False)


def fixture_images() -> list[tuple[str, np.ndarray]]:
    """BGR images of three shapes (landscape 480x640, portrait 640x360, square 300x300)."""
    a = cv2.imread(str(SAMPLES / "scene_00.jpg"))
    b = cv2.resize(cv2.imread(str(SAMPLES / "scene_01.jpg"))[:, 100:460], (360, 640), interpolation=cv2.INTER_AREA)
    c = cv2.imread(str(SAMPLES / "scene_02.jpg"))[90:390, 170:470]
    return [("landscape.png", a), ("portrait.png", b), ("square.png", c)]


def prompts_for(h: int, w: int) -> list[dict]:
    """Box and point prompts (original pixels), the kinds a robot cell sends."""
    return [
        {"box": [0.2 * w, 0.25 * h, 0.6 * w, 0.7 * h]},
        {"points": [[0.5 * w, 0.5 * h]], "labels": [1]},
        {"points": [[0.3 * w, 0.4 * h], [0.7 * w, 0.6 * h]], "labels": [1, 0]},
        {"box": [0.05 * w, 0.1 * h, 0.45 * w, 0.5 * h], "points": [[0.25 * w, 0.3 * h]], "labels": [1]},
        {"box": [0.5 * w, 0.4 * h, 0.95 * w, 0.95 * h], "multimask": True},
    ]


def predict(sam: Sam) -> None:
    predictor = SamPredictor(sam)
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    records = []
    for name, bgr in fixture_images():
        cv2.imwrite(str(OUT / "images" / name), bgr)
        predictor.set_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        h, w = bgr.shape[:2]
        for i, p in enumerate(prompts_for(h, w)):
            p = {k: (np.round(np.asarray(v, np.float64), 1).tolist() if k != "multimask" else v) for k, v in p.items()}
            masks, iou, low = predictor.predict(
                point_coords=np.asarray(p["points"], np.float32) if "points" in p else None,
                point_labels=np.asarray(p["labels"], np.int32) if "labels" in p else None,
                box=np.asarray(p["box"], np.float32) if "box" in p else None,
                multimask_output=bool(p.get("multimask", False)), return_logits=True,
            )
            key = f"{Path(name).stem}_{i}"
            arrays[f"{key}_low"] = low.astype(np.float32)
            arrays[f"{key}_iou"] = iou.astype(np.float32)
            arrays[f"{key}_masks"] = np.packbits(masks > sam.mask_threshold, axis=-1)
            fg = float((masks > 0).mean())
            records.append({"key": key, "image": name, "size": [h, w], **p, "foreground": round(fg, 4)})
            print(key, "masks", masks.shape, "foreground", round(fg, 3), "iou", np.round(iou, 3))
    np.savez_compressed(OUT / "predictions.npz", **arrays)
    (OUT / "prompts.json").write_text(json.dumps(records, indent=1) + "\n")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    sam = build_tiny_sam()
    export_encoder(sam, OUT / "encoder.onnx")
    export_decoder(sam, OUT / "decoder.onnx")
    export_decoder(sam, OUT / "decoder_batched.onnx", batched=True)
    export_decoder(sam, OUT / "decoder_single.onnx", single=True)
    export_edgesam_style_decoder(sam, OUT / "decoder_edgesam.onnx")
    predict(sam)
    for f in sorted(OUT.glob("*.*")):
        print(f.name, f.stat().st_size)


if __name__ == "__main__":
    main()
