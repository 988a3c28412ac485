"""The object-detection Space, launched for real: through gradio_client and in headless Chromium."""

import json
import shutil

import pytest
import torch
from conftest import REPO
from PIL import Image
from spaces_harness import screenshot, set_number, upload

pytest.importorskip("gradio_client")

APP = REPO / "spaces" / "object_detection"
EXAMPLES = APP / "examples"
TRUTH = json.loads((EXAMPLES / "composites.json").read_text())["images"]  # ground-truth boxes of the composite examples
BUNDLED = sorted(p.parent for p in (APP / "models").glob("*/model.safetensors"))
MISSING = "hfdl-test/missing-detector"  # offered through HFDL_DETECTION_MODELS; offline and not cached, so it cannot load

if not BUNDLED:
    pytest.skip("no bundled detector: run spaces/object_detection/bundle_model.py", allow_module_level=True)


@pytest.fixture(scope="module")
def app(space):
    return space("object_detection", HFDL_DETECTION_MODELS=MISSING)


def _detect(app, image, **kwargs):
    from gradio_client import handle_file

    return app.client().predict(handle_file(str(image)) if image is not None else None, api_name="/detect", **kwargs)


def _model_runs(app) -> int:
    return app.log().count("model run: ")  # the app logs each run of a detector


def _iou(a, b) -> float:
    from torchvision.ops import box_iou

    return float(box_iou(torch.tensor([a]), torch.tensor([b]))[0, 0])


def test_detect_finds_the_composite_objects(app):
    name = "composite_17.png"
    w, h = Image.open(EXAMPLES / name).size
    annotated, detections = _detect(app, EXAMPLES / name)
    assert detections, "the bundled detector found nothing on a composite of its own evaluation split"
    for d in detections:
        assert set(d) == {"label", "score", "box"}
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
        assert 0.3 <= d["score"] <= 1
    assert [d["score"] for d in detections] == sorted((d["score"] for d in detections), reverse=True)
    # the best match of a ground-truth object: same label, IoU > 0.5
    best = max(_iou(t["box"], d["box"]) for t in TRUTH[name]["objects"] for d in detections if d["label"] == t["label"])
    assert best > 0.5
    # the annotated image: one box per detection (the best 25), on the image shown at 640 px
    assert [a["label"] for a in annotated["annotations"]] == [f"{d['label']} {d['score']:.2f}" for d in detections[:25]]
    assert Image.open(annotated["image"]).size == (640, 640)


def test_detect_matches_detect_image(app):
    """The app's run-once-then-filter path gives what `detect_image` (one run at the threshold) gives."""
    from hfdl.tasks.detection.model import YoloDetector, detect_image

    expected, _ = detect_image(YoloDetector.from_pretrained(BUNDLED[0]), EXAMPLES / "composite_39.png", 0.4, 0.5)
    _, detections = _detect(app, EXAMPLES / "composite_39.png", score_threshold=0.4, iou_threshold=0.5)
    assert [d["label"] for d in detections] == [d["label"] for d in expected]
    for got, want in zip(detections, expected):
        assert got["score"] == pytest.approx(want["score"], abs=2e-3)  # fp16 weights here vs fp32 weights in the app: both load as fp32
        assert got["box"] == pytest.approx(want["box"], abs=0.5)


def test_sliders_refilter_without_running_the_model(app):
    before = _model_runs(app)
    _detect(app, EXAMPLES / "composite_39.png", score_threshold=0.05, iou_threshold=1.0)  # this session's raw detections
    assert _model_runs(app) == before + 1
    kept = []
    for threshold in (0.05, 0.2, 0.4, 0.6, 0.8, 0.95):
        _, detections, status = app.client().predict(threshold, 0.5, api_name="/refilter")
        assert all(d["score"] >= threshold for d in detections)
        assert "not run again" in status
        kept.append({(d["label"], d["score"], tuple(d["box"])) for d in detections})
    assert all(higher <= lower for lower, higher in zip(kept, kept[1:]))  # raising the threshold never adds a detection
    assert len(kept[0]) > len(kept[-1])
    _, no_nms, _ = app.client().predict(0.05, 1.0, api_name="/refilter")
    assert len(no_nms) >= len(kept[0])  # NMS off keeps at least as many
    assert _model_runs(app) == before + 1  # the sliders never ran the model


def test_any_image_mode_and_size(app, tmp_path):
    base = Image.open(EXAMPLES / "composite_39.png").resize((333, 201))
    for mode in ("RGBA", "L", "P"):
        path = tmp_path / f"odd_{mode}.png"
        base.convert(mode).save(path)
        annotated, detections = _detect(app, path, score_threshold=0.05)
        assert Image.open(annotated["image"]).size == (640, 386)
        assert all(0 <= d["box"][0] <= d["box"][2] <= 333 and 0 <= d["box"][1] <= d["box"][3] <= 201 for d in detections)


def test_bad_inputs_give_one_line_errors(app, tmp_path):
    from gradio_client.exceptions import AppError

    for name in ("notes.txt", "notes.png"):
        text = tmp_path / name
        text.write_text("not pixels")
        with pytest.raises(AppError, match="Image is not an image we can read.*upload a PNG or JPEG"):
            _detect(app, text)
    with pytest.raises(AppError, match="No image: upload one"):
        _detect(app, None)
    with pytest.raises(AppError, match=f"{MISSING}.*not in the local Hub cache") as err:
        _detect(app, EXAMPLES / "composite_17.png", model_name=MISSING)
    assert "\n" not in str(err.value)
    assert "Traceback" not in app.log()


def test_in_the_browser(app, browser_page, tmp_path):
    """A person's path: upload a composite, see the boxes and the JSON; raise the threshold, fewer boxes, no new run."""
    page = browser_page
    page.goto(app.url)
    page.get_by_text("Object detection").first.wait_for(timeout=60_000)
    image = tmp_path / "photo.png"
    shutil.copy(EXAMPLES / "composite_17.png", image)
    before = _model_runs(app)
    upload(page, "image", image)
    page.locator("#status").get_by_text("Detected:").wait_for(timeout=60_000)
    page.locator("#annotated img").first.wait_for(timeout=30_000)
    assert "ran composites-lite0" in page.locator("#status").inner_text()
    detections = page.locator("#detections")
    detections.get_by_text("Dress").first.wait_for(timeout=30_000)  # the JSON shows the labels
    shot = screenshot(page, "space_object_detection")
    assert shot.stat().st_size > 10_000
    assert _model_runs(app) == before + 1
    set_number(page, "threshold", 0.99)
    page.locator("#status").get_by_text("not run again").wait_for(timeout=30_000)
    assert "Detected: 0 kept" in page.locator("#status").inner_text()
    assert _model_runs(app) == before + 1
    page.get_by_text("Composite (2 items)").click()  # an example: a new image, so the model runs again
    page.locator("#status").get_by_text("ran composites-lite0").wait_for(timeout=30_000)
    assert _model_runs(app) == before + 2
    assert page.locator(".toast-body.error").count() == 0
