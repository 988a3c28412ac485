"""The similarity Space, launched for real: search, verification and anomaly scores through gradio_client, and a
visitor's path in headless Chromium."""

import json
import shutil

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from spaces_harness import screenshot, upload

pytest.importorskip("gradio_client")

APP = REPO / "spaces" / "similarity"
EXAMPLES = APP / "examples"
EMBEDDERS = sorted(p.parent for p in (APP / "models" / "embedding").glob("*/model.safetensors"))
GALLERIES = sorted(p.parent for p in (APP / "models" / "gallery").glob("*/index_config.json"))
DETECTORS = sorted(p.parent for p in (APP / "models" / "anomaly").glob("*/model.safetensors"))
MISSING = "hfdl-test/missing-embedding"  # offered through HFDL_EMBEDDING_MODELS; offline and not cached, so it cannot load

if not EMBEDDERS or not GALLERIES or not DETECTORS:
    pytest.skip("no bundled models: run spaces/similarity/bundle_model.py", allow_module_level=True)

SNEAKER, SNEAKER_2, BAG, TROUSER = (EXAMPLES / f for f in ("query_0_sneaker.png", "query_1_sneaker.png", "query_2_bag.png", "query_3_trouser.png"))
PHOTO = EXAMPLES / "photo_astronaut.png"
GALLERY = f"{GALLERIES[0].name} (bundled)"


@pytest.fixture(scope="module")
def app(space):
    return space("similarity", HFDL_EMBEDDING_MODELS=MISSING)


@pytest.fixture(scope="module")
def local():
    """The bundled gallery and model, loaded in the test process: what the app must answer."""
    from hfdl.tasks.similarity.index import load_index
    from hfdl.tasks.similarity.model import EmbeddingModel

    gallery, config = load_index(GALLERIES[0])
    return gallery, config, EmbeddingModel.from_pretrained(str(APP / config["model"]))


