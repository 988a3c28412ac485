"""The generator on the Hub: the publisher's plan (files, card = results), and the card's snippet, run verbatim
against a real Hub API (olah), samples exactly what the local model samples."""

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
from PIL import Image

from hfdl import hub
from hfdl.hub.registry import plans

sys.path.insert(0, str(REPO / "scripts"))
import generate_images  # noqa: E402
import train_generative  # noqa: E402

from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.generative.model import ImageGenerator  # noqa: E402

olah_hub = hub_servers.olah_hub
REPO_ID = "hfdl-tester/tiny-dcgan"


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen_pub") / "run"
    argv = [
        "--dataset_name", "digits", "--output_dir", str(out), "--model_type", "dcgan", "--conditional", "--base_channels", "8",
        "--max_train_steps", "3", "--fid_samples", "60", "--eval_fid_samples", "0", "--seed", "0",
    ]  # fmt: skip
    train_generative.main(argv)
    return out


def test_plan_holds_the_model_its_pictures_and_a_card_equal_to_the_results(gan_run):
    (plan,) = plans(gan_run, REPO_ID).values()
    assert {"config.json", "model.safetensors", "samples.png", "interpolation.png", "feature_network.json", "all_results.json", "run_config.json"} <= set(
        plan.files
    )
    results = json.loads((gan_run / "all_results.json").read_text())
    index = {r.metric_type: r.metric_value for r in plan.card.data.eval_results}
    assert index == {"fid": results["eval_fid"], "kid": results["eval_kid"], "kid_std": results["eval_kid_std"], "fid_data_floor": results["data_fid_floor"]}
    assert plan.card.data.to_dict()["pipeline_tag"] == "unconditional-image-generation" and "![samples](samples.png)" in plan.card.text
    assert "FID" in plan.commit_message and "one class per column" in plan.card.text
    assert not any(p in plan.card.text for p in hub.PLACEHOLDERS)


def test_cards_snippet_samples_from_the_hub_what_the_local_model_samples(gan_run, olah_hub, tmp_path):
    (plan,) = plans(gan_run, REPO_ID).values()
    with hub.stage(plan.files, plan.card) as staged:
        olah_hub.publish(REPO_ID, staged)
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": olah_hub.endpoint, "HF_TOKEN": ""}
    code = re.search(r"```python\n(.*?)```", plan.card.text, re.S).group(1) + "\nimport torch\ntorch.save(images, 'images.pt')\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:] + olah_hub.logs()[-1000:]
    pulled = torch.load(tmp_path / "images.pt", weights_only=True)
    local = ImageGenerator.from_pretrained(gan_run).sample(16, seed=0, labels=0)
    assert torch.equal(pulled, local) and (tmp_path / "samples.png").is_file()


def test_generate_images_script_grid_interpolation_class_and_reconstruction(gan_run, tmp_path):
    a = generate_images.main(["--model", str(gan_run), "--num_images", "12", "--seed", "4", "--output", str(tmp_path / "a.png")])
    generate_images.main(["--model", str(gan_run), "--num_images", "12", "--seed", "4", "--output", str(tmp_path / "b.png")])
    assert a["images"] == 12 and (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()  # same seed, same file
    c = generate_images.main(["--model", str(gan_run), "--class_label", "7", "--num_images", "4", "--output", str(tmp_path / "c.png")])
    assert c["class"] == "7"
    strip = generate_images.main(["--model", str(gan_run), "--interpolate", "1", "2", "--steps", "5", "--output", str(tmp_path / "s.png")])
    assert strip["images"] == 5 and Image.open(tmp_path / "s.png").size[0] > Image.open(tmp_path / "s.png").size[1] * 3
    with pytest.raises(HfdlError, match="class label 12 is out of range"):
        generate_images.main(["--model", str(gan_run), "--class_label", "12", "--output", str(tmp_path / "d.png")])
    with pytest.raises(HfdlError, match="a dcgan has no encoder"):
        generate_images.main(["--model", str(gan_run), "--reconstruct", str(tmp_path / "a.png"), "--output", str(tmp_path / "e.png")])
    with pytest.raises(HfdlError, match="could not load an hfdl image generator from"):
        generate_images.main(["--model", str(tmp_path / "nowhere"), "--output", str(tmp_path / "f.png")])
