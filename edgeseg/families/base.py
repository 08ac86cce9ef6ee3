"""What a model family plug-in is, and the checks every family shares.

A family owns everything that depends on what a model's outputs *mean*:

* its output roles (:class:`Role`: required or optional, allowed layouts,
  which extra keys an output of that role may carry),
* cross-checks of a manifest beyond the roles (:meth:`Family.check`),
* its decode options and their defaults (:meth:`Family.options`),
* the conversion of raw backend outputs into its canonical tensors and the
  numpy reference + C pair that decodes them into the one
  :class:`~edgeseg.result.Result` type (:meth:`Family.decoder`).

The manifest, the :class:`~edgeseg.decode.Decoder`, bench and the export and
import sides ask :data:`edgeseg.families.FAMILIES`; nothing else branches on a
family name. A new family is a subclass registered under its name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edgeseg.manifest import Manifest, ManifestError, OutputSpec

if TYPE_CHECKING:  # pragma: no cover
    from edgeseg.decode.options import DecodeOptions
    from edgeseg.preprocess import LetterboxInfo
    from edgeseg.result import Result

#: Layouts of per-anchor (or per-detection) outputs: batch, rows, channels, or channels first.
ROW_LAYOUTS = ("BAC", "BCA")
#: Layouts of map outputs (prototypes, per-ROI mask logits).
MAP_LAYOUTS = ("NCHW", "NHWC")

#: Output keys whose meaning depends on the role (allowed per role by :attr:`Role.keys`).
ROLE_KEYS = ("encoding", "activation", "normalized", "sampling")

#: ``decoder(raw outputs by name, letterbox, options) -> Result``.
FrameDecoder = Callable[[dict[str, np.ndarray], "LetterboxInfo", "DecodeOptions"], "Result"]


@dataclass(frozen=True)
class Role:
    """One output role of a family.

    Attributes:
        layouts: Allowed ``layout`` values of an output with this role.
        required: Whether every manifest of the family must have it.
        keys: Extra output keys this role may set (e.g. ``encoding`` for
            boxes); each maps to its allowed values.
    """

    layouts: tuple[str, ...] = ROW_LAYOUTS
    required: bool = True
    keys: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


class Family:
    """Base class of model family plug-ins (see the module docstring).

    Subclasses set :attr:`name` and :attr:`roles` and implement
    :meth:`options` and :meth:`decoder`; :meth:`check` may add cross-checks.
    """

    name: ClassVar[str] = ""
    roles: ClassVar[Mapping[str, Role]] = {}
    #: Bundles of the family hold two models (manifest ``prompt``: an encoder and a prompt decoder).
    two_models: ClassVar[bool] = False
    #: Optional manifest blocks this family reads (e.g. ``("kernel",)``); any other family refuses them.
    blocks: ClassVar[tuple[str, ...]] = ()

    def check(self, manifest: Manifest) -> None:
        """Validates the manifest's outputs against :attr:`roles`.

        Raises:
            ManifestError: naming the output and what was expected.
        """
        check_roles(self, manifest.outputs)

    def map_roles(self) -> frozenset[str]:
        """Roles that are maps (``NCHW``/``NHWC``: prototypes, ROI masks); the rest are per-row tensors."""
        return frozenset(r for r, rule in self.roles.items() if set(rule.layouts) <= set(MAP_LAYOUTS))

    def check_output_shapes(self, manifest: Manifest, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Raises ValueError unless outputs of these shapes (tensor name -> shape) fit the manifest.

        Used before any conversion (export) and on import; the default checks nothing.
        """

    def options(self, manifest: Manifest) -> DecodeOptions:
        """The decode options with the manifest's defaults."""
        raise NotImplementedError

    def comparable_outputs(self, raw: dict[str, np.ndarray], manifest: Manifest) -> dict[str, np.ndarray]:
        """Role -> float32 output in a canonical layout, for element-wise comparison of two exports of a model
        (the export parity report). Default: none (outputs whose size varies with the detections, as the
        ``roi`` family's after in-graph NMS, cannot be compared element by element)."""
        return {}

    def decoder(self, manifest: Manifest, path: str) -> FrameDecoder:
        """A per-bundle frame decoder; ``path`` is ``"c"`` or ``"numpy"``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<family {self.name!r}>"


def check_roles(family: Family, outputs: tuple[OutputSpec, ...]) -> None:
    """Every required role once, optional roles at most once, nothing unknown; layouts and keys allowed."""
    roles = [o.role for o in outputs]
    required = sorted(r for r, spec in family.roles.items() if spec.required)
    optional = sorted(r for r, spec in family.roles.items() if not spec.required)
    unknown = sorted(set(roles) - set(family.roles))
    missing = sorted(set(required) - set(roles))
    dupes = sorted({r for r in roles if roles.count(r) > 1})
    if unknown or missing or dupes:
        extra = f" (optional: {optional})" if optional else ""
        raise ManifestError(
            f"manifest outputs have roles {sorted(roles)}, but family {family.name!r} needs {required}{extra}, "
            f"each once" + (f"; unknown {unknown}" if unknown else "") + (f"; missing {missing}" if missing else "")
            + (f"; repeated {dupes}" if dupes else "")
        )
    for o in outputs:
        rule = family.roles[o.role]
        where = f"output {o.name!r} (role {o.role})"
        if o.layout not in rule.layouts:
            raise ManifestError(f"manifest {where} layout must be one of {list(rule.layouts)}, got {o.layout!r}")
        for key in ROLE_KEYS:
            value = getattr(o, key)
            if key in rule.keys:
                if (value if value is not None else rule.keys[key][0]) not in rule.keys[key]:
                    raise ManifestError(f"manifest {where} {key} must be one of {list(rule.keys[key])}, got {value!r}")
            elif value is not None:
                raise ManifestError(f"manifest {where} does not take {key!r} (got {value!r})")


def channel_count(spec: OutputSpec) -> int | None:
    """Channels an output's role spans when it is a range of a shared tensor, else ``None``."""
    return None if spec.channels is None else spec.channels[1] - spec.channels[0]
