"""Training: assigner, losses, a few optimizer steps, checkpoints and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pycocotools")

from export.assign import assign  # noqa: E402
from export.data.batches import load_trainset, make_batch  # noqa: E402
from export.data.synthetic import SceneConfig, generate  # noqa: E402
from export.losses import NanoLoss  # noqa: E402
from export.models.nano import NanoConfig, build_nano, load_nano, make_anchors  # noqa: E402
from export.train import TrainConfig, train  # noqa: E402

IMGSZ = 128


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    out = tmp_path_factory.mktemp("train_split")
    generate(out, num=4, seed=11, cfg=SceneConfig(height=IMGSZ, width=IMGSZ, max_objects=5, min_size=0.2))
    return out


def test_assigner_picks_anchors_inside_each_box_and_resolves_conflicts():
    cfg = NanoConfig(num_classes=2, class_names=("a", "b"))
    centres, strides = make_anchors(cfg, 64, 64)
    a = centres.shape[0]
    scores = torch.full((1, a, 2), 0.5)
    pred = torch.cat([centres - 6.0, centres + 6.0], -1).unsqueeze(0)  # 12x12 boxes at each anchor
    gt = torch.tensor([[[0.0, 0.0, 24.0, 24.0], [16.0, 16.0, 48.0, 48.0], [0.0, 0.0, 0.0, 0.0]]])
    asg = assign(scores, pred, centres, gt, torch.tensor([[0, 1, -1]]), torch.tensor([[True, True, False]]))
    fg = asg.fg[0]
    assert fg.any()
    for i in torch.nonzero(fg).flatten().tolist():
        g = gt[0, asg.gt_index[0, i]]
        x, y = centres[i]
        assert g[0] < x < g[2] and g[1] < y < g[3]
        cls = int(asg.target_scores[0, i].argmax())
        assert cls == int(asg.gt_index[0, i]) and asg.target_scores[0, i, cls] > 0
    assert set(asg.gt_index[0, fg].tolist()) == {0, 1}  # both objects got anchors, padding none
    assert (asg.target_scores[0, ~fg] == 0).all()
    assert int((asg.gt_index[0, fg] == 0).sum()) <= 10


def test_batches_flip_boxes_with_images(tiny_split):
    ts = load_trainset(str(tiny_split), IMGSZ, 4)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x, t = make_batch(ts, np.arange(len(ts)), rng)
        assert x.shape == (len(ts), 3, IMGSZ, IMGSZ) and 0.0 <= x.min() and x.max() <= 1.0
        for b in range(len(ts)):
            for m in range(int(t.valid[b].sum())):
                ys, xs = torch.nonzero(t.masks[b, m] > 0.5, as_tuple=True)
                if len(xs) == 0:
                    continue
                # The downsampled mask lies inside its (transformed) box.
                x0, y0, x1, y1 = (t.boxes[b, m] / 4).tolist()
                assert xs.min() >= x0 - 1 and xs.max() <= x1 and ys.min() >= y0 - 1 and ys.max() <= y1


def test_a_few_steps_reduce_the_loss(tiny_split):
    torch.manual_seed(0)
    cfg = NanoConfig(width=8, num_protos=8, imgsz=IMGSZ)
    model = build_nano(cfg)
    loss_fn = NanoLoss(cfg)
    ts = load_trainset(str(tiny_split), IMGSZ, cfg.proto_stride)
    x, targets = make_batch(ts, np.arange(len(ts)), None)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(12):
        loss, parts = loss_fn(model(x), targets, x.shape[-2:])
        assert set(parts) == {"cls", "box", "bce", "dice"} and all(np.isfinite(v) for v in parts.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_train_checkpoints_and_resumes(tiny_split, tmp_path):
    cfg = TrainConfig(data=str(tiny_split), out=str(tmp_path / "run"), epochs=1, batch=2, width=8, num_protos=8,
                      imgsz=IMGSZ, warmup_steps=1, threads=1)
    _, history = train(cfg)
    assert [h["epoch"] for h in history] == [1] and history[0]["step"] == 2
    weights = tmp_path / "run" / "edgeseg-nano.safetensors"
    model, mcfg = load_nano(weights)
    assert mcfg.width == 8 and mcfg.imgsz == IMGSZ
    cfg2 = TrainConfig(**{**cfg.__dict__, "epochs": 2})
    _, history = train(cfg2, resume=True)
    assert [h["epoch"] for h in history] == [1, 2] and history[-1]["step"] == 4
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
