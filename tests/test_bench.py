"""The benchmark harness on this machine: real bundle, real image files, real hooks; results store."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg.bench import (
    END_TO_END,
    STAGES,
    BenchOptions,
    LatencyStats,
    bench_bundle,
    load_results,
    save_run,
)
from edgeseg.bench.monitor import ResourceMonitor
from edgeseg.board import detect_board
from edgeseg.device_config import load_device_config
from edgeseg.sources import list_images

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "boards"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Three JPEG files of different sizes with coloured shapes on a textured table."""
    out = tmp_path_factory.mktemp("bench_images")
    rng = np.random.default_rng(0)
    paths = []
    for k, (h, w) in enumerate([(360, 480), (480, 640), (240, 320)]):
        img = (rng.normal(120, 12, (h, w, 3))).clip(0, 255).astype(np.uint8)
        cv2.rectangle(img, (w // 8, h // 6), (w // 3, h // 2), (30, 30, 200), -1)
        cv2.circle(img, (w * 2 // 3, h // 2), h // 6, (200, 150, 20), -1)
        paths.append(out / f"scene_{k}.jpg")
        cv2.imwrite(str(paths[-1]), img)
    return paths


@pytest.fixture(scope="module")
def run(images, tmp_path_factory):
    hook_file = tmp_path_factory.mktemp("hook") / "frames.jsonl"
    options = BenchOptions(frames=12, warmup=2, hook_url=f"jsonl:{hook_file}", progress=False)
    cfg = load_device_config(REPO / "device_configs" / "x86-cpu.yaml")
    result = bench_bundle(edgeseg.DEFAULT_BUNDLE, images, cfg, options, config_path="device_configs/x86-cpu.yaml")
    return result, hook_file


def test_every_stage_is_timed_for_every_frame(run):
    r, _ = run
    assert list(r.stages) == [*STAGES, END_TO_END]
    assert all(s.n == 12 for s in r.stages.values())
    assert all(len(v) == 12 for v in r.samples_ms.values())
    assert r.frames == 12 and r.warmup == 2 and r.image_count == 3
    assert r.model_load_ms > 0 and r.first_frame_ms > 0
    assert r.fps == pytest.approx(1000.0 / r.stages[END_TO_END].mean_ms)
    assert r.backend_device == "CPUExecutionProvider" and r.config_name == "x86-cpu"
    post = sum(np.array(r.samples_ms[s]) for s in ("decode", "grasp", "serialize"))
    share = 100 * post / np.array(r.samples_ms["infer"])
    assert r.postprocess_pct == pytest.approx(float(np.median(share)), rel=1e-3)


def test_stages_add_up_to_end_to_end(run):
    """One clock, back to back: per frame the stages never exceed end to end, and cover >= 95% of it."""
    r, _ = run
    stages = np.array([r.samples_ms[s] for s in STAGES])  # (7, N)
    e2e = np.array(r.samples_ms[END_TO_END])
    assert np.all(stages >= 0)
    assert np.all(stages.sum(axis=0) <= e2e + 1e-3)  # samples are rounded to 0.1 us
    assert 0 <= r.unaccounted_pct < 5.0
    assert r.unaccounted_pct == pytest.approx(100 * (e2e.sum() - stages.sum()) / e2e.sum(), abs=0.01)


def test_hook_stage_hands_every_frame_to_the_hook(run):
    r, hook_file = run
    ids = [json.loads(line)["frame_id"] for line in hook_file.read_text().splitlines()]
    d = r.hook_delivery
    assert d["submitted"] == 14 and d["failed"] == 0  # warm-up + timed frames
    assert d["delivered"] + d["dropped"] == 14  # latest wins when the sink lags: drops are counted
    assert len(ids) == d["delivered"] and ids == sorted(set(ids)) and ids[-1] == 13


def test_results_record_what_ran(run):
    r, _ = run
    bundle = edgeseg.load_bundle(edgeseg.DEFAULT_BUNDLE)
    assert r.bundle.model_sha256 == hashlib.sha256(bundle.model_path.read_bytes()).hexdigest()
    assert r.bundle.label == "onnx-fp32" and r.bundle.input_shape == tuple(bundle.manifest.input.shape)
    assert {"edgeseg", "python", "numpy", "opencv", "backend", "decoder"} <= set(r.software)
    assert r.software["backend"].startswith("onnxruntime")
    assert r.board == detect_board()
    assert r.resources.peak_rss_mb > 10 and r.resources.cpu_percent > 0


def test_results_round_trip_through_the_store(run, tmp_path):
    r, _ = run
    path = save_run(r, tmp_path)
    assert path.parent == tmp_path / r.board.id and path.suffix == ".json"
    (loaded,) = load_results([tmp_path])
    assert json.loads(json.dumps(loaded.to_dict())) == json.loads(path.read_text())
    assert loaded.stages == r.stages and loaded.board == r.board and loaded.resources == r.resources


def test_loader_names_bad_files(run, tmp_path):
    r, _ = run
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not JSON"):
        load_results([bad])
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**r.to_dict(), "schema_version": 0}))
    with pytest.raises(ValueError, match="old.json: expected results schema_version 1, got 0"):
        load_results([old])
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**r.to_dict(), "frames": "many"}))
    with pytest.raises(ValueError, match=r"results.*frames must be int"):
        load_results([broken])
    other = tmp_path / "other"
    other.mkdir()
    (other / "decode_bench.json").write_text(json.dumps({"kind": "another tool"}))
    save_run(r, other)
    assert len(load_results([other])) == 1  # other tools' JSON in a results folder is skipped
    with pytest.raises(ValueError, match="decode_bench.json: expected results schema_version"):
        load_results([other / "decode_bench.json"])  # ... but not when named
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no benchmark results"):
        load_results([tmp_path / "empty"])


