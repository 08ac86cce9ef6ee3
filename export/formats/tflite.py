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
from edgeseg.families import get_family
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
    maps = get_family(job.spec.family).map_roles()
    nchw_outputs = [roles.index(r) for r in roles if r in maps]
    return litert_torch.to_channel_last_io(job.model, args=[0], outputs=nchw_outputs).eval()


def _sample_input(job: ExportJob) -> torch.Tensor:
    """``(1, H, W, 3)`` float32: the first calibration image, or a fixed pseudo-random one."""
    if job.calibration is not None:
        return torch.from_numpy(job.calibration.head(1)[0]).permute(0, 2, 3, 1).contiguous()
    h, w = job.spec.imgsz
    return torch.rand(1, h, w, 3, generator=torch.Generator().manual_seed(0))


def _quantizer(float_layers: frozenset[str]):
    """The LiteRT PT2E quantizer, adapted to what edgeseg models need.

    * Everything is static int8 (per-channel symmetric weights, histogram-
      observed activations) except the layers in ``float_layers``.
    * Those compute in float, but their weights are still stored int8 and
      dequantized once when the interpreter loads the model: what int8 breaks
      in them is the output scale, not the weights (box pixels and logits
      share no range with the features), and float32 weights would be most
      of a small head's size.
    * What only moves or element-wise transforms a float layer's values
      stays float too (:func:`_float_region`).
    * Residual and FPN ``add`` nodes are annotated directly: the stock
      ``add`` annotator finds them by ``source_fn_stack``, which
      ``torch.export`` no longer records, and would leave every add in float
      between a dequantize and a quantize.
    """
    from litert_torch.quantize import pt2e_quantizer as pq

    keep = {_WRAPPED + name for name in float_layers}
    static = pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    weights_only = pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)

    def in_float_layer(node) -> bool:
        return any(path in keep for path, _ in node.meta.get("nn_module_stack", {}).values())

    def float_op_or_constant(node) -> bool:
        # Weight and bias constants carry no module stack; their op decides.
        return "nn_module_stack" not in node.meta or in_float_layer(node)

    class Quantizer(pq.PT2EQuantizer):
        def annotate(self, gm):
            region = _float_region(gm, in_float_layer)

            def quantized(node) -> bool:
                return node not in region

            self._annotate_all_static_patterns(gm, static, quantized)
            _annotate_adds(gm, static, quantized)
            self._annotate_all_dynamic_patterns(gm, weights_only, float_op_or_constant)
            pq.propagate_annotation(gm)
            return gm

    return Quantizer().set_global(static)


def _annotate_adds(gm: torch.fx.GraphModule, config, quantized) -> None:
    """Static int8 for every tensor + tensor ``add`` that ``quantized`` accepts."""
    from litert_torch.quantize.pt2e_quantizer_utils import get_input_act_qspec, get_output_act_qspec
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    for node in gm.graph.nodes:
        if node.target != torch.ops.aten.add.Tensor or "quantization_annotation" in node.meta:
            continue
        inputs = [a for a in node.args[:2] if isinstance(a, torch.fx.Node)]
        if len(inputs) == 2 and quantized(node):
            node.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map={a: get_input_act_qspec(config) for a in inputs},
                output_qspec=get_output_act_qspec(config),
                _annotated=True,
            )


#: Ops that only move values.
_MOVES_VALUES = frozenset(
    f"aten.{name}" for name in (
        "permute.default", "transpose.int", "flatten.using_ints", "view.default", "reshape.default",
        "_unsafe_view.default", "squeeze.dim", "unsqueeze.default", "cat.default", "contiguous.default",
    )
)
#: Element-wise ops: they stay float after a float layer when their other operands are constants.
_ELEMENTWISE = frozenset(
    f"aten.{name}" for name in ("sigmoid.default", "mul.Tensor", "add.Tensor", "sub.Tensor", "div.Tensor")
)


