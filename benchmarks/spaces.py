"""Every Space's start-up and main endpoint, measured the way the tests launch them (spaces_harness: `python app.py`
in the app's folder, offline). Targets (issue 15): an app serves in < 15 s on 2 cores and answers its main endpoint
in < 2 s for a 256 px image (optimisation style transfer excepted: the fast networks are measured).

First, the libraries' first import (a cold page cache: the first app to start after a reboot pays it). Then for each
app: seconds from `python app.py` to serving, the first call (which loads the model) and the median of the
next three calls, with the 256 px image where the endpoint takes one. One JSON line per app, then a summary line.

    python benchmarks/spaces.py [--apps similarity,cnn_explorer]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _common import emit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from spaces_harness import launch_space, space_names  # noqa: E402


def _image(tmp: Path) -> Path:
    import skimage.data
    from PIL import Image

    path = tmp / "photo_256.png"
    Image.fromarray(skimage.data.chelsea()).resize((256, 256), Image.Resampling.LANCZOS).save(path)
    return path


def main_call(name: str, image: Path):
    """(api_name, arguments) of an app's main endpoint."""
    from gradio_client import handle_file

    img = handle_file(str(image))
    return {
        "cnn_explorer": ("/convolve", (img, "sobel x")),
        "generation": ("/sample_images", (0, 16)),
        "image_classification": ("/classify", (img,)),
        "object_detection": ("/detect", (img,)),
        "segmentation": ("/segment", (img,)),
        "similarity": ("/search", (img,)),
        "style_transfer": ("/stylize", (img, None, "(uploaded image)", "fast")),  # the fast network (its own style)
    }[name]


def measure(name: str, image: Path, calls: int = 3) -> dict:
    t0 = time.perf_counter()
    server = launch_space(name)
    startup = time.perf_counter() - t0
    try:
        client = server.client()
        api, args = main_call(name, image)
        t = time.perf_counter()
        client.predict(*args, api_name=api)
        first = time.perf_counter() - t
        times = []
        for _ in range(calls):
            t = time.perf_counter()
            client.predict(*args, api_name=api)
            times.append(time.perf_counter() - t)
    finally:
        server.stop()
    median = statistics.median(times)
    return {"app": name, "endpoint": api, "startup_s": startup, "first_call_s": first, "call_s": median, "startup_ok": startup < 15, "call_ok": median < 2}


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", default=None, help="comma list (default: every app under spaces/)")
    args = parser.parse_args()
    names = args.apps.split(",") if args.apps else space_names()
    # The first process to import torch (CUDA build: ~3 GB of libraries) and gradio after the page cache was emptied
    # pays for reading them from disk: measured once here, so every app below is measured as a restarted Space is.
    import subprocess

    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, torchvision, timm, gradio, datasets, transformers"], check=True)
    cold_imports = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        image = _image(Path(tmp))
        rows = [measure(n, image) for n in names]
    for row in rows:
        emit(row)
    emit({
        "apps": len(rows), "first_imports_s": cold_imports, "slowest_startup_s": max(r["startup_s"] for r in rows), "slowest_call_s": max(r["call_s"] for r in rows),
        "all_start_under_15_s": all(r["startup_ok"] for r in rows), "all_answer_under_2_s": all(r["call_ok"] for r in rows),
    })  # fmt: skip


if __name__ == "__main__":
    main()
