"""Automatic mixed precision: find what int8 breaks and keep it in float.

Two measurements, both on the calibration images:

* **Per-output error** of a real quantized artifact against PyTorch (relative
  RMS of each output through the runtime, :mod:`export.accuracy`). An output
  that int8 breaks (box regression whose logits span a wide range, scores
  sharing one scale across pyramid levels) gets its *head layers* — the
  convolutions nearest to it in the graph, :func:`output_layers` — kept in
  float first, worst output first.
* **Per-layer sensitivity** (format-agnostic, in PyTorch): each convolution
  in turn is simulated in int8 (per-channel symmetric int8 weights, per-tensor
  int8 input and output with ranges observed on the same images) while the
  rest stays float; its score is the summed relative RMS error it causes on
  the model outputs. A layer whose rounding the outputs amplify (typically the
  last layers of the head, box regression) scores high.

:func:`search_float_layers` quantizes along a schedule of growing float
sets (:func:`float_layer_schedule`: nothing, then the worst outputs' head
layers one output at a time, then the ``k`` most sensitive layers, ``k = 1,
2, 4, ...``) until the caller's accuracy check passes (the mask mAP gate on
the validation set) or ``max_float_layers`` is reached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class LayerSensitivity:
    """How much simulating one layer in int8 disturbs the outputs.

    Attributes:
        name: Module name (as in ``model.named_modules()``).
        score: Sum over outputs of the relative RMS error.
        per_output: Output role -> relative RMS error (``rms(q - f) / rms(f)``).
    """

    name: str
    score: float
    per_output: dict[str, float]


def _fake_quant(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Per-tensor asymmetric int8 fake quantization of ``x`` with range ``[lo, hi]`` (0 included)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-8) / 255.0
    zero_point = int(round(-128 - lo / scale))
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, -128, 127)


def _fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 fake quantization of a conv weight."""
    scale = w.detach().abs().amax(dim=tuple(range(1, w.ndim))).clamp_min(1e-8) / 127.0
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


def relative_rms(q: np.ndarray, f: np.ndarray) -> float:
    """``rms(q - f) / rms(f)`` (0 when both are zero)."""
    ref = float(np.sqrt(np.mean(np.square(f, dtype=np.float64))))
    err = float(np.sqrt(np.mean(np.square(q.astype(np.float64) - f))))
    return err / ref if ref > 0 else err


def layer_sensitivity(
    model: torch.nn.Module, roles: Sequence[str], tensors: Sequence[np.ndarray]
) -> list[LayerSensitivity]:
    """Ranks the model's convolutions by the output error their int8 rounding causes.

    Args:
        model: Float model in eval mode, ``forward(x (1, 3, H, W))`` -> outputs.
        roles: Role of each output, in forward order.
        tensors: ``(1, 3, H, W)`` float32 calibration inputs.

    Returns:
        One entry per ``Conv2d``, most sensitive first.
    """
    from tqdm import tqdm

    convs = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    inputs = [torch.from_numpy(t) for t in tensors]
    ranges: dict[str, list[float]] = {n: [np.inf, -np.inf, np.inf, -np.inf] for n in convs}

    def observe(name):
        def hook(module, args, out):
            r = ranges[name]
            r[0], r[1] = min(r[0], float(args[0].min())), max(r[1], float(args[0].max()))
            r[2], r[3] = min(r[2], float(out.min())), max(r[3], float(out.max()))

        return hook

    with torch.no_grad():
        handles = [m.register_forward_hook(observe(n)) for n, m in convs.items()]
        try:
            reference = [[o.numpy() for o in model(x)] for x in inputs]
        finally:
            for h in handles:
                h.remove()
        results = []
        for name, conv in tqdm(convs.items(), desc="layer sensitivity", unit="layer", leave=False):
            lo_in, hi_in, lo_out, hi_out = ranges[name]
            weight = conv.weight.data.clone()
            conv.weight.data = _fake_quant_weight(weight)
            pre = conv.register_forward_pre_hook(lambda m, args, a=lo_in, b=hi_in: (_fake_quant(args[0], a, b),))
            post = conv.register_forward_hook(lambda m, args, out, a=lo_out, b=hi_out: _fake_quant(out, a, b))
            try:
                errors = np.zeros(len(roles))
                for x, ref in zip(inputs, reference, strict=True):
                    outs = model(x)
                    errors += [relative_rms(o.numpy(), r) for o, r in zip(outs, ref, strict=True)]
            finally:
                conv.weight.data = weight
                pre.remove()
                post.remove()
            errors /= max(len(inputs), 1)
            per_output = {r: float(e) for r, e in zip(roles, errors, strict=True)}
            results.append(LayerSensitivity(name, float(errors.sum()), per_output))
    return sorted(results, key=lambda s: -s.score)


