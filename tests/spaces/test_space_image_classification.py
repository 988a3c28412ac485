"""The image classification Space, launched for real: top-5 labels, class activation maps, one-line errors, Chromium."""

import shutil

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image
from spaces_harness import screenshot, upload

pytest.importorskip("gradio_client")
pytest.importorskip("pytorch_grad_cam")

APP = REPO / "spaces" / "image_classification"
CAT, SNEAKER = APP / "examples" / "cat.jpg", APP / "examples" / "sneaker.png"
LITE0, FASHION = "tf_efficientnet_lite0 (ImageNet)", "fashion-lite0-feature (bundled)"
FINETUNED = "fashion-lite0-finetune-top (bundled)"
MISSING = "hfdl-test/missing-classifier"
CAT_CLASSES = {"tiger cat", "Egyptian cat", "tabby", "Persian cat", "Siamese cat"}


@pytest.fixture(scope="module")
def app(space):
    return space("image_classification", HFDL_CLASSIFIER_MODELS=MISSING)


def _file(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def test_lite0_puts_chelsea_in_a_cat_class(app):
    labels = app.client().predict(_file(CAT), api_name="/classify")  # the default model: ImageNet Lite0
    top = labels["label"]
    assert top in CAT_CLASSES and len(labels["confidences"]) == 5
    probabilities = [c["confidence"] for c in labels["confidences"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001
    mobile = app.client().predict(_file(CAT), "mobilenetv2_100 (ImageNet)", api_name="/classify")
    assert mobile["label"] in CAT_CLASSES


def test_the_bundled_fashion_head_classifies_a_sneaker_as_the_run_did(app):
    from hfdl.tasks.classification.explain import load_any_classifier

    labels = app.client().predict(_file(SNEAKER), FASHION, api_name="/classify")
    local = load_any_classifier(str(APP / "models" / "fashion-lite0-feature")).top_k(Image.open(SNEAKER), 5)
    assert labels["label"] == next(iter(local)) == "Sneaker"
    assert {c["label"]: round(c["confidence"], 4) for c in labels["confidences"]} == {k: round(v, 4) for k, v in local.items()}


def test_compare_shows_the_feature_based_and_the_fine_tuned_classifier_side_by_side(app):
    """/compare: the same image through both bundled Fashion-MNIST classifiers, each as it loads here (the fine-tuned
    one from its head and float16 last stage on top of the package-shipped Lite0)."""
    from hfdl.tasks.classification.explain import load_any_classifier

    results = app.client().predict(_file(SNEAKER), api_name="/compare")
    assert len(results) == 2
    for labels, folder in zip(results, ("fashion-lite0-feature", "fashion-lite0-finetune-top")):
        local = load_any_classifier(str(APP / "models" / folder)).top_k(Image.open(SNEAKER), 5)
        assert labels["label"] == next(iter(local)) == "Sneaker"
        shown = dict(list(local.items())[:3])  # the side-by-side labels show the top 3
        assert {c["label"]: round(c["confidence"], 4) for c in labels["confidences"]} == {k: round(v, 4) for k, v in shown.items()}
    feature, finetuned = ({c["label"]: c["confidence"] for c in r["confidences"]} for r in results)
    assert feature != finetuned  # two different networks, not one shown twice
    single = app.client().predict(_file(SNEAKER), FINETUNED, api_name="/classify")
    assert single["label"] == "Sneaker"


def test_bundling_a_fine_tuned_run_stores_only_what_moved_and_refuses_a_whole_backbone(tmp_path, imagefolder):
    """bundle_model.py on Lite0 runs: a --unfreeze 1 run becomes the head + its last stage as float16 (the frozen
    stages are the package's), classifying as the run does; a run whose whole backbone moved is refused."""
    import importlib.util
    import sys

    from safetensors.torch import load_file

    from hfdl.tasks.classification.explain import DELTA_FILE, HEAD_FILE, load_any_classifier

    sys.path.insert(0, str(REPO / "scripts"))
    import finetune
    from conftest import tiny_args

    spec = importlib.util.spec_from_file_location("image_classification_bundle_model", APP / "bundle_model.py")
    bundle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bundle)
    top = tmp_path / "top"
    finetune.main(tiny_args(top, "tf_efficientnet_lite0", *imagefolder, "--strategy", "finetune", "--unfreeze", "1", "--max_train_steps", "2"))
    target = bundle.main([str(top / "finetune"), "--name", "tiny-top"], models_dir=tmp_path / "models")
    delta = load_file(str(target / DELTA_FILE))
    assert delta and all(k.startswith(("blocks.6.", "conv_head.", "bn2.")) for k in delta)  # the last group only
    assert {v.dtype for v in delta.values()} <= {torch.float16, torch.int64} and set(load_file(str(target / HEAD_FILE))) == {
        "classifier.weight",
        "classifier.bias",
    }
    probe = Image.open(SNEAKER).convert("RGB")
    a, b = load_any_classifier(str(top / "finetune")), load_any_classifier(str(target))
    assert float((a.probabilities(probe) - b.probabilities(probe)).abs().max()) < 2e-3
    whole = tmp_path / "whole"
    finetune.main(tiny_args(whole, "tf_efficientnet_lite0", *imagefolder, "--strategy", "finetune", "--max_train_steps", "2"))
    with pytest.raises(SystemExit, match=r"changed \d+ backbone tensors .* more than --max_delta_mb 2.5"):
        bundle.main([str(whole / "finetune"), "--name", "tiny-top"], models_dir=tmp_path / "models")
    assert (target / DELTA_FILE).is_file()  # the earlier bundle stays


def test_grad_cam_heat_is_on_the_cat_not_the_corners(app):
    from hfdl.tasks.classification.explain import load_any_classifier

    overlay = Image.open(app.client().predict(_file(CAT), LITE0, "", "gradcam", api_name="/explain"))
    assert overlay.size == (224, 224)
    _, explained, heat = load_any_classifier("tf_efficientnet_lite0").explain(Image.open(CAT), None, "gradcam")
    h = heat.numpy()
    # the cat's head in the model's 224 x 224 view (the 451 x 300 photo resized to 256 high, centre-cropped): a hand-given box
    box = np.zeros_like(h, dtype=bool)
    box[20:200, 30:170] = True
    assert explained in CAT_CLASSES and h[box].mean() > h[~box].mean() + 0.1
    for method in ("gradcam++", "eigencam"):
        assert Image.open(app.client().predict(_file(CAT), LITE0, "tabby", method, api_name="/explain")).size == (224, 224)


def test_bad_input_is_a_one_line_error(app, tmp_path):
    from gradio_client.exceptions import AppError

    text = tmp_path / "notes.png"
    text.write_text("not pixels")
    for call, message in (
        (lambda: app.client().predict(_file(text), api_name="/classify"), "not an image we can read"),
        (lambda: app.client().predict(None, api_name="/classify"), "No image: upload one"),
        (lambda: app.client().predict(_file(CAT), LITE0, "a unicorn", api_name="/explain"), "class 'a unicorn' is not one of this model's 1000 classes"),
        (lambda: app.client().predict(_file(CAT), MISSING, api_name="/classify"), f"Could not load the classifier {MISSING}|{MISSING}"),
    ):
        with pytest.raises(AppError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
    assert "Traceback" not in app.log()


def test_in_chromium(app, browser_page, tmp_path):
    """A visitor's path: upload the cat, see cat labels, the heat map and the preprocessing; switch the CAM method."""
    page = browser_page
    page.goto(app.url)
    page.get_by_text("Image classification, explained").first.wait_for(timeout=60_000)
    image = tmp_path / "cat.jpg"
    shutil.copy(CAT, image)
    upload(page, "image", image)
    page.locator("#top5").get_by_text("cat").first.wait_for(timeout=60_000)
    page.locator("#overlay img").wait_for(timeout=60_000)
    for i in (0, 1):  # the cat through both bundled Fashion-MNIST classifiers, side by side: some garment, in per cent
        page.locator(f"#bundled_{i}").get_by_text("%").first.wait_for(timeout=60_000)
    assert "test accuracy 0.8671" in page.locator("#bundled_1").inner_text()
    page.wait_for_function("() => (document.querySelector('#preprocessing textarea') || {}).value?.includes('centre crop 224')", timeout=30_000)
    screenshot(page, "image_classification")
    first = page.locator("#overlay img").get_attribute("src")
    page.locator("#method").get_by_text("eigencam").click()
    page.wait_for_function(f"() => document.querySelector('#overlay img') && document.querySelector('#overlay img').src !== {first!r}", timeout=60_000)
    assert page.locator(".toast-body.error").count() == 0
