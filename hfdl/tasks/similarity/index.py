"""Image search with `datasets`' own FAISS integration: a gallery dataset with an `embeddings` column, its FAISS
index (inner product of unit vectors = cosine similarity), and the reference of the model that embedded it.

    INDEX/gallery.parquet     the gallery: the images, labels and embeddings (`Dataset.to_parquet`)
    INDEX/embeddings.faiss    `Dataset.save_faiss_index("embeddings", ...)`
    INDEX/index_config.json   the model (path or Hub id) and its weights' fingerprint, size, source

A compact copy (`compact_index`, what a Space bundles) keeps the embeddings as float16 in the parquet file and no
FAISS file: `load_index` rebuilds the exact flat index from them (milliseconds for 10k images).

The folder is a Hub dataset repo as it is (`build_index.py --push_to_hub`): anyone loads it with
`load_dataset(repo_id, split="train")` and `ds.load_faiss_index("embeddings", hf_hub_download(repo_id,
"embeddings.faiss", repo_type="dataset"))`.

A query is embedded by the same model and answered by `Dataset.search` / `get_nearest_examples`; an index
built with other weights than the query model's is refused (its distances would mean nothing).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import torch

from hfdl.core.feature_cache import cached_features, weights_fingerprint
from hfdl.core.images import open_image
from hfdl.core.labelled_images import TransformedImages
from hfdl.errors import HfdlError
from hfdl.tasks.similarity.model import EmbeddingModel

INDEX_CONFIG, FAISS_FILE, GALLERY = "index_config.json", "embeddings.faiss", "gallery.parquet"
COLUMN = "embeddings"


def build_index(
    model: EmbeddingModel,
    model_reference: str,
    gallery: datasets.Dataset,
    image_column: str,
    label_column: str | None,
    out: str | Path,
    source: str,
    batch_size: int = 128,
    overwrite: bool = False,
    cache_dir: str | Path | None = None,
) -> dict:
    """Embed every gallery image (through the shared feature cache: the same model and gallery are embedded once),
    index the embeddings with FAISS and write the index folder; returns its config."""
    import faiss

    out = Path(out)
    if len(gallery) == 0:
        raise HfdlError("the gallery is empty: pass a dataset split with images (--dataset_name/--train_dir and --split)")
    if (out / INDEX_CONFIG).is_file() and not overwrite:
        raise HfdlError(f"{out} already holds an index: pass another --output_dir, or --overwrite_output_dir to replace it")
    from accelerate import Accelerator

    images = TransformedImages(gallery, image_column, label_column, model.transform())
    emb, _, _ = cached_features(Accelerator(), model, images, cache_dir, batch_size, forward=_embed)
    emb = emb.numpy().astype("float32")
    indexed = gallery.add_column(COLUMN, list(emb))
    indexed.add_faiss_index(column=COLUMN, metric_type=faiss.METRIC_INNER_PRODUCT)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    indexed.save_faiss_index(COLUMN, str(tmp / FAISS_FILE))
    indexed.drop_index(COLUMN)
    indexed.to_parquet(str(tmp / GALLERY))
    names = gallery.features[label_column].names if label_column and isinstance(gallery.features[label_column], datasets.ClassLabel) else None
    config = {
        "model": model_reference,
        "model_fingerprint": weights_fingerprint(model),
        "embedding_dim": int(emb.shape[1]),
        "size": len(gallery),
        "metric": "inner product of unit vectors (cosine similarity)",
        "image_column": image_column,
        "label_column": label_column,
        "label_names": names,
        "source": source,
    }
    (tmp / INDEX_CONFIG).write_text(json.dumps(config, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)  # the old index stays whole until the new one is complete
    return config


def _embed(model: EmbeddingModel, x: torch.Tensor) -> torch.Tensor:
    return model(x)


def load_index(folder_or_repo: str | Path) -> tuple[datasets.Dataset, dict]:
    """(the gallery with its FAISS index loaded, the index config) of an index folder or Hub dataset repo."""
    folder = Path(folder_or_repo)
    if not folder.is_dir() and "/" in str(folder_or_repo) and not str(folder_or_repo).startswith((".", "/")):
        from hfdl.hub.push import pull

        folder = pull(str(folder_or_repo), repo_type="dataset")
    if not (folder / INDEX_CONFIG).is_file():
        raise HfdlError(f"{folder_or_repo} is not an hfdl index (no {INDEX_CONFIG}): build one with scripts/build_index.py")
    config = json.loads((folder / INDEX_CONFIG).read_text())
    gallery = datasets.Dataset.from_parquet(str(folder / GALLERY))
    if "images_from" in config:  # a compact copy that names its images' source split instead of holding them
        images = source_images(config["images_from"])
        if config["images_from"]["column"] != config["image_column"]:
            images = images.rename_column(config["images_from"]["column"], config["image_column"])
        if len(images) != len(gallery):
            raise HfdlError(
                f"{folder_or_repo}: its images come from {config['images_from']['dataset']} {config['images_from']['split']} ({len(images)} rows), "
                f"but the gallery has {len(gallery)}: rebuild the index with scripts/build_index.py"
            )
        gallery = datasets.concatenate_datasets([images, gallery], axis=1)
    if (folder / FAISS_FILE).is_file():
        gallery.load_faiss_index(COLUMN, str(folder / FAISS_FILE))
    else:  # a compact copy: the exact flat index, rebuilt from the stored float16 embeddings made unit length again
        import faiss
        import numpy as np

        vectors = np.asarray(gallery.with_format("numpy")[COLUMN], dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
        gallery.add_faiss_index_from_external_arrays(vectors, COLUMN, metric_type=faiss.METRIC_INNER_PRODUCT)
    return gallery, config


def compact_index(folder: str | Path, out: str | Path, images_from: dict | None = None) -> dict:
    """A smaller copy of an index folder for bundling: the embeddings as float16 in the parquet file, no FAISS file
    (`load_index` rebuilds the exact flat index). Returns the copy's config.

    `images_from` ({"dataset": an offline asset name, "hub_equivalent": its Hub id, "split", "column"}): the gallery's
    images are that split's, row for row (checked pixel for pixel here), so the copy keeps only their source's name and
    `load_index` takes them from the offline asset, or from the Hub where the asset is not installed."""
    folder, out = Path(folder), Path(out)
    config = json.loads((folder / INDEX_CONFIG).read_text())
    gallery = datasets.Dataset.from_parquet(str(folder / GALLERY))
    gallery = gallery.cast_column(COLUMN, datasets.Sequence(datasets.Value("float16")))
    if images_from is not None:
        _check_same_images(gallery[config["image_column"]], source_images(images_from)[images_from["column"]], images_from)
        gallery = gallery.remove_columns(config["image_column"])
        config = {**config, "images_from": images_from}
    out.mkdir(parents=True, exist_ok=True)
    gallery.to_parquet(str(out / GALLERY))
    config = {**config, "embeddings_dtype": "float16", "faiss": "flat index rebuilt on load"}
    (out / INDEX_CONFIG).write_text(json.dumps(config, indent=2))
    return config


def source_images(images_from: dict) -> datasets.Dataset:
    """The split a compact gallery's images are the rows of (its image column only): the offline asset when it is
    installed, else its Hub equivalent (what a Space on the Hub does)."""
    from hfdl import assets

    try:
        split = assets.load_offline_split(images_from["dataset"], images_from["split"])
    except HfdlError:
        if not images_from.get("hub_equivalent"):
            raise
        from hfdl.core.images import load_image_dataset

        split = load_image_dataset(images_from["hub_equivalent"])[0][images_from["split"]]
    return split.select_columns([images_from["column"]])


def _check_same_images(ours, theirs, images_from: dict) -> None:
    import numpy as np

    if len(ours) != len(theirs) or any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ours, theirs)):
        raise HfdlError(f"the gallery's images are not {images_from['dataset']} {images_from['split']}, row for row: bundle the index with its images")


def check_model(model: EmbeddingModel, config: dict, model_reference: str) -> None:
    if weights_fingerprint(model) != config["model_fingerprint"]:
        raise HfdlError(
            f"the index was built with the model '{config['model']}' and '{model_reference}' has other weights: its distances would mean nothing; "
            f"query with --model {config['model']}, or rebuild the index with this model"
        )


def search(gallery: datasets.Dataset, config: dict, model: EmbeddingModel, images: list, k: int = 5) -> list[list[dict]]:
    """The `k` most similar gallery images of each query image: [{"index", "score", "label"?}, ...] per query."""
    if k < 1:
        raise HfdlError(f"--k must be >= 1, got {k}")
    queries = model.embed_images([open_image(im) for im in images]).numpy().astype("float32")
    scores, indices = gallery.search_batch(COLUMN, queries, k=min(k, len(gallery)))
    names, label_column = config.get("label_names"), config.get("label_column")
    labels = gallery[label_column] if label_column else None
    out = []
    for row_scores, row_idx in zip(scores, indices):
        hits = []
        for s, i in zip(row_scores.tolist(), row_idx.tolist()):
            if i < 0:
                continue
            hit = {"index": int(i), "score": round(float(s), 6)}
            if labels is not None:
                hit["label"] = names[labels[i]] if names else labels[i]
            hits.append(hit)
        out.append(hits)
    return out


def index_card(config: dict, repo_id: str):
    """The dataset card of a pushed index: what it holds, which model embedded it, how to load and query it."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        tags=["hfdl", "faiss", "image-similarity", "embeddings"], task_categories=["image-feature-extraction"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": GALLERY}]}],
    )  # fmt: skip
    model = config["model"]
    text = f"""---
{data.to_yaml()}
---

# {Path(repo_id).name}

A search index built by hfdl's `scripts/build_index.py`: {config["size"]:,} images ({config["source"]}), each with its
{config["embedding_dim"]}-d embedding from the model `{model}` (weights fingerprint `{config["model_fingerprint"]}`), and a FAISS
index of the embeddings (exact, {config["metric"]}).

## Use

```python
from datasets import load_dataset
from huggingface_hub import hf_hub_download

gallery = load_dataset("{repo_id}", split="train")
gallery.load_faiss_index("embeddings", hf_hub_download("{repo_id}", "{FAISS_FILE}", repo_type="dataset"))
scores, neighbours = gallery.get_nearest_examples("embeddings", query_embedding, k=5)  # query_embedding: float32, unit length
```

Embed queries with the same model (`EmbeddingModel.from_pretrained("{model}").embed_images([image])`), or run
`python scripts/search.py --index {repo_id} --image query.png --k 5`, which refuses a model with other weights.
"""
    return DatasetCard(text)


def push_index(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Publish an index folder as a Hub dataset repo (gallery parquet, FAISS file, config, card); returns the commit URL."""
    from hfdl.hub.push import push_files

    folder = Path(folder)
    config = json.loads((folder / INDEX_CONFIG).read_text())
    files = {name: folder / name for name in (GALLERY, FAISS_FILE, INDEX_CONFIG)}
    return push_files(
        files,
        index_card(config, repo_id),
        repo_id,
        commit_message=f"hfdl index: {config['size']} images, {config['model']}",
        private=private,
        repo_type="dataset",
    )
