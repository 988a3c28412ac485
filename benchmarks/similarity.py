"""Similarity learning's claims, side by side in one run.

1. Search: one query against a 10,000-image gallery (128-d) through datasets' FAISS index (exact inner product),
   against the same search by brute force in torch (matmul + topk): milliseconds per query and the ratio, and that
   both return the same neighbours. Target: <= 5 ms per query after embedding.
2. With `--train`: the offline default (`accelerate launch scripts/train_embedding.py`, Fashion-MNIST) trained and
   evaluated on the 10,000 test images, beside the untrained backbone's features on the same metrics (the run
   computes both). Target: precision@1 >= 0.90, clearly above the untrained figure, in <= 10 minutes end to end.

    python benchmarks/similarity.py [--train] [--output_dir /tmp/bench_similarity]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import emit

ROOT = Path(__file__).resolve().parent.parent


def search_speed(gallery_size: int = 10_000, dim: int = 128, queries: int = 200, k: int = 5, seed: int = 0) -> dict:
    import datasets
    import faiss
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    gallery = F.normalize(torch.randn(gallery_size, dim, generator=g), dim=1)
    q = F.normalize(torch.randn(queries, dim, generator=g), dim=1)
    ds = datasets.Dataset.from_dict({"embeddings": gallery.numpy()})
    ds.add_faiss_index(column="embeddings", metric_type=faiss.METRIC_INNER_PRODUCT)
    qn = q.numpy()
    ds.search("embeddings", qn[0], k=k)  # warm-up
    t = time.perf_counter()
    faiss_idx = [ds.search("embeddings", row, k=k).indices for row in qn]
    faiss_ms = (time.perf_counter() - t) / queries * 1e3
    t = time.perf_counter()
    torch_idx = [(gallery @ row).topk(k).indices.numpy() for row in q]
    torch_ms = (time.perf_counter() - t) / queries * 1e3
    same = sum(list(a) == list(b) for a, b in zip(faiss_idx, torch_idx)) / queries
    return {
        "gallery": gallery_size,
        "faiss_ms_per_query": faiss_ms,
        "torch_ms_per_query": torch_ms,
        "torch_over_faiss": torch_ms / faiss_ms,
        "same_neighbours": same,
        "target_5ms_met": faiss_ms <= 5.0,
    }


def train_default(output_dir: str) -> dict:
    import json

    t = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "-q",
        str(ROOT / "scripts" / "train_embedding.py"),
        "--output_dir",
        output_dir,
        "--overwrite_output_dir",
    ]
    subprocess.run(cmd, check=True, env={**os.environ})
    wall = time.perf_counter() - t
    r = json.loads((Path(output_dir) / "all_results.json").read_text())
    rows = {k.removeprefix("eval_"): (r[k], r.get("baseline_" + k.removeprefix("eval_"))) for k in r if k.startswith("eval_") and "threshold" not in k}
    print("| metric | trained | untrained backbone |\n|---|---:|---:|")
    for name, (trained, base) in rows.items():
        print(f"| {name} | {trained:.4f} | {base:.4f} |")
    return {
        "precision_at_1": r["eval_precision_at_1"],
        "baseline_precision_at_1": r["baseline_precision_at_1"],
        "precision_at_1_gain": r["eval_precision_at_1"] / r["baseline_precision_at_1"],
        "map_at_r": r["eval_map_at_r"],
        "baseline_map_at_r": r["baseline_map_at_r"],
        "wall_seconds": wall,
        "train_seconds": r["train_seconds"],
        "steps": r["completed_steps"],
        "target_met": r["eval_precision_at_1"] >= 0.90 and wall <= 600,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", action="store_true", help="Also train the offline default and compare it with the untrained features.")
    p.add_argument("--output_dir", default="/tmp/bench_similarity")
    a = p.parse_args()
    result = {f"search_{k}": v for k, v in search_speed().items()}
    print(f"search, 10,000 x 128: FAISS {result['search_faiss_ms_per_query']:.3f} ms/query, torch {result['search_torch_ms_per_query']:.3f} ms/query")
    if a.train:
        result.update({f"train_{k}": v for k, v in train_default(a.output_dir).items()})
    emit(result)


if __name__ == "__main__":
    main()
