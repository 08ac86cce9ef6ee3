"""edgeseg-nano: the output contract the exporter and the runtime decoder rely on."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from export.models.nano import (  # noqa: E402
    NanoConfig,
    build_nano,
    fuse_bn,
    load_nano,
    make_anchors,
    save_nano,
)


def _randomize_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)


@pytest.mark.parametrize("hw", [(160, 160), (128, 192)])
def test_outputs_follow_the_contract(hw):
    torch.manual_seed(0)
    cfg = NanoConfig(width=8, num_protos=16)
    model = build_nano(cfg).eval()
    h, w = hw
    with torch.no_grad():
        boxes, scores, coeffs, protos = model(torch.rand(2, 3, h, w))
    a = sum((h // s) * (w // s) for s in cfg.strides)
    assert boxes.shape == (2, a, 4) and scores.shape == (2, a, cfg.num_classes)
    assert coeffs.shape == (2, a, cfg.num_protos)
    assert protos.shape == (2, cfg.num_protos, h // cfg.proto_stride, w // cfg.proto_stride)
    assert all(t.dtype == torch.float32 for t in (boxes, scores, coeffs, protos))
    assert boxes.min() >= 0 and boxes.max() <= cfg.reg_max


def test_default_size_and_parameter_budget():
    cfg = NanoConfig()
    model = build_nano(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert 1_000_000 <= n <= 3_000_000, n
    assert len(cfg.class_names) == cfg.num_classes == 6


def test_anchor_order_is_stride_then_row_major():
    centres, strides = make_anchors(NanoConfig(), 64, 96)
    assert centres.shape == (8 * 12 + 4 * 6 + 2 * 3, 2)
    assert centres[:3].tolist() == [[4.0, 4.0], [12.0, 4.0], [20.0, 4.0]]
    assert centres[12].tolist() == [4.0, 12.0]  # second row of stride 8
    assert centres[96].tolist() == [8.0, 8.0] and strides[96] == 16.0
    assert centres[-1].tolist() == [80.0, 48.0] and strides[-1] == 32.0


def test_anchor_grid_matches_the_runtime_decoder():
    from edgeseg.decode.reference import anchor_grid

    cfg = NanoConfig()
    centres, strides = make_anchors(cfg, 96, 160)
    ref_c, ref_s = anchor_grid((96, 160), cfg.strides, 0.5)
    assert torch.equal(centres, torch.from_numpy(ref_c)) and torch.equal(strides, torch.from_numpy(ref_s))


def test_fuse_bn_removes_batchnorm_and_keeps_outputs():
    torch.manual_seed(1)
    model = build_nano(NanoConfig(width=8))
    _randomize_bn(model)
    model.eval()
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        ref = model(x)
        fused = fuse_bn(model)
        got = fused(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


def test_safetensors_round_trip_keeps_config_and_weights(tmp_path):
    torch.manual_seed(2)
    cfg = NanoConfig(width=8, num_protos=8, imgsz=128, act="silu")
    model = build_nano(cfg)
    _randomize_bn(model)
    path = tmp_path / "nano.safetensors"
    save_nano(model, path, {"note": "test"})
    loaded, got_cfg = load_nano(path)
    assert got_cfg == cfg and not loaded.training
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        for r, g in zip(model.eval()(x), loaded(x), strict=True):
            assert torch.equal(r, g)


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="class_names"):
        NanoConfig(num_classes=3)
    with pytest.raises(ValueError, match="act"):
        NanoConfig(act="gelu")
    with pytest.raises(FileNotFoundError, match="weights not found"):
        load_nano(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="config"):
        load_nano(tmp_path / "plain.safetensors")
