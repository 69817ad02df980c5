#!/usr/bin/env bash
# Idempotent set-up: virtual environment, torch (CPU build where there is no CUDA GPU), the
# package with its dependencies, and a software Vulkan driver only when SAPIEN finds no device.
# Re-running it after a successful run does nothing but a few quick checks.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
STAMP="$VENV/.rl_post_installed"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

# Reinstall only when the dependency list changed since the last successful install.
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    # torch first: a bare torch requirement with nothing installed pulls the CUDA build.
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
      echo "[setup] NVIDIA GPU found: installing the default (CUDA) torch build"
      "$VPY" -m pip install -q "torch==$TORCH_VERSION" || "$VPY" -m pip install -q torch
    else
      echo "[setup] no CUDA GPU: installing the CPU torch build $TORCH_VERSION"
      "$VPY" -m pip install -q "torch==$TORCH_VERSION"
    fi
  fi
  echo "[setup] installing rl_post and its dependencies"
  "$VPY" -m pip install -q -e ".[dev]"
  echo "$want" > "$STAMP"
fi

# SAPIEN needs a Vulkan device even without rendering; install Mesa's lavapipe only when none is found.
if ! "$VPY" -c "import sapien; sapien.render.RenderSystem()" >/dev/null 2>&1; then
  echo "[setup] SAPIEN found no Vulkan device: installing Mesa lavapipe from bookworm-backports"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  SRC=/etc/apt/sources.list.d/debian.sources
  if [ -f "$SRC" ] && ! grep -q "bookworm-backports" "$SRC"; then
    $SUDO sed -i '0,/^Suites: bookworm bookworm-updates$/s//Suites: bookworm bookworm-updates bookworm-backports/' "$SRC"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  if ! "$VPY" -c "import sapien; sapien.render.RenderSystem()" >/dev/null 2>&1; then
    echo "[setup] ERROR: SAPIEN still finds no Vulkan device after installing lavapipe." >&2
    echo "[setup] Check 'vulkaninfo --summary' and the platform notes in the README." >&2
    exit 1
  fi
fi
echo "[setup] ready: $VENV"
