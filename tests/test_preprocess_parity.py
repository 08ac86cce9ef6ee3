"""The preprocessing passes give the tensor of the code before issue 21, bit for bit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edgeseg.manifest import InputSpec, Quant
from edgeseg.preprocess import Preprocessor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
baseline = pytest.importorskip("frame_baseline")

SPECS = [
    InputSpec(name="x", shape=(1, 3, 320, 320)),
    InputSpec(name="x", shape=(1, 320, 320, 3), layout="NHWC", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    InputSpec(name="x", shape=(1, 3, 256, 320), color="BGR", scale=1.0, mean=(103.5, 116.2, 123.6), std=(57.0, 57.1, 58.4)),
    InputSpec(name="x", shape=(1, 3, 64, 64), dtype="int8", quant=Quant(scale=1 / 255, zero_point=-128)),
    InputSpec(name="x", shape=(1, 64, 64, 3), layout="NHWC", dtype="uint8", quant=Quant(scale=1 / 255, zero_point=0)),
]


@pytest.mark.parametrize("spec", SPECS, ids=range(len(SPECS)))
def test_tensor_bit_identical_to_before(spec):
    rng = np.random.default_rng(0)
    pre, old = Preprocessor(spec), Preprocessor(spec)
    for h, w in [(480, 640), (1080, 1920), (320, 320), (37, 501), (480, 640), (700, 300)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        x, lb = pre(img)
        y, lb_old = baseline.preprocess_v0(old, img)
        assert lb == lb_old
        assert x.dtype == y.dtype and x.shape == y.shape and x.flags.c_contiguous
        assert x.tobytes() == y.tobytes()
