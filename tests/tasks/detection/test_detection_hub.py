"""The detector on the Hub: the publisher's plan (files, card), and the card's snippet, run verbatim against a
real Hub API (olah), finds what the local model finds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import hub_servers
import pytest
import torch
from conftest import REPO

from hfdl import hub
from hfdl.hub.registry import plans

sys.path.insert(0, str(REPO / "scripts"))
import train_detector  # noqa: E402

olah_hub = hub_servers.olah_hub
REPO_ID = "hfdl-tester/tiny-detector"


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory):
    from hfdl import assets

    if not (assets.datasets.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian dataset-fashion-mnist not installed")
    root = tmp_path_factory.mktemp("det_pub")
    assets.composite_dataset(num_train=16, num_validation=8, image_size=64, max_objects=3, seed=2).save_to_disk(str(root / "set"))
    argv = [
        "--dataset_name", str(root / "set"), "--output_dir", str(root / "run"), "--model_name_or_path", "test_efficientnet",
        "--pretrained", "false", "--image_size", "64", "--neck_channels", "16", "--per_device_train_batch_size", "8",
        "--max_train_steps", "2", "--seed", "0",
    ]  # fmt: skip
    train_detector.main(argv)
    return root / "run"


def test_plan_holds_the_detector_its_pictures_and_a_card_equal_to_the_results(detector_run):
    (plan,) = plans(detector_run, REPO_ID).values()
    assert {"config.json", "model.safetensors", "predictions.png", "pr_curve.png", "all_results.json", "run_config.json"} <= set(plan.files)
    assert not any(name.startswith(("step_", "epoch_")) for name in plan.files)
    results = json.loads((detector_run / "all_results.json").read_text())
    index = {r.metric_type: r.metric_value for r in plan.card.data.eval_results}
    assert sorted(index.values()) == pytest.approx(sorted(v for k, v in results.items() if k.startswith("eval_")))
    assert plan.card.data.to_dict()["pipeline_tag"] == "object-detection" and "![precision-recall curves](pr_curve.png)" in plan.card.text
    assert f'YoloDetector.from_pretrained("{REPO_ID}")' in plan.card.text
    assert not any(p in plan.card.text for p in hub.PLACEHOLDERS)


def test_cards_snippet_loads_the_detector_from_the_hub(detector_run, olah_hub, tmp_path):
    from PIL import Image
    from skimage import data

    from hfdl.core.images import image_to_tensor
    from hfdl.tasks.detection.model import YoloDetector

    (plan,) = plans(detector_run, REPO_ID).values()
    with hub.stage(plan.files, plan.card) as staged:
        olah_hub.publish(REPO_ID, staged)
    Image.fromarray(data.coffee()).resize((80, 60)).save(tmp_path / "image.jpg")
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": olah_hub.endpoint, "HF_TOKEN": ""}
    code = re.search(r"```python\n(.*?)```", plan.card.text, re.S).group(1).replace("score_threshold=0.3", "score_threshold=0.0")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:] + olah_hub.logs()[-1000:]
    local = YoloDetector.from_pretrained(detector_run).eval()
    x = torch.nn.functional.interpolate(image_to_tensor(str(tmp_path / "image.jpg")), size=(local.image_size,) * 2, mode="bilinear")
    (found,) = local.detect(local.normalize(x), score_threshold=0.0)
    want = [
        f"{local.label_names[c]} {round(s, 3)} {[round(v) for v in b]}"
        for b, s, c in zip(found["boxes"].tolist(), found["scores"].tolist(), found["labels"].tolist())
    ]
    assert want and proc.stdout.strip().splitlines() == want
