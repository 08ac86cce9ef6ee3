"""edgeseg-nano: a small prototype-family instance segmentation model.

Anchor-free, one anchor per grid cell on strides 8/16/32, YOLACT-style mask
prototypes at stride 4. Built only from ops that ONNX, onnxruntime int8 and
LiteRT handle well: conv, depthwise conv, batch norm (folded before export),
ReLU/SiLU/hardswish, nearest upsample, add, sigmoid, reshape/transpose and
concat of same-kind outputs across levels. The four outputs stay separate
tensors so that an int8 export gives each its own scale.

Output contract (``model(x)``, ``x``: ``(B, 3, H, W)`` float32 RGB in [0, 1],
letterboxed with pad value 114/255):

* ``boxes``  ``(B, A, 4)``: l, t, r, b distances from the anchor centre in units
  of the anchor's stride, in ``[0, reg_max]``.
* ``scores`` ``(B, A, C)``: class logits (apply sigmoid for probabilities).
* ``coeffs`` ``(B, A, K)``: mask coefficients.
* ``protos`` ``(B, K, H/proto_stride, W/proto_stride)``: prototype maps.

Anchors: for each stride ``s`` in ``strides``, grid rows ``i`` then columns
``j`` (row-major), centre ``((j + 0.5) * s, (i + 0.5) * s)`` in input pixels;
``A = sum((H // s) * (W // s))``. The box in input pixels is
``(cx - l*s, cy - t*s, cx + r*s, cy + b*s)``. Instance mask logits at proto
resolution are ``sum_k coeffs[k] * protos[k]``; the mask is ``logits > 0``
cropped to the box.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

CLASS_NAMES: tuple[str, ...] = ("box", "can", "bottle", "bolt", "ring", "blob")

_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "hardswish": nn.Hardswish}


def _tuples(value):
    """JSON lists back to the tuples the configs hold (nested too)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


class JsonConfig:
    """JSON round trip of a model config dataclass, stored in the weights' metadata."""

    def to_json(self) -> str:
        """Serializes the config as JSON (tuples become lists)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str):
        """Parses :meth:`to_json` output (lists become tuples); unknown keys raise ``ValueError``."""
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**{k: _tuples(v) for k, v in raw.items()})


@dataclass(frozen=True)
class NanoConfig(JsonConfig):
    """Architecture of edgeseg-nano (stored with the weights).

    Attributes:
        num_classes: Number of object classes ``C``.
        num_protos: Number of mask prototypes ``K``.
        width: Base channel width; stage widths are ``width * (1, 2, 4, 8)``.
        imgsz: Square training/export input size in pixels.
        strides: Detection strides, one output level each, ascending.
        proto_stride: Stride of the prototype maps.
        class_names: One name per class.
        reg_max: Largest box distance, in units of the anchor stride.
        act: Activation, one of ``relu``, ``silu``, ``hardswish``.
    """

    num_classes: int = 6
    num_protos: int = 32
    width: int = 32
    imgsz: int = 320
    strides: tuple[int, ...] = (8, 16, 32)
    proto_stride: int = 4
    class_names: tuple[str, ...] = CLASS_NAMES
    reg_max: float = 16.0
    act: str = "relu"

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names must have num_classes={self.num_classes} entries, "
                f"got {len(self.class_names)}"
            )
        if tuple(self.strides) != (8, 16, 32) or self.proto_stride != 4:
            raise ValueError(
                f"edgeseg-nano supports strides (8, 16, 32) and proto_stride 4, got "
                f"{self.strides} and {self.proto_stride}"
            )
        if self.act not in _ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(_ACTIVATIONS)}, got {self.act!r}")
        if self.imgsz % 32:
            raise ValueError(f"imgsz must be a multiple of 32, got {self.imgsz}")



class ConvBNAct(nn.Module):
    """Conv2d (no bias) + BatchNorm + activation; ``fuse()`` folds the BN."""

    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: str | None = "relu"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout)
        self.act: nn.Module = _ACTIVATIONS[act]() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Folds batch norm into the convolution (in place; eval-mode semantics)."""
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        bn, conv = self.bn, self.conv
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
            conv.padding, groups=conv.groups, bias=True,
        )
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv = fused
        self.bn = nn.Identity()


