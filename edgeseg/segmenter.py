"""The user-facing predictor: image in, :class:`~edgeseg.result.Result` out."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from edgeseg.backends import Backend, load_backend
from edgeseg.bundle import Bundle, load_bundle, require_trusted
from edgeseg.decode import Decoder
from edgeseg.device_config import DeviceConfig, load_device_config
from edgeseg.manifest import Manifest
from edgeseg.preprocess import Preprocessor
from edgeseg.result import Result, StageTimings

DEFAULT_BUNDLE = Path(__file__).parent / "assets" / "edgeseg-nano"


class Segmenter:
    """Runs one model on one board: preprocess -> backend -> decode.

    State is the backend session and reusable buffers only; each call is
    independent. Use :func:`edgeseg.load` (or :meth:`from_bundle`) to build
    one from a bundle; the constructor takes any backend meeting
    :class:`~edgeseg.backends.Backend`, which is how the export pipeline runs
    a PyTorch model through the very same preprocessing and decoding.

    Args:
        manifest: What the model's input and outputs mean.
        backend: Runs the model: ``run(tensor) -> {output name: array}``.
        device_config: The board's settings (defaults when ``None``).
        bundle: The bundle the model came from, if any (kept alive with the
            Segmenter: a packed bundle's files live in a temporary directory).
    """

    def __init__(
        self,
        manifest: Manifest,
        backend: Backend,
        device_config: DeviceConfig | None = None,
        *,
        bundle: Bundle | None = None,
    ) -> None:
        self.manifest = manifest
        self.backend = backend
        self.device_config = device_config or DeviceConfig()
        self.bundle = bundle
        self.preprocessor = Preprocessor(manifest.input)
        self.decoder = Decoder(manifest)

    @classmethod
    def from_bundle(cls, bundle: Bundle, device_config: DeviceConfig) -> Segmenter:
        """Opens ``bundle``'s backend (chosen by its format) with the board's options.

        Raises:
            BundleError: the config names trust keys and none signed ``bundle``.
        """
        require_trusted(bundle, device_config.trust.keys)
        return cls(bundle.manifest, load_backend(bundle, device_config.backend), device_config, bundle=bundle)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.manifest.classes

    def __call__(
        self,
        image_bgr: np.ndarray,
        *,
        score_threshold: float | None = None,
        iou_threshold: float | None = None,
        max_detections: int | None = None,
        min_score: float | None = None,
        with_masks: bool = True,
        frame_id: int = 0,
        masks: str = "cropped",
        out: np.ndarray | None = None,
    ) -> Result:
        """Segments one image.

        Args:
            image_bgr: ``(H, W, 3)`` uint8 BGR image (as ``cv2.imread`` gives).
            score_threshold: Override of the manifest's score threshold.
            iou_threshold: Override of the manifest's NMS IoU threshold.
            max_detections: Override of the manifest's detection cap.
            min_score: Drop instances whose reported score is below this
                (see :class:`~edgeseg.decode.options.DecodeOptions`; SOLOv2-style
                and query models report scores lower than their candidates').
            with_masks: Decode masks (``False``: boxes only, faster).
            frame_id: Caller's frame counter, carried into the result.
            masks: Mask form (:mod:`edgeseg.maskforms`): ``"cropped"``
                (``Result.masks``), ``"rle"`` (``Result.mask_rles``) or
                ``"full"`` (``Result.mask_frames``, written into ``out``).
            out: For ``masks="full"``: a ``(>= max_detections, H, W)`` bool
                C-contiguous buffer, reused across frames.

        Returns:
            Instances with boxes in ``image_bgr`` pixels and masks in the asked form.
        """
        if masks != "cropped" or out is not None:
            from edgeseg.maskforms import check_form

            check_form(masks, out)
        changes = {
            k: v
            for k, v in (
                ("score_threshold", score_threshold),
                ("iou_threshold", iou_threshold),
                ("max_detections", max_detections),
                ("min_score", min_score),
            )
            if v is not None
        }
        options = self.decoder.options
        if changes or not with_masks:
            options = dataclasses.replace(options, with_masks=with_masks, **changes)
        t0 = time.perf_counter()
        tensor, letterbox = self.preprocessor(image_bgr)
        t1 = time.perf_counter()
        raw = self.backend.run(tensor)
        t2 = time.perf_counter()
        if masks == "cropped" or not with_masks:
            result = self.decoder(raw, letterbox, options)
        else:
            result = self.decoder.decode_as(raw, letterbox, options, masks, out)
        t3 = time.perf_counter()
        return dataclasses.replace(
            result, timings=StageTimings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3), frame_id=frame_id
        )

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load(bundle: str | Path | Bundle | None = None, device_config: str | Path | DeviceConfig | None = None) -> Segmenter:
    """Loads a bundle for inference.

    Args:
        bundle: Bundle directory, packed ``.edgeseg`` file, or loaded Bundle;
            ``None`` for the default model shipped in the package.
        device_config: Path to a board's YAML config, a DeviceConfig, or
            ``None`` for defaults (CPU, backend-chosen thread count).

    Returns:
        A :class:`Segmenter`; call it with BGR images. For a ``prompt`` bundle
        (SAM-class), a :class:`~edgeseg.prompt.PromptSegmenter`: call its
        ``prompt(image, boxes=..., points=...)``.
    """
    if device_config is None:
        device_config = DeviceConfig()
    elif not isinstance(device_config, DeviceConfig):
        device_config = load_device_config(device_config)
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(DEFAULT_BUNDLE if bundle is None else bundle, trust_keys=device_config.trust.keys)
    if bundle.manifest.prompt is not None:  # a two-model promptable bundle: seg.prompt(image, boxes=...)
        from edgeseg.prompt import PromptSegmenter

        return PromptSegmenter.from_bundle(bundle, device_config)
    return Segmenter.from_bundle(bundle, device_config)
