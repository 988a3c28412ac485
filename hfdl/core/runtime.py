"""What a run records about where it ran: peak memory while training, library versions and hardware."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import torch
from accelerate import Accelerator

logger = logging.getLogger(__name__)


class PeakMemory:
    """Peak resident memory (MB) of this process while the block runs (sampled), plus CUDA peak if any."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self._proc, self._interval = psutil.Process(), interval
        self.peak_rss_mb = 0.0
        self.peak_cuda_mb: float | None = None

    def _sample(self):
        while not self._stop.wait(self._interval):
            self.peak_rss_mb = max(self.peak_rss_mb, self._proc.memory_info().rss / 2**20)

    def __enter__(self):
        self.peak_rss_mb = self._proc.memory_info().rss / 2**20
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_rss_mb = max(self.peak_rss_mb, self._proc.memory_info().rss / 2**20)
        if torch.cuda.is_available():
            self.peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20


def environment_info(accelerator: Accelerator | None = None) -> dict:
    """Library versions and hardware of this run, for run_config.json and model cards."""
    import platform

    import accelerate
    import datasets
    import huggingface_hub
    import timm
    import tokenizers
    import torchvision
    import transformers

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "huggingface_hub": huggingface_hub.__version__,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "num_processes": accelerator.num_processes if accelerator is not None else 1,
        "device": str(accelerator.device) if accelerator is not None else "cpu",
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
