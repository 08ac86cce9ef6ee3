"""Fuzz targets and a small mutation fuzzer: manifest parser, packed-bundle reader, protocol decoders.

Each target takes one input (bytes) and must either accept it or refuse it
with the error its API documents (``BundleError``, ``ProtocolError``); any
other exception, a leaked extraction directory, invalid JSON from the
protocol's JSON writer, or (for the C header) a non-zero exit or a
sanitizer report is a *crash*. :func:`fuzz` mutates seed inputs (bit flips,
interesting bytes, inserts, deletes, duplicated ranges, truncation,
splices, and for the manifest JSON-aware value swaps) for a time budget and
reports trials and crashes, keeping the first crashing inputs.

``make test`` runs every target for a few seconds (tests/test_fuzz.py); a
longer run is ``.venv/bin/python scripts/fuzz.py --seconds 300`` (README,
"Reliability"). Hand-written: the coverage-guided fuzzers (libFuzzer, atheris)
need clang, which this build machine and the boards do not have; a seeded
mutation fuzzer with structure-aware seeds finds the input-handling faults
that matter here (the ones issue 18 lists) and is reproducible by its seed.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NANO = ROOT / "edgeseg" / "assets" / "edgeseg-nano"
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x30, 0x2C, 0x5B, 0x7B, 0x22)
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]


@dataclass
class FuzzReport:
    """Outcome of one target's run."""

    target: str
    seed: int
    seconds: float = 0.0
    trials: int = 0
    accepted: int = 0
    crashes: int = 0
    sanitizer_reports: int = 0
    examples: list[str] = field(default_factory=list)  # first crashing inputs and what went wrong

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "examples"} | {"examples": self.examples[:3]}


# --------------------------------------------------------------------------- mutation


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    """One to four random byte-level edits of ``data``."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.choice(INTERESTING)
        elif op == 2:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 3 and b:
            del b[pos : pos + rng.randint(1, 64)]
        elif op == 4 and b:
            start = rng.randrange(len(b))
            b[pos:pos] = b[start : start + rng.randint(1, 256)]
        elif op == 5:
            del b[rng.randrange(len(b) + 1) :]
        elif op == 6:
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            b[pos:] = other[cut:]
        elif op == 7 and len(b) >= 4:
            i = rng.randrange(len(b) - 3)
            b[i : i + 4] = rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x80\x7f", b"\x00\x00\xc0\x7f", b"\0\0\0\0"])
    return bytes(b)


_WILD = [None, True, False, 0, -1, 1.5, 2**63, -(2**31) - 1, 1e308, float("nan"), float("inf"), "", "x" * 300,
         [], {}, [1, 2, 3], {"a": 1}, [[[[[]]]]], "NCHW", "onnx", 255, 256, 4097]


def mutate_json(rng: random.Random, data: bytes) -> bytes:
    """Replaces, deletes or adds one value somewhere in a JSON document (structure-aware)."""
    doc = json.loads(data)
    node, path = doc, []
    while isinstance(node, (dict, list)) and node and rng.random() < 0.75:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    if not path:
        return json.dumps(rng.choice(_WILD)).encode()
    parent, key = path[-1]
    op = rng.randrange(3)
    if op == 0 and isinstance(parent, dict):
        del parent[key]
    elif op == 1 and isinstance(parent, dict):
        parent[rng.choice(["extra", "shape", "quant", str(rng.random())])] = copy.deepcopy(rng.choice(_WILD))
    else:
        parent[key] = copy.deepcopy(rng.choice(_WILD))
    return json.dumps(doc).encode()


def fuzz(name: str, target: Callable[[bytes], None], seeds: list[bytes], seconds: float, *, seed: int = 0,
         json_aware: bool = False, batch: Callable[[list[bytes]], list[str]] | None = None) -> FuzzReport:
    """Mutates ``seeds`` into ``target`` for ``seconds``; counts trials and crashes.

    Args:
        name: Target name for the report.
        target: Called with each input; raising :class:`Crash` or any
            unexpected exception counts as a crash.
        seeds: Valid inputs to start from (they are run first).
        seconds: Time budget.
        seed: Random seed (the run is reproducible from it).
        json_aware: Also apply :func:`mutate_json` to the seeds.
        batch: Instead of ``target``, run a list of inputs at once and return
            one problem description per crash (the C harness: one process per batch).
    """
    rng = random.Random(seed)
    report = FuzzReport(name, seed)
    start = time.perf_counter()
    pending = list(seeds)

    def one_input() -> bytes:
        if pending:
            return pending.pop()
        base = rng.choice(seeds)
        if json_aware and rng.random() < 0.5:
            try:
                return mutate_json(rng, base)
            except ValueError:
                pass
        return mutate(rng, base, seeds)

    while time.perf_counter() - start < seconds:
        if batch is not None:
            inputs = [one_input() for _ in range(200)]
            problems = batch(inputs)
            report.trials += len(inputs)
            report.crashes += len(problems)
            report.sanitizer_reports += sum("Sanitizer" in p or "runtime error" in p for p in problems)
            report.examples += problems[:3]
            continue
        data = one_input()
        report.trials += 1
        try:
            if target(data) is not False:
                report.accepted += 1
        except Crash as exc:
            report.crashes += 1
            report.examples.append(f"{exc} <- {data[:200]!r}")
        except Exception as exc:  # noqa: BLE001 - anything undocumented is what we look for
            report.crashes += 1
            report.examples.append(f"{type(exc).__name__}: {exc} <- {data[:200]!r}")
    report.seconds = round(time.perf_counter() - start, 2)
    return report


class Crash(Exception):
    """A target's own finding (a leaked directory, invalid JSON)."""


