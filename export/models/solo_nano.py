"""solo-nano: a small SOLOv2-style (dynamic-kernel) instance segmentation model.

Written here in plain PyTorch (no mmdet, which is neither installed nor
wanted on the export side); it follows SOLOv2 (Wang et al., 2020) in small:
edgeseg-nano's backbone and FPN+PAN neck (:class:`export.models.nano.NanoTrunk`,
imported, not copied), then

* per level ``l`` (strides 8 / 16 / 32), the neck feature resized to a
  ``g_l x g_l`` grid (bilinear; a no-op when the grid equals the feature size,
  the default at 320 px) and fed to two towers shared by all levels: the
  **category** branch (``C`` logits per cell) and the **kernel** branch
  (CoordConv: two normalized coordinate channels appended; ``E`` weights of a
  dynamic 1x1 kernel per cell);
* a unified **mask-feature** branch: neck levels summed at stride 8 (with
  coordinate channels, so masks can tell positions apart), upsampled to the
  mask stride (4) and refined with the stride-4 backbone feature, ``E``
  channels.

An instance's mask logits are ``kernel . mask_features`` over the whole
``(H/4, W/4)`` grid (no box crop); the box comes from the mask.

Output contract (the runtime's ``kernel`` family; ``model(x)`` in eval mode,
``x``: ``(B, 3, H, W)`` float32 RGB in [0, 1], letterboxed with pad 114/255):

* ``cate``           ``(B, S, C)``: cell scores, sigmoid and SOLO's "points
  NMS" (a cell keeps its score only where it is the maximum of its 2x2
  neighbourhood) applied in the graph, so probabilities in [0, 1]
  (``activation: none``). ``S = sum(g_l ** 2)``, levels in order, cells
  row-major ``(y, x)`` within a level.
* ``kernels``        ``(B, S, E)``: each cell's dynamic kernel.
* ``mask_features``  ``(B, E, H/4, W/4)``.

In training mode ``forward`` returns the raw per-level maps instead (see
:meth:`SoloNano.raw`), which is what :mod:`export.solo_loss` consumes.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from export.models.nano import CLASS_NAMES, ConvBNAct, DWBlock, JsonConfig, NanoTrunk, fuse_bn

#: Neck feature strides of the three levels (fixed by the trunk).
LEVEL_STRIDES: tuple[int, int, int] = (8, 16, 32)


@dataclass(frozen=True)
class SoloConfig(JsonConfig):
    """Architecture and target assignment of solo-nano (stored with the weights).

    Attributes:
        num_classes: Number of object classes ``C``.
        mask_channels: Mask-feature channels ``E`` (length of each dynamic kernel).
        width: Trunk base width (see :class:`export.models.nano.NanoTrunk`).
        imgsz: Square input size in pixels.
        grids: Grid size ``g_l`` of each level (strides 8, 16, 32).
        mask_stride: Stride of the mask features.
        scale_ranges: Per level, the ``[lo, hi]`` range of ``sqrt(box w * box h)``
            (input pixels) of the objects it is trained on (SOLO's overlapping ranges).
        sigma: Centre-region size as a fraction of the box (SOLO's 0.2).
        min_area: Per level, the mask area (in mask-grid cells) a candidate must
            exceed at decode time (SOLOv2's ``strides`` filter; manifest ``kernel.strides``).
        class_names: One name per class.
        act: Activation, one of ``relu``, ``silu``, ``hardswish``.
    """

    num_classes: int = 6
    mask_channels: int = 32
    width: int = 32
    imgsz: int = 320
    grids: tuple[int, ...] = (40, 20, 10)
    mask_stride: int = 4
    scale_ranges: tuple[tuple[float, float], ...] = ((0.0, 48.0), (24.0, 96.0), (64.0, 1.0e4))
    sigma: float = 0.2
    min_area: tuple[int, ...] = (4, 8, 16)
    class_names: tuple[str, ...] = CLASS_NAMES
    act: str = "relu"

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names must have num_classes={self.num_classes} entries, got {len(self.class_names)}"
            )
        n = len(LEVEL_STRIDES)
        for name in ("grids", "scale_ranges", "min_area"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} must have {n} entries (one per level), got {getattr(self, name)!r}")
        if self.imgsz % 32:
            raise ValueError(f"imgsz must be a multiple of 32, got {self.imgsz}")
        if self.mask_stride != 4:
            raise ValueError(f"solo-nano's mask features are at stride 4, got mask_stride={self.mask_stride}")

    @property
    def num_cells(self) -> int:
        """``S``: grid cells over all levels."""
        return sum(g * g for g in self.grids)



def coord_channels(h: int, w: int) -> torch.Tensor:
    """CoordConv channels: ``(1, 2, h, w)`` float32, x then y, each linear in [-1, 1]."""
    ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, h), torch.linspace(-1.0, 1.0, w), indexing="ij")
    return torch.stack([xs, ys]).unsqueeze(0)


def points_nms(heat: torch.Tensor) -> torch.Tensor:
    """SOLO's points NMS: zero every score that is not the maximum of its 2x2 window.

    Args:
        heat: ``(B, C, g, g)`` probabilities.

    Returns:
        Same shape; ``heat`` where it equals the max over the cell and its
        up/left neighbours' window, else 0.
    """
    hmax = F.max_pool2d(heat, 2, stride=1, padding=1)[:, :, :-1, :-1]
    return heat * (hmax == heat).to(heat.dtype)


class Tower(nn.Module):
    """Head tower shared by all levels: optional 1x1 input projection, two residual DW blocks, 1x1 out."""

    def __init__(self, cin: int, c: int, cout: int, act: str, bias_init: float = 0.0, std: float = 0.01):
        super().__init__()
        self.proj: nn.Module = ConvBNAct(cin, c, 1, act=act) if cin != c else nn.Identity()
        self.body = nn.Sequential(DWBlock(c, act), DWBlock(c, act))
        self.out = nn.Conv2d(c, cout, 1)
        nn.init.normal_(self.out.weight, std=std)
        nn.init.constant_(self.out.bias, bias_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(self.proj(x)))


class SoloNano(NanoTrunk):
    """solo-nano network; see the module docstring for the output contract."""

    def __init__(self, cfg: SoloConfig):
        super().__init__(cfg.width, cfg.act)
        self.cfg = cfg
        w, act, e = cfg.width, cfg.act, cfg.mask_channels
        neck = 3 * w
        prior = -math.log((1.0 - 0.01) / 0.01)
        self.cate_tower = Tower(neck, neck, cfg.num_classes, act, bias_init=prior)
        self.kernel_tower = Tower(neck + 2, neck, e, act)
        #: Per-level copies of the two towers, made by :meth:`fuse` (see there); ``None`` while shared.
        self.level_towers: nn.ModuleList | None = None
        mc = 2 * w
        self.mask_in = ConvBNAct(neck + 2, mc, 3, act=act)
        self.mask_lat4 = ConvBNAct(neck, mc, 1, act=act)
        self.mask_lat5 = ConvBNAct(neck, mc, 1, act=act)
        self.mask_lat2 = ConvBNAct(w, mc, 1, act=act)
        self.mask_out = nn.Sequential(
            ConvBNAct(mc, mc, 3, act=act),
            ConvBNAct(mc, mc, 3, groups=mc, act=act),
            nn.Conv2d(mc, e, 1),
        )
        s8 = cfg.imgsz // 8
        self.register_buffer("coord_mask", coord_channels(s8, s8), persistent=False)
        for i, g in enumerate(cfg.grids):
            self.register_buffer(f"coord_{i}", coord_channels(g, g), persistent=False)

    def raw(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Raw head outputs (training).

        Args:
            x: ``(B, 3, H, W)`` float32 RGB in [0, 1], ``H = W = cfg.imgsz``.

        Returns:
            ``(cate logits per level (B, C, g, g), kernels per level (B, E, g, g),
            mask features (B, E, H/4, W/4))``.
        """
        c2, p3, n4, n5 = self.features(x)
        b = x.shape[0]
        cates, kernels = [], []
        for i, (f, g) in enumerate(zip((p3, n4, n5), self.cfg.grids, strict=True)):
            if f.shape[-1] != g or f.shape[-2] != g:
                f = F.interpolate(f, size=(g, g), mode="bilinear", align_corners=False)
            cate_tower, kernel_tower = self.level_towers[i] if self.level_towers is not None else (
                self.cate_tower, self.kernel_tower)
            cates.append(cate_tower(f))
            coord = getattr(self, f"coord_{i}").expand(b, -1, -1, -1)
            kernels.append(kernel_tower(torch.cat([f, coord], 1)))
        m = self.mask_in(torch.cat([p3, self.coord_mask.expand(b, -1, -1, -1)], 1))
        m = m + self.up(self.mask_lat4(n4)) + self.up(self.up(self.mask_lat5(n5)))
        mask_features = self.mask_out(self.up(m) + self.mask_lat2(c2))
        return cates, kernels, mask_features

    def forward(self, x: torch.Tensor):
        """Raw maps in training mode (:meth:`raw`); the export contract in eval mode.

        Returns (eval):
            ``(cate (B, S, C) probabilities after points NMS, kernels (B, S, E),
            mask_features (B, E, H/4, W/4))``.
        """
        cates, kernels, mask_features = self.raw(x)
        if self.training:
            return cates, kernels, mask_features
        cate = torch.cat([_flat(points_nms(torch.sigmoid(c))) for c in cates], 1)
        kern = torch.cat([_flat(k) for k in kernels], 1)
        return cate, kern, mask_features

    def fuse(self) -> SoloNano:
        """Export-ready: folds every batch norm and gives each level its own copy of the towers.

        The copies compute exactly what the shared towers do; int8 quantization
        (PyTorch's pt2e, behind the TFLite int8 export) quantizes a module only
        at its first call and leaves the other levels' calls in float, and
        separate copies also get their own per-level activation scales.

        Returns:
            ``self``, in eval mode.
        """
        fuse_bn(self)
        if self.level_towers is None:
            self.level_towers = nn.ModuleList(
                nn.ModuleList([copy.deepcopy(self.cate_tower), copy.deepcopy(self.kernel_tower)])
                for _ in self.cfg.grids)
        return self


def _flat(t: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` -> ``(B, h*w, C)`` in row-major grid order."""
    return t.flatten(2).transpose(1, 2)


def build_solo(cfg: SoloConfig | None = None) -> SoloNano:
    """Builds an untrained solo-nano for ``cfg`` (default config when None)."""
    return SoloNano(cfg or SoloConfig())


def save_solo(model: SoloNano, path: str | Path, extra_metadata: dict[str, str] | None = None,
              half: bool = False) -> None:
    """Writes weights as safetensors with the config JSON in the metadata.

    Args:
        model: The (unfused) model.
        path: Destination ``.safetensors`` file.
        extra_metadata: Extra string metadata (e.g. training command).
        half: Store floating-point tensors as float16 (half the size; loaded back as float32).
    """
    from safetensors.torch import save_file

    meta = {"format": "pt", "edgeseg_model": "solo-nano", "config": model.cfg.to_json()}
    meta.update(extra_metadata or {})
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().contiguous()
        state[k] = v.half() if half and v.dtype == torch.float32 else v
    save_file(state, str(path), metadata=meta)


def load_solo(weights_path: str | Path) -> tuple[SoloNano, SoloConfig]:
    """Loads a model saved by :func:`save_solo` (no pickle), unfused, in eval mode, on CPU."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"solo-nano weights not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("edgeseg_model") != "solo-nano" or "config" not in meta:
        raise ValueError(f"{path} is not a solo-nano file written by save_solo (metadata {sorted(meta)})")
    cfg = SoloConfig.from_json(meta["config"])
    model = build_solo(cfg)
    state = {k: v.float() if v.dtype == torch.float16 else v for k, v in load_file(str(path)).items()}
    model.load_state_dict(state)
    model.eval()
    return model, cfg
