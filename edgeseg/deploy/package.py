"""Builds a deploy package: everything one board needs, in one verifiable tar.

``edgeseg package BUNDLE --device-config X --out pkg.tar`` gathers:

* ``bundle/``: the verified bundle's files, as they are;
* ``device_config.yaml``: the board's config, resolved (``extends`` merged,
  defaults filled in) and validated by loading it back;
* ``wheels/edgeseg-*.whl``: the runtime built from the source tree with
  ``pip wheel --no-deps`` (compiled parts for *this* machine's architecture;
  for another one, build the wheel there and pass ``--wheel``), and, with
  ``wheels_for``, the runtime dependencies' wheels for that architecture so
  the board installs offline;
* ``requirements.txt``: the runtime dependencies only (from the wheel's
  metadata, plus the extra the bundle's format needs), pinned to the versions
  installed here;
* ``install.sh``, ``installer/`` (the standard-library installer),
  ``edgeseg.service`` (systemd unit) and ``bin/edgeseg-service`` (its
  launcher, with the camera and robot hook from the config);
* ``package.json``: the sha256, size and mode of every other member.

Nothing here needs torch or the ``export`` package.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeseg import filecheck, fromdict, signing
from edgeseg.bundle import MANIFEST_NAME, load_bundle
from edgeseg.deploy import install, rollback, verify
from edgeseg.deploy.verify import PACKAGE_MANIFEST, SCHEMA, PackageError, parse_package_manifest
from edgeseg.filecheck import sha256_bytes, sha256_file
from edgeseg.signing import SIGNATURE_NAME

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
#: The pip extra a bundle format needs on the board, beyond the base runtime.
#: (``rknn`` is not here: rknn-toolkit-lite2 is an aarch64-only wheel that a workstation cannot pin; install it
#: on the board, README "Board-native backends".)
FORMAT_EXTRAS: dict[str, tuple[str, ...]] = {"tflite": ("tflite",), "openvino": ("openvino",), "ncnn": ("ncnn",)}
#: manylinux level of dependency wheels fetched for a board (glibc >= 2.28:
#: Debian 10+, Ubuntu 20.04+ / JetPack 5+, Raspberry Pi OS bullseye+).
MANYLINUX = "manylinux_2_28"
WHEEL_ARCHES = ("aarch64", "x86_64", "armv7l")
_INSTALLER_STUB = '"""Installer-only stub: the deploy modules without the runtime (which needs numpy)."""\n'


@dataclass(frozen=True)
class PackageSummary:
    """What :func:`build_package` wrote.

    Attributes:
        path: The package file.
        id: Version id (bundle name + content hash).
        size: Package size, bytes.
        members: Member paths, ``package.json`` first.
        wheel_tag: The runtime wheel's ``python-abi-platform`` tag.
        requirements: The pinned runtime requirements.
    """

    path: Path
    id: str
    size: int
    members: tuple[str, ...]
    wheel_tag: str
    requirements: tuple[str, ...]


def source_tree() -> Path | None:
    """The source checkout this edgeseg runs from (editable install), or None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "edgeseg").is_dir() else None