# --------------------------------------------------------------------------- targets


def manifest_target(data: bytes) -> bool:
    from edgeseg.bundle import BundleError, manifest_from_bytes

    try:
        manifest_from_bytes(data, "fuzz/manifest.json")
    except BundleError:
        return False
    return True


def manifest_seeds() -> list[bytes]:
    return [(NANO / "manifest.json").read_bytes()]


def small_packed_bundle() -> bytes:
    """A packed bundle with the nano manifest and a tiny stand-in model (a valid protobuf, hashes right)."""
    manifest = json.loads((NANO / "manifest.json").read_text())
    model = b"\x08\x07\x12\x07edgeseg" * 8  # ModelProto ir_version, producer_name
    manifest["files"] = {"model.onnx": {"sha256": hashlib.sha256(model).hexdigest(), "size": len(model)}}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for name, blob in (("manifest.json", json.dumps(manifest).encode()), ("model.onnx", model)):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


class PackedTarget:
    """Writes each input as a ``.edgeseg`` file and loads it; nothing may be left in its private temp dir."""

    def __init__(self, workdir: Path) -> None:
        self.dir = Path(workdir)
        self.tmp = self.dir / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def __call__(self, data: bytes) -> bool:
        from edgeseg.bundle import BundleError, load_bundle

        path = self.dir / "fuzz.edgeseg"
        path.write_bytes(data)
        before, tempfile.tempdir = tempfile.tempdir, str(self.tmp)
        try:
            bundle = load_bundle(path)
            ok = True
            if bundle.workdir is not None:
                bundle.workdir.cleanup()
        except BundleError:
            ok = False
        finally:
            tempfile.tempdir = before
        left = list(self.tmp.iterdir())
        if left:
            for p in left:
                shutil.rmtree(p, ignore_errors=True)
            raise Crash(f"extraction left {[p.name for p in left]}")
        return ok


def wire_frame(data: bytes) -> bytes:
    """Protocol input -> wire bytes. First byte even: the rest is a raw frame body, given a valid CRC
    and COBS framing (so mutations reach the record parser, not only the CRC check); odd: wire bytes as they are."""
    from edgeseg import protocol

    if not data or data[0] & 1:
        return data[1:]
    raw = data[1:-2] if len(data) > 3 else data[1:]
    return protocol.cobs_encode(raw + protocol.CRC.pack(protocol.crc16(raw))) + b"\x00"


def protocol_target(data: bytes) -> bool:
    from edgeseg import protocol

    data = wire_frame(data)
    dec = protocol.StreamDecoder()
    msgs = dec.feed(data) + dec.feed(b"\x00")
    for msg in msgs:
        text = protocol.message_to_json(msg)

        def refuse(name: str) -> None:
            raise Crash(f"message_to_json wrote {name}")

        json.loads(text, parse_constant=refuse)
    try:
        protocol.decode(data)
    except protocol.ProtocolError:
        pass
    return bool(msgs)


def protocol_seeds() -> list[bytes]:
    from protocol_examples import examples

    from edgeseg import protocol

    raws = [protocol.encode_raw(msg) for _, msg in examples().values()]
    return [b"\x00" + r for r in raws] + [b"\x01" + protocol.cobs_encode(r) + b"\x00" for r in raws]


def build_c_decoder(out_dir: Path) -> Path | None:
    """contrib/test_decoder.c built with AddressSanitizer + UBSan (``None`` without gcc)."""
    if shutil.which("gcc") is None:
        return None
    exe = Path(out_dir) / "test_decoder_fuzz"
    subprocess.run(["gcc", "-std=c99", "-O1", "-I", str(ROOT / "contrib"), *SANITIZE,
                    str(ROOT / "contrib" / "test_decoder.c"), "-o", str(exe), "-lm"],
                   check=True, timeout=180, capture_output=True)
    return exe


def c_batch(exe: Path) -> Callable[[list[bytes]], list[str]]:
    """Feeds a batch of inputs (each ends in a delimiter) to one sanitized decoder process."""

    def run(inputs: list[bytes]) -> list[str]:
        stream = b"".join(wire_frame(x) + b"\x00" for x in inputs)
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", UBSAN_OPTIONS="halt_on_error=1")
        proc = subprocess.run([str(exe)], input=stream, capture_output=True, timeout=120, env=env)
        err = proc.stderr.decode(errors="replace")
        if proc.returncode != 0 or "runtime error" in err or "Sanitizer" in err:
            return [f"exit {proc.returncode}: {err[-1500:]}"]
        return []

    return run


def run_all(seconds: float, workdir: Path, *, seed: int = 0) -> list[FuzzReport]:
    """Every target for ``seconds`` each (the C header only where gcc is installed)."""
    reports = [
        fuzz("manifest parser", manifest_target, manifest_seeds(), seconds, seed=seed, json_aware=True),
        fuzz("packed-bundle reader", PackedTarget(workdir / "packed"), [small_packed_bundle()], seconds, seed=seed),
        fuzz("protocol decoder (Python)", protocol_target, protocol_seeds(), seconds, seed=seed),
    ]
    exe = build_c_decoder(workdir)
    if exe is not None:
        reports.append(fuzz("protocol decoder (C header, ASan+UBSan)", lambda _: None, protocol_seeds(), seconds,
                            seed=seed, batch=c_batch(exe)))
    return reports
