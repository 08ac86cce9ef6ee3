#!/usr/bin/env bash
# Tracking benchmark in a throwaway venv: the `trackers` library needs opencv-python
# (it would replace the runtime's opencv-python-headless) and motmetrics pulls pandas,
# so neither goes into .venv. Writes benchmarks/results/tracking.json.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-trackers
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q trackers==2.6.1 motmetrics==1.4.0 pyyaml onnxruntime pyserial
fi
PYTHONPATH=. "$VENV/bin/python" benchmarks/track_bench.py "$@"
