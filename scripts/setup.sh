#!/usr/bin/env bash
# One-shot, idempotent set-up on a Debian machine as root: system packages, a virtual
# environment in .venv (sharing already-installed site packages), torch 2.13.0 (CPU build)
# first, then this project in editable mode with its extras.
#   scripts/setup.sh          what the main job needs
#   scripts/setup.sh --test   also the test tools
set -euo pipefail
cd "$(dirname "$0")/.."

extras="flash,tflite"
[ "${1:-}" = "--test" ] && extras="$extras,test"

apt_pkgs="gcc make gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm espeak-ng libsndfile1"
python3 -c "import ensurepip, venv" 2>/dev/null || apt_pkgs="$apt_pkgs python3-venv python3-pip"
missing=""
for p in $apt_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "setup: installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv --system-site-packages .venv
fi
py=.venv/bin/python
# torch first: 2.13.0 is the CPU build on this machine's disk; a bare "torch" would pull CUDA.
$py -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
    || $py -m pip install -q torch==2.13.0
$py -m pip install -q -e ".[$extras]"
echo "setup: ready (.venv/bin/kws-export)"
