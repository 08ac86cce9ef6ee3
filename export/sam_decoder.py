"""A SAM prompt decoder without its full-size ``masks`` output (workstation: needs the ``onnx`` package).

segment-anything's ``SamOnnxModel`` always computes ``masks``: every mask
token upsampled to 1024x1024, cropped and resized to the original size,
inside the graph. onnxruntime runs every node of a graph whatever outputs
are asked for, so a runtime that reads only ``low_res_masks`` (edgeseg
upsamples those itself, inside each mask's region) still pays for that
post-processing on every prompt. :func:`lowres_decoder` cuts the graph down
to what ``low_res_masks`` and ``iou_predictions`` need, with
``onnx.utils.extract_model`` (the library's own extractor; nothing
hand-written); ``orig_im_size`` drops out with the nodes that used it.
``edgeseg import ENCODER --decoder DECODER --lowres-only`` applies it.
"""

from __future__ import annotations

from pathlib import Path

LOWRES_OUTPUTS = ("low_res_masks", "iou_predictions")


def lowres_decoder(src: str | Path, dst: str | Path) -> Path:
    """Writes ``src``'s decoder graph cut down to ``low_res_masks`` + ``iou_predictions``.

    Raises:
        ValueError: the decoder lacks those outputs (not a ``SamOnnxModel`` export).
    """
    import onnx
    import onnx.utils

    model = onnx.load(str(src), load_external_data=False)
    outputs = [o.name for o in model.graph.output]
    if not set(LOWRES_OUTPUTS) <= set(outputs):
        raise ValueError(f"{src}: a SamOnnxModel decoder has outputs {list(LOWRES_OUTPUTS)}, this one has {outputs}")
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers and i.name != "orig_im_size"]
    onnx.utils.extract_model(str(src), str(dst), inputs, list(LOWRES_OUTPUTS))
    return Path(dst)