def test_latency_stats_are_percentiles_of_the_samples():
    s = LatencyStats.of(np.arange(1, 101, dtype=np.float64))
    got = (s.p50_ms, s.p90_ms, s.p99_ms, s.mean_ms, s.min_ms, s.max_ms, s.n)
    assert got == pytest.approx((50.5, 90.1, 99.01, 50.5, 1, 100, 100))
    assert s.std_ms == pytest.approx(np.arange(1, 101).std())
    with pytest.raises(ValueError, match="non-empty 1-D"):
        LatencyStats.of(np.array([]))


def test_options_and_images_are_checked(tmp_path):
    with pytest.raises(ValueError, match="frames must be >= 1"):
        BenchOptions(frames=0)
    with pytest.raises(ValueError, match="warmup must be >= 0"):
        BenchOptions(warmup=-1)
    with pytest.raises(ValueError, match="no images"):
        list_images([tmp_path])
    with pytest.raises(ValueError, match="does not exist"):
        list_images([tmp_path / "missing"])
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg cannot be read"):
        bench_bundle(edgeseg.DEFAULT_BUNDLE, list_images([tmp_path]), options=BenchOptions(frames=1, progress=False))


def test_monitor_measures_peak_rss_of_the_block_and_reads_thermals():
    with ResourceMonitor(interval_s=0.01, root=FIXTURES / "rpi5") as mon:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        block += 1
        del block
    usage = mon.usage
    assert usage.temperatures_c == {"cpu-thermal": (61.85, 61.85)}
    assert usage.throttling == ("rpi: under-voltage", "rpi: throttled") and usage.samples >= 2
    with ResourceMonitor(root=FIXTURES / "x86") as quiet:
        pass
    assert usage.peak_rss_mb - quiet.usage.peak_rss_mb > 50  # the mark was reset per block
    assert quiet.usage.temperatures_c == {} and quiet.usage.throttling == ()


def test_dataclass_defaults_declared_once():
    fields = {f.name: f.default for f in dataclasses.fields(BenchOptions)}
    assert fields["frames"] == 200 and fields["hook_url"] == "mem://"
