# Two commands set everything up on a fresh machine:
#   make demo   installs the lean runtime into .venv and segments the sample images
#   make test   installs everything (export extra included) and runs the whole suite
# Both are idempotent: stamps skip installs that are already done.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
SRC    := pyproject.toml $(wildcard setup.py) $(wildcard edgeseg/_c/*.c edgeseg/_c/*.h)

.PHONY: demo test install install-dev lint clean arm64-check mosquitto fuzz rknn-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

$(VENV)/.runtime: $(PY) $(SRC)
	$(PIP) install -q -e .
	touch $@

# torch and torchvision first, pinned: these builds lie on local disk (CUDA builds that run on
# the CPU; torchvision exports Mask R-CNN); letting an extra resolve "torch" alone could pull
# other CUDA wheels. One dev venv: litert-torch and the export tests pass on torch 2.14.1.
$(VENV)/.dev: $(PY) $(SRC)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[export,tflite,dev,cell,openvino,ncnn,convert]'
	touch $@ $(VENV)/.runtime

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

demo: $(VENV)/.runtime
	$(VENV)/bin/edgeseg run edgeseg/assets/samples --device-config device_configs/x86-cpu.yaml --grasps --out out/demo

# RKNN's converter and x86 simulator (tests/test_rknn_simulator.py, scripts/rknn_simulator.py): rknn-toolkit2
# pins numpy<=1.26.4, onnx<=1.18 and torch<=2.4, so it gets its own venv. It imports torch only for PyTorch
# models: the local torch 2.13 CPU build stands in (no CUDA wheel is pulled); the rest pinned to what works
# with numpy 1.26; setuptools < 81 for the pkg_resources it imports.
RKNN_VENV := .venv-rknn
$(RKNN_VENV)/.done:
	$(PYTHON) -m venv $(RKNN_VENV)
	$(RKNN_VENV)/bin/python -m pip --disable-pip-version-check install -q --upgrade pip "setuptools<81" wheel
	$(RKNN_VENV)/bin/python -m pip --disable-pip-version-check install -q torch==2.13.0 numpy==1.26.4 onnx==1.18.0 \
		protobuf==4.25.4 onnxruntime==1.26.0 opencv-python-headless==4.11.0.86 psutil ruamel.yaml scipy tqdm \
		fast-histogram pyyaml cryptography pyserial pycocotools
	$(RKNN_VENV)/bin/python -m pip --disable-pip-version-check install -q --no-deps rknn-toolkit2==2.5.0
	touch $@
rknn-venv: $(RKNN_VENV)/.done

# The MQTT tests start Debian's mosquitto broker on a loopback port.
mosquitto:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || \
		(apt-get update -q && apt-get install -y -q --no-install-recommends mosquitto)

test: $(VENV)/.dev mosquitto rknn-venv
	$(VENV)/bin/ruff check edgeseg export tests benchmarks
	$(PY) -m pytest -q

# Longer fuzzing than the 2 s per target of `make test` (README, "Reliability"); FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 300
fuzz: $(VENV)/.dev
	$(PY) scripts/fuzz.py --seconds $(FUZZ_SECONDS) --out benchmarks/results/fuzz.json

# Slow (minutes), needs root and the package index: the deploy package on an
# emulated arm64 Debian root (see README, "Deploying to a board").
arm64-check: $(VENV)/.runtime
	scripts/arm64_check.sh out/arm64_check

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check edgeseg export tests benchmarks

clean:
	rm -rf out build *.egg-info