def _float_region(gm: torch.fx.GraphModule, in_float_layer) -> set:
    """The nodes that must stay float for the float layers to run in float.

    The float layers' own nodes, then every node reached from them through
    ops that move values (reshape, transpose, the concatenation of levels)
    or transform them element-wise with constants (a box decode's
    ``sigmoid(x) * reg_max``). Quantizing any of those would put the float
    layer between a dequantize and a quantize, which the LiteRT converter
    folds back into an int8 layer. It still does so where the values meet
    int8 ones (one level of a concatenated output, a layer inside the
    backbone); :func:`_float_layer_ops` counts what survived.
    """
    region = {n for n in gm.graph.nodes if n.op == "call_function" and in_float_layer(n)}
    for node in gm.graph.nodes:  # topological order: one pass reaches the whole closure
        if node.op != "call_function" or node in region:
            continue
        inputs = node.all_input_nodes
        if not any(a in region for a in inputs):
            continue
        target = str(node.target)
        if target in _MOVES_VALUES or (target in _ELEMENTWISE and all(a in region or a.op == "get_attr" for a in inputs)):
            region.add(node)
    return region


def _int8_program(model: torch.nn.Module, sample: torch.Tensor, job: ExportJob):
    """PT2E: annotate, calibrate, convert. Returns (program, quantizer)."""
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from tqdm import tqdm

    if job.calibration is None:
        raise ValueError("tflite-int8 needs calibration images (--calib DIR)")
    quantizer = _quantizer(job.float_layers)
    program = torch.export.export(model, (sample,)).module()
    prepared = prepare_pt2e(program, quantizer)
    with torch.no_grad():
        for tensor in tqdm(job.calibration, desc="calibrating tflite-int8", unit="img", leave=False):
            prepared(torch.from_numpy(tensor).permute(0, 2, 3, 1))
    program = move_exported_model_to_eval(convert_pt2e(prepared, fold_quantize=False))
    # An exported module cannot .eval(); its graph now has eval semantics, so say so
    # (LiteRT warns about "training mode" otherwise).
    for module in program.modules():
        module.training = False
    return program, quantizer


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


#: LiteRT ops that carry a layer's weights.
_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED")


def _float_layer_ops(path: Path, job: ExportJob) -> int:
    """Counts the weight-carrying ops of an int8 ``.tflite`` file that compute in float.

    Warns when there are fewer than the float layers asked for: the
    converter folds a float layer whose output is requantized by an int8
    consumer back into int8 (keep a whole output in float, every level of a
    head, rather than one layer of it).
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    codes = {getattr(schema.BuiltinOperator, name) for name in _WEIGHT_OPS}
    count = 0
    for graph in model.subgraphs:
        for op in graph.operators:
            if model.operatorCodes[op.opcodeIndex].builtinCode in codes:
                count += graph.tensors[op.inputs[0]].type == schema.TensorType.FLOAT32
    modules = dict(job.model.named_modules())
    asked = sum(isinstance(modules[n], (torch.nn.Conv2d, torch.nn.Linear)) for n in job.float_layers)
    if count < asked:
        log.warning(
            "tflite-int8: %d of %d float layers run in float; LiteRT folded the others back into int8 "
            "because int8 ops consume their outputs (keep every level of a head output in float instead)",
            count, asked,
        )
    return count


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
    maps = get_family(job.spec.family).map_roles()
    quant = {d["name"]: _quant(d) for d in details}
    return {
        "input_name": inp["name"],
        "layout": "NHWC",
        "input_dtype": np.dtype(inp["dtype"]).name,
        "input_quant": in_quant,
        "tensor_names": names,
        "output_layouts": {r: "NHWC" for r in names if r in maps},
        "output_quant": {r: quant[n] for r, n in names.items() if quant[n] is not None},
    }


def export(job: ExportJob, precision: str, out_dir: Path) -> Bundle:
    """Writes a TFLite ``fp32`` / ``fp16`` / ``int8`` bundle of ``job.model`` to ``out_dir``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = convert(job, precision, Path(tmp) / MODEL_FILE)
        fields = describe(path, job, precision)
        extra = {}
        float_ops = 0
        if precision == "int8":
            float_ops = _float_layer_ops(path, job)
            extra["quantization"] = {
                "calibration": {"method": "pt2e-histogram", "images": len(job.calibration)},
                "float_layers": sorted(job.float_layers),
                "float_ops": float_ops,
            }
        manifest = build_manifest(
            job.spec,
            fmt="tflite",
            precision="mixed" if float_ops else precision,
            model_file=MODEL_FILE,
            extra_provenance=extra,
            **fields,
        )
        return bundle_model_file(out_dir, manifest, path, force=True)