class DWBlock(nn.Module):
    """Residual depthwise-separable block: ``x + pw(dw(x))``, channels kept."""

    def __init__(self, c: int, act: str, k: int = 3):
        super().__init__()
        self.dw = ConvBNAct(c, c, k, groups=c, act=act)
        self.pw = ConvBNAct(c, c, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw(self.dw(x))


class Stage(nn.Module):
    """Stride-2 3x3 conv followed by ``depth`` residual depthwise blocks."""

    def __init__(self, cin: int, cout: int, depth: int, act: str):
        super().__init__()
        self.down = ConvBNAct(cin, cout, 3, 2, act=act)
        self.blocks = nn.Sequential(*[DWBlock(cout, act) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.down(x))


class Branch(nn.Module):
    """Head branch: one depthwise-separable conv, then a 1x1 conv to ``cout``."""

    def __init__(self, c: int, cout: int, act: str, bias_init: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(c, c, 3, groups=c, act=act), ConvBNAct(c, c, 1, act=act))
        self.out = nn.Conv2d(c, cout, 1)
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.constant_(self.out.bias, bias_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class NanoTrunk(nn.Module):
    """edgeseg-nano's backbone and FPN+PAN neck, shared with other heads (:mod:`export.models.solo_nano`).

    Args:
        width: Base channel width ``w``; stage widths are ``w * (1, 2, 4, 8)``, the neck ``3 * w``.
        act: Activation name (``relu``, ``silu``, ``hardswish``).
    """

    def __init__(self, width: int, act: str):
        super().__init__()
        w = width
        c2, c3, c4, c5 = w, 2 * w, 4 * w, 8 * w
        neck = 3 * w
        self.stem = nn.Sequential(ConvBNAct(3, w // 2, 3, 2, act=act), Stage(w // 2, c2, 1, act))
        self.stage3 = Stage(c2, c3, 2, act)
        self.stage4 = Stage(c3, c4, 3, act)
        self.stage5 = Stage(c4, c5, 2, act)
        self.lat5 = ConvBNAct(c5, neck, 1, act=act)
        self.lat4 = ConvBNAct(c4, neck, 1, act=act)
        self.lat3 = ConvBNAct(c3, neck, 1, act=act)
        self.smooth4 = DWBlock(neck, act)
        self.smooth3 = DWBlock(neck, act)
        # Bottom-up path so the stride-16/32 heads see fine detail too.
        self.down3 = ConvBNAct(neck, neck, 3, 2, act=act)
        self.down4 = ConvBNAct(neck, neck, 3, 2, act=act)
        self.pan4 = DWBlock(neck, act)
        self.pan5 = DWBlock(neck, act)
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Backbone + neck.

        Args:
            x: ``(B, 3, H, W)`` float32 RGB in [0, 1]; ``H`` and ``W`` multiples of 32.

        Returns:
            ``(c2 (B, w, H/4, W/4), p3 (B, 3w, H/8, W/8), n4 (B, 3w, H/16, W/16), n5 (B, 3w, H/32, W/32))``.
        """
        c2 = self.stem(x)
        c3 = self.stage3(c2)
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        p5 = self.lat5(c5)
        p4 = self.smooth4(self.lat4(c4) + self.up(p5))
        p3 = self.smooth3(self.lat3(c3) + self.up(p4))
        n4 = self.pan4(p4 + self.down3(p3))
        n5 = self.pan5(p5 + self.down4(n4))
        return c2, p3, n4, n5


class NanoSeg(NanoTrunk):
    """edgeseg-nano network; see the module docstring for the output contract."""

    def __init__(self, cfg: NanoConfig):
        super().__init__(cfg.width, cfg.act)
        self.cfg = cfg
        w, act = cfg.width, cfg.act
        c2, neck = w, 3 * w
        prior = -math.log((1.0 - 0.01) / 0.01)
        n = len(cfg.strides)
        self.head_stems = nn.ModuleList(DWBlock(neck, act) for _ in range(n))
        self.box_heads = nn.ModuleList(Branch(neck, 4, act) for _ in range(n))
        self.cls_heads = nn.ModuleList(Branch(neck, cfg.num_classes, act, prior) for _ in range(n))
        self.coef_heads = nn.ModuleList(Branch(neck, cfg.num_protos, act) for _ in range(n))
        # Prototypes: refine at stride 8, upsample, add stride-4 detail, refine.
        pc = 2 * w
        self.proto_in = ConvBNAct(neck, pc, 3, act=act)
        self.proto_lat = ConvBNAct(c2, pc, 1, act=act)
        self.proto = nn.Sequential(
            ConvBNAct(pc, pc, 3, act=act),
            ConvBNAct(pc, pc, 3, groups=pc, act=act),
            nn.Conv2d(pc, cfg.num_protos, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Runs the network.

        Args:
            x: ``(B, 3, H, W)`` float32 RGB in [0, 1]; ``H`` and ``W`` multiples of 32.

        Returns:
            ``(boxes (B, A, 4), scores (B, A, C), coeffs (B, A, K), protos (B, K, H/4, W/4))``.
        """
        c2, p3, n4, n5 = self.features(x)
        levels = [stem(f) for stem, f in zip(self.head_stems, (p3, n4, n5), strict=True)]
        boxes = torch.cat([_flat(h(f)) for h, f in zip(self.box_heads, levels, strict=True)], 1)
        scores = torch.cat([_flat(h(f)) for h, f in zip(self.cls_heads, levels, strict=True)], 1)
        coeffs = torch.cat([_flat(h(f)) for h, f in zip(self.coef_heads, levels, strict=True)], 1)
        protos = self.proto(self.up(self.proto_in(p3)) + self.proto_lat(c2))
        boxes = torch.sigmoid(boxes) * self.cfg.reg_max
        return boxes, scores, coeffs, protos

    def fuse(self) -> NanoSeg:
        """Folds every batch norm into its conv (export-ready); returns self in eval mode."""
        return fuse_bn(self)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` -> ``(B, h*w, C)`` in row-major grid order."""
    return t.flatten(2).transpose(1, 2)


def build_nano(cfg: NanoConfig | None = None) -> NanoSeg:
    """Builds an untrained edgeseg-nano for ``cfg`` (default config when None)."""
    return NanoSeg(cfg or NanoConfig())


def fuse_bn(model: nn.Module) -> nn.Module:
    """Puts ``model`` in eval mode and folds all ConvBNAct batch norms in place.

    Outputs are unchanged up to float rounding; the result has no BatchNorm
    layers, which is what the ONNX/LiteRT export expects.
    """
    model.eval()
    for m in model.modules():
        if isinstance(m, ConvBNAct):
            m.fuse()
    return model


def make_anchors(cfg: NanoConfig, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres and strides in the output order of the model.

    Args:
        cfg: Model config (strides).
        height: Input height in pixels.
        width: Input width in pixels.

    Returns:
        ``(centres (A, 2) float32 xy in input pixels, strides (A,) float32)``.
    """
    centres, strides = [], []
    for s in cfg.strides:
        gy, gx = torch.meshgrid(torch.arange(height // s), torch.arange(width // s), indexing="ij")
        xy = torch.stack([gx, gy], -1).reshape(-1, 2).float().add_(0.5).mul_(s)
        centres.append(xy)
        strides.append(torch.full((xy.shape[0],), float(s)))
    return torch.cat(centres), torch.cat(strides)


def save_nano(model: NanoSeg, path: str | Path, extra_metadata: dict[str, str] | None = None) -> None:
    """Writes weights as safetensors with the config JSON in the metadata.

    Args:
        model: The (unfused) model.
        path: Destination ``.safetensors`` file.
        extra_metadata: Extra string metadata (e.g. training command).
    """
    from safetensors.torch import save_file

    meta = {"format": "pt", "edgeseg_model": "edgeseg-nano", "config": model.cfg.to_json()}
    meta.update(extra_metadata or {})
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=meta)


def load_nano(weights_path: str | Path) -> tuple[NanoSeg, NanoConfig]:
    """Loads a model saved by :func:`save_nano` (no pickle), in eval mode.

    Args:
        weights_path: Path to an edgeseg-nano ``.safetensors`` file.

    Returns:
        ``(model, cfg)``; the model is unfused, in eval mode, on CPU.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"edgeseg-nano weights not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise ValueError(f"{path} has no 'config' metadata; expected a file written by save_nano")
    cfg = NanoConfig.from_json(meta["config"])
    model = build_nano(cfg)
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model, cfg
