"""The image classification Space, launched for real: top-5 labels, class activation maps, one-line errors, Chromium."""

import shutil

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from spaces_harness import screenshot, upload

pytest.importorskip("gradio_client")
pytest.importorskip("pytorch_grad_cam")

APP = REPO / "spaces" / "image_classification"
CAT, SNEAKER = APP / "examples" / "cat.jpg", APP / "examples" / "sneaker.png"
LITE0, FASHION = "tf_efficientnet_lite0 (ImageNet)", "fashion-lite0-feature (bundled)"
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
    page.wait_for_function("() => (document.querySelector('#preprocessing textarea') || {}).value?.includes('centre crop 224')", timeout=30_000)
    screenshot(page, "image_classification")
    first = page.locator("#overlay img").get_attribute("src")
    page.locator("#method").get_by_text("eigencam").click()
    page.wait_for_function(f"() => document.querySelector('#overlay img') && document.querySelector('#overlay img').src !== {first!r}", timeout=60_000)
    assert page.locator(".toast-body.error").count() == 0
