#!/usr/bin/env python
"""Search an index built by build_index.py: the k most similar gallery images of a query image, as JSON.

    python scripts/search.py --index outputs/index --image query.png --k 5 [--output neighbours.png]

The query is embedded by the index's own model (or --model, which must have the same weights).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import run_main  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    from hfdl.tasks.similarity.index import check_model, load_index, search
    from hfdl.tasks.similarity.model import EmbeddingModel

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", required=True, help="An index folder from build_index.py.")
    p.add_argument("--image", required=True, help="The query image (PNG/JPEG).")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--model", default=None, help="The embedding model (default: the one the index was built with).")
    p.add_argument("--output", default=None, help="Also write the query and its neighbours as one PNG.")
    a = p.parse_args(argv)
    gallery, config = load_index(a.index)
    reference = a.model or config["model"]
    model = EmbeddingModel.from_pretrained(reference)
    check_model(model, config, reference)
    (hits,) = search(gallery, config, model, [a.image], a.k)
    if a.output:
        from hfdl.tasks.similarity.pictures import write_neighbours

        write_neighbours(a.image, [gallery[h["index"]][config["image_column"]] for h in hits], hits, a.output)
    print(json.dumps(hits))
    return hits


if __name__ == "__main__":
    run_main(main)
