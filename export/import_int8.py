"""Int8 for imported ONNX models: outputs split, static QDQ, mixed precision until the mAP gate passes.

Why the split: exporters concatenate boxes (0..640 px), class probabilities
(0..1) and mask coefficients (about +-10) into one tensor (Ultralytics'
``output0``). Quantized as one tensor they share one int8 scale, so every
score collapses to a few levels or to 0: the known failure of int8
YOLO-seg exports. Here the concatenation is removed from the graph and each
role becomes its own float output (the tensors that fed the ``Concat``, found
through nested concatenations), so each gets its own scale; the manifest then
names one tensor per role.

Then onnxruntime's ``quantize_static`` (QDQ, U8S8, per-channel weights:
:func:`export.formats.onnx_int8.quantize_qdq`) with calibration images fed
through the runtime's own preprocessing, and a mixed-precision search over
ONNX nodes (no PyTorch here): the nodes between each output and the nearest
convolutions ("head nodes") are kept in float, worst output first (ranked
by what the decoder makes of it: the mask IoU lost when that output alone
comes from the int8 model), deeper as needed, until
the int8 bundle's mask mAP50-95 is within the gate of the float model's on
the validation set. The parity report (:mod:`export.parity`) is written into
the int8 bundle's directory.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeseg.bundle import Bundle, load_bundle, write_bundle
from edgeseg.device_config import BackendOptions, DeviceConfig
from edgeseg.manifest import Manifest, OutputSpec
from edgeseg.segmenter import Segmenter

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"


# --------------------------------------------------------------------------- graph surgery


def _channel_axis(spec: OutputSpec) -> int:
    return 1 if spec.layout == "BCA" else 2


def _concat_pieces(graph, name: str, axis: int, shapes: dict[str, list]) -> list[tuple[str, int]] | None:
    """``[(tensor, channels), ...]`` that concatenated along ``axis`` make ``name`` (nested Concats flattened)."""
    producers = {out: node for node in graph.node for out in node.output}
    node = producers.get(name)
    if node is None or node.op_type != "Concat":
        dims = shapes.get(name)
        if dims is None or len(dims) <= axis or not isinstance(dims[axis], int) or dims[axis] <= 0:
            return None
        return [(name, dims[axis])]
    node_axis = next((a.i for a in node.attribute if a.name == "axis"), None)
    rank = len(shapes.get(name, [])) or 3
    if node_axis is None or node_axis % rank != axis:
        dims = shapes.get(name)
        return None if dims is None else [(name, dims[axis])]
    pieces: list[tuple[str, int]] = []
    for inp in node.input:
        sub = _concat_pieces(graph, inp, axis, shapes)
        if sub is None:
            return None
        pieces += sub
    return pieces


def _shapes(model) -> dict[str, list]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    out = {}
    for vi in (*g.input, *g.value_info, *g.output):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        out[vi.name] = dims
    return out


def split_outputs(src: Path, dst: Path, manifest: Manifest) -> tuple[OutputSpec, ...]:
    """Writes ``src`` with every shared output split into one float output per role.

    Returns:
        The manifest outputs of the split model (one tensor per role, no channel ranges).
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(src))
    g = model.graph
    shapes = _shapes(model)
    by_tensor: dict[str, list[OutputSpec]] = {}
    for spec in manifest.outputs:
        by_tensor.setdefault(spec.name, []).append(spec)
    new_specs: list[OutputSpec] = []
    drop: set[str] = set()
    for name, specs in by_tensor.items():
        if all(s.channels is None for s in specs):
            new_specs += specs
            continue
        axis = _channel_axis(specs[0])
        pieces = _concat_pieces(g, name, axis, shapes) or [(name, shapes[name][axis])]
        bounds, start = [], 0
        for tensor, n in pieces:
            bounds.append((start, start + n, tensor))
            start += n
        for spec in specs:
            a, b = spec.channels
            members = [t for s, e, t in bounds if a <= s and e <= b]
            aligned = sum(e - s for s, e, _ in bounds if a <= s and e <= b) == b - a
            out_name = f"edgeseg_{spec.role}"
            if aligned and len(members) == 1:
                g.node.append(helper.make_node("Identity", [members[0]], [out_name], name=f"{out_name}_out"))
            elif aligned:
                g.node.append(helper.make_node("Concat", members, [out_name], name=f"{out_name}_concat", axis=axis))
            else:  # a piece straddles two roles: slice (the roles then still share the source tensor's scale)
                log.warning("output %r: role %s does not align with the model's concatenation; slicing", name, spec.role)
                consts = {k: helper.make_tensor(f"{out_name}_{k}", TensorProto.INT64, [1], [v])
                          for k, v in (("starts", a), ("ends", b), ("axes", axis))}
                g.initializer.extend(consts.values())
                g.node.append(helper.make_node("Slice", [name, *(c.name for c in consts.values())], [out_name],
                                               name=f"{out_name}_slice"))
            dims = list(shapes[name])
            dims[axis] = b - a
            g.output.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, dims))
            new_specs.append(dataclasses.replace(spec, name=out_name, channels=None))
        drop.add(name)
    kept = [o for o in g.output if o.name not in drop]
    del g.output[:]
    g.output.extend(kept)
    _prune(g)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return tuple(new_specs)


