"""The ``prompt`` family: promptable two-model bundles (Segment Anything, MobileSAM, EdgeSAM).

A ``prompt`` bundle holds an image encoder (the manifest's ``model``,
``input`` and ``outputs``: one ``embeddings`` map, ``(1, C, h, w)``) and a
prompt decoder (the manifest's ``prompt``: :class:`~edgeseg.manifest.PromptSpec`).
The encoder runs once per frame; the decoder runs on the cached embeddings
for batches of box and point prompts and returns low-resolution mask logits
``(B, T, 4h, 4w)`` and predicted IoUs ``(B, T)`` per prompt, which the runtime
upsamples only inside each mask's region (:mod:`edgeseg.decode.prompt_masks`).
Prompts come through :meth:`edgeseg.prompt.PromptSegmenter.prompt`; calling
a prompt bundle like a detector (no prompts) raises.
"""

from __future__ import annotations

import numpy as np

from edgeseg.decode.options import DecodeOptions
from edgeseg.families.base import MAP_LAYOUTS, ROW_LAYOUTS, Family, Role, check_roles
from edgeseg.longest_side import RESIZES
from edgeseg.manifest import Manifest, ManifestError

MASK_TOKENS = ("all", "selected")


class _DecoderRoles(Family):
    """The prompt decoder's output roles (checked with the shared role rules)."""

    name = "prompt decoder"
    roles = {
        "low_res_logits": Role(MAP_LAYOUTS[:1]),
        "iou": Role(ROW_LAYOUTS),
        "masks": Role(MAP_LAYOUTS[:1], required=False),
    }


class PromptFamily(Family):
    name = "prompt"
    roles = {"embeddings": Role(MAP_LAYOUTS[:1])}
    two_models = True

    def check(self, manifest: Manifest) -> None:
        super().check(manifest)
        spec = manifest.prompt
        if spec is None:
            raise ManifestError("manifest family 'prompt' needs 'prompt' (the decoder of a two-model bundle)")
        check_roles(_DecoderRoles(), spec.outputs)
        if spec.resize not in RESIZES:
            raise ManifestError(f"manifest.prompt.resize must be one of {list(RESIZES)}, got {spec.resize!r}")
        if spec.mask_tokens not in MASK_TOKENS:
            raise ManifestError(f"manifest.prompt.mask_tokens must be one of {list(MASK_TOKENS)}, got {spec.mask_tokens!r}")
        if spec.model == manifest.model:
            raise ManifestError(f"manifest.prompt.model must be a second file, got the encoder's {spec.model!r}")
        if manifest.input.letterbox.center:
            raise ManifestError("prompt encoders take the image at the top left, padded bottom-right: "
                                "manifest.input.letterbox.center must be false")
        if manifest.input.height != manifest.input.width:
            raise ManifestError(f"prompt encoders take a square input, got {list(manifest.input.shape)}")

    def options(self, manifest: Manifest) -> DecodeOptions:
        return DecodeOptions(**DecodeOptions.thresholds(manifest.thresholds))

    def decoder(self, manifest: Manifest, path: str):
        def needs_prompts(raw: dict[str, np.ndarray], letterbox, options):
            raise ValueError(
                f"{manifest.name!r} is a prompt bundle: it segments what it is prompted with; call "
                "seg.prompt(image, boxes=..., points=...) (edgeseg.load returns a PromptSegmenter for it)"
            )

        return needs_prompts


FAMILY = PromptFamily()
