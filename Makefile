# Two commands: `make train` (set up + run the embedded default) and `make test` (set up + tests).
# Versions: ./setup.sh installs exactly what requirements.lock pins; `make check-lock` checks .venv against it
# (`make test` runs that check first, so CI does too). `make lock` refreshes the lock (see below).
SHELL := /bin/bash
VENV := .venv
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup train test lint bench lock check-lock

setup:
	./setup.sh

# Plain `accelerate launch`, as users type it: on a CPU-only machine setup.sh writes accelerate's own default
# config (use_cpu, one process) when there is none, so the launcher gives the run every core; a GPU machine
# or a user's own `accelerate config` is used as is.
train: setup
	$(VENV)/bin/accelerate launch -q scripts/finetune.py $(ARGS)

test: setup
	$(VENV)/bin/python tools/check_lock.py
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile -m "not slow and not network and not gpu" $(ARGS)

# Fails (exit 1, one line per package) when .venv differs from requirements.lock; extra packages are not checked.
# No set-up first: it checks the .venv as it is (./setup.sh installs the locked versions).
check-lock:
	$(VENV)/bin/python tools/check_lock.py

# Refresh the lock: upgrade .venv (pip --upgrade --upgrade-strategy eager, no constraints) to the newest versions
# pyproject.toml and setup.sh allow, then `pip freeze` it into requirements.lock. `make lock FRESH=1` rebuilds
# .venv from scratch first, so packages no longer required drop out of the lock.
# Then run `make test`: commit the new requirements.lock only once the tests pass with it.
lock:
	$(if $(FRESH),rm -rf $(VENV))
	./setup.sh --lock

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup
	$(VENV)/bin/python benchmarks/feature_cache.py
	$(VENV)/bin/python benchmarks/loop_overhead.py
	$(VENV)/bin/python benchmarks/char_lm.py
	$(VENV)/bin/python benchmarks/char_lm_vs_transformer.py
	$(VENV)/bin/python benchmarks/style.py
	$(VENV)/bin/python benchmarks/detection.py
	$(VENV)/bin/python benchmarks/forecasting.py
	$(VENV)/bin/python benchmarks/text_classification.py
	$(VENV)/bin/python benchmarks/spaces.py