def _prune(graph) -> None:
    """Removes nodes none of whose outputs is used (the dropped concatenations)."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            return
        for n in dead:
            graph.node.remove(n)


def head_nodes(model_path: Path, outputs: Sequence[str], depth: int) -> list[str]:
    """Nodes between each output and the ``depth``-th convolution on every path back (inclusive)."""
    import onnx

    g = onnx.load(str(model_path), load_external_data=False).graph
    producers = {out: node for node in g.node for out in node.output}
    found: dict[str, None] = {}
    stack = [(producers[o], 0) for o in outputs if o in producers]
    seen = set()
    while stack:
        node, convs = stack.pop()
        key = (node.name, convs)
        if key in seen:
            continue
        seen.add(key)
        found[node.name] = None
        convs += node.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")
        if convs >= depth:
            continue
        stack += [(producers[i], convs) for i in node.input if i in producers]
    return list(found)


# --------------------------------------------------------------------------- measuring


def _segmenter(bundle: Bundle, threads: int) -> Segmenter:
    return Segmenter.from_bundle(bundle, DeviceConfig(backend=BackendOptions(threads=threads)))


def _mask_agreement(ref, got) -> float:
    """Mean over ``ref``'s instances of the best mask IoU with a ``got`` instance of the same class (1 if none)."""
    if len(ref) == 0:
        return 1.0 if len(got) == 0 else 0.0
    a, b = ref.full_masks(), got.full_masks()
    total = 0.0
    for i in range(len(ref)):
        same = np.flatnonzero(got.class_ids == ref.class_ids[i])
        inter = (a[i] & b[same]).sum(axis=(1, 2))
        union = (a[i] | b[same]).sum(axis=(1, 2))
        total += float(np.max(inter / np.maximum(union, 1), initial=0.0))
    return total / len(ref)


def _output_damage(float_seg: Segmenter, int8_seg: Segmenter, tensors: Sequence[np.ndarray]) -> dict[str, float]:
    """Role -> how much that output alone, taken from the int8 model, changes the decoded masks.

    ``1 - mean mask IoU`` of the float model's detections against the same
    frame decoded with every output float but this one: a relative RMS error
    says little here (box regression in pixels looks precise at 2% and moves
    every mask edge), the decoder's own output says what the gate will see.
    """
    from edgeseg.preprocess import LetterboxInfo

    inp = float_seg.manifest.input
    lb = LetterboxInfo.fit((inp.height, inp.width), (inp.height, inp.width))  # tensors are already letterboxed
    damage = {o.role: 0.0 for o in float_seg.manifest.outputs}
    for tensor in tensors:
        f, q = float_seg.backend.run(tensor), int8_seg.backend.run(tensor)
        ref = float_seg.decoder(f, lb)
        for spec in float_seg.manifest.outputs:
            got = float_seg.decoder({**f, spec.name: q[spec.name]}, lb)
            damage[spec.role] += (1.0 - _mask_agreement(ref, got)) / len(tensors)
    return damage


# --------------------------------------------------------------------------- the job


