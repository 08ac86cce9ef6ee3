"""Per-frame JSON is valid JSON whatever the model outputs (issue 18: NaN boxes reached the JSON as bare NaN)."""

from __future__ import annotations

import json

import numpy as np

from edgeseg.decode import ProtoOptions, QTensor, reference
from edgeseg.decode.tensors import ProtoTensors
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import json_text


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_a_frame_of_nan_and_inf_outputs_gives_valid_json_and_a_count():
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 60, (30, 4)).astype(np.float32)
    boxes[:, 2:] += boxes[:, :2]
    boxes[rng.random((30, 4)) < 0.3] = np.nan
    scores = rng.uniform(0.6, 1, (30, 3)).astype(np.float32)
    scores[rng.random((30, 3)) < 0.1] = np.inf
    t = ProtoTensors(QTensor(boxes), QTensor(scores), QTensor(np.zeros((30, 2), np.float32)),
                     QTensor(np.zeros((2, 8, 8), np.float32)))
    opts = ProtoOptions(box_encoding="xyxy", score_activation="none", score_threshold=0.5, iou_threshold=1.0)
    res = reference.decode_proto(t, LetterboxInfo.fit((64, 64), (64, 64)), opts, None)
    doc = _strict(res.to_json())
    assert res.nonfinite > 0 and doc["nonfinite_dropped"] == res.nonfinite
    assert len(doc["instances"]) == len(res) > 0
    assert all(np.isfinite(i["box_xyxy"]).all() and np.isfinite(i["score"]) for i in doc["instances"])


def test_json_text_writes_non_finite_values_as_null():
    assert json_text({"a": 1.5, "b": [float("nan"), float("inf")], "c": {"d": -float("inf")}}) == (
        '{"a": 1.5, "b": [null, null], "c": {"d": null}}'
    )
    assert json_text({"a": [1, 2.5]}) == json.dumps({"a": [1, 2.5]})


def test_protocol_json_writes_infinities_as_null_instead_of_raising():
    from protocol_examples import examples

    from edgeseg import protocol

    msg = next(m for _, m in examples().values() if m.grasps)
    g = msg.grasps[0]
    bad = type(g)(**{**g.__dict__, "score": float("inf"), "angle": -float("inf")})
    wire = protocol.encode(type(msg)(**{**msg.__dict__, "grasps": (bad, *msg.grasps[1:])}))
    doc = json.loads(protocol.message_to_json(protocol.decode(wire)))
    assert doc["grasps"][0]["score"] is None and doc["grasps"][0]["angle"] is None


def test_a_jsonl_file_left_with_a_partial_line_gets_whole_lines_only(tmp_path):
    """A run killed mid-line left a torn tail: the next run's first line does not glue onto it."""
    from edgeseg.safe_write import append_line, open_lines

    path = tmp_path / "frames.jsonl"
    path.write_bytes(b'{"frame_id": 1}\n{"frame_id": 2, "inst')
    with open_lines(path) as fh:
        append_line(fh, b'{"frame_id": 3}\n')
        append_line(fh, b'{"frame_id": 4}\n')
    assert [json.loads(line)["frame_id"] for line in path.read_text().splitlines()] == [1, 3, 4]
    path.write_bytes(b'no newline at all')
    with open_lines(path) as fh:
        append_line(fh, b'{"frame_id": 5}\n')
    assert path.read_bytes() == b'{"frame_id": 5}\n'
