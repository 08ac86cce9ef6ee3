"""torchvision's own Mask R-CNN builders (ResNet-50-FPN v1 and v2) export through :class:`RoiCut`.

Randomly initialised (nothing can be downloaded), small transform size: the
ONNX model run by onnxruntime on the runtime's preprocessed tensor gives the
detections PyTorch gives for the same tensor (count, and the scores as a
multiset: an untrained model's near-ties may come in another order).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
detection = pytest.importorskip("torchvision.models.detection")


@pytest.mark.parametrize("builder", ["maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2"])
def test_resnet50_fpn_exports_and_runs_in_onnxruntime(builder, tmp_path, scene):
    import onnxruntime as ort

    from edgeseg.manifest import InputSpec
    from edgeseg.preprocess import Preprocessor
    from export.torchvision_rcnn import RoiCut, maskrcnn_spec

    torch.manual_seed(0)
    model = getattr(detection, builder)(weights=None, weights_backbone=None, num_classes=3, min_size=256, max_size=256)
    cut = RoiCut(model)
    spec = maskrcnn_spec(model, ("a", "b"))
    assert spec.shortest_edge.min_size == 256 and spec.mean == pytest.approx((0.485, 0.456, 0.406))
    cut.export_onnx(tmp_path / "model.onnx", 18)
    inp = InputSpec(name="images", shape=(1, 3, 256, 256), mean=spec.mean, std=spec.std,
                    shortest_edge=spec.shortest_edge)
    x, _ = Preprocessor(inp)(scene)
    assert x.shape[2:] != (256, 256)  # a non-square image: the dynamic input size is exercised
    with torch.no_grad():
        ref = [t.numpy() for t in cut(torch.from_numpy(x))]
    got = ort.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"images": x})
    assert len(got[0]) == len(ref[0]) > 0
    np.testing.assert_allclose(np.sort(got[1]), np.sort(ref[1]), atol=1e-4)
    assert got[3].shape == (len(ref[0]), 1, 28, 28) and set(got[2].tolist()) <= {0, 1}
