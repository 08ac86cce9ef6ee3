"""Resolve the exporter's MODEL argument to ``(torch module, ModelSpec)``."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from export.spec import ModelSpec, spec_for_nano


def load_model(ref: str) -> tuple[torch.nn.Module, ModelSpec]:
    """Loads the model named by ``ref``, BN folded and in eval mode.

    Args:
        ref: A ``.safetensors`` file written by ``export.models.nano.save_nano``,
            or ``package.module:function`` whose call returns
            ``(torch.nn.Module, ModelSpec)`` (how users export their own models).
    """
    from export.models.nano import fuse_bn, load_nano

    path = Path(ref)
    if path.suffix == ".safetensors":
        model, cfg = load_nano(path)
        return fuse_bn(model), spec_for_nano(cfg, source=str(path))
    if ":" in ref and not path.exists():
        module_name, func_name = ref.split(":", 1)
        factory = getattr(importlib.import_module(module_name), func_name)
        model, spec = factory()
        if not isinstance(model, torch.nn.Module) or not isinstance(spec, ModelSpec):
            raise TypeError(
                f"{ref} must return (torch.nn.Module, export.spec.ModelSpec), got "
                f"({type(model).__name__}, {type(spec).__name__})"
            )
        return model.eval(), spec
    raise ValueError(f"model {ref!r} is neither a .safetensors file nor 'module:function'")
