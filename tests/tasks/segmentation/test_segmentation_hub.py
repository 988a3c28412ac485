"""The segmenter on the Hub: the publisher's plan (files, card), and the card's snippet, run verbatim against a
real Hub API (olah), segments as the local model does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import hub_servers
import pytest
from conftest import REPO

from hfdl import hub
from hfdl.hub.registry import plans

sys.path.insert(0, str(REPO / "scripts"))
import train_segmenter  # noqa: E402

olah_hub = hub_servers.olah_hub
REPO_ID = "hfdl-tester/tiny-segmenter"


@pytest.fixture(scope="module")
def segmenter_run(tmp_path_factory):
    from hfdl import assets

    if not (assets.datasets.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian dataset-fashion-mnist not installed")
    root = tmp_path_factory.mktemp("seg_pub")
    assets.composite_dataset(num_train=16, num_validation=8, image_size=64, max_objects=3, seed=2).save_to_disk(str(root / "set"))
    (root / "set" / "id2label.json").write_text(json.dumps(dict(enumerate(assets.SEGMENTATION_LABELS))))
    argv = [
        "--dataset_name", str(root / "set"), "--output_dir", str(root / "run"), "--model_name_or_path", "test_efficientnet",
        "--pretrained", "false", "--image_size", "64", "--decoder_channels", "8", "--per_device_train_batch_size", "8",
        "--max_train_steps", "2", "--seed", "0",
    ]  # fmt: skip
    train_segmenter.main(argv)
    return root / "run"


def test_plan_holds_the_segmenter_its_pictures_and_a_card_equal_to_the_results(segmenter_run):
    (plan,) = plans(segmenter_run, REPO_ID).values()
    assert {"config.json", "model.safetensors", "label_map.json", "overlays.png", "confusion_matrix.png", "all_results.json", "run_config.json"} <= set(
        plan.files
    )
    assert not any(name.startswith(("step_", "epoch_")) for name in plan.files)
    results = json.loads((segmenter_run / "all_results.json").read_text())
    index = {r.metric_type: r.metric_value for r in plan.card.data.eval_results}
    assert sorted(index.values()) == pytest.approx(sorted(v for k, v in results.items() if k.startswith("eval_")))
    assert plan.card.data.to_dict()["pipeline_tag"] == "image-segmentation" and "![pixel confusion matrix](confusion_matrix.png)" in plan.card.text
    assert f'TimmSegmenter.from_pretrained("{REPO_ID}")' in plan.card.text and "mean IoU" in plan.commit_message
    assert not any(p in plan.card.text for p in hub.PLACEHOLDERS)


def test_cards_snippet_loads_the_segmenter_from_the_hub(segmenter_run, olah_hub, tmp_path):
    from PIL import Image
    from skimage import data

    from hfdl.tasks.segmentation.model import TimmSegmenter, segment_in_image

    (plan,) = plans(segmenter_run, REPO_ID).values()
    with hub.stage(plan.files, plan.card) as staged:
        olah_hub.publish(REPO_ID, staged)
    Image.fromarray(data.coffee()).resize((80, 60)).save(tmp_path / "image.jpg")
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": olah_hub.endpoint, "HF_TOKEN": ""}
    code = re.search(r"```python\n(.*?)```", plan.card.text, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:] + olah_hub.logs()[-1000:]
    local = TimmSegmenter.from_pretrained(segmenter_run)
    mask = segment_in_image(local, Image.open(tmp_path / "image.jpg").convert("RGB"))
    shares = mask.flatten().bincount(minlength=local.num_classes) / mask.numel()
    want = [f"{local.label_names[label]} {round(share, 4)}" for label, share in enumerate(shares.tolist()) if share > 0]
    assert want and proc.stdout.strip().splitlines() == want
