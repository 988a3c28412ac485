#!/usr/bin/env python
"""Bundle a trained embedding model (with its search gallery) or a run's anomaly autoencoders into this Space.

    python spaces/similarity/bundle_model.py outputs/embedding --name fashion-lite0-triplet   # scripts/train_embedding.py
    python spaces/similarity/bundle_model.py outputs/anomaly                                  # scripts/train_anomaly.py

An embedding run becomes `models/embedding/NAME/` (the weights as float16: an embedding of a test image may move by
at most 0.01) and `models/gallery/NAME/`: the run's evaluation split embedded by the bundled copy with
`build_index` (the Fashion-MNIST test split for the offline default), kept compact (float16 embeddings and no
FAISS file; the app rebuilds the exact flat index, and the bundle checks that its neighbours' scores and
precision@5 are the full index's). When the gallery is an offline asset's split (Fashion-MNIST test), its images are
not bundled: checked equal to that split row for row, they are read from the asset, or its Hub equivalent.

An anomaly run becomes `models/anomaly/CLASS/` for each of its autoencoders (float16: a test image's score may move
by at most 1% of the normal images' median score), each with the copy's scores of the normal class's test images
(the app's percentiles) and the class's AUROC.

Every bundle writes provenance.json (the training command, the data, the run's metrics), which the app shows, keeps
every file under 10 MB, and replaces an earlier bundle of the same name only once it passed its checks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # a checkout of the repository: use its hfdl package

from hfdl.core.bundle import bundle_run, check_name, check_run_dir, check_sizes, describe, read_json  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402

MAX_EMBEDDING_CHANGE = 0.01  # largest change of an embedding coordinate (unit vectors) the float16 copy may cause
MAX_SCORE_CHANGE = 0.01  # largest change of an anomaly score, as a share of the normal test images' median score
MAX_PRECISION_CHANGE = 0.005  # change of precision@5 (1,000 gallery queries) the compact gallery may cause
EMBEDDING_KEYS = ("eval_precision_at_1", "eval_map_at_r", "eval_one_shot_accuracy", "eval_verification_auroc", "baseline_precision_at_1")


def _data(run: dict):
    """The run's data, rebuilt from its run_config.json (the same dataset, split and seed)."""
    from hfdl.core.labelled_images import load_labelled_data

    args = {k: v for k, v in run["data_args"].items() if k != "embedded_default"}
    return load_labelled_data(SimpleNamespace(**args), run.get("seed", 42))


def _images_from(run: dict, data) -> dict | None:
    """Where the gallery's images come from when they are an offline asset's split (what the Space then does not
    bundle: `load_index` takes them from the asset, or its Hub equivalent), else None (the images are bundled)."""
    from hfdl import assets

    name = run["data_args"].get("dataset_name")
    if name not in assets.DATASETS or data.eval_split not in ("test", "validation"):  # a holdout's rows are not a split's
        return None
    return {"dataset": name, "hub_equivalent": assets.DATASETS[name].hub_id, "split": data.eval_split, "column": data.image_column}


