"""solo-nano (SOLOv2-style): output contract, points NMS, SOLO's cell assignment, loss, training, weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from export.data.batches import load_trainset, make_batch  # noqa: E402
from export.data.synthetic import SceneConfig, generate  # noqa: E402
from export.losses import Targets  # noqa: E402
from export.models.loading import load_model  # noqa: E402
from export.models.solo_nano import SoloConfig, build_solo, load_solo, points_nms, save_solo  # noqa: E402
from export.solo_loss import SoloLoss, dice_loss  # noqa: E402
from export.solo_targets import assign_cells, centre_of_mass  # noqa: E402

IMGSZ = 96
#: Features at 96 px are 12 / 6 / 3 cells: level 0 is resized to a 10x10 grid, the others are not.
SMALL = SoloConfig(width=8, mask_channels=8, imgsz=IMGSZ, grids=(10, 6, 3))


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    out = tmp_path_factory.mktemp("solo_split")
    generate(out, num=4, seed=11, cfg=SceneConfig(height=IMGSZ, width=IMGSZ, max_objects=5, min_size=0.2))
    return out


def test_eval_outputs_follow_the_kernel_contract_and_train_mode_gives_raw_maps():
    torch.manual_seed(0)
    model = build_solo(SMALL)
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    model.eval()
    with torch.no_grad():
        cate, kernels, features = model(x)
        raw_cates, raw_kernels, raw_features = model.raw(x)
    s = 10 * 10 + 6 * 6 + 3 * 3
    assert SMALL.num_cells == s
    assert cate.shape == (2, s, 6) and kernels.shape == (2, s, 8) and features.shape == (2, 8, IMGSZ // 4, IMGSZ // 4)
    assert [tuple(c.shape) for c in raw_cates] == [(2, 6, 10, 10), (2, 6, 6, 6), (2, 6, 3, 3)]
    assert 0.0 <= float(cate.min()) and float(cate.max()) <= 1.0
    # Cells of level 1 (after level 0's 100 cells), row-major: cell (y, x) is row 100 + 6 * y + x.
    expected = points_nms(torch.sigmoid(raw_cates[1]))[0, :, 2, 5]
    torch.testing.assert_close(cate[0, 100 + 6 * 2 + 5], expected)
    torch.testing.assert_close(kernels[1, 100 + 6 * 2 + 5], raw_kernels[1][1, :, 2, 5])
    torch.testing.assert_close(features, raw_features)
    model.train()
    assert isinstance(model(x)[0], list)


def test_points_nms_keeps_only_the_maximum_of_each_2x2_window():
    heat = torch.tensor([[[[0.1, 0.9, 0.2],
                           [0.3, 0.4, 0.8],
                           [0.7, 0.2, 0.5]]]])
    kept = points_nms(heat)[0, 0]
    # A cell survives when no cell in the window up-left of it (itself, up, left, up-left) is larger.
    expected = torch.tensor([[0.1, 0.9, 0.0],
                             [0.3, 0.0, 0.0],
                             [0.7, 0.0, 0.0]])
    torch.testing.assert_close(kept, expected)


def _targets(boxes, classes, masks) -> Targets:
    return Targets(torch.tensor([boxes], dtype=torch.float32), torch.tensor([classes]),
                   torch.tensor([[True] * len(classes)]), torch.from_numpy(np.stack(masks)[None].astype(np.float32)))


def test_cells_are_the_centre_region_of_the_levels_whose_scale_range_holds_the_object():
    cfg = SoloConfig(width=8, imgsz=96, grids=(12, 6, 3), scale_ranges=((0.0, 20.0), (16.0, 40.0), (32.0, 1e4)))
    small = np.zeros((24, 24))
    small[9:13, 9:13] = 1.0              # 16x16 px around (44, 44): sqrt(area) 16 -> levels 0 and 1
    big = np.zeros((24, 24))
    big[0:12, 0:24] = 1.0                # 96x48 px, sqrt 68 -> level 2 only
    t = _targets([[36, 36, 52, 52], [0, 0, 96, 48]], [3, 1], [small, big])
    cells = assign_cells(t, cfg)
    cls = cells.classes[0].numpy()
    gt = cells.gt_index[0].numpy()
    lv0, lv1, lv2 = cls[:144].reshape(12, 12), cls[144:180].reshape(6, 6), cls[180:].reshape(3, 3)
    # Centre (44, 44) is cell (5, 5) of level 0 (8 px cells); the centre region (sigma 0.2: 3.2 px)
    # stays inside that cell: one positive cell; (2, 2) on level 1 (16 px cells).
    assert np.argwhere(lv0 == 3).tolist() == [[5, 5]]
    assert np.argwhere(lv1 == 3).tolist() == [[2, 2]]
    assert not (lv0 == 1).any() and not (lv1 == 1).any()
    # Big object: centre of mass (48, 24) on 32 px cells is (0, 1); region +-0.1*96 = 9.6 px wide -> (0, 1) only.
    assert np.argwhere(lv2 == 1).tolist() == [[0, 1]]
    assert set(gt[cls >= 0].tolist()) == {0, 1} and (gt[cls < 0] == -1).all()


def test_centre_region_grows_with_the_box_up_to_three_by_three_cells():
    cfg = SoloConfig(width=8, imgsz=96, grids=(24, 6, 3), sigma=1.0,
                     scale_ranges=((0.0, 1e4), (1e4, 1e4), (1e4, 1e4)))
    m = np.zeros((24, 24))
    m[4:20, 4:20] = 1.0
    cells = assign_cells(_targets([[16, 16, 80, 80]], [2], [m]), cfg)
    lv0 = cells.classes[0, :576].numpy().reshape(24, 24)
    assert np.argwhere(lv0 == 2).min(0).tolist() == [11, 11] and np.argwhere(lv0 == 2).max(0).tolist() == [13, 13]


def test_centre_of_mass_in_input_pixels():
    m = np.zeros((4, 4))
    m[1, 2] = 1.0
    assert centre_of_mass(m, 4.0) == (6.0, 10.0)
    assert np.isnan(centre_of_mass(np.zeros((4, 4)), 4.0)[0])


def test_dice_loss_is_zero_for_a_perfect_mask_and_near_one_for_a_disjoint_one():
    t = torch.zeros(2, 8, 8)
    t[:, 2:6, 2:6] = 1.0
    p = torch.stack([t[0], 1.0 - t[1]])
    loss = dice_loss(p, t)
    assert float(loss[0]) < 1e-3 and float(loss[1]) > 0.999


def test_loss_trains_the_model_on_a_tiny_split(tiny_split):
    torch.manual_seed(0)
    ts = load_trainset(str(tiny_split), IMGSZ, SMALL.mask_stride)
    x, t = make_batch(ts, np.arange(len(ts)), None)
    model = build_solo(SMALL).train()
    loss_fn = SoloLoss(SMALL)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss, parts = loss_fn(model(x), t, x.shape[-2:])
        assert set(parts) == {"cate", "dice", "pos"} and parts["pos"] > 0
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0]
    # An image without objects: a finite category loss, no dice, gradients still defined.
    empty = Targets(torch.zeros(1, 1, 4), torch.full((1, 1), -1), torch.zeros(1, 1, dtype=torch.bool),
                    torch.zeros(1, 1, IMGSZ // 4, IMGSZ // 4))
    loss, parts = loss_fn(model(x[:1]), empty, x.shape[-2:])
    loss.backward()
    assert parts["dice"] == 0.0 and parts["pos"] == 0.0 and np.isfinite(loss.item())


def test_train_solo_cli_writes_weights_with_command_and_history(tiny_split, tmp_path):
    from export.train_solo import main

    out = tmp_path / "run"
    main(["--data", str(tiny_split), "--out", str(out), "--epochs", "2", "--batch", "2", "--imgsz", str(IMGSZ),
          "--width", "8", "--num-protos", "8", "--threads", "1", "--warmup-steps", "2"])
    weights = out / "solo-nano.safetensors"
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata()
    assert meta["train_command"].startswith("python -m export.train_solo --data")
    history = json.loads(meta["train_history"])
    assert [h["epoch"] for h in history] == [1, 2] and "dice" in history[-1]
    model, cfg = load_solo(weights)
    assert cfg.mask_channels == 8 and cfg.width == 8 and cfg.imgsz == IMGSZ


def test_weights_round_trip_fp32_and_fp16_and_load_through_load_model(tmp_path):
    torch.manual_seed(1)
    model = build_solo(SMALL).eval()
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        ref = model(x)
    save_solo(model, tmp_path / "a.safetensors", {"note": "x"})
    save_solo(model, tmp_path / "h.safetensors", half=True)
    assert (tmp_path / "h.safetensors").stat().st_size < 0.6 * (tmp_path / "a.safetensors").stat().st_size
    back, cfg = load_solo(tmp_path / "a.safetensors")
    assert cfg == SMALL
    with torch.no_grad():
        for a, b in zip(ref, back(x), strict=True):
            torch.testing.assert_close(a, b)
        half, _ = load_solo(tmp_path / "h.safetensors")
        torch.testing.assert_close(half(x)[2], ref[2], atol=5e-3, rtol=5e-2)
    fused, spec = load_model(str(tmp_path / "a.safetensors"))
    assert spec.family == "kernel" and spec.output_roles == ("cell_scores", "kernels", "mask_features")
    assert spec.kernel.grids == (10, 6, 3) and spec.kernel.strides == SMALL.min_area and not spec.thresholds.nms
    with torch.no_grad():
        for a, b in zip(ref, fused(x), strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_bad_configs_and_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="grids must have 3 entries"):
        SoloConfig(grids=(40, 20))
    with pytest.raises(ValueError, match="class_names must have num_classes=2"):
        SoloConfig(num_classes=2)
    with pytest.raises(ValueError, match="unknown SoloConfig keys"):
        SoloConfig.from_json('{"widht": 8}')
    with pytest.raises(FileNotFoundError, match="weights not found"):
        load_solo(tmp_path / "missing.safetensors")
    from export.models.nano import NanoConfig, build_nano, save_nano

    save_nano(build_nano(NanoConfig(width=8)), tmp_path / "nano.safetensors")
    with pytest.raises(ValueError, match="not a solo-nano file"):
        load_solo(tmp_path / "nano.safetensors")
    _, spec = load_model(str(tmp_path / "nano.safetensors"))
    assert spec.family == "proto"