def _file(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def _trouser_detector() -> str:
    return next(f"{json.loads((d / 'provenance.json').read_text())['normal_class']} (bundled)" for d in DETECTORS if "Trouser" in d.name)


def test_search_returns_the_gallerys_nearest_images(app, local):
    from hfdl.tasks.similarity.index import search

    gallery, config, model = local
    shown, hits = app.client().predict(_file(SNEAKER), api_name="/search")  # k = 8 by default
    want = search(gallery, config, model, [Image.open(SNEAKER)], 8)[0]
    assert [h["index"] for h in hits] == [w["index"] for w in want]
    assert [h["label"] for h in hits] == [w["label"] for w in want] == ["Sneaker"] * 8
    np.testing.assert_allclose([h["cosine_similarity"] for h in hits], [w["score"] for w in want], atol=1e-6)
    assert all(0 <= h["distance"] <= 2 for h in hits) and [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    assert len(shown) == 8 and shown[0]["caption"].startswith("1. Sneaker · distance")
    first = Image.open(shown[0]["image"]).convert("L")
    original = gallery[hits[0]["index"]]["image"].convert("L")  # the gallery image itself, upscaled with nearest neighbours
    assert first.size[0] >= 112 and np.array_equal(np.asarray(first.resize(original.size, Image.Resampling.NEAREST)), np.asarray(original))
    _, three = app.client().predict(_file(BAG), GALLERY, 3, api_name="/search")
    assert len(three) == 3 and {h["label"] for h in three} == {"Bag"}


def test_verify_same_and_different(app, local):
    _, _, model = local
    verdict, same = app.client().predict(_file(SNEAKER), _file(SNEAKER_2), api_name="/verify")
    assert same["same"] is True and verdict.startswith("**Same**")
    verdict, different = app.client().predict(_file(SNEAKER), _file(BAG), api_name="/verify")
    assert different["same"] is False and verdict.startswith("**Different**")
    a, b = model.embed_images([Image.open(SNEAKER), Image.open(BAG)])
    assert different["distance"] == pytest.approx(1 - float(a @ b), abs=1e-5)
    assert same["threshold_distance"] == pytest.approx(1 - model.threshold, abs=1e-6)
    assert same["distance"] <= same["threshold_distance"] < different["distance"]


def test_anomaly_scores_a_photo_as_unusual_and_a_trouser_as_normal(app):
    from hfdl.core.images import square_tensor
    from hfdl.tasks.anomaly.model import ConvAutoencoder

    trouser = _trouser_detector()
    normal, recon = app.client().predict(_file(TROUSER), trouser, api_name="/anomaly")
    odd, _ = app.client().predict(_file(PHOTO), trouser, api_name="/anomaly")
    bag, _ = app.client().predict(_file(BAG), trouser, api_name="/anomaly")
    assert normal["normal_class"] == "Trouser" and normal["verdict"] == "looks like Trouser" and normal["percentile"] < 95
    assert odd["verdict"] == bag["verdict"] == "unusual for Trouser" and odd["percentile"] > 99 and bag["percentile"] > 99
    assert odd["score"] > normal["score"] and normal["normal_test_images"] == 1000
    folder = next(d for d in DETECTORS if "Trouser" in d.name)
    model = ConvAutoencoder.from_pretrained(str(folder))
    local = float(model.anomaly_score(square_tensor(Image.open(TROUSER), 28, 1))[0])
    assert normal["score"] == pytest.approx(local, rel=1e-5)
    pair = np.asarray(Image.open(recon).convert("L"), dtype=np.float32) / 255
    assert pair.shape[1] > 1.8 * pair.shape[0]  # the input beside its reconstruction
    half = pair.shape[1] // 2
    assert np.abs(pair[:, :half] - pair[:, half:]).mean() < 0.15  # a trouser is rebuilt closely


def test_bad_input_is_a_one_line_error(app, tmp_path):
    from gradio_client.exceptions import AppError

    client = app.client()
    text = tmp_path / "notes.png"
    text.write_text("not pixels")
    ours = (  # hfdl's checks: a gr.Error without a traceback in the log
        (lambda: client.predict(_file(text), api_name="/search"), "not an image we can read.*upload a PNG or JPEG"),
        (lambda: client.predict(None, api_name="/search"), "No query image: upload one"),
        (lambda: client.predict(_file(SNEAKER), None, api_name="/verify"), "No second image"),
        (lambda: client.predict(_file(SNEAKER), _file(BAG), MISSING, api_name="/verify"), f"could not load an embedding model from .{MISSING}"),
    )
    gradios = (  # gradio checks the slider's range and the menus' choices itself (and logs them)
        (lambda: client.predict(_file(SNEAKER), GALLERY, 50, api_name="/search"), "greater than maximum value 20"),
        (lambda: client.predict(_file(SNEAKER), "nowhere/index", api_name="/search"), "nowhere/index is not in the list of choices"),
        (lambda: client.predict(_file(SNEAKER), "Hat (bundled)", api_name="/anomaly"), "Hat \\(bundled\\) is not in the list of choices"),
    )
    for i, (call, message) in enumerate(ours + gradios):
        with pytest.raises(AppError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
        if i == len(ours) - 1:
            assert "Traceback" not in app.log()


def test_in_chromium(app, browser_page, tmp_path):
    """A visitor's path: upload a shoe and see shoes; verify a pair; score a photo against Trouser."""
    page = browser_page
    page.goto(app.url)
    page.get_by_text("Image similarity").first.wait_for(timeout=60_000)
    query = tmp_path / "shoe.png"
    shutil.copy(SNEAKER, query)
    upload(page, "query", query)  # an upload searches at once
    page.locator("#results img").first.wait_for(timeout=60_000)
    assert page.locator("#results img").count() == 8
    page.locator("#hits").get_by_text("Sneaker").first.wait_for(timeout=30_000)
    screenshot(page, "similarity_search")
    page.get_by_role("tab", name="Verify").click()
    upload(page, "image_a", SNEAKER)
    upload(page, "image_b", BAG)
    page.locator("#verify").click()
    page.locator("#verdict").get_by_text("Different").wait_for(timeout=60_000)
    screenshot(page, "similarity_verify")
    page.get_by_role("tab", name="Anomaly").click()
    page.locator("#normal_class input").fill(_trouser_detector())
    page.locator("#normal_class input").press("Enter")
    upload(page, "odd", PHOTO)
    page.locator("#anomaly_score").get_by_text("unusual for Trouser").wait_for(timeout=60_000)
    page.locator("#reconstruction img").wait_for(timeout=30_000)
    screenshot(page, "similarity_anomaly")
    assert page.locator(".toast-body.error").count() == 0
