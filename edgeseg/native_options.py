"""Settings of the board-native backends (OpenVINO, ncnn, RKNN) in a device config.

Each is a frozen dataclass read from its own key under ``backend:``
(``backend.openvino``, ``backend.ncnn``, ``backend.rknn``) and used only by
its backend module; a board that runs ONNX Runtime or LiteRT never reads
them. Defaults are declared here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: RKNNLite core masks by name (``RKNNLite.NPU_CORE_*``); the RK3588 NPU has three cores.
RKNN_CORE_MASKS = ("auto", "0", "1", "2", "0_1", "0_1_2", "all")


@dataclass(frozen=True)
class OpenVINOOptions:
    """OpenVINO runtime settings.

    Attributes:
        device: OpenVINO device name: ``CPU``, ``GPU`` (the Intel iGPU of an
            N100 / Core Ultra), ``NPU`` or ``AUTO``.
        hint: ``LATENCY`` (one frame at a time, what a robot cell wants) or
            ``THROUGHPUT``.
        precision: Inference precision (``INFERENCE_PRECISION_HINT``): ``f32``
            computes what the bundle's model says (an int8 IR still runs its
            int8 layers in int8); ``f16`` / ``bf16`` lower the float layers
            (the GPU plugin's default is f16; a CPU with AMX would pick
            bf16 by itself); ``default`` leaves it to the plugin.
        cache_dir: Where compiled GPU kernels are cached between runs ('' = none).
    """

    device: str = "CPU"
    hint: Literal["LATENCY", "THROUGHPUT"] = "LATENCY"
    precision: Literal["f32", "f16", "bf16", "default"] = "f32"
    cache_dir: str = ""

    def __post_init__(self) -> None:
        if not self.device or not self.device.replace(".", "").replace(":", "").replace(",", "").isalnum():
            raise ValueError(f"backend.openvino.device must be a device name such as CPU, GPU, AUTO, got {self.device!r}")


@dataclass(frozen=True)
class NcnnOptions:
    """ncnn runtime settings (``ncnn.Option``).

    Attributes:
        fp16_storage: Keep weights and activations in fp16 (ARMv8.2 boards
            and x86 with F16C; ignored where unsupported).
        fp16_arithmetic: Compute in fp16 too (ARMv8.2-A: the Pi 5's
            Cortex-A76; the Pi 4's A72 has no fp16 arithmetic).
        vulkan: Run on the GPU through Vulkan where ncnn was built with it.
    """

    fp16_storage: bool = True
    fp16_arithmetic: bool = False
    vulkan: bool = False


@dataclass(frozen=True)
class RknnOptions:
    """RKNNLite settings on Rockchip NPUs.

    Attributes:
        core_mask: Which NPU cores run the model (RK3588: ``0``, ``1``, ``2``,
            ``0_1``, ``0_1_2``; ``auto`` lets the driver pick a free core).
    """

    core_mask: str = "auto"

    def __post_init__(self) -> None:
        if self.core_mask not in RKNN_CORE_MASKS:
            raise ValueError(f"backend.rknn.core_mask must be one of {list(RKNN_CORE_MASKS)}, got {self.core_mask!r}")
