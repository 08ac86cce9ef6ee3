#!/bin/sh
# Installs the edgeseg deploy package this script came in, on the board, as root:
#
#   tar -xf edgeseg-pkg.tar install.sh installer    # the installer only (standard-library Python)
#   sudo sh install.sh edgeseg-pkg.tar               # verify every file, install, switch, restart the service
#
# Needs python3 and pip (Debian: apt-get install python3-pip). Environment:
#   ROOT    install into this directory tree instead of / (image builders); the service is enabled, not started
#   PYTHON  interpreter that installs and later runs the runtime (default python3)
#   DEPS    bundled | index | system | none (default: bundled if the package carries wheels/, else index)
#   PREFIX  install prefix under ROOT (default opt/edgeseg)
set -eu
PKG=${1:?usage: sh install.sh PACKAGE.tar}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${ROOT:-/}
PYTHON=${PYTHON:-python3}
PYTHONPATH="$HERE/installer" "$PYTHON" -m edgeseg.deploy.install "$PKG" --root "$ROOT" --python "$PYTHON" \
    ${DEPS:+--deps "$DEPS"} ${PREFIX:+--prefix "$PREFIX"}
if ! command -v systemctl >/dev/null 2>&1; then
    echo "no systemctl here: start /${PREFIX:-opt/edgeseg}/active/bin/edgeseg-service yourself"
elif [ "$ROOT" = / ]; then
    systemctl daemon-reload
    systemctl enable edgeseg.service
    systemctl restart edgeseg.service
    echo "edgeseg.service (re)started. Logs: journalctl -u edgeseg -f   Health: cat /run/edgeseg/health.json"
else
    systemctl --root "$ROOT" enable edgeseg.service
fi
