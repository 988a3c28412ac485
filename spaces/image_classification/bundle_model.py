#!/usr/bin/env python
"""Bundle a finetune.py classifier into this Space as what differs from its offline backbone.

    python spaces/image_classification/bundle_model.py outputs/finetune/feature --name fashion-lite0-feature
    python spaces/image_classification/bundle_model.py outputs/top/finetune --name fashion-lite0-finetune-top   # --unfreeze 1

A `--strategy feature` run leaves the pretrained backbone untouched (frozen, BatchNorm in eval mode), so the Space
stores only the classifier's weights (`head.safetensors`, 51 KB for Lite0 and ten classes) and rebuilds the rest from
the package-shipped backbone. A `--strategy finetune --unfreeze N` run also changed its last N stages: those tensors
(weights and BatchNorm statistics) go to `backbone_delta.safetensors` as float16 (Lite0's last stage and 1x1 head
convolution: 2 MB), on top of the same package-shipped backbone. A run whose every stage moved is refused unless
`--max_delta_mb` allows it (a whole fine-tuned backbone belongs on the Hub: list its id in HFDL_CLASSIFIER_MODELS).
Every bundle is checked by classifying the same images as the run's folder (probabilities within 1e-5 for a head,
2e-3 with a float16 delta) before it replaces an earlier bundle of the same name.
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

MAX_DELTA_MB = 2.5  # Lite0's last stage + 1x1 head convolution as float16: 1.94 MB


def main(argv: list[str] | None = None, models_dir: Path = HERE / "models") -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    from hfdl import assets
    from hfdl.core.backbones import create_backbone
    from hfdl.tasks.classification.explain import DELTA_FILE, HEAD_FILE, load_any_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finetune.py strategy folder, e.g. outputs/finetune/feature")
    parser.add_argument("--name", required=True, help="the bundled model's folder name")
    parser.add_argument("--max_delta_mb", type=float, default=MAX_DELTA_MB, help="the most the changed backbone tensors may take (float16)")
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
        moved = {k: v for k, v in state.items() if not k.startswith(prefix) and not torch.equal(v, reference[k])}
        delta = {k: v.half() if v.is_floating_point() else v for k, v in moved.items()}
        delta_mb = sum(v.numel() * v.element_size() for v in delta.values()) / 2**20
        if delta_mb > args.max_delta_mb:
            raise HfdlError(
                f"the run changed {len(moved)} backbone tensors of the offline {offline} ({delta_mb:.1f} MB as float16, more than --max_delta_mb {args.max_delta_mb}): "
                "bundle a feature run or a finetune run with --unfreeze 1, or publish this one on the Hub"
            )
        results = read_json(run_dir / "results.json")
        run = read_json(run_dir.parent / "run_config.json")
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            save_file(head, str(tmp / HEAD_FILE), metadata={"format": "pt"})
            if delta:
                save_file(delta, str(tmp / DELTA_FILE), metadata={"format": "pt"})
            bundle = {
                "hfdl_bundle": "head + backbone delta" if delta else "head", "strategy": config.get("hfdl", {}).get("strategy"), "backbone": offline, "num_classes": config["num_classes"], "label_names": config.get("label_names"),
                "pretrained_cfg": {k: config["pretrained_cfg"][k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode") if k in config["pretrained_cfg"]},
                "eval_accuracy": results.get("eval_accuracy"), "command": run.get("command"), "source": str(run_dir),
            }  # fmt: skip
            (tmp / "config.json").write_text(json.dumps(bundle, indent=2) + "\n")
            from PIL import Image

            probe = [Image.new("RGB", (64, 64), c) for c in ("white", "black", "gray")] + [Image.effect_noise((64, 64), 60).convert("RGB")]
            a, b = load_any_classifier(str(run_dir)), load_any_classifier(str(tmp))
            change = max(float((a.probabilities(im) - b.probabilities(im)).abs().max()) for im in probe)
            allowed = 2e-3 if delta else 1e-5
            if change > allowed:
                raise HfdlError(f"the bundle classifies differently from the run's folder (probabilities move by {change:.2g}, allowed {allowed})")
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
