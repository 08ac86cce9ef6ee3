"""The ``kernel`` family against mmdet's SOLOv2 post-processing (the benchmark's torch transcription of it).

mmdet itself cannot be installed here; ``benchmarks/kernel_decode.py`` holds
``SOLOV2Head._predict_by_feat_single`` + ``mask_matrix_nms`` transcribed in
torch (its logic as mmdet 3.x writes it). On SOLOv2-shaped outputs at 1280 x
720 with 3 classes and large objects (so objects of one class overlap and
Matrix NMS decays them, both kernels), the runtime's decoder (C and numpy) must give mmdet's instances: the
same labels in the same order, scores within 1e-5 (mmdet sums float32
probabilities, the runtime float64), masks with IoU >= 0.99 (mmdet upsamples
probabilities twice, the runtime renders logits once).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeseg.decode import cpath
from edgeseg.families.kernel import FAMILY, KernelDecoder
from edgeseg.preprocess import LetterboxInfo

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import kernel_decode as kd  # noqa: E402

PATHS = ["numpy"] + (["c"] if cpath.available() else [])


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("seed", [1, 3])  # seeds where same-class objects overlap: scores decay to 0.37-0.69
def test_instances_equal_mmdets(seed, kernel):
    raw = kd.outputs(12, seed=seed, classes=3, radius=(0.04, 0.12))
    scores, labels, masks = kd.mmdet_solov2(*kd.mmdet_inputs(raw), kernel=kernel)
    m = kd.manifest()
    opts = dataclasses.replace(FAMILY.options(m), nms_kernel=kernel)
    lb = LetterboxInfo.fit(kd.ORIG, kd.INPUT, center=False)
    for path in PATHS:
        r = KernelDecoder(m, path)(raw, lb, opts)
        assert r.class_ids.tolist() == labels.tolist(), path
        np.testing.assert_allclose(r.scores, scores.numpy(), rtol=0, atol=1e-5)
        for i, mask in enumerate(r.masks):
            a, b = mask.full(), masks[i].numpy()
            assert np.logical_and(a, b).sum() / np.logical_or(a, b).sum() >= 0.99, (path, i)
    assert len(labels) == 12  # the duplicates are gone
    assert scores.min() < 0.7  # overlapping objects of one class were decayed
