#!/usr/bin/env python
"""Bundle a trained generator or char-LM into this Space: `models/images/NAME/` or `models/text/NAME/`.

    python spaces/generation/bundle_model.py outputs/generative --name fashion-conv-vae        # scripts/train_generative.py
    python spaces/generation/bundle_model.py outputs/char_lm --name austen-gru                 # scripts/train_char_lm.py

Copies the model's files, an image generator's weights as float16 (loaded back into float32 parameters; its samples
may move by at most 0.02 of the pixel range), a char-LM's as they are (transformers would load float16 weights as a
float16 model), writes provenance.json (the training command, the data, the run's metrics), which the app shows, and
keeps every bundled file under 10 MB. The copy is loaded back and checked against the run's folder before it replaces
an earlier bundle of the same name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # a checkout of the repository: use its hfdl package

from hfdl.core.bundle import bundle_run, check_name, check_run_dir, describe, read_json  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402

TEXT_FILES = ("generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")  # beside config.json
IMAGE_KEYS = ("eval_fid", "data_fid_floor", "fid_feature_network", "eval_neg_elbo", "eval_iw_nll", "eval_loss_pytorch_example", "eval_reconstruction")
TEXT_KEYS = ("eval_bpc", "eval_loss", "model_type")
MAX_PIXEL_CHANGE = 0.02  # largest change of a sampled pixel (in [0, 1]) that the float16 copy may cause


def pixel_change(original: Path, copy: Path) -> float:
    """The largest change of a pixel of 64 seeded samples between the run's folder and the copy."""
    from hfdl.tasks.generative.model import ImageGenerator

    a, b = ImageGenerator.from_pretrained(original).sample(64, seed=0), ImageGenerator.from_pretrained(copy).sample(64, seed=0)
    return float((a - b).abs().max())


def text_change(original: Path, copy: Path) -> float:
    """The share of 60 seeded generated characters that differ between the run's folder and the copy (must be 0)."""
    from hfdl.tasks.char_lm.model import load_char_lm

    a, b = (load_char_lm(str(folder)).generate("It is", 60, 0.8, seed=0) for folder in (original, copy))
    return sum(x != y for x, y in zip(a, b)) / max(len(a), 1) + (len(a) != len(b))


def main(argv: list[str] | None = None, models_dir: Path = HERE / "models") -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a folder written by scripts/train_generative.py or scripts/train_char_lm.py")
    parser.add_argument("--name", required=True, help="the bundled model's folder name")
    args = parser.parse_args(argv)
    run_dir, name = args.run_dir, args.name
    try:
        check_run_dir(run_dir, "scripts/train_generative.py or scripts/train_char_lm.py")
        check_name(name)
        run, results = read_json(run_dir / "run_config.json"), read_json(run_dir / "all_results.json")
        kind = {"image-generation": "images", "char-lm": "text"}.get(run.get("task"))
        if kind is None:
            raise HfdlError(f"{run_dir} is a '{run.get('task')}' run: bundle a train_generative.py or train_char_lm.py run")
        images = kind == "images"
        target = Path(models_dir) / kind / name

        def provenance(change: float) -> dict:
            return {
                "name": name, "source": str(run_dir), "command": run.get("command"), "data": run.get("data", {}).get("source"),
                "train_seconds": results.get("train_seconds"), "completed_steps": results.get("completed_steps"),
                **{k: results[k] for k in (IMAGE_KEYS if images else TEXT_KEYS) if k in results},
                "weights": "float16 copy of the run's float32 model.safetensors" if images else "the run's model.safetensors",
            }  # fmt: skip

        bundle_run(
            run_dir, target, compare=pixel_change if images else text_change, max_change=MAX_PIXEL_CHANGE if images else 0.0,
            provenance=provenance, what="sampled pixel" if images else "share of generated characters",
            extra_files=() if images else TEXT_FILES, halve=images,
        )  # fmt: skip
    except HfdlError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"bundled {run_dir} as {target} ({describe(target)})")
    return target


if __name__ == "__main__":
    main()