def bundle_embedding(run_dir: Path, name: str, models_dir: Path) -> list[Path]:
    import torch

    from hfdl.tasks.similarity.index import build_index, compact_index, load_index
    from hfdl.tasks.similarity.model import EmbeddingModel

    run, results = read_json(run_dir / "run_config.json"), read_json(run_dir / "all_results.json")
    data = _data(run)
    probe = [data.eval[i][data.image_column] for i in range(64)]

    def embedding_change(original: Path, copy: Path) -> float:
        a, b = (EmbeddingModel.from_pretrained(str(f)).embed_images(probe) for f in (original, copy))
        return float((a - b).abs().max())

    model_dir, gallery_dir = models_dir / "embedding" / name, models_dir / "gallery" / name
    bundle_run(
        run_dir, model_dir, compare=embedding_change, max_change=MAX_EMBEDDING_CHANGE, what="embedding coordinate",
        provenance=lambda change: {
            "name": name, "source": str(run_dir), "command": run.get("command"), "data": data.source,
            "train_seconds": results.get("train_seconds"), "completed_steps": results.get("completed_steps"),
            **{k: results[k] for k in EMBEDDING_KEYS if k in results}, "verification_threshold": results.get("eval_verification_threshold"),
            "weights": "float16 copy of the run's float32 model.safetensors", "largest_embedding_change": change,
        },
    )  # fmt: skip
    model = EmbeddingModel.from_pretrained(str(model_dir))
    full = gallery_dir.with_name(f".{name}.full")
    tmp = gallery_dir.with_name(f".{name}.tmp")
    try:
        # the model reference is the bundled folder, relative to the Space (the app resolves it; the check is by weights)
        build_index(
            model, f"models/embedding/{name}", data.eval, data.image_column, data.label_column, full, f"{data.source}, split {data.eval_split}", overwrite=True
        )
        shutil.rmtree(tmp, ignore_errors=True)
        compact_index(full, tmp, images_from=_images_from(run, data))
        reference, _ = load_index(full)
        compact, _ = load_index(tmp)
        # Trained classes sit in tight clusters (neighbours differ in the 5th decimal of cosine), so float16 reorders
        # near-ties; what a search answers must hold: the neighbours' scores, and how often they share the query's label.
        queries = torch.stack([torch.as_tensor(v) for v in reference[:1000]["embeddings"]]).float().numpy()
        want_scores, want = reference.search_batch("embeddings", queries, k=6)
        got_scores, got = compact.search_batch("embeddings", queries, k=6)
        labels = torch.tensor(reference[data.label_column])
        precision = [float((labels[torch.as_tensor(i)[:, 1:]] == labels[:1000, None]).float().mean()) for i in (want, got)]  # 1: the query itself
        score_change = float(abs(want_scores - got_scores).max())
        if abs(precision[0] - precision[1]) > MAX_PRECISION_CHANGE or score_change > MAX_EMBEDDING_CHANGE:
            raise HfdlError(
                f"the compact gallery's precision@5 is {precision[1]:.4f} against the float32 index's {precision[0]:.4f} and its scores move by "
                f"{score_change:.2g} (allowed: {MAX_PRECISION_CHANGE} and {MAX_EMBEDDING_CHANGE}): bundle the full index instead"
            )
        config = json.loads((tmp / "index_config.json").read_text())
        checks = {"precision_at_5_float32_index": precision[0], "precision_at_5": precision[1], "largest_top5_score_change": score_change}
        (tmp / "index_config.json").write_text(json.dumps({**config, **checks}, indent=2))
        check_sizes(tmp)
        shutil.rmtree(gallery_dir, ignore_errors=True)
        tmp.rename(gallery_dir)
    finally:
        shutil.rmtree(full, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return [model_dir, gallery_dir]


def bundle_autoencoders(run_dir: Path, models_dir: Path) -> list[Path]:
    import torch
    from safetensors.torch import load_file

    from hfdl.core.image_tensors import decode_images
    from hfdl.tasks.anomaly.model import ConvAutoencoder

    run, results = read_json(run_dir / "run_config.json"), read_json(run_dir / "all_results.json")
    folders = sorted(p.parent for p in (run_dir / "autoencoder").glob("*/model.safetensors"))
    if not folders:
        raise HfdlError(f"{run_dir} has no autoencoder/<class>/model.safetensors: bundle a train_anomaly.py run with --method autoencoder or compare")
    data = _data(run)
    names = data.label_names
    labels = torch.tensor(data.eval[data.label_column])
    size = results.get("autoencoder_image_size")
    test = decode_images(data.eval, data.image_column, size, what="the evaluation split").float() / 255
    out = []
    for folder in folders:
        model = ConvAutoencoder.from_pretrained(str(folder))
        c = names.index(model.normal_class)
        normal = test[labels == c]
        reference = load_file(str(folder / "scores.safetensors"))["scores"][labels == c]
        scale = float(reference.median())
        copy_scores: dict = {}

        def score_change(original: Path, copy: Path, normal=normal, scale=scale, copy_scores=copy_scores) -> float:
            a = ConvAutoencoder.from_pretrained(str(original)).anomaly_score(normal)
            copy_scores["scores"] = b = ConvAutoencoder.from_pretrained(str(copy)).anomaly_score(normal)
            return float((a - b).abs().max()) / scale

        per_class = results.get("per_class", {}).get("autoencoder", {}).get(model.normal_class, {})
        target = models_dir / "anomaly" / folder.name
        bundle_run(
            folder, target, compare=score_change, max_change=MAX_SCORE_CHANGE, what="anomaly score (share of the normal median)",
            provenance=lambda change, folder=folder, model=model, per_class=per_class, copy_scores=copy_scores: {
                "name": folder.name, "normal_class": model.normal_class, "source": str(run_dir), "command": run.get("command"), "data": data.source,
                "score": model.score_kind, "eval_auroc": per_class.get("auroc"), "eval_auprc": per_class.get("auprc"),
                "eval_knn_auroc": results.get("per_class", {}).get("knn", {}).get(model.normal_class, {}).get("auroc"),
                "mean_auroc_all_classes": results.get("eval_autoencoder_auroc"), "weights": "float16 copy of the run's float32 model.safetensors",
                "largest_score_change": change,
                "normal_test_scores": sorted(round(float(s), 7) for s in copy_scores["scores"]),
            },
        )  # fmt: skip
        out.append(target)
    return out


def main(argv: list[str] | None = None, models_dir: Path = HERE / "models") -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a folder written by scripts/train_embedding.py or scripts/train_anomaly.py")
    parser.add_argument("--name", default=None, help="an embedding run: the bundled model's folder name (anomaly runs: the class folders' names)")
    args = parser.parse_args(argv)
    run_dir = args.run_dir
    try:
        task = read_json(run_dir / "run_config.json").get("task")
        if task == "image-similarity":
            check_run_dir(run_dir, "scripts/train_embedding.py")
            if not args.name:
                raise HfdlError("an embedding run needs --name (the bundled model's folder name)")
            check_name(args.name)
            targets = bundle_embedding(run_dir, args.name, Path(models_dir))
        elif task == "anomaly-detection":
            targets = bundle_autoencoders(run_dir, Path(models_dir))
        else:
            raise HfdlError(f"{run_dir} is {'a ' + repr(task) if task else 'not a training'} run: bundle a train_embedding.py or train_anomaly.py run")
    except HfdlError as err:
        raise SystemExit(f"error: {err}") from None
    for t in targets:
        print(f"bundled {t} ({describe(t)})")
    return targets


if __name__ == "__main__":
    main()
