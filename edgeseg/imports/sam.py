"""Import source ``sam``: the ONNX pair of a Segment Anything-class model -> a ``prompt`` bundle.

The decoder is what segment-anything's ``scripts/export_onnx_model.py``
writes (``SamOnnxModel``): inputs ``image_embeddings``, ``point_coords``,
``point_labels``, ``mask_input``, ``has_mask_input``, ``orig_im_size``;
outputs ``masks`` (full resolution), ``iou_predictions`` and
``low_res_masks``. The runtime reads ``low_res_masks`` and upsamples itself.
The encoder is exported separately (the official repository has no encoder
export): ``image_encoder`` on the ``(1, 3, S, S)`` normalized, zero-padded
image, one ``(1, C, S/16, S/16)`` output. The same contract covers:

* MobileSAM: the same ``SamOnnxModel`` export (its repository ships SAM's
  script), a TinyViT encoder with the same input and output: imported as is.
* EdgeSAM: its decoder export has only ``image_embeddings``,
  ``point_coords``, ``point_labels`` and returns ``scores`` and low-res
  ``masks``; inputs the decoder lacks are recorded as absent
  (:class:`~edgeseg.manifest.PromptInputs`), outputs are found by shape.
* EfficientSAM: not the same contract (one graph or an encoder/decoder pair
  taking batched ``(B, Q, P, 2)`` points in original pixels and the original
  size, returning full-size masks); not imported (README).

Which output is which: ``low_res_masks`` by name (traced exports often
declare dynamic shapes), else the 4-D output whose last two dimensions are
four times the embeddings' (or the only 4-D one) is ``low_res_logits``; the
2-D one ``iou``; another 4-D one (full resolution) ``masks``. ``mask_tokens``
is ``all`` when the low-res output has several masks per prompt (the export's
default), ``selected`` with ``--return-single-mask``; ``batched`` when
``point_coords`` has a dynamic first axis.
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.imports.base import ImportOptions, bundle_name, precision_of
from edgeseg.imports.model_file import ImportFailed, ModelFile, TensorInfo, read_model_file
from edgeseg.manifest import InputSpec, Letterbox, Manifest, OutputSpec, PromptInputs, PromptSpec

#: SamPredictor's pixel normalization (RGB, 0..255 units).
SAM_MEAN = (123.675, 116.28, 103.53)
SAM_STD = (58.395, 57.12, 57.375)
DECODER_FILE = "decoder.onnx"
_INPUT_ROLES = ("embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size")
_DEFAULT_NAMES = PromptInputs()


def _is_encoder(model: ModelFile) -> bool:
    if model.format != "onnx" or len(model.inputs) != 1 or len(model.outputs) != 1:
        return False
    i, o = model.inputs[0].shape, model.outputs[0].shape
    return len(i) == 4 and i[1] == 3 and i[2] is not None and i[2] == i[3] and len(o) == 4 and o[2] is not None \
        and o[3] is not None and o[2] * 16 == i[2]


class SamSource:
    name = "sam"

    def detect(self, model: ModelFile) -> bool:
        return _is_encoder(model)

    def extra_files(self, model: ModelFile, opts: ImportOptions) -> dict[str, Path]:
        return {DECODER_FILE: Path(opts.decoder)} if opts.decoder else {}

    def manifest(self, model: ModelFile, opts: ImportOptions) -> Manifest:
        if not _is_encoder(model):
            shapes = [list(t.shape) for t in (*model.inputs, *model.outputs)]
            raise ImportFailed(f"{model.path}: a SAM image encoder has one (1, 3, S, S) input and one (1, C, S/16, "
                               f"S/16) output, got inputs and outputs {shapes}")
        if not opts.decoder:
            raise ImportFailed(f"{model.path} is a SAM-style image encoder: pass its prompt decoder (--decoder "
                               "decoder.onnx, as segment-anything's scripts/export_onnx_model.py writes it)")
        decoder = read_model_file(opts.decoder)
        emb = model.outputs[0]
        inp = model.inputs[0]
        size = int(inp.shape[2])
        inputs, outputs, tokens, batched = _decoder_contract(decoder, emb)
        return Manifest(
            name=bundle_name(Path(model.path), opts), family="prompt", format="onnx",
            precision=opts.precision or precision_of(model), model="encoder.onnx",
            input=InputSpec(name=inp.name, shape=(1, 3, size, size), layout="NCHW", dtype="float32", color="RGB",
                            scale=1.0, mean=SAM_MEAN, std=SAM_STD, letterbox=Letterbox(pad_value=0, center=False)),
            outputs=(OutputSpec(name=emb.name, role="embeddings", layout="NCHW"),),
            classes=opts.names or ("object",),
            provenance={"source": "segment-anything ONNX export (encoder + SamOnnxModel decoder)",
                        "license": "Apache-2.0", "importer": "edgeseg.imports.sam",
                        "files": {"encoder.onnx": Path(model.path).name, DECODER_FILE: Path(opts.decoder).name}},
            prompt=PromptSpec(model=DECODER_FILE, inputs=inputs, outputs=outputs, mask_tokens=tokens, batched=batched),
        )


def _decoder_contract(decoder: ModelFile, emb: TensorInfo) -> tuple[PromptInputs, tuple[OutputSpec, ...], str, bool]:
    names = {t.name: t for t in decoder.inputs}
    found = {}
    for role in _INPUT_ROLES:
        default = getattr(_DEFAULT_NAMES, role)
        found[role] = default if default in names else None
    for role in ("embeddings", "point_coords", "point_labels"):
        if found[role] is None:
            raise ImportFailed(f"{decoder.path}: a SAM prompt decoder takes {getattr(_DEFAULT_NAMES, role)!r}; its "
                               f"inputs are {sorted(names)}")
    if names[found["embeddings"]].shape[1:] != emb.shape[1:]:
        raise ImportFailed(f"{decoder.path}: decoder embeddings {list(names[found['embeddings']].shape)} do not fit "
                           f"the encoder's output {list(emb.shape)}")
    low_size = (4 * emb.shape[2], 4 * emb.shape[3])
    maps = [t for t in decoder.outputs if len(t.shape) == 4]
    # SAM's export names it; shapes are often dynamic in traced exports; EdgeSAM has one map output
    low = [t for t in maps if t.name == "low_res_masks"] or [t for t in maps if tuple(t.shape[2:]) == low_size]
    low = low or (maps if len(maps) == 1 else [])
    iou = [t for t in decoder.outputs if len(t.shape) == 2]
    if len(low) != 1 or len(iou) != 1:
        shapes = {t.name: list(t.shape) for t in decoder.outputs}
        raise ImportFailed(f"{decoder.path}: expected one (B, T, {low_size[0]}, {low_size[1]}) low-res mask output "
                           f"and one (B, T) IoU output, got {shapes}")
    outputs = [OutputSpec(name=low[0].name, role="low_res_logits", layout="NCHW"),
               OutputSpec(name=iou[0].name, role="iou", layout="BAC")]
    full = [t for t in decoder.outputs if len(t.shape) == 4 and t is not low[0]]
    if len(full) == 1:
        outputs.append(OutputSpec(name=full[0].name, role="masks", layout="NCHW"))
    tokens = "selected" if 1 in (low[0].shape[1], iou[0].shape[1]) else "all"
    batched = names[found["point_coords"]].shape[0] is None
    return PromptInputs(**found), tuple(outputs), tokens, batched


SOURCE = SamSource()
