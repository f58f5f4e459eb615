#!/usr/bin/env bash
# edge-bench bootstrap for NVIDIA Jetson (JetPack 5 and 6).
#
#   JetPack 6 (L4T 36, Ubuntu 22.04, Python 3.10): venv with numpy + ai-edge-litert (LiteRT).
#   JetPack 5 (L4T 35, Ubuntu 20.04, Python 3.8):  venv with tflite-runtime + numpy<2.
#     Why: ai-edge-litert publishes wheels only for CPython 3.10 and newer, so there is nothing
#     to install under 3.8. tflite-runtime (2.14 is the last release) still has cp38 aarch64
#     wheels, but it is built against numpy 1.x: with numpy 2 it imports and then fails at
#     Interpreter(); hence numpy<2. Known limits of tflite-runtime: it rejects newer op
#     versions and has computed wrong results on ai-edge-quantizer models; edge-bench's
#     accuracy check flags such variants. For LiteRT on JetPack 5, install a Python >= 3.10
#     yourself and set EDGE_BENCH_PYTHON3=/path/to/python3.10 before running this script.
#   JetPack 4 (L4T 32, Ubuntu 18.04, Python 3.6) is not supported by the agent (needs 3.8+);
#     this script uses python3.8 from apt when it is installed.
#
# Venv at ~/edge-bench/venv (EDGE_BENCH_VENV to change). Idempotent. Needs passwordless sudo
# only when python3-venv is missing. The last line is `EDGE_BENCH_PYTHON=<venv python>`.
set -euo pipefail

VENV="${EDGE_BENCH_VENV:-$HOME/edge-bench/venv}"

log() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "need root for: $* (no passwordless sudo). Run it once by hand, then deploy again."
    fi
}

l4t="unknown"
if [ -r /etc/nv_tegra_release ]; then
    l4t="$(head -n 1 /etc/nv_tegra_release)"
    log "L4T: $l4t"
else
    log "warning: /etc/nv_tegra_release not found: is this a Jetson?"
fi
case "$l4t" in
    "# R32"*) jetpack=4 ;;
    "# R35"*) jetpack=5 ;;
    "# R36"*) jetpack=6 ;;
    *) jetpack=unknown ;;
esac
log "JetPack: $jetpack"

PY3="${EDGE_BENCH_PYTHON3:-python3}"
if [ "$jetpack" = 4 ] && [ -z "${EDGE_BENCH_PYTHON3:-}" ]; then
    if command -v python3.8 >/dev/null 2>&1; then
        PY3=python3.8
    else
        die "JetPack 4 ships Python 3.6; the agent needs >= 3.8: sudo apt-get install -y python3.8 python3.8-venv, then deploy again"
    fi
fi
command -v "$PY3" >/dev/null 2>&1 || die "$PY3 not found"
pyver="$("$PY3" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
pyminor="$("$PY3" -c 'import sys; print(sys.version_info[1])')"
log "python: $PY3 ($pyver)"

if ! "$PY3" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "installing python${pyver}-venv (apt)"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "python${pyver}-venv" python3-pip
fi

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "venv: $VENV (present)"
else
    log "venv: creating $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PY3" -m venv "$VENV"
fi
PY="$VENV/bin/python"

if [ "$pyminor" -ge 10 ]; then
    runtime=ai-edge-litert
    module=ai_edge_litert.interpreter
    packages=(numpy ai-edge-litert)
else
    runtime=tflite-runtime
    module=tflite_runtime.interpreter
    packages=("numpy<2" tflite-runtime)
    log "Python $pyver: ai-edge-litert has no wheels below 3.10; using tflite-runtime with numpy<2 (it does not run with numpy 2)"
fi

if "$PY" -c "import numpy, $module" >/dev/null 2>&1; then
    log "numpy + $runtime: already installed"
else
    log "pip install ${packages[*]}"
    "$PY" -m pip install --disable-pip-version-check -q --upgrade pip
    "$PY" -m pip install --disable-pip-version-check --progress-bar off "${packages[@]}"
fi

"$PY" - "$runtime" <<'PYEOF'
import platform
import sys
import numpy
from importlib.metadata import version
print("bootstrap: python %s, numpy %s, %s %s"
      % (platform.python_version(), numpy.__version__, sys.argv[1], version(sys.argv[1])))
PYEOF
for tool in nvpmodel tegrastats; do
    command -v "$tool" >/dev/null 2>&1 || log "note: $tool not found: results will lack its facts"
done
echo "EDGE_BENCH_PYTHON=$PY"
