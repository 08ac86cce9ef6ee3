"""Fuzzing within `make test`: a few seconds per target, no crash and no sanitizer report allowed.

Targets and engine: tests/fuzz_support.py. A longer run (README, "Reliability")::

    .venv/bin/python scripts/fuzz.py --seconds 300
"""

from __future__ import annotations

import os

import fuzz_support as fz
import pytest

SECONDS = float(os.environ.get("EDGESEG_FUZZ_SECONDS", "2"))


def _check(report: fz.FuzzReport) -> None:
    assert report.trials > 0
    assert report.crashes == 0 and report.sanitizer_reports == 0, report.examples


def test_fuzz_manifest_parser():
    _check(fz.fuzz("manifest parser", fz.manifest_target, fz.manifest_seeds(), SECONDS, json_aware=True))


def test_fuzz_packed_bundle_reader(tmp_path):
    report = fz.fuzz("packed-bundle reader", fz.PackedTarget(tmp_path), [fz.small_packed_bundle()], SECONDS)
    _check(report)
    assert report.accepted >= 1  # the seed itself loads: the target is not refusing everything


def test_fuzz_protocol_decoder_python():
    report = fz.fuzz("protocol decoder", fz.protocol_target, fz.protocol_seeds(), SECONDS)
    _check(report)
    assert report.accepted >= len(fz.protocol_seeds())


def test_fuzz_c_protocol_header_under_sanitizers(tmp_path):
    exe = fz.build_c_decoder(tmp_path)
    if exe is None:
        pytest.skip("gcc not installed")
    _check(fz.fuzz("C header", lambda _: None, fz.protocol_seeds(), SECONDS, batch=fz.c_batch(exe)))


def test_the_fuzzer_finds_a_planted_fault():
    """The engine is not blind: a target that fails on a 0xFF byte after the first 8 is caught."""

    def planted(data: bytes) -> bool:
        if b"\xff" in data[8:]:
            raise IndexError("planted")
        return True

    report = fz.fuzz("planted", planted, [bytes(range(1, 60))], 1.0)
    assert report.crashes > 0 and "planted" in report.examples[0]
