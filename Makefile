# Two commands: `make train` (set up + run the embedded default) and `make test` (set up + tests).
SHELL := /bin/bash
VENV := .venv
# CPU-only machines use the checked-in config (both cores); with a GPU, accelerate's own config is used.
ACCEL_CONFIG := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 || echo --config_file configs/accelerate/cpu.yaml)
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup train test lint bench

setup:
	./setup.sh

train: setup
	$(VENV)/bin/accelerate launch $(ACCEL_CONFIG) scripts/finetune.py $(ARGS)

test: setup
	$(VENV)/bin/python -m pytest -q -m "not slow and not network and not gpu" $(ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup
	$(VENV)/bin/python benchmarks/feature_cache.py
	$(VENV)/bin/python benchmarks/loop_overhead.py
	$(VENV)/bin/python benchmarks/char_lm.py
	$(VENV)/bin/python benchmarks/style.py
