"""LiteRT / TFLite backend: XNNPACK on CPU with the board's thread count.

Tries ``ai_edge_litert`` (LiteRT, ``pip install 'edgeseg[tflite]'``) first and
``tflite_runtime`` second, for boards that only have that (tflite-runtime
2.14 needs numpy < 2). Integer inputs and outputs are passed through as they
are: the manifest carries their scale/zero-point and the preprocessor and
decoder handle them, so no float copy of a quantized tensor is made here.
"""

from __future__ import annotations

import logging

import numpy as np

from edgeseg.backends import BackendUnavailable, check_input
from edgeseg.bundle import Bundle
from edgeseg.device_config import BackendOptions

log = logging.getLogger(__name__)


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter

        return interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter  # type: ignore[import-not-found]

        return interpreter, "tflite-runtime"
    except ImportError as exc:
        raise BackendUnavailable(
            "no TFLite interpreter: pip install 'edgeseg[tflite]' (ai-edge-litert) or tflite-runtime"
        ) from exc


def library_version() -> str:
    module, name = _interpreter_module()
    import importlib.metadata

    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        version = "?"
    return f"{name} {version}"


class TFLiteBackend:
    """One LiteRT interpreter for a bundle.

    Args:
        bundle: Verified bundle whose model is a ``.tflite`` file.
        options: Thread count and whether to apply the XNNPACK delegate.
    """

    def __init__(self, bundle: Bundle, options: BackendOptions) -> None:
        module, name = _interpreter_module()
        resolver = module.OpResolverType.AUTO if options.xnnpack else module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = module.Interpreter(
                model_path=str(bundle.model_path),
                num_threads=options.threads or None,
                experimental_op_resolver_type=resolver,
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"{name} could not load {bundle.model_path}: {exc}") from exc
        self.device = f"{name} CPU ({'XNNPACK' if options.xnnpack else 'builtin kernels'}, threads={options.threads or 'auto'})"
        log.info("%s running %s on %s", name, bundle.manifest.name, self.device)
        manifest = bundle.manifest
        self._input = manifest.input
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise ValueError(f"TFLite model has {len(inputs)} inputs, edgeseg expects 1")
        self._input_index = inputs[0]["index"]
        got_shape = tuple(int(s) for s in inputs[0]["shape"])
        if got_shape != tuple(manifest.input.shape) or np.dtype(inputs[0]["dtype"]) != np.dtype(manifest.input.dtype):
            raise ValueError(
                f"TFLite input is {np.dtype(inputs[0]['dtype'])} {got_shape}, manifest says "
                f"{manifest.input.dtype} {tuple(manifest.input.shape)}"
            )
        by_name = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        missing = [o.name for o in manifest.outputs if o.name not in by_name]
        if missing:
            raise ValueError(f"TFLite model has outputs {sorted(by_name)}, manifest names {missing} that it lacks")
        self._outputs = [(name, by_name[name]) for name in dict.fromkeys(o.name for o in manifest.outputs)]

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        check_input(tensor, self._input.shape, self._input.dtype)
        self.interpreter.set_tensor(self._input_index, tensor)
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(index) for name, index in self._outputs}

    def close(self) -> None:
        self.interpreter = None


def load(bundle: Bundle, options: BackendOptions) -> TFLiteBackend:
    return TFLiteBackend(bundle, options)
