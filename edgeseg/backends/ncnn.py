"""ncnn backend: a ``.param`` + ``.bin`` model (pnnx's output) on ncnn's CPU kernels.

``pip install 'edgeseg[ncnn]'`` (the ``ncnn`` wheel: aarch64 for Pi 4 / Pi 5,
x86_64 here). Threads come from ``backend.threads``, fp16 storage /
arithmetic and Vulkan from ``backend.ncnn``. ncnn works on tensors without
the batch axis (a ``(1, A, C)`` output comes back as ``(A, C)``); it is put
back from the manifest's layout, so the decoder gets the ONNX shapes. ncnn
hands outputs back as float32 (an int8 ncnn model dequantizes in its last
layers), so there is no integer output to pass through.
"""

from __future__ import annotations

import logging

import numpy as np

from edgeseg.backends import BackendUnavailable, check_input
from edgeseg.bundle import Bundle
from edgeseg.device_config import BackendOptions

log = logging.getLogger(__name__)

#: Rank of an output in each manifest layout, batch axis included.
_RANK = {"BAC": 3, "BCA": 3, "NCHW": 4, "NHWC": 4}


def _ncnn():
    try:
        import ncnn
    except ImportError as exc:
        raise BackendUnavailable("ncnn is not installed: pip install 'edgeseg[ncnn]'") from exc
    return ncnn


def library_version() -> str:
    return f"ncnn {_ncnn().__version__}"


def weights_file(model: str) -> str:
    """The ``.bin`` that goes with a ``.param`` model file (same stem)."""
    return model[: -len(".param")] + ".bin" if model.endswith(".param") else model + ".bin"


class NcnnBackend:
    """One ``ncnn.Net`` for a bundle; an extractor per frame.

    Args:
        bundle: Verified bundle whose model is an ncnn ``.param`` (its
            ``.bin`` beside it, listed in the manifest's files).
        options: Threads and ``backend.ncnn``.
    """

    def __init__(self, bundle: Bundle, options: BackendOptions) -> None:
        ncnn = _ncnn()
        manifest = bundle.manifest
        if manifest.input.layout != "NCHW" or manifest.input.shape[0] != 1:
            raise ValueError(f"ncnn bundles take one NCHW image, manifest input is {manifest.input.layout} "
                             f"{list(manifest.input.shape)}")
        weights = bundle.root / weights_file(manifest.model)
        if weights.name not in manifest.files:
            raise ValueError(f"ncnn model {manifest.model} needs {weights.name} in the bundle's files")
        opts = options.ncnn
        self.net = ncnn.Net()
        self.net.opt.num_threads = options.threads or ncnn.get_big_cpu_count()
        self.net.opt.use_fp16_storage = self.net.opt.use_fp16_packed = opts.fp16_storage
        self.net.opt.use_fp16_arithmetic = opts.fp16_arithmetic
        self.net.opt.use_vulkan_compute = opts.vulkan
        if self.net.load_param(str(bundle.model_path)) != 0 or self.net.load_model(str(weights)) != 0:
            raise ValueError(f"ncnn could not load {bundle.model_path} / {weights.name}")
        self.device = (f"ncnn {'Vulkan' if opts.vulkan else 'CPU'} (threads={self.net.opt.num_threads}, "
                       f"fp16 storage={opts.fp16_storage}, fp16 arithmetic={opts.fp16_arithmetic})")
        log.info("ncnn %s running %s on %s", ncnn.__version__, manifest.name, self.device)
        self._ncnn = ncnn
        self._input = manifest.input
        if manifest.input.name not in self.net.input_names():
            raise ValueError(f"ncnn model has inputs {self.net.input_names()}, manifest names {manifest.input.name!r}")
        have = set(self.net.output_names())
        layouts = {o.name: o.layout for o in manifest.outputs}
        missing = [n for n in layouts if n not in have]
        if missing:
            raise ValueError(f"ncnn model has outputs {sorted(have)}, manifest names {missing} that it lacks")
        self._outputs = [(name, _RANK.get(layout, 0)) for name, layout in layouts.items()]

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        check_input(tensor, self._input.shape, self._input.dtype)
        ex = self.net.create_extractor()
        ex.input(self._input.name, self._ncnn.Mat(np.ascontiguousarray(tensor[0])))
        out = {}
        for name, rank in self._outputs:
            status, mat = ex.extract(name)
            if status != 0:
                raise RuntimeError(f"ncnn could not compute output {name!r} (status {status})")
            value = np.array(mat)  # a copy: the Mat's memory goes with the extractor
            out[name] = value.reshape((1,) * max(rank - value.ndim, 1) + value.shape)
        return out

    def close(self) -> None:
        self.net = None


def load(bundle: Bundle, options: BackendOptions) -> NcnnBackend:
    return NcnnBackend(bundle, options)
