"""ONNX Runtime backend: session options and execution providers from the device config."""

from __future__ import annotations

import contextlib
import logging
import sys

import numpy as np

from edgeseg.backends import BackendUnavailable, check_input
from edgeseg.bundle import Bundle
from edgeseg.device_config import BackendOptions, ProviderSpec

log = logging.getLogger(__name__)


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise BackendUnavailable("onnxruntime is not installed: pip install edgeseg") from exc
    return onnxruntime


def library_version() -> str:
    ort = _ort()
    return f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})"


def resolve_providers(requested: tuple[ProviderSpec, ...], available: list[str]) -> list[tuple[str, dict]]:
    """Keeps the requested providers this build has, in order; CPU always last.

    Logs one line per requested provider that is missing, naming the one used
    instead, so a board silently running on CPU is visible in its log.
    """
    chosen: list[tuple[str, dict]] = []
    missing: list[str] = []
    for spec in requested:
        if spec.name in available:
            if spec.name not in (name for name, _ in chosen):
                chosen.append((spec.name, dict(spec.options)))
        else:
            missing.append(spec.name)
    if "CPUExecutionProvider" not in (name for name, _ in chosen):
        chosen.append(("CPUExecutionProvider", {}))
    for name in missing:
        log.warning(
            "onnxruntime execution provider %s is not available in this build (available: %s); "
            "falling back to %s",
            name,
            ", ".join(available),
            chosen[0][0],
        )
    return chosen


#: ONNX Runtime's element type names of the manifest's input dtypes.
_ORT_TYPES = {"float32": "tensor(float)", "float16": "tensor(float16)", "uint8": "tensor(uint8)", "int8": "tensor(int8)"}


def check_declared_input(node, shape: tuple[int, ...], dtype: str) -> None:
    """Raises ValueError unless the model's declared input (an ORT ``NodeArg``) fits the manifest.

    A symbolic (dynamic) dimension fits any size; a fixed one must equal the manifest's.
    """
    declared = list(node.shape)
    fits = len(declared) == len(shape) and all(
        not isinstance(d, int) or d == s for d, s in zip(declared, shape, strict=False)
    )
    if not fits or node.type != _ORT_TYPES.get(dtype):
        raise ValueError(
            f"model input {node.name!r} is {node.type} {declared}, manifest input.shape/dtype says "
            f"{dtype} {list(shape)}"
        )


class OnnxRuntimeBackend:
    """One ONNX Runtime inference session for a bundle.

    Args:
        bundle: Verified bundle whose model is an ``.onnx`` file.
        options: Threads, graph optimization and providers of the board.
    """

    def __init__(self, bundle: Bundle, options: BackendOptions) -> None:
        self.session = open_session(bundle.model_path, options)
        self.device = self.session.get_providers()[0]
        log.info("onnxruntime %s running %s on %s", _ort().__version__, bundle.manifest.name, self.device)
        manifest = bundle.manifest
        self._input = manifest.input
        # roles may share one tensor (channel ranges): fetch each tensor once
        self._output_names = list(dict.fromkeys(o.name for o in manifest.outputs))
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if manifest.input.name not in inputs:
            raise ValueError(f"model has inputs {sorted(inputs)}, manifest names input {manifest.input.name!r}")
        check_declared_input(inputs[manifest.input.name], manifest.input.shape, manifest.input.dtype)
        missing = [n for n in self._output_names if n not in outputs]
        if missing:
            raise ValueError(f"model has outputs {sorted(outputs)}, manifest names {missing} that it lacks")

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        check_input(tensor, self._input.shape, self._input.dtype, bounded=self._input.shortest_edge is not None)
        values = self.session.run(self._output_names, {self._input.name: tensor})
        return dict(zip(self._output_names, values, strict=True))

    def close(self) -> None:
        self.session = None


def open_session(path, options: BackendOptions):
    """An ``onnxruntime.InferenceSession`` of the model at ``path`` with the board's options.

    Raises:
        ValueError: onnxruntime cannot load the file.
    """
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[options.graph_optimization]
    providers = resolve_providers(options.providers, ort.get_available_providers())
    try:
        # onnxruntime print()s its "EP Error" fallback banner; stdout may be a `jsonl:-` stream.
        with contextlib.redirect_stdout(sys.stderr):
            return ort.InferenceSession(
                str(path),
                sess_options=so,
                providers=[name for name, _ in providers],
                provider_options=[opts for _, opts in providers],
            )
    except Exception as exc:  # ORT raises its own exception types
        raise ValueError(f"onnxruntime could not load {path}: {exc}") from exc


def load(bundle: Bundle, options: BackendOptions) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(bundle, options)
