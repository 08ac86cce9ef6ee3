"""OpenVINO backend: an IR model (``model.xml`` + ``model.bin``) compiled for the board's device.

``pip install 'edgeseg[openvino]'``. The device (``CPU``, ``GPU`` for the
iGPU of an Intel N100 / Core Ultra board, ``AUTO``) and the performance hint
come from the device config's ``backend.openvino``; ``backend.threads``
sets the CPU plugin's inference threads; ``backend.openvino.precision``
(default ``f32``) keeps a CPU that has bf16 units from computing an fp32
model in bf16 unasked. An int8 IR (NNCF) keeps float32
inputs and outputs (it quantizes inside, as a QDQ ONNX model does), so the
outputs arrive as float32 and the decoder reads them as such.
"""

from __future__ import annotations

import logging

import numpy as np

from edgeseg.backends import BackendUnavailable, check_input
from edgeseg.bundle import Bundle
from edgeseg.device_config import BackendOptions

log = logging.getLogger(__name__)


def _ov():
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailable("openvino is not installed: pip install 'edgeseg[openvino]'") from exc
    return openvino


def library_version() -> str:
    ov = _ov()
    return f"openvino {ov.__version__.split('-')[0]} ({', '.join(ov.Core().available_devices)})"


class OpenVINOBackend:
    """One compiled OpenVINO model and its infer request.

    Args:
        bundle: Verified bundle whose model is an OpenVINO IR ``.xml`` (its
            ``.bin`` beside it, listed in the manifest's files).
        options: Threads and ``backend.openvino`` (device, hint, cache).
    """

    def __init__(self, bundle: Bundle, options: BackendOptions) -> None:
        ov = _ov()
        opts = options.openvino
        core = ov.Core()
        if opts.cache_dir:
            core.set_property({"CACHE_DIR": opts.cache_dir})
        config = {"PERFORMANCE_HINT": opts.hint}
        if opts.precision != "default":
            config["INFERENCE_PRECISION_HINT"] = opts.precision
        if options.threads and opts.device == "CPU":
            config["INFERENCE_NUM_THREADS"] = options.threads
        try:
            model = core.read_model(str(bundle.model_path))
            self.compiled = core.compile_model(model, opts.device, config)
        except RuntimeError as exc:  # openvino raises RuntimeError for missing devices and bad IR alike
            raise ValueError(
                f"openvino could not compile {bundle.model_path} for {opts.device!r} "
                f"(available: {core.available_devices}): {exc}"
            ) from exc
        self.device = f"openvino {opts.device} ({opts.hint}, {opts.precision}, threads={options.threads or 'auto'})"
        log.info("openvino %s running %s on %s", ov.__version__, bundle.manifest.name, self.device)
        manifest = bundle.manifest
        self._input = manifest.input
        inputs = self.compiled.inputs
        if len(inputs) != 1 or manifest.input.name not in inputs[0].get_names():
            raise ValueError(
                f"OpenVINO model has inputs {[sorted(i.get_names()) for i in inputs]}, manifest names "
                f"input {manifest.input.name!r}"
            )
        declared = inputs[0].get_partial_shape()
        if declared.is_static and tuple(declared.to_shape()) != tuple(manifest.input.shape):
            raise ValueError(f"OpenVINO input is {tuple(declared.to_shape())}, manifest says {tuple(manifest.input.shape)}")
        names = list(dict.fromkeys(o.name for o in manifest.outputs))
        ports = {}
        for port in self.compiled.outputs:
            for name in port.get_names():
                ports[name] = port
        missing = [n for n in names if n not in ports]
        if missing:
            raise ValueError(f"OpenVINO model has outputs {sorted(ports)}, manifest names {missing} that it lacks")
        self._outputs = [(name, ports[name]) for name in names]
        self._request = self.compiled.create_infer_request()

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        check_input(tensor, self._input.shape, self._input.dtype)
        result = self._request.infer({0: tensor})  # copies the outputs (share_outputs=False)
        return {name: result[port] for name, port in self._outputs}

    def close(self) -> None:
        self._request = None
        self.compiled = None


def load(bundle: Bundle, options: BackendOptions) -> OpenVINOBackend:
    return OpenVINOBackend(bundle, options)
