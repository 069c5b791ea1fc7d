#!/usr/bin/env bash
# Create .venv with the pinned CPU torch, this package and the real LIBERO stack.
# Usage: scripts/install.sh [VENV_DIR]   (idempotent; the Makefile runs it when inputs change)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0   # a CPU build; an unpinned torch pulls GBs of CUDA packages

# Headless MuJoCo rendering needs Mesa's EGL (software llvmpipe on CPU machines); LIBERO-Plus's env
# imports ImageMagick's MagickWand (through Wand) for its sensor-noise variants.
missing=()
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libmagickwand-6.q16-6; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} (Mesa EGL for headless rendering, MagickWand for LIBERO-Plus)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: ${missing[*]} missing and not root; install them for rendering (sudo apt-get install ${missing[*]})" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
# torch first: rlinf-libero imports it without declaring it, and anything unpinned would pull CUDA.
$PIP install "torch==$TORCH_VERSION"
$PIP install -c constraints.txt -e ".[libero,robust,dev,ray]"
$VENV/bin/python -m pip check
$VENV/bin/python -m vla_bench.envs.libero_setup
