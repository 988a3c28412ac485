#!/usr/bin/env python
"""Bundle a feature-based finetune.py classifier into this Space as what differs from its offline backbone: the head.

    python spaces/image_classification/bundle_model.py outputs/finetune/feature --name fashion-lite0-feature

A `--strategy feature` run leaves the pretrained backbone untouched (frozen, BatchNorm in eval mode), so the Space
stores only the classifier's weights (`head.safetensors`, 51 KB for Lite0 and ten classes) and rebuilds the rest from
the package-shipped backbone. The bundle is refused when the run's backbone differs from the offline weights (a
fine-tuned model: publish it on the Hub and list its id in HFDL_CLASSIFIER_MODELS), and checked by classifying the
same images as the run's folder before it replaces an earlier bundle of the same name.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # a checkout of the repository: use its hfdl package

from hfdl.core.bundle import check_name, check_run_dir, check_sizes, describe, read_json  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402


def main(argv: list[str] | None = None, models_dir: Path = HERE / "models") -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    from hfdl import assets
    from hfdl.core.backbones import create_backbone
    from hfdl.tasks.classification.explain import HEAD_FILE, load_any_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finetune.py strategy folder, e.g. outputs/finetune/feature")
    parser.add_argument("--name", required=True, help="the bundled model's folder name")
    args = parser.parse_args(argv)
    run_dir, target = args.run_dir, Path(models_dir) / args.name
    try:
        check_run_dir(run_dir, "scripts/finetune.py (a strategy folder such as OUTPUT/feature)")
        check_name(args.name)
        config = json.loads((run_dir / "config.json").read_text())
        backbone = config.get("architecture")
        offline = next((n for n, a in assets.BACKBONES.items() if a.architecture == backbone), None)
        if offline is None:
            raise HfdlError(f"{backbone} is not an offline backbone: only a head on {', '.join(assets.BACKBONES)} can be bundled this way")
        state = load_file(str(run_dir / "model.safetensors"))
        pretrained = create_backbone(offline, pretrained=True, num_classes=config["num_classes"])
        reference, prefix = pretrained.state_dict(), pretrained.pretrained_cfg.get("classifier", "classifier")
        head = {k: v for k, v in state.items() if k.startswith(prefix)}
        moved = [k for k, v in state.items() if not k.startswith(prefix) and not torch.equal(v, reference[k])]
        if moved:
            raise HfdlError(
                f"the run's backbone differs from the offline {offline} weights ({len(moved)} tensors, e.g. {moved[0]}): only a feature-based run's head can be bundled"
            )
        results = read_json(run_dir / "results.json")
        run = read_json(run_dir.parent / "run_config.json")
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            save_file(head, str(tmp / HEAD_FILE), metadata={"format": "pt"})
            bundle = {
                "hfdl_bundle": "head", "backbone": offline, "num_classes": config["num_classes"], "label_names": config.get("label_names"),
                "pretrained_cfg": {k: config["pretrained_cfg"][k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode") if k in config["pretrained_cfg"]},
                "eval_accuracy": results.get("eval_accuracy"), "command": run.get("command"), "source": str(run_dir),
            }  # fmt: skip
            (tmp / "config.json").write_text(json.dumps(bundle, indent=2) + "\n")
            from PIL import Image

            probe = [Image.new("RGB", (64, 64), c) for c in ("white", "black", "gray")] + [Image.effect_noise((64, 64), 60).convert("RGB")]
            a, b = load_any_classifier(str(run_dir)), load_any_classifier(str(tmp))
            change = max(float((a.probabilities(im) - b.probabilities(im)).abs().max()) for im in probe)
            if change > 1e-5:
                raise HfdlError(f"the bundled head classifies differently from the run's folder (probabilities move by {change:.2g})")
            check_sizes(tmp)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except HfdlError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"bundled {run_dir} as {target} ({describe(target)})")
    return target


if __name__ == "__main__":
    main()
