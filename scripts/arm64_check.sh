#!/usr/bin/env bash
# arm64 check: the runtime's deploy package installs and runs on aarch64.
#
# On an x86_64 Debian/Ubuntu host, as root, under qemu-user emulation:
#   1. an arm64 Debian root (debootstrap minbase + python3, pip, gcc), cached in $ARM64_ROOT;
#   2. the edgeseg wheel built *inside* that root (its C decoder compiled for aarch64:
#      this is also how to build the runtime wheel for an arm64 board without one);
#   3. `edgeseg package` on the host: that wheel + the aarch64 wheels of the pinned runtime
#      dependencies (--wheels-for aarch64) + the default bundle + device_configs/arm64-cpu.yaml;
#   4. the package's own install.sh inside the root with the network cut (unshare -n): an
#      offline, hash-verified install into /opt/edgeseg;
#   5. the installed service launcher on a sample image instead of the camera.
#
# Usage:  sudo scripts/arm64_check.sh [OUT_DIR]      (default OUT_DIR: out/arm64_check)
# Env:    ARM64_ROOT  arm64 root to create or reuse (default /tmp/edgeseg-arm64-root; never commit it)
#         SUITE       Debian suite (default bookworm: Python 3.11)
#         PYTHON      host interpreter with edgeseg installed (default .venv/bin/python)
# Slow (minutes; emulation runs 5-20x slower than a board), so not part of `make test`.
# Prints what it ran and how long each phase took; the log is OUT_DIR/arm64_check.log.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "${1:-$REPO/out/arm64_check}" && cd "${1:-$REPO/out/arm64_check}" && pwd)
R=${ARM64_ROOT:-/tmp/edgeseg-arm64-root}
SUITE=${SUITE:-bookworm}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
LOG=$OUT/arm64_check.log
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1

phase() { PHASE=$1; PHASE_START=$SECONDS; echo; echo "== $1"; }
done_phase() { echo "-- $PHASE: $((SECONDS - PHASE_START)) s"; }
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
cleanup() { for m in dev/pts dev proc; do mountpoint -q "$R/$m" && umount -l "$R/$m"; done; return 0; }
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, chroot, binfmt)"; exit 1; }
[ "$(uname -m)" = x86_64 ] || echo "note: host is $(uname -m), not x86_64"

phase "host: qemu-user-static, debootstrap, binfmt_misc"
command -v debootstrap >/dev/null && [ -e /usr/bin/qemu-aarch64-static ] ||
    { apt-get update -q && apt-get install -y -q qemu-user-static debootstrap; }
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
done_phase

phase "arm64 root $R ($SUITE)"
[ -x "$R/bin/sh" ] || debootstrap --arch=arm64 --variant=minbase "$SUITE" "$R"
mount -t proc proc "$R/proc"
mount --bind /dev "$R/dev"
mount --bind /dev/pts "$R/dev/pts"
# No /sys: onnxruntime's cpuinfo, reading the x86 host's CPU topology as aarch64 under qemu,
# segfaults; without it, it only warns that it could not read the CPU features.
if [ ! -x "$R/usr/bin/python3" ] || [ ! -x "$R/usr/bin/gcc" ]; then
    cp /etc/resolv.conf "$R/etc/resolv.conf"
    in_root sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-pip python3-venv ca-certificates gcc libc6-dev python3-dev'
else
    echo "reusing it"
fi
# The package index may sit behind a TLS proxy whose CA only the host trusts.
cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$R/etc/resolv.conf"
in_root sh -c 'echo "uname -m: $(uname -m)"; python3 --version; gcc --version | head -1'
done_phase

phase "runtime wheel built inside the arm64 root (C decoder for aarch64)"
rm -rf "$R/src/edgeseg" && mkdir -p "$R/src/edgeseg"
git -C "$REPO" ls-files -z --cached --others --exclude-standard -- pyproject.toml setup.py README.md edgeseg |
    (cd "$REPO" && xargs -0 cp --parents -t "$R/src/edgeseg")
