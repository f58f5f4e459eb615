#!/usr/bin/env bash
# edge-bench bootstrap for Raspberry Pi OS 64-bit (Debian 12 bookworm, aarch64).
#
# Makes a Python venv at ~/edge-bench/venv with numpy and ai-edge-litert (LiteRT: the TFLite
# runtime the agent prefers; aarch64 wheels exist for Python 3.10-3.13, bookworm has 3.11).
# Idempotent: a second run changes nothing and only reports versions.
#
#   bash bootstrap_pi.sh            (edge-bench deploy --bootstrap runs it for you)
#   EDGE_BENCH_VENV=/opt/eb/venv bash bootstrap_pi.sh
#
# Needs sudo WITHOUT a password prompt only when python3-venv is missing (apt-get install);
# otherwise it runs as the login user. The last line is `EDGE_BENCH_PYTHON=<venv python>`:
# put that path as `python:` for the device in devices.yaml.
set -euo pipefail

VENV="${EDGE_BENCH_VENV:-$HOME/edge-bench/venv}"

log() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

arch="$(uname -m)"
if [ "$arch" != "aarch64" ]; then
    log "warning: this is $arch, not aarch64 (64-bit Raspberry Pi OS); LiteRT ships no 32-bit ARM wheels"
fi
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    log "os: ${PRETTY_NAME:-unknown}"
fi
command -v python3 >/dev/null 2>&1 || die "python3 is missing: sudo apt-get install -y python3"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "need root for: $* (no passwordless sudo). Run it once by hand, then deploy again."
    fi
}

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "installing python3-venv (apt)"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv python3-pip
else
    log "python3-venv: present"
fi

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "venv: $VENV (present)"
else
    log "venv: creating $VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
fi

PY="$VENV/bin/python"
if "$PY" -c 'import numpy, ai_edge_litert.interpreter' >/dev/null 2>&1; then
    log "numpy + ai-edge-litert: already installed"
else
    log "pip install numpy ai-edge-litert"
    "$PY" -m pip install --disable-pip-version-check -q --upgrade pip
    "$PY" -m pip install --disable-pip-version-check --progress-bar off numpy ai-edge-litert
fi

"$PY" - <<'PYEOF'
import platform
import numpy
from importlib.metadata import version
print("bootstrap: python %s, numpy %s, ai-edge-litert %s"
      % (platform.python_version(), numpy.__version__, version("ai-edge-litert")))
PYEOF
if ! command -v vcgencmd >/dev/null 2>&1; then
    log "note: vcgencmd not found: results will carry no Pi throttling flags (it is in raspi-utils / libraspberrypi-bin)"
fi
echo "EDGE_BENCH_PYTHON=$PY"
