"""Anomaly detection's claims, side by side in one run on the offline Fashion-MNIST:

1. kNN on frozen pretrained Lite0 features against the autoencoder, the same one-class protocol: mean AUROC over
   the normal classes (target: kNN >= 0.94 over all ten, within 15 minutes on 2 cores).
2. The shared feature cache: the kNN method's time with a cold cache (every image's features extracted) against a
   warm one (read back), as the ratio.

    python benchmarks/anomaly.py                      # all ten classes, both methods (about 17 minutes on 2 cores)
    python benchmarks/anomaly.py --classes Trouser    # one class
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import emit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def main() -> None:
    import train_anomaly

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", default="all", help="all, or one normal class name.")
    a = p.parse_args()
    which = ["--all_classes"] if a.classes == "all" else ["--normal_class", a.classes]
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "features")
        t = time.perf_counter()
        cold = train_anomaly.main([*which, "--method", "compare", "--output_dir", str(Path(tmp) / "cold"), "--feature_cache_dir", cache])
        cold_wall = time.perf_counter() - t
        warm = train_anomaly.main([*which, "--method", "knn", "--output_dir", str(Path(tmp) / "warm"), "--feature_cache_dir", cache])
    print("| normal class | kNN AUROC | autoencoder AUROC |\n|---|---:|---:|")
    for c in cold["normal_classes"]:
        print(f"| {c} | {cold['per_class']['knn'][c]['auroc']:.4f} | {cold['per_class']['autoencoder'][c]['auroc']:.4f} |")
    emit(
        {
            "classes": len(cold["normal_classes"]),
            "knn_mean_auroc": cold["eval_knn_auroc"],
            "autoencoder_mean_auroc": cold["eval_autoencoder_auroc"],
            "knn_minus_autoencoder": cold["eval_knn_auroc"] - cold["eval_autoencoder_auroc"],
            "knn_seconds_cold_cache": cold["knn_seconds"],
            "knn_seconds_warm_cache": warm["knn_seconds"],
            "feature_cache_speedup": cold["knn_seconds"] / warm["knn_seconds"],
            "same_auroc_from_cache": warm["eval_knn_auroc"] == cold["eval_knn_auroc"],
            "autoencoder_train_seconds": cold["autoencoder_train_seconds"],
            "wall_seconds_compare": cold_wall,
            "knn_target_met": a.classes == "all" and cold["eval_knn_auroc"] >= 0.94,
        }
    )


if __name__ == "__main__":
    main()
