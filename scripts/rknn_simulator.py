"""RKNN on x86_64: float ONNX bundles -> int8 ``.rknn`` bundles, run in rknn-toolkit2's simulator.

For each bundle: ``edgeseg convert``'s code (:func:`export.convert_native.convert_bundle`)
with format ``rknn`` (:mod:`export.formats.rknn`: outputs split, w8a8
calibration on the given images, target RK3588), then every measurement of
the parity report (mask / box mAP and their drop against the float ONNX
model in ONNX Runtime, output deviation, latency) runs the ``.rknn`` bundle
through edgeseg's own RKNN backend (:class:`edgeseg.backends.rknn.RknnBackend`,
the code a board runs) with :class:`SimulatorLite` in place of RKNNLite.

Why a stand-in, and why it is honest: RKNNLite exists for aarch64 boards
only, and rknn-toolkit2's simulator runs only a model built in the same
process (``init_runtime`` refuses a model loaded from a ``.rknn`` file).
:class:`SimulatorLite` has RKNNLite's interface (``load_rknn``,
``init_runtime(core_mask=)``, ``inference(inputs=, data_format=)``,
``release``, ``NPU_CORE_*``); its ``load_rknn`` accepts only a file whose
sha256 is that of a model this process built and wrote, and runs that very
model in the simulator. What it does not show: the NPU driver, the core
mask's effect, NPU timings (simulator latency is x86 emulation, not
RK3588 speed). Figures from this script are simulator figures.

Venv (rknn-toolkit2 2.5.0 pins numpy<=1.26.4, onnx<=1.18, protobuf<=4.25.4 and
torch<=2.4; it imports torch only for PyTorch models, so the local torch
2.13 CPU build stands in for 2.4 and no CUDA wheel is pulled)::

    make rknn-venv      # = .venv-rknn, see the Makefile for the exact pins

Run (from the repository root)::

    .venv-rknn/bin/python scripts/rknn_simulator.py edgeseg/assets/edgeseg-nano \\
        --calib data/synth/calib/images --val data/synth/val --out benchmarks/results/parity/rknn-nano
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgeseg.backends.rknn import RknnBackend  # noqa: E402
from edgeseg.bundle import Bundle  # noqa: E402
from edgeseg.device_config import BackendOptions, DeviceConfig  # noqa: E402
from edgeseg.filecheck import sha256_file  # noqa: E402
from edgeseg.native_options import RknnOptions  # noqa: E402
from edgeseg.segmenter import Segmenter  # noqa: E402

log = logging.getLogger("rknn_simulator")


class SimulatorLite:
    """RKNNLite's interface over rknn-toolkit2 models built in this process (see the module docstring).

    ``SimulatorLite.sessions`` maps the sha256 of each written ``.rknn`` to
    its built ``rknn.api.RKNN`` object (filled by :func:`export.formats.rknn.convert`).
    """

    NPU_CORE_AUTO, NPU_CORE_0, NPU_CORE_1, NPU_CORE_2 = 0, 1, 2, 4
    NPU_CORE_0_1, NPU_CORE_0_1_2, NPU_CORE_ALL = 3, 7, 0xFFFF
    sessions: dict = {}
    started: set = set()

    def __init__(self) -> None:
        self._rknn = None
        self.core_mask = None

    def load_rknn(self, path: str) -> int:
        self._rknn = self.sessions.get(sha256_file(path))
        if self._rknn is None:
            log.error("%s was not built in this process; the simulator runs only models built here", path)
            return -1
        return 0

    def init_runtime(self, core_mask: int = 0) -> int:
        self.core_mask = core_mask  # recorded only: the simulator has no cores to choose
        if id(self._rknn) in self.started:
            return 0
        status = self._rknn.init_runtime()  # target None: the simulator
        if status == 0:
            self.started.add(id(self._rknn))
        return status

    def inference(self, inputs, data_format=None):
        return self._rknn.inference(inputs=inputs, data_format=data_format)

    def release(self) -> None:
        self._rknn = None  # the build session stays for the next measurement; freed at exit


def open_bundle(bundle: Bundle, threads: int, core_mask: str = "0_1_2") -> Segmenter:
    """Segmenter for ``bundle``: RKNN through :class:`RknnBackend` + :class:`SimulatorLite`, else the runtime's."""
    config = DeviceConfig(backend=BackendOptions(threads=threads, rknn=RknnOptions(core_mask=core_mask)))
    if bundle.manifest.format != "rknn":
        return Segmenter.from_bundle(bundle, config)
    return Segmenter(bundle.manifest, RknnBackend(bundle, config.backend, runtime=SimulatorLite), config, bundle=bundle)


def main(argv: list[str] | None = None) -> int:
    from export.convert_native import convert_bundle

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="float ONNX bundle (exported or imported)")
    p.add_argument("--calib", required=True, help="calibration images")
    p.add_argument("--calib-images", type=int, default=300, help="calibration images used (default 300)")
    p.add_argument("--val", help="COCO-format val set for the mAP gate")
    p.add_argument("--val-limit", type=int, default=0, help="first N val images (0: all)")
    p.add_argument("--gate", type=float, default=1.0, help="largest mask mAP50-95 drop allowed, points")
    p.add_argument("--latency-runs", type=int, default=10, help="timed simulator inferences (default 10)")
    p.add_argument("--out", required=True, help="folder of the .rknn bundle and parity.md / parity.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = convert_bundle(
        args.bundle, "rknn", args.out, calib=args.calib, val=args.val, calib_images=args.calib_images,
        val_limit=args.val_limit, gate=args.gate, latency_runs=args.latency_runs, force=True,
        command=" ".join([".venv-rknn/bin/python", "scripts/rknn_simulator.py", *(argv or sys.argv[1:])]),
        open_bundle=open_bundle, format_options={"rknn": {"sessions": SimulatorLite.sessions}},
    )
    for row in report.formats:
        acc = "" if row.accuracy is None else f", mask mAP {row.accuracy.mask_map:.1f} (drop {row.mask_drop:.2f})"
        print(f"{row.name} (simulator): {row.bundle}, {row.size_bytes / 1e6:.2f} MB{acc}, "
              f"{'pass' if row.passed else 'FAIL'}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