def quantize_imported(
    bundle: Bundle,
    out: str | Path,
    *,
    calib: str,
    val: str,
    calib_images: int = 300,
    val_limit: int = 0,
    gate: float = 1.0,
    threads: int = 1,
    max_steps: int = 6,
    force: bool = False,
    command: str = "",
):
    """Writes the int8 bundle of an imported float ONNX bundle and its parity report.

    Args:
        bundle: The float bundle (``edgeseg import`` output, format ``onnx``).
        out: Directory of the int8 bundle (the report goes into it too).
        calib: Calibration image folder.
        val: COCO-format validation set for the gate.
        calib_images: Calibration images used (evenly spaced).
        val_limit: First N validation images (0: all).
        gate: Largest allowed mask mAP50-95 drop, points.
        threads: Inference threads for every measurement.
        max_steps: Quantizations tried by the mixed-precision search at most.
        force: Overwrite an existing bundle at ``out``.
        command: Command line recorded in the report.

    Returns:
        The :class:`~export.parity.ParityReport` (``passed`` when the gate held).
    """
    from export.accuracy import canonical_outputs, evaluate, latency_ms, output_deviation, read_image
    from export.formats.onnx_int8 import CalibrationReader, quantize_qdq
    from export.parity import FormatResult, ParityReport, drop, write_report

    m = bundle.manifest
    if m.format != "onnx" or m.family != "proto":
        raise ValueError(f"int8 import quantizes float ONNX proto bundles, got {m.family}/{m.format}")
    out = Path(out)
    if (out / "manifest.json").exists() and not force:
        raise ValueError(f"{out} already holds a bundle; pass --force to overwrite it")
    from export.calibration import CalibrationSet

    calibration = CalibrationSet(calib, m.input, limit=calib_images)
    calibration.warn_if_small("int8 import")
    tensors = list(calibration)
    float_seg = _segmenter(bundle, threads)
    probe = read_image(calibration.files[0])
    deviation_images = calibration.files[: min(8, len(calibration.files))]
    reference_outputs = [canonical_outputs(float_seg, read_image(p)) for p in deviation_images]
    log.info("evaluating the float model on %s", val)
    float_acc = evaluate(float_seg, val, desc="evaluating float onnx", limit=val_limit)
    float_latency = latency_ms(float_seg, probe, 30)

    with tempfile.TemporaryDirectory(prefix="edgeseg-int8-") as tmp:
        tmp = Path(tmp)
        split = tmp / "split.onnx"
        outputs = split_outputs(bundle.model_path, split, m)
        split_manifest = m.replace(outputs=outputs)
        steps: list[dict] = []
        schedule: list[tuple[str, tuple[str, ...]]] = [("none", ())]
        result_bundle, acc, mask_drop = None, None, None
        worst: list[str] = []
        for step in range(max_steps):
            if step >= len(schedule):
                break
            what, excluded = schedule[step]
            candidate = tmp / f"int8-{step}.onnx"
            quantize_qdq(split, candidate, CalibrationReader(tensors, m.input.name, desc="calibrating"),
                         nodes_to_exclude=excluded)
            manifest = split_manifest.replace(
                model=MODEL_FILE,
                precision="mixed" if excluded else "int8",
                provenance={**m.provenance, "quantization": {
                    "calibration": {"method": "minmax", "images": len(tensors)}, "outputs_split": True,
                    "float_layers": what, "float_nodes": list(excluded)}},
            )
            stage = tmp / f"bundle-{step}"
            cand_bundle = write_bundle(stage, manifest, {MODEL_FILE: candidate}, force=True)
            seg = _segmenter(cand_bundle, threads)
            try:
                if step == 0:
                    split_seg = _segmenter(write_bundle(tmp / "split-float", split_manifest.replace(model=MODEL_FILE),
                                                        {MODEL_FILE: split}), threads)
                    damage = _output_damage(split_seg, seg, tensors[:16])
                    split_seg.close()
                    worst = [r for r in sorted(damage, key=damage.get, reverse=True) if damage[r] > 0.0]
                    log.info("int8 damage per output (1 - mask IoU): %s", {k: round(v, 4) for k, v in damage.items()})
                    schedule += _schedule(split, outputs, worst)
                acc = evaluate(seg, val, desc=f"evaluating int8 step {step}", limit=val_limit)
            finally:
                seg.close()
            mask_drop, _ = drop(float_acc, acc)
            passed = mask_drop <= gate
            steps.append({"float_layers": [f"{what} ({len(excluded)} nodes)"] if excluded else [], "passed": passed,
                          "metrics": {"mask_map": round(acc.mask_map, 2), "mask_drop": round(mask_drop, 2)}})
            log.info("int8 step %d: %d float nodes, mask mAP %.2f (drop %.2f) -> %s", step, len(excluded),
                     acc.mask_map, mask_drop, "pass" if passed else "fail")
            result_bundle = cand_bundle
            if passed:
                break
        final = write_bundle(out, result_bundle.manifest, {MODEL_FILE: result_bundle.model_path}, force=True)
    final = load_bundle(out)
    seg = _segmenter(final, threads)
    try:
        mask_drop, box_drop = drop(float_acc, acc)
        row = FormatResult(
            name="onnx-int8", bundle=str(out), precision=final.manifest.precision,
            size_bytes=final.model_path.stat().st_size,
            size_ratio=final.model_path.stat().st_size / bundle.model_path.stat().st_size,
            accuracy=acc, mask_drop=mask_drop, box_drop=box_drop, latency_ms=latency_ms(seg, probe, 30),
            deviation=output_deviation(seg, deviation_images, reference_outputs, desc="deviation int8"),
            float_layers=tuple(filter(None, [final.manifest.provenance["quantization"].get("float_layers", "")])),
            search=tuple(steps),
            passed=mask_drop <= gate,
        )
    finally:
        seg.close()
        float_seg.close()
    report = ParityReport(
        model=m.name, imgsz=(m.input.height, m.input.width), command=command or "quantize_imported()",
        gate=gate, val=str(val), calibration_images=len(tensors), deviation_images=len(deviation_images),
        pytorch=float_acc, pytorch_latency_ms=float_latency, formats=(row,), reference="float ONNX (imported)",
    )
    write_report(report, out)
    if not report.passed:
        log.warning("int8 bundle %s misses the gate: mask mAP drop %.2f > %.2f", out, mask_drop, gate)
    return report


def _schedule(model: Path, outputs: Sequence[OutputSpec], worst: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """``(description, float nodes)`` to try after full int8: the worst outputs' heads, growing, then deeper."""
    names = {o.role: o.name for o in outputs}
    steps: list[tuple[str, tuple[str, ...]]] = []
    for depth in (1, 2):
        for k in range(1, len(worst) + 1):
            nodes = tuple(head_nodes(model, [names[r] for r in worst[:k]], depth))
            what = f"head of {', '.join(worst[:k])} to conv depth {depth}"
            if nodes and nodes not in [n for _, n in steps]:
                steps.append((what, nodes))
    return steps