def build_wheel(source: Path, out_dir: Path, *, python: str = sys.executable) -> Path:
    """Builds the edgeseg wheel from ``source`` with ``pip wheel --no-deps``.

    Build isolation is off, so the build uses this environment's setuptools
    (and numpy headers for the C extension) and needs no network.
    """
    if not (source / "pyproject.toml").is_file():
        raise PackageError(f"{source} has no pyproject.toml; pass a built wheel with --wheel instead")
    cmd = [python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
           "--wheel-dir", str(out_dir), str(source)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wheels = sorted(out_dir.glob("edgeseg-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise PackageError(f"building the runtime wheel failed ({' '.join(cmd)}):\n{proc.stdout[-3000:]}")
    return wheels[0]


def wheel_tag(wheel: Path) -> str:
    """``python-abi-platform`` from a wheel file name (``py3-none-any``, ``cp311-cp311-linux_aarch64``)."""
    parts = wheel.name[: -len(".whl")].split("-")
    if not wheel.name.endswith(".whl") or len(parts) < 5:
        raise PackageError(f"{wheel.name} is not a wheel file name (name-version-python-abi-platform.whl)")
    return "-".join(parts[-3:])


def runtime_requirements(wheel: Path, extras: tuple[str, ...] = ()) -> list[str]:
    """The wheel's runtime dependencies (plus ``extras``), pinned to the versions installed here.

    Args:
        wheel: The edgeseg wheel; its ``Requires-Dist`` metadata is the source.
        extras: Extras whose dependencies the board also needs (e.g. ``tflite``).

    Returns:
        ``name==version`` lines (with any environment marker kept), sorted.

    Raises:
        PackageError: a dependency is not installed here, so it cannot be pinned.
    """
    with zipfile.ZipFile(wheel) as zf:
        meta = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta is None:
            raise PackageError(f"{wheel.name} has no .dist-info/METADATA")
        lines = [ln.split(":", 1)[1].strip() for ln in zf.read(meta).decode().splitlines() if ln.startswith("Requires-Dist:")]
    pins: dict[str, str] = {}
    for line in lines:
        spec, _, marker = (s.strip() for s in line.partition(";"))
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if extra and extra.group(1) not in extras:
            continue
        marker = "" if extra else marker
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?", spec).group(0)
        base = name.split("[")[0]
        try:
            version = importlib.metadata.version(base)
        except importlib.metadata.PackageNotFoundError:
            raise PackageError(
                f"cannot pin runtime dependency {base!r}: it is not installed in this environment "
                f"({sys.prefix}); install it here first"
            ) from None
        pins[base.lower()] = f"{name}=={version}" + (f" ; {marker}" if marker else "")
    return sorted(pins.values())


def _plain(value):
    """Dataclass fields as YAML-safe builtins (tuples become lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def resolved_config(path: Path, workdir: Path):
    """Loads and validates a device config; writes it fully resolved and checks it loads back equal.

    Returns:
        ``(config, resolved_file)``.
    """
    import yaml

    from edgeseg.device_config import load_device_config

    config = load_device_config(path)
    text = f"# {path.name} resolved by `edgeseg package` (extends merged, defaults filled in)\n"
    text += yaml.safe_dump(_plain(dataclasses.asdict(config)), sort_keys=False)
    out = workdir / "device_config.yaml"
    out.write_text(text, encoding="utf-8")
    if load_device_config(out) != config:
        raise PackageError(f"device config {path} does not survive a YAML round trip; please report this")
    return config, out


def _run_has_option(option: str) -> bool:
    """Whether this edgeseg's ``run`` command accepts ``option`` (``--hook`` arrives with the hooks work)."""
    import argparse

    from edgeseg.cli import run

    sub = argparse.ArgumentParser().add_subparsers()
    run.register(sub)
    return option in sub.choices["run"]._option_string_actions


def launcher_script(config, package_id: str) -> tuple[str, dict]:
    """The service launcher for ``config``; returns ``(script, service info)``.

    Reads ``config.camera.source`` and ``config.robot.hook_url`` when the
    config schema has them; falls back to ``camera:0`` and no hook otherwise.
    """
    source = getattr(getattr(config, "camera", None), "source", "camera:0")
    robot = getattr(config, "robot", None)
    hooks = [robot.hook_url] if robot is not None and getattr(robot, "url", "") else []
    if hooks and not _run_has_option("--hook"):
        raise PackageError(f"the device config sends grasps to {hooks[0]!r}, but this edgeseg's `run` has no --hook option")
    text = (TEMPLATES / "edgeseg-service.sh").read_text(encoding="utf-8")
    text = text.replace("@ID@", package_id).replace("@SOURCE_DOC@", source.replace("\n", " "))
    text = text.replace("@SOURCE@", shlex.quote(source))
    text = text.replace("@HOOK_ARGS@", "".join(f" \\\n    --hook {shlex.quote(h)}" for h in hooks))
    return text, {"source": source, "hooks": hooks}


def download_dependency_wheels(requirements: Path, dest: Path, arch: str, python_version: str) -> list[Path]:
    """``pip download``s binary wheels of the requirements for ``arch`` (needs the package index)."""
    if arch not in WHEEL_ARCHES:
        raise PackageError(f"wheels_for must be one of {list(WHEEL_ARCHES)}, got {arch!r}")
    nodot = python_version.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
           "--platform", f"{MANYLINUX}_{arch}", "--python-version", python_version, "--implementation", "cp",
           "--abi", f"cp{nodot}", "--dest", str(dest), "-r", str(requirements)]
    log.info("downloading dependency wheels for %s / Python %s", arch, python_version)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise PackageError(f"pip download failed ({' '.join(cmd)}):\n{proc.stdout[-3000:]}")
    return sorted(dest.glob("*.whl"))


def _file_entry(path: Path, mode: int) -> dict:
    return {"sha256": sha256_file(path), "size": path.stat().st_size, "mode": f"{mode:04o}"}


def build_package(
    bundle: str | Path,
    device_config: str | Path,
    out: str | Path,
    *,
    wheel: str | Path | None = None,
    source: str | Path | None = None,
    wheels_for: str | None = None,
    python_version: str | None = None,
) -> PackageSummary:
    """Writes the deploy package ``out`` (an uncompressed tar).

    Args:
        bundle: Bundle directory or packed ``.edgeseg`` file (verified first).
        device_config: The board's config YAML (validated, then resolved).
        out: Package file to write (replaced atomically).
        wheel: A prebuilt edgeseg wheel (e.g. built on an aarch64 machine);
            default: build one from ``source``.
        source: Source tree to build the wheel from; default: this checkout.
        wheels_for: Also bundle the dependencies' wheels for this machine
            architecture (``aarch64`` ...), so the board installs offline.
        python_version: The board's Python (``3.11``) for ``wheels_for``;
            default: this interpreter's.

    Raises:
        BundleError, ConfigError, PackageError: naming what is wrong.
    """
    loaded = load_bundle(bundle)
    with tempfile.TemporaryDirectory(prefix="edgeseg-package-") as tmp:
        work = Path(tmp)
        members: dict[str, tuple[Path, int]] = {}
        signed = [SIGNATURE_NAME] if loaded.signature is not None else []
        for name in [MANIFEST_NAME, *signed, *loaded.manifest.files]:
            members[f"bundle/{name}"] = (loaded.root / name, 0o644)
        config, config_file = resolved_config(Path(device_config), work)
        wanted = getattr(config, "bundle", None)
        got = (loaded.manifest.format, loaded.manifest.precision)
        if wanted is not None and (wanted.format, wanted.precision) != got:
            log.warning("device config %s prefers %s/%s bundles; packaging a %s/%s one as asked",
                        config.name, wanted.format, wanted.precision, *got)
        members["device_config.yaml"] = (config_file, 0o644)

        (work / "wheels").mkdir()
        if wheel is None:
            src = Path(source) if source is not None else source_tree()
            if src is None:
                raise PackageError("edgeseg is not running from a source tree; pass the runtime wheel with --wheel")
            wheel_path = build_wheel(src, work / "wheels")
        else:
            wheel_path = work / "wheels" / Path(wheel).name
            wheel_tag(Path(wheel))
            shutil.copyfile(wheel, wheel_path)
        tag = wheel_tag(wheel_path)
        if wheels_for and not (tag.endswith("-any") or tag.endswith(wheels_for)):
            raise PackageError(
                f"the runtime wheel {wheel_path.name} is built for another architecture than {wheels_for}; "
                f"build it on a {wheels_for} machine (see scripts/arm64_check.sh) and pass --wheel"
            )
        requirements = runtime_requirements(wheel_path, FORMAT_EXTRAS.get(loaded.manifest.format, ()))
        (work / "requirements.txt").write_text(
            "# Runtime dependencies of edgeseg, pinned to the versions tested on the build machine\n"
            + "\n".join(requirements) + "\n", encoding="utf-8")
        members["requirements.txt"] = (work / "requirements.txt", 0o644)
        python_version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
        if wheels_for:
            download_dependency_wheels(work / "requirements.txt", work / "wheels", wheels_for, python_version)
        for w in sorted((work / "wheels").glob("*.whl")):
            members[f"wheels/{w.name}"] = (w, 0o644)

        members["install.sh"] = (TEMPLATES / "install.sh", 0o755)
        members["edgeseg.service"] = (TEMPLATES / "edgeseg.service", 0o644)
        (work / "installer_stub.py").write_text(_INSTALLER_STUB, encoding="utf-8")
        members["installer/edgeseg/__init__.py"] = (work / "installer_stub.py", 0o644)
        members["installer/edgeseg/filecheck.py"] = (Path(filecheck.__file__), 0o644)
        for module in (Path(verify.__file__).with_name("__init__.py"), Path(verify.__file__), Path(install.__file__),
                       Path(rollback.__file__)):
            members[f"installer/edgeseg/deploy/{module.name}"] = (module, 0o644)
        for module in (Path(signing.__file__), Path(fromdict.__file__)):  # package signatures (standard library +
            members[f"installer/edgeseg/{module.name}"] = (module, 0o644)  # cryptography when one is checked)

        files = {name: _file_entry(p, mode) for name, (p, mode) in members.items()}
        content = sha256_bytes(json.dumps(files, sort_keys=True).encode())[:12]
        package_id = f"{loaded.manifest.name}-{content}"
        script, service = launcher_script(config, package_id)
        (work / "edgeseg-service").write_text(script, encoding="utf-8")
        members["bin/edgeseg-service"] = (work / "edgeseg-service", 0o755)
        files["bin/edgeseg-service"] = _file_entry(work / "edgeseg-service", 0o755)

        from edgeseg import __version__

        manifest = {
            "schema": SCHEMA,
            "id": package_id,
            "wheel": f"wheels/{wheel_path.name}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "edgeseg_version": __version__,
            "bundle": {"name": loaded.manifest.name, "format": loaded.manifest.format,
                       "precision": loaded.manifest.precision, "license": loaded.manifest.license,
                       "source": loaded.manifest.source,
                       "signed_by": loaded.signature.key_id if loaded.signature else None},
            "device": {"name": config.name, "config_file": Path(device_config).name},
            "service": service,
            "build": {"machine": platform.machine(), "python": platform.python_version(), "wheel_tag": tag,
                      "wheelhouse": wheels_for, "python_for_wheelhouse": python_version if wheels_for else None},
            "requirements": requirements,
            "files": dict(sorted(files.items())),
        }
        parse_package_manifest(manifest)  # the installer's own check, before anything ships
        (work / PACKAGE_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        out = Path(out)
        _write_tar(out, [(PACKAGE_MANIFEST, work / PACKAGE_MANIFEST, 0o644)]
                   + [(n, p, mode) for n, (p, mode) in sorted(members.items())])
    return PackageSummary(
        path=out, id=package_id, size=out.stat().st_size, members=(PACKAGE_MANIFEST, *sorted(members)),
        wheel_tag=tag, requirements=tuple(requirements),
    )


def _write_tar(out: Path, entries: list[tuple[str, Path, int]]) -> None:
    """Writes an uncompressed tar of regular files owned by root, atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    now = int(time.time())
    with tarfile.open(tmp, "w:", format=tarfile.PAX_FORMAT) as tar:
        for name, path, mode in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = path.stat().st_size, mode, now
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(path, "rb") as f:
                tar.addfile(info, f)
    tmp.replace(out)
