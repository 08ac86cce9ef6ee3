"""TFLite (LiteRT) bundles via litert-torch: fp32, fp16 weights, full int8.

The model is wrapped to take an NHWC input and give NHWC prototypes (what
LiteRT kernels run natively; no transposes at the graph ends), converted by
``litert_torch.convert``: as is (fp32), with the fp16 weight recipe (fp16),
or after PT2E static quantization (int8: per-channel symmetric int8 weights,
int8 activations observed on the calibration images, int8 input and outputs).
Layers named in ``job.float_layers`` are left out of the PT2E annotation and
stay float.

LiteRT names outputs ``..._output_0`` ... and neither their names nor their
order are stable across variants, so the written file is opened with the
interpreter and each output is matched to its role by shape, ties broken by
the values against PyTorch on a calibration image; the real tensor names,
layouts and quantization parameters go into the manifest.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgeseg.bundle import Bundle
from edgeseg.manifest import Quant
from export.bundler import build_manifest, bundle_model_file
from export.formats import ExportJob
from export.onnx_export import check_outputs

log = logging.getLogger(__name__)

MODEL_FILE = "model.tflite"
#: Prefix ``to_channel_last_io`` adds to module paths.
_WRAPPED = "wrapped."


def _nhwc_model(job: ExportJob) -> torch.nn.Module:
    import litert_torch

    roles = list(job.spec.output_roles)
    nchw_outputs = [roles.index(r) for r in ("protos", "masks") if r in roles]
    return litert_torch.to_channel_last_io(job.model, args=[0], outputs=nchw_outputs).eval()


def _sample_input(job: ExportJob) -> torch.Tensor:
    """``(1, H, W, 3)`` float32: the first calibration image, or a fixed pseudo-random one."""
    if job.calibration is not None:
        return torch.from_numpy(job.calibration.head(1)[0]).permute(0, 2, 3, 1).contiguous()
    h, w = job.spec.imgsz
    return torch.rand(1, h, w, 3, generator=torch.Generator().manual_seed(0))


def _int8_program(model: torch.nn.Module, sample: torch.Tensor, job: ExportJob):
    """PT2E: annotate (skipping float layers), calibrate, convert. Returns (program, quantizer)."""
    from litert_torch.quantize import pt2e_quantizer as pq
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from tqdm import tqdm

    if job.calibration is None:
        raise ValueError("tflite-int8 needs calibration images (--calib DIR)")
    keep = {_WRAPPED + name for name in job.float_layers}

    def quantize_node(node) -> bool:
        return not any(path in keep for path, _ in node.meta.get("nn_module_stack", {}).values())

    class Quantizer(pq.PT2EQuantizer):
        """The LiteRT PT2E quantizer with a per-node filter for the float layers."""

        def annotate(self, gm):
            self._annotate_all_static_patterns(gm, self.global_config, quantize_node)
            pq.propagate_annotation(gm)
            return gm

    quantizer = Quantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    program = torch.export.export(model, (sample,)).module()
    prepared = prepare_pt2e(program, quantizer)
    with torch.no_grad():
        for tensor in tqdm(job.calibration, desc="calibrating tflite-int8", unit="img", leave=False):
            prepared(torch.from_numpy(tensor).permute(0, 2, 3, 1))
    return move_exported_model_to_eval(convert_pt2e(prepared, fold_quantize=False)), quantizer


def convert(job: ExportJob, precision: str, path: Path) -> Path:
    """Converts ``job.model`` to a ``.tflite`` file at ``path``."""
    import litert_torch
    from litert_torch.generative.quantize import quant_recipes
    from litert_torch.quantize.quant_config import QuantConfig

    model = _nhwc_model(job)
    sample = _sample_input(job)
    with torch.no_grad():
        check_outputs(job.model(sample.permute(0, 3, 1, 2)), job.spec)
    if precision == "fp32":
        edge = litert_torch.convert(model, (sample,))
    elif precision == "fp16":
        edge = litert_torch.convert(model, (sample,), quant_config=quant_recipes.full_fp16_recipe())
    elif precision == "int8":
        program, quantizer = _int8_program(model, sample, job)
        edge = litert_torch.convert(program, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
    else:
        raise ValueError(f"export.formats.tflite writes fp32, fp16 or int8, got {precision!r}")
    edge.export(str(path))
    return strip_tensor_names(path)


def strip_tensor_names(path: Path) -> Path:
    """Shortens the names of intermediate tensors to ``t<index>``, in place.

    The converter names every tensor after its MLIR source location (about
    a tenth of an int8 edgeseg-nano file); only input and output names are
    read by anyone (the manifest, the runtime), and those are kept.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    for graph in model.subgraphs:
        keep = set(graph.inputs) | set(graph.outputs)
        for index, tensor in enumerate(graph.tensors):
            if index not in keep:
                tensor.name = f"t{index}".encode()
    flatbuffer_utils.write_model(model, str(path))
    return path


