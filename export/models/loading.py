"""Resolve the exporter's MODEL argument to ``(torch module, ModelSpec)``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import torch

from export.spec import ModelSpec, spec_for_nano, spec_for_solo

#: ``edgeseg_model`` metadata of a weights file -> (module, loader, spec builder) of the project's own models.
OWN_MODELS: dict[str, tuple[str, str, object]] = {
    "edgeseg-nano": ("export.models.nano", "load_nano", spec_for_nano),
    "solo-nano": ("export.models.solo_nano", "load_solo", spec_for_solo),
}


def load_own(path: Path) -> tuple[torch.nn.Module, ModelSpec]:
    """Loads one of the project's own models (:data:`OWN_MODELS`) from its safetensors file, export-ready
    (its ``fuse()``: BN folded, eval mode)."""
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        kind = (f.metadata() or {}).get("edgeseg_model", "edgeseg-nano")
    if kind not in OWN_MODELS:
        raise ValueError(f"{path}: unknown edgeseg_model {kind!r}; expected one of {sorted(OWN_MODELS)}")
    module, loader, make_spec = OWN_MODELS[kind]
    model, cfg = getattr(importlib.import_module(module), loader)(path)
    return model.fuse(), make_spec(cfg, source=str(path))


def _import(module_name: str):
    """Imports ``module_name``; modules in the current directory work too (the ``edgeseg`` script
    does not put it on ``sys.path``, ``python -m`` does)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] or str(Path.cwd()) in sys.path:
            raise
        sys.path.insert(0, str(Path.cwd()))
        return importlib.import_module(module_name)


def load_model(ref: str, *, weights: str | Path | None = None, class_names: tuple[str, ...] | None = None,
               name: str = "maskrcnn") -> tuple[torch.nn.Module, ModelSpec]:
    """Loads the model named by ``ref``, BN folded and in eval mode.

    Args:
        ref: A ``.safetensors`` file written by ``export.models.nano.save_nano``
            or ``export.models.solo_nano.save_solo``,
            or ``package.module:function`` whose call returns
            ``(torch.nn.Module, ModelSpec)`` (how users export their own models)
            or a bare torchvision ``MaskRCNN`` (:mod:`export.torchvision_rcnn`).
        weights: State dict file loaded into a bare torchvision model.
        class_names: Class names of a bare torchvision model (background excluded).
        name: Model name of a bare torchvision model.
    """
    path = Path(ref)
    if path.suffix == ".safetensors":
        return load_own(path)
    if ":" in ref and not path.exists():
        module_name, func_name = ref.split(":", 1)
        module = _import(module_name)
        if not hasattr(module, func_name):
            raise ValueError(f"module {module_name!r} has no function {func_name!r} (from MODEL {ref!r})")
        result = getattr(module, func_name)()
        from export.torchvision_rcnn import is_maskrcnn, wrap

        if is_maskrcnn(result):
            return wrap(result, weights=weights, class_names=class_names, name=name)
        if weights is not None:
            raise ValueError(f"--weights applies to a function returning a torchvision MaskRCNN; {ref} returned "
                             f"{type(result).__name__}")
        model, spec = result if isinstance(result, tuple) and len(result) == 2 else (result, None)
        if not isinstance(model, torch.nn.Module) or not isinstance(spec, ModelSpec):
            raise TypeError(
                f"{ref} must return (torch.nn.Module, export.spec.ModelSpec), got "
                f"({type(model).__name__}, {type(spec).__name__})"
            )
        return model.eval(), spec
    raise ValueError(f"model {ref!r} is neither a .safetensors file nor 'module:function'")
