"""Per-board runtime settings: bundle choice, backend, CPU pinning, camera, gripper, robot link.

A device config is a YAML (or JSON) file, one per board under
``device_configs/``. It is parsed into frozen dataclasses here with clear
errors for unknown keys, wrong types and impossible values, each naming the
key and the file. Defaults are declared once, on the dataclasses.

The config is plain data: it names the gripper, the calibration and the
robot link; :meth:`edgeseg.grasp.GraspPlanner.from_device_config` and
:func:`edgeseg.hooks.open_hook` build things from it.

A config may start from another with ``extends: other.yaml`` (a path relative
to the file that says it). The parent is loaded first (recursively) and the
child's keys are merged over it: mappings merge key by key, everything else
(numbers, strings, lists such as ``backend.providers``) is replaced whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from edgeseg import fromdict
from edgeseg.fromdict import Pattern, Range, Unique
from edgeseg.grasp.types import CameraIntrinsics, GripperSpec, TablePlane
from edgeseg.hook_urls import is_serial, scheme_of
from edgeseg.manifest import PRECISIONS, known_formats
from edgeseg.native_options import NcnnOptions, OpenVINOOptions, RknnOptions

GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
BAUD_RANGE = (50, 12_000_000)


class ConfigError(ValueError):
    """A device config that is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class ProviderSpec:
    """One ONNX Runtime execution provider and its provider options.

    Attributes:
        name: Provider name as ONNX Runtime spells it (``TensorrtExecutionProvider``).
        options: Provider options passed through to ONNX Runtime unchanged
            (e.g. ``trt_fp16_enable``, ``trt_engine_cache_path``).
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name.endswith("ExecutionProvider"):
            raise ConfigError(f"provider name must end in 'ExecutionProvider', got {self.name!r}")


@dataclass(frozen=True)
class BundlePreference:
    """Which bundle this board should run when several are available.

    Attributes:
        format: Manifest format (``onnx`` / ``tflite``).
        precision: Manifest precision (``fp32`` / ``fp16`` / ``int8`` / ``mixed``).
    """

    format: str = "onnx"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.format not in known_formats():
            raise ConfigError(f"bundle.format must be one of {list(known_formats())}, got {self.format!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"bundle.precision must be one of {list(PRECISIONS)}, got {self.precision!r}")


@dataclass(frozen=True)
class BackendOptions:
    """How to run the model on this board.

    Attributes:
        threads: Intra-op threads (0 lets the backend choose).
        cpu_affinity: CPU cores the process is pinned to (e.g. the big cores
            of a big.LITTLE SoC) by :func:`apply_cpu_affinity`; empty = no pinning.
        graph_optimization: ONNX Runtime graph optimization level.
        providers: ONNX Runtime execution providers in priority order; CPU is
            always appended as the last resort.
        xnnpack: Use the XNNPACK delegate for TFLite bundles.
        openvino: OpenVINO device and hint (``openvino`` bundles).
        ncnn: ncnn fp16 storage / arithmetic, Vulkan (``ncnn`` bundles).
        rknn: RKNN NPU core mask (``rknn`` bundles).
    """

    threads: Annotated[int, Range(0, 1024)] = 0
    cpu_affinity: tuple[Annotated[int, Range(0, 4095)], ...] = ()
    graph_optimization: str = "all"
    providers: tuple[ProviderSpec, ...] = (ProviderSpec("CPUExecutionProvider"),)
    xnnpack: bool = True
    openvino: OpenVINOOptions = field(default_factory=OpenVINOOptions)
    ncnn: NcnnOptions = field(default_factory=NcnnOptions)
    rknn: RknnOptions = field(default_factory=RknnOptions)

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ConfigError(f"backend.threads must be >= 0, got {self.threads}")
        if any(c < 0 for c in self.cpu_affinity) or len(set(self.cpu_affinity)) != len(self.cpu_affinity):
            raise ConfigError(f"backend.cpu_affinity must list distinct core ids >= 0, got {list(self.cpu_affinity)}")
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise ConfigError(
                f"backend.graph_optimization must be one of {list(GRAPH_OPTIMIZATION_LEVELS)}, "
                f"got {self.graph_optimization!r}"
            )
        if not self.providers:
            raise ConfigError("backend.providers must name at least one execution provider")


@dataclass(frozen=True)
class CameraOptions:
    """The board's camera, in the source syntax of ``edgeseg run``.

    Attributes:
        source: ``camera:N`` (V4L2 / USB index N) or a GStreamer pipeline
            ending in ``appsink`` (e.g. ``nvarguscamerasrc ! ... ! appsink``
            for a Jetson CSI camera).
        width: Requested frame width, pixels.
        height: Requested frame height, pixels.
        fps: Requested frame rate, frames per second.
    """

    source: str = "camera:0"
    width: Annotated[int, Range(1, 16384)] = 640
    height: Annotated[int, Range(1, 16384)] = 480
    fps: float = 30.0

    def __post_init__(self) -> None:
        if "!" in self.source:
            if "appsink" not in self.source.rsplit("!", 1)[-1]:
                raise ConfigError(f"camera.source GStreamer pipeline must end in appsink, got {self.source!r}")
        elif not (self.source.startswith("camera:") and self.source[7:].isdigit()):
            raise ConfigError(
                f"camera.source must be 'camera:N' (V4L2 index) or a GStreamer pipeline with '!', got {self.source!r}"
            )
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f"camera width and height must be > 0, got {self.width}x{self.height}")
        if not 0 < self.fps <= 1000:
            raise ConfigError(f"camera.fps must be in (0, 1000], got {self.fps}")


@dataclass(frozen=True)
class RobotLink:
    """Where grasps go: a hook URL (see :mod:`edgeseg.hooks`) and the serial baud rate.

    Attributes:
        url: Hook URL, e.g. ``serial:///dev/ttyTHS1`` or ``udp://10.0.0.2:9870``;
            empty = no robot attached.
        baud: Baud rate for serial links (ignored by other schemes).
    """

    url: str = ""
    baud: int = 115200

    def __post_init__(self) -> None:
        if not BAUD_RANGE[0] <= self.baud <= BAUD_RANGE[1]:
            raise ConfigError(f"robot.baud must be in [{BAUD_RANGE[0]}, {BAUD_RANGE[1]}], got {self.baud}")
        if self.url:
            if "baud=" in self.url:
                raise ConfigError(f"robot.url must not carry baud= (set robot.baud), got {self.url!r}")
            scheme_of(self.url)  # raises ValueError naming the known schemes

    @property
    def hook_url(self) -> str:
        """``url`` with the baud rate added for serial links (what :func:`edgeseg.hooks.open_hook` takes)."""
        if not self.url or not is_serial(self.url):
            return self.url
        return f"{self.url}{'&' if '?' in self.url else '?'}baud={self.baud}"


@dataclass(frozen=True)
class CellOptions:
    """Robot-cell interfaces ``edgeseg run`` offers when the command line names none.

    Attributes:
        serve: Pick server URL, e.g. ``tcp://0.0.0.0:7000`` (docs/pick_server.md); empty = none.
        modbus: Modbus TCP server URL, e.g. ``modbus://0.0.0.0:5020`` (docs/modbus.md); empty = none.
        mqtt: MQTT hook URL, e.g. ``mqtt://broker:1883/cell1?qos=1``; empty = none.
        trigger: Capture frames only when a robot or PLC triggers.
        reply_timeout_s: Longest a trigger waits for its frame before a TIMEOUT answer.
    """

    serve: str = ""
    modbus: str = ""
    mqtt: str = ""
    trigger: bool = False
    reply_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        for key, scheme in (("serve", "tcp://"), ("modbus", "modbus://"), ("mqtt", "mqtt://")):
            url = getattr(self, key)
            if url and not url.startswith(scheme):
                raise ConfigError(f"cell.{key} must start with {scheme}, got {url!r}")
        if not self.reply_timeout_s > 0:
            raise ConfigError(f"cell.reply_timeout_s must be > 0 seconds, got {self.reply_timeout_s}")

    @property
    def server_urls(self) -> list[str]:
        """The configured servers (pick server, Modbus), in that order."""
        return [u for u in (self.serve, self.modbus) if u]


@dataclass(frozen=True)
class Calibration:
    """Where the camera sits, for 3D grasps; every part optional.

    Attributes:
        intrinsics: Pinhole intrinsics (pixels) and OpenCV distortion.
        table: The support plane in the camera frame (metres), used when no
            depth image comes with the frame.
        hand_eye: 4x4 camera -> robot base transform, row-major (metres);
            adds robot-frame poses to the grasps.
        pixels_per_metre: Fixed image scale of an overhead camera, for a
            metric gripper without intrinsics.
    """

    intrinsics: CameraIntrinsics | None = None
    table: TablePlane | None = None
    hand_eye: tuple[tuple[float, float, float, float], ...] | None = None
    pixels_per_metre: float | None = None

    def __post_init__(self) -> None:
        if self.hand_eye is not None and len(self.hand_eye) != 4:
            raise ConfigError(f"calibration.hand_eye must be 4 rows of 4 numbers, got {len(self.hand_eye)} rows")
        if (self.table is not None or self.hand_eye is not None) and self.intrinsics is None:
            raise ConfigError("calibration.table and calibration.hand_eye need calibration.intrinsics")
        if self.pixels_per_metre is not None and not self.pixels_per_metre > 0:
            raise ConfigError(f"calibration.pixels_per_metre must be > 0, got {self.pixels_per_metre}")


@dataclass(frozen=True)
class TrustOptions:
    """Which signers this board trusts (see :mod:`edgeseg.signing`).

    Attributes:
        keys: Base64 ed25519 public keys (``edgeseg sign --generate-key`` prints
            one). When set, bundles and packages must be signed by one of them.
    """

    keys: Annotated[tuple[Annotated[str, Pattern("[A-Za-z0-9+/]{43}=")], ...], Unique()] = ()


@dataclass(frozen=True)
class RefineOptions:
    """Detector -> promptable model mask refinement (``edgeseg run --refine``).

    Attributes:
        bundle: A ``prompt`` family bundle (SAM-class); each frame's detections
            become its box prompts and its masks replace the detector's.
            Empty: no refinement.
    """

    bundle: str = ""


@dataclass(frozen=True)
class DeviceConfig:
    """Settings of one board.

    Attributes:
        name: Board name (e.g. ``jetson-orin-nano``); results are filed under it.
        description: One line for people (the hardware, what the config assumes).
        bundle: Preferred bundle format and precision.
        backend: Backend options.
        camera: Camera source.
        gripper: Gripper geometry (metres for a physical gripper).
        calibration: Camera intrinsics, table plane and hand-eye transform.
        robot: Robot link.
        cell: Pick server, Modbus and MQTT settings.
        trust: Signing keys bundles and packages must carry (none: no policy).
        refine: A promptable bundle that refines the detector's masks.
    """

    name: str = "default"
    description: str = ""
    bundle: BundlePreference = field(default_factory=BundlePreference)
    backend: BackendOptions = field(default_factory=BackendOptions)
    camera: CameraOptions = field(default_factory=CameraOptions)
    gripper: GripperSpec = field(default_factory=GripperSpec)
    calibration: Calibration = field(default_factory=Calibration)
    robot: RobotLink = field(default_factory=RobotLink)
    cell: CellOptions = field(default_factory=CellOptions)
    trust: TrustOptions = field(default_factory=TrustOptions)
    refine: RefineOptions = field(default_factory=RefineOptions)


def apply_cpu_affinity(options: BackendOptions) -> tuple[int, ...]:
    """Pins this process to ``options.cpu_affinity`` (Linux); returns the cores it now runs on.

    Raises:
        ValueError: A listed core does not exist on this machine.
    """
    if not options.cpu_affinity or not hasattr(os, "sched_setaffinity"):
        return tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else ()
    n = os.cpu_count() or 1
    bad = [c for c in options.cpu_affinity if c >= n]
    if bad:
        raise ValueError(f"backend.cpu_affinity lists cores {bad}, but this machine has cores 0..{n - 1}")
    os.sched_setaffinity(0, options.cpu_affinity)
    return tuple(sorted(os.sched_getaffinity(0)))


def from_dict(cls: type, data: Any, where: str = "config") -> Any:
    """Builds dataclass ``cls`` from a mapping with :func:`edgeseg.fromdict.from_dict`.

    Raises:
        ConfigError: naming the offending key path (``where.key``), what was
            expected and what was found.
    """
    return fromdict.from_dict(cls, data, where, error=ConfigError)


def _merge(base: dict, over: dict) -> dict:
    """``over`` merged onto ``base``: nested mappings key by key, anything else replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_raw(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """Reads ``path`` and, recursively, the files it ``extends``; returns the merged mapping."""
    import yaml  # runtime dependency; imported here to keep `import edgeseg` light

    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"device config extends itself in a cycle: {cycle}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        where = f" (extended by {chain[-1]})" if chain else ""
        raise ConfigError(f"device config {path} does not exist{where}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"device config {path} is not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"device config {path} is not UTF-8 text: {exc}") from None
    except RecursionError:
        raise ConfigError(f"device config {path} is nested too deeply to be a config") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping, got {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"{path}: config.extends must be a file path (str), got {parent!r}")
    return _merge(_read_raw(path.parent / parent, (*chain, path)), data)


def load_device_config(path: str | os.PathLike) -> DeviceConfig:
    """Reads and validates a device config file (YAML or JSON), resolving ``extends``.

    Args:
        path: The board's config file.

    Returns:
        The validated, fully merged config.

    Raises:
        ConfigError: naming the file and the key that is wrong.
    """
    p = Path(path)
    data = _read_raw(p)
    try:
        return from_dict(DeviceConfig, data, "config")
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