def output_layers(model: torch.nn.Module, roles: Sequence[str], sample: torch.Tensor) -> dict[str, list[str]]:
    """The convolutions nearest to each output: the layers that write it.

    Walks the exported graph back from each output through non-convolution
    ops (reshapes, concatenations, activations) and stops at convolutions.

    Args:
        model: Float model in eval mode.
        roles: Role of each output, in forward order.
        sample: ``(1, 3, H, W)`` example input.

    Returns:
        Role -> module names (as in ``model.named_modules()``), sorted.
    """
    graph = torch.export.export(model, (sample,)).graph
    (result,) = (n for n in graph.nodes if n.op == "output")
    layers: dict[str, list[str]] = {}
    for role, node in zip(roles, result.args[0], strict=True):
        found, stack, seen = set(), [node], set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n.op == "call_function" and ("conv2d" in str(n.target) or "convolution" in str(n.target)):
                found.add(list(n.meta["nn_module_stack"].values())[-1][0])
            else:
                stack.extend(n.all_input_nodes)
        layers[role] = sorted(found)
    return layers


@dataclass(frozen=True)
class SearchStep:
    """One candidate of the mixed-precision search.

    Attributes:
        float_layers: Layers kept in float.
        passed: Whether the accuracy check passed.
        metrics: What the check measured (e.g. mask mAP drop).
    """

    float_layers: tuple[str, ...]
    passed: bool
    metrics: dict


def float_layer_schedule(
    forced: Sequence[str],
    output_groups: Sequence[Sequence[str]],
    ranking: Sequence[str],
    max_float_layers: int,
) -> list[tuple[str, ...]]:
    """Float-layer sets to try, fewest first.

    ``forced``; then ``forced`` plus the first 1, 2, ... of ``output_groups``
    (the head layers of each broken output, worst first); then on top the
    ``k`` most sensitive remaining layers of ``ranking``, ``k = 1, 2, 4, ...``.
    No set grows beyond ``len(forced) + max_float_layers``.
    """
    base = list(forced)
    sets = [tuple(base)]
    budget = len(base) + max_float_layers
    for group in output_groups:
        grown = base + [n for n in group if n not in base]
        if len(grown) > budget:
            return sets
        base = grown
        sets.append(tuple(base))
    extra = [n for n in ranking if n not in base]
    k = 1
    while extra and len(base) + min(k, len(extra)) <= budget:
        sets.append(tuple(base + extra[:k]))
        if k >= len(extra):
            break
        k *= 2
    return sets


def search_float_layers(
    build: Callable[[frozenset[str]], T],
    check: Callable[[T], tuple[bool, dict]],
    schedule: Sequence[tuple[str, ...]],
) -> tuple[T, list[SearchStep]]:
    """Builds candidates along ``schedule`` until ``check`` passes.

    Args:
        build: Float layer set -> quantized candidate (e.g. a bundle).
        check: Candidate -> ``(passed, metrics)``.
        schedule: Float-layer sets, fewest first.

    Returns:
        ``(candidate, steps)``: the first passing candidate, or the last one
        tried when none passes (the caller reports and fails).
    """
    steps: list[SearchStep] = []
    candidate = None
    for layers in schedule:
        candidate = build(frozenset(layers))
        passed, metrics = check(candidate)
        steps.append(SearchStep(tuple(layers), passed, metrics))
        log.info("int8 with %d float layer(s): %s (%s)", len(layers), "pass" if passed else "fail", metrics)
        if passed:
            break
    return candidate, steps