def _quant(detail: dict) -> Quant | None:
    scale, zero_point = detail["quantization"]
    return Quant(float(scale), int(zero_point)) if scale else None


def _dequantized(values: np.ndarray, quant: Quant | None) -> np.ndarray:
    if quant is None:
        return values.astype(np.float32)
    return (values.astype(np.float32) - quant.zero_point) * np.float32(quant.scale)


def match_outputs(details: list[dict], values: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, str]:
    """Maps each output role to a LiteRT output tensor name.

    Args:
        details: ``interpreter.get_output_details()``.
        values: Tensor name -> raw output of the interpreter on the sample input.
        reference: Role -> PyTorch output on the same input, in the layout
            the LiteRT model produces.

    Returns:
        Role -> tensor name, one-to-one.

    Raises:
        ValueError: A role whose shape no free output has.
    """
    by_name = {d["name"]: d for d in details}
    pairs = []
    for role, ref in reference.items():
        for name, d in by_name.items():
            if tuple(int(s) for s in d["shape"]) == ref.shape:
                err = float(np.abs(_dequantized(values[name], _quant(d)) - ref).max())
                pairs.append((err, role, name))
    mapping: dict[str, str] = {}
    for _, role, name in sorted(pairs):
        if role not in mapping and name not in mapping.values():
            mapping[role] = name
    missing = [r for r in reference if r not in mapping]
    if missing:
        shapes = {n: tuple(int(s) for s in d["shape"]) for n, d in by_name.items()}
        want = {r: reference[r].shape for r in missing}
        raise ValueError(f"LiteRT outputs {shapes} have no match for roles {want}")
    return mapping


def describe(path: Path, job: ExportJob, precision: str) -> dict:
    """Reads the real input/output tensors of a ``.tflite`` file into manifest fields."""
    from ai_edge_litert import interpreter as litert

    interp = litert.Interpreter(model_path=str(path))
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    sample = _sample_input(job)
    x = sample.numpy()
    in_quant = _quant(inp)
    if in_quant is not None:
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.rint(x / in_quant.scale + in_quant.zero_point), info.min, info.max).astype(inp["dtype"])
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    details = interp.get_output_details()
    values = {d["name"]: interp.get_tensor(d["index"]) for d in details}
    with torch.no_grad():
        outs = _nhwc_model(job)(sample)
    reference = {role: t.numpy() for role, t in zip(job.spec.output_roles, outs, strict=True)}
    names = match_outputs(details, values, reference)
    quant = {d["name"]: _quant(d) for d in details}
    return {
        "input_name": inp["name"],
        "layout": "NHWC",
        "input_dtype": np.dtype(inp["dtype"]).name,
        "input_quant": in_quant,
        "tensor_names": names,
        "output_layouts": {r: "NHWC" for r in names if r in ("protos", "masks")},
        "output_quant": {r: quant[n] for r, n in names.items() if quant[n] is not None},
    }


def export(job: ExportJob, precision: str, out_dir: Path) -> Bundle:
    """Writes a TFLite ``fp32`` / ``fp16`` / ``int8`` bundle of ``job.model`` to ``out_dir``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = convert(job, precision, Path(tmp) / MODEL_FILE)
        fields = describe(path, job, precision)
        extra = {}
        if precision == "int8":
            extra["quantization"] = {
                "calibration": {"method": "pt2e-histogram", "images": len(job.calibration)},
                "float_layers": sorted(job.float_layers),
            }
        manifest = build_manifest(
            job.spec,
            fmt="tflite",
            precision="mixed" if precision == "int8" and job.float_layers else precision,
            model_file=MODEL_FILE,
            extra_provenance=extra,
            **fields,
        )
        return bundle_model_file(out_dir, manifest, path, force=True)