in_root sh -c 'cd /src/edgeseg && PIP_CERT=/etc/ssl/certs/ca-certificates.crt python3 -m pip wheel -q --no-deps -w /src/dist . 2>&1 | tail -5' || true
WHEEL=$(ls -t "$R"/src/dist/edgeseg-*aarch64*.whl 2>/dev/null | head -1)
[ -n "$WHEEL" ] || { echo "no aarch64 wheel was built"; exit 1; }
echo "built $(basename "$WHEEL")"
unzip -l "$WHEEL" | grep -E '_cdecode.*\.so' || echo "note: wheel has no compiled C decoder (numpy reference will be used)"
done_phase

phase "edgeseg package on the host (+ aarch64 dependency wheels)"
CONFIG=$OUT/arm64-check.yaml
# The board config, minus the robot link: this check has no serial port attached.
printf 'extends: %s\nname: arm64-check\nrobot: {url: ""}\n' "$REPO/device_configs/arm64-cpu.yaml" > "$CONFIG"
PY_TARGET=$(in_root python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
"$PYTHON" -m edgeseg package "$REPO/edgeseg/assets/edgeseg-nano" --device-config "$CONFIG" \
    --wheel "$WHEEL" --wheels-for aarch64 --python-version "$PY_TARGET" --out "$OUT/edgeseg-arm64.tar"
done_phase

phase "install inside the arm64 root, network cut (unshare -n)"
rm -rf "$R/tmp/pkg" "$R/opt/edgeseg" && mkdir -p "$R/tmp/pkg"
cp "$OUT/edgeseg-arm64.tar" "$R/tmp/pkg/"
unshare -n chroot "$R" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root sh -c \
    'cd /tmp/pkg && tar -xf edgeseg-arm64.tar install.sh installer && sh install.sh edgeseg-arm64.tar'
ls -l "$R/opt/edgeseg"
done_phase

phase "run the default bundle on a sample image (installed service launcher, aarch64)"
rm -rf "$R/tmp/samples" && mkdir -p "$R/tmp/samples"
if ls "$REPO"/edgeseg/assets/samples/*.jpg >/dev/null 2>&1; then
    cp "$(ls "$REPO"/edgeseg/assets/samples/*.jpg | head -1)" "$R/tmp/samples/"
else
    "$PYTHON" - "$R/tmp/samples/scene.png" <<'EOF'
import sys, cv2, numpy as np
img = np.full((360, 480, 3), 120, np.uint8)
cv2.rectangle(img, (40, 50), (160, 140), (30, 30, 200), -1)
cv2.circle(img, (300, 200), 60, (200, 150, 20), -1)
cv2.ellipse(img, (380, 90), (70, 25), 30, 0, 360, (20, 200, 60), -1)
cv2.imwrite(sys.argv[1], img)
EOF
fi
rm -rf "$R/tmp/arm64-out"
in_root sh -c 'PYTHONPATH=/opt/edgeseg/active/site python3 -c "import platform, edgeseg, numpy, onnxruntime, cv2; from edgeseg.decode import active_path; print(platform.machine(), \"edgeseg\", edgeseg.__version__, \"decoder\", active_path(), \"numpy\", numpy.__version__, \"onnxruntime\", onnxruntime.__version__, \"opencv\", cv2.__version__)"'
in_root env EDGESEG_SOURCE=/tmp/samples EDGESEG_HEALTH_FILE=/tmp/arm64-out/health.json \
    EDGESEG_ARGS="--out /tmp/arm64-out" /opt/edgeseg/active/bin/edgeseg-service
echo "health: $(cat "$R/tmp/arm64-out/health.json")"
cp "$R"/tmp/arm64-out/* "$OUT/"
done_phase

echo
echo "arm64 check passed in $SECONDS s; log, package, JSON and overlays in $OUT"
