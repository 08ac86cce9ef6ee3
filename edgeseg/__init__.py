"""edgeseg: on-device runtime for instance segmentation bundles.

Quick start::

    import cv2, edgeseg
    seg = edgeseg.load()                      # default bundle shipped in the package
    result = seg(cv2.imread("scene.jpg"))     # BGR uint8
    for inst in result:
        print(inst.class_name, inst.score, inst.box, inst.mask.area)

The runtime imports only numpy, onnxruntime (or a TFLite interpreter), OpenCV,
pyserial and pyyaml; never torch, tensorflow, onnx or the ``export`` package.
"""

from edgeseg.bundle import Bundle, BundleError, load_bundle
from edgeseg.device_config import ConfigError, DeviceConfig, load_device_config
from edgeseg.result import CroppedMask, Instance, Result, StageTimings
from edgeseg.segmenter import DEFAULT_BUNDLE, Segmenter, load

__version__ = "0.1.0"

__all__ = [
    "Bundle",
    "BundleError",
    "ConfigError",
    "CroppedMask",
    "DEFAULT_BUNDLE",
    "DeviceConfig",
    "Instance",
    "Result",
    "Segmenter",
    "StageTimings",
    "__version__",
    "load",
    "load_bundle",
    "load_device_config",
]
