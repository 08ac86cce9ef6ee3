"""PyTorch model definitions for export (workstation side only)."""

from export.models.nano import NanoConfig, build_nano, fuse_bn, load_nano, save_nano

__all__ = ["NanoConfig", "build_nano", "fuse_bn", "load_nano", "save_nano"]
