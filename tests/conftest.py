"""Shared fixtures: a tiny exported bundle (random weights) and sample images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One PyTorch intra-op thread for the whole suite, where torch is installed.

    On a busy 2-core CI machine torch's default pool is 5-200x slower than one
    thread (measured here); the runtime tests never need torch.
    """
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model():
    """An untrained width-8 edgeseg-nano, BN folded, and its ModelSpec."""
    torch = pytest.importorskip("torch")
    from export.models import NanoConfig, build_nano, fuse_bn
    from export.spec import spec_for_nano

    torch.manual_seed(0)
    cfg = NanoConfig(width=8, imgsz=160)
    model = build_nano(cfg)
    # Non-trivial BN statistics so that folding is actually exercised.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return fuse_bn(model), spec_for_nano(cfg, source="tests: random weights")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model, tmp_path_factory) -> Path:
    """The tiny model exported as an ONNX bundle directory."""
    from export.onnx_export import export_onnx_bundle

    model, spec = tiny_model
    out = tmp_path_factory.mktemp("bundles") / "tiny-onnx"
    export_onnx_bundle(model, spec, out)
    return out


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory) -> Path:
    """Eight small synthetic scenes (seed 21, 120x160): calibration images for the int8 export tests."""
    from export.data.synthetic import SceneConfig, generate

    out = tmp_path_factory.mktemp("calib")
    generate(out, 8, seed=21, cfg=SceneConfig(height=120, width=160))
    return out / "images"


@pytest.fixture()
def scene() -> np.ndarray:
    """A 360x480 BGR test image with a few coloured shapes on a grey table."""
    import cv2

    img = np.full((360, 480, 3), 120, np.uint8)
    cv2.rectangle(img, (40, 50), (160, 140), (30, 30, 200), -1)
    cv2.circle(img, (300, 200), 60, (200, 150, 20), -1)
    cv2.ellipse(img, (380, 90), (70, 25), 30, 0, 360, (20, 200, 60), -1)
    return img
