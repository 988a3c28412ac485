#!/usr/bin/env python
"""Build a FAISS search index (datasets' add_faiss_index) of a gallery of images with a trained embedding model.

    python scripts/build_index.py --model outputs/embedding --output_dir outputs/index                  # the offline Fashion-MNIST test split
    python scripts/build_index.py --model me/fashion-embedding --dataset_name zalando-datasets/fashion_mnist --split test --output_dir idx
    python scripts/build_index.py --model outputs/embedding --train_dir my_gallery/ --output_dir idx
    python scripts/build_index.py --model outputs/embedding --output_dir idx --push_to_hub --hub_dataset_id me/fashion-index

The index folder holds the gallery dataset with its embeddings, the FAISS file and the model's reference.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import run_main  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    from hfdl.core.images import find_columns, load_image_dataset
    from hfdl.errors import HfdlError
    from hfdl.tasks.similarity.index import build_index
    from hfdl.tasks.similarity.model import EmbeddingModel

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="A train_embedding.py output folder or Hub id.")
    p.add_argument("--dataset_name", default=None, help="Hub id, saved/imagefolder dir, or offline name (default: fashion_mnist without --train_dir).")
    p.add_argument("--dataset_config_name", default=None)
    p.add_argument("--train_dir", default=None, help="An imagefolder gallery (one subfolder per class, or flat).")
    p.add_argument("--split", default=None, help="The split to index (default: test, else validation, else train).")
    p.add_argument("--image_column", default=None)
    p.add_argument("--label_column", default=None)
    p.add_argument("--max_samples", type=int, default=None, help="Index only the first N images.")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--overwrite_output_dir", action="store_true", help="Replace an index already in --output_dir.")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--push_to_hub", action="store_true", help="Publish the index as a Hub dataset repo (needs --hub_dataset_id and a token).")
    p.add_argument("--hub_dataset_id", default=None, help="The dataset repo, e.g. me/fashion-index.")
    p.add_argument("--private", action="store_true")
    a = p.parse_args(argv)
    if a.push_to_hub:
        from hfdl.hub.push import check_repo_id, require_token

        if not a.hub_dataset_id:
            raise HfdlError("--push_to_hub needs --hub_dataset_id (e.g. me/fashion-index)")
        check_repo_id(a.hub_dataset_id)
        require_token()  # before embedding anything
    dataset_name = a.dataset_name or (None if a.train_dir else "fashion_mnist")
    dsd, source = load_image_dataset(dataset_name, a.train_dir, None, a.dataset_config_name)
    split = a.split or next((s for s in ("test", "validation", "train") if s in dsd), None)
    if split not in dsd:
        raise HfdlError(f"the dataset has no split '{split}' (splits: {', '.join(dsd)}): pass --split with one of those")
    gallery = dsd[split]
    if a.max_samples is not None:
        gallery = gallery.select(range(min(a.max_samples, len(gallery))))
    image_column, label_column = find_columns(gallery, a.image_column, a.label_column, label_required=False)
    model = EmbeddingModel.from_pretrained(a.model)
    config = build_index(model, a.model, gallery, image_column, label_column, a.output_dir, f"{source}, split {split}", a.batch_size, a.overwrite_output_dir)
    return config


if __name__ == "__main__":
    run_main(main)
