"""The generation Space, launched for real: through gradio_client and in headless Chromium."""

import time

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from spaces_harness import screenshot, set_number

pytest.importorskip("gradio_client")

APP = REPO / "spaces" / "generation"
IMAGE_MODELS = sorted(p.parent for p in (APP / "models" / "images").glob("*/model.safetensors"))
TEXT_MODELS = sorted(p.parent for p in (APP / "models" / "text").glob("*/model.safetensors"))
MISSING = "hfdl-test/missing-generator"  # offered through HFDL_GENERATION_MODELS; offline and not cached, so it cannot load

if not IMAGE_MODELS or not TEXT_MODELS:
    pytest.skip("no bundled models: run spaces/generation/bundle_model.py", allow_module_level=True)


def _menu(folder) -> str:
    return f"{folder.name} (bundled)"


VAE = next(f for f in IMAGE_MODELS if "vae" in f.name)
GAN = next(f for f in IMAGE_MODELS if "gan" in f.name)


@pytest.fixture(scope="module")
def app(space):
    return space("generation", HFDL_GENERATION_MODELS=MISSING)


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255


def _expected_grid(folder, seed: int, count: int, label=None, nrow: int = 8) -> np.ndarray:
    """What the app should show: the model's samples through the same grid code."""
    from torchvision.utils import make_grid

    from hfdl.tasks.generative.model import ImageGenerator
    from hfdl.tasks.generative.pictures import upscale

    images = ImageGenerator.from_pretrained(folder).sample(count, seed=seed, labels=label)
    grid = make_grid(upscale(images, 84), nrow=nrow, padding=2, pad_value=1.0)
    return (grid[0] * 255).round().clamp(0, 255).numpy() / 255  # 8-bit, as a PNG holds it


def test_sample_images_same_seed_same_grid(app):
    client = app.client()
    t0 = time.perf_counter()
    a = client.predict(3, 16, api_name="/sample_images")
    seconds = time.perf_counter() - t0
    b = client.predict(3, 16, api_name="/sample_images")
    c = client.predict(4, 16, api_name="/sample_images")
    assert np.array_equal(_pixels(a), _pixels(b)) and not np.array_equal(_pixels(a), _pixels(c))
    np.testing.assert_allclose(_pixels(a), _expected_grid(VAE, 3, 16), atol=1.5 / 255)  # the default model: the bundled VAE
    print(f"16-image grid through the API in {seconds * 1000:.0f} ms")


def test_conditional_gan_samples_the_chosen_class(app):
    from hfdl.tasks.generative.model import ImageGenerator

    gan = ImageGenerator.from_pretrained(GAN)
    assert gan.num_classes == 10
    grid = app.client().predict(0, 8, _menu(GAN), "Trouser", api_name="/sample_images")
    np.testing.assert_allclose(_pixels(grid), _expected_grid(GAN, 0, 8, label=1), atol=1.5 / 255)
    every = app.client().predict(0, 20, _menu(GAN), api_name="/sample_images")  # every class in turn: one per column
    assert Image.open(every).size[0] > Image.open(every).size[1] * 4


def test_interpolation_ends_at_the_two_seeds(app):
    client = app.client()
    start, strip = client.predict(5, 9, 0.0, api_name="/interpolate")
    end, _ = client.predict(5, 9, 1.0, api_name="/interpolate")
    np.testing.assert_allclose(_pixels(start), _expected_grid(VAE, 5, 1, nrow=1), atol=1.5 / 255)
    np.testing.assert_allclose(_pixels(end), _expected_grid(VAE, 9, 1, nrow=1), atol=1.5 / 255)
    assert Image.open(strip).size[0] > 9 * Image.open(strip).size[1]


def test_reconstruction_and_latent_arithmetic(app, tmp_path):
    from gradio_client import handle_file

    from hfdl.core.image_tensors import load_image_tensors

    data = load_image_tensors("fashion_mnist", max_eval_samples=4, max_train_samples=10)
    Image.fromarray(data.test[0, 0].numpy()).resize((100, 100)).convert("RGB").save(tmp_path / "item.png")  # any size and mode
    pair = _pixels(app.client().predict(handle_file(str(tmp_path / "item.png")), api_name="/reconstruct"))
    half = pair.shape[1] // 2
    original, rebuilt = pair[:, :half], pair[:, half:]
    assert np.abs(original - rebuilt).mean() < 0.12 and np.abs(original - rebuilt[::-1]).mean() > np.abs(original - rebuilt).mean()
    arith = _pixels(app.client().predict("Trouser - Shirt + Dress", api_name="/arithmetic"))
    assert arith.std() > 0.05  # an image, not a blank
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="has no class name at 'hat'"):
        app.client().predict("Trouser - Hat", api_name="/arithmetic")
    with pytest.raises(AppError, match="has no encoder to reconstruct with"):
        app.client().predict(handle_file(str(tmp_path / "item.png")), _menu(GAN), api_name="/reconstruct")


def test_generate_text_streams_and_repeats_with_the_seed(app):
    from hfdl.tasks.char_lm.model import load_char_lm

    client = app.client()
    job = client.submit("It is a truth", api_name="/generate_text")
    final = job.result()
    outputs = job.outputs()
    assert final.startswith("It is a truth") and len(final) == len("It is a truth") + 300
    assert len(outputs) > 50 and all(b.startswith(a) for a, b in zip(outputs, outputs[1:]))  # streamed, growing
    again = client.predict("It is a truth", api_name="/generate_text")
    local = load_char_lm(str(TEXT_MODELS[0])).generate("It is a truth", 300, 0.8, None, 0.95, seed=0)
    assert again == final == local
    other = client.predict("It is a truth", _menu(TEXT_MODELS[0]), 0.8, 0, 0.95, 1, 100, api_name="/generate_text")
    assert other != final[: len(other)]


def test_bad_input_is_a_one_line_error(app):
    from gradio_client.exceptions import AppError

    client = app.client()
    for args, message in (
        ((0, 500), "greater than maximum value 64|Count must be between 1 and 64"),
        ((0, 4, MISSING), "Could not load the generator|could not load an hfdl image generator"),
        ((0, 4, _menu(GAN), "Hat"), "class 'Hat' is unknown"),
    ):
        with pytest.raises(AppError, match=message) as err:
            client.predict(*args, api_name="/sample_images")
        assert "\n" not in str(err.value)
    with pytest.raises(AppError, match="less than minimum value 0.0"):  # gradio checks the slider's range
        client.predict("x", _menu(TEXT_MODELS[0]), -1.0, api_name="/generate_text")
    with pytest.raises(AppError, match="top_k must be >= 0"):  # hfdl's own check
        client.predict("x", _menu(TEXT_MODELS[0]), 0.8, -3, api_name="/generate_text")


def test_in_chromium(app, browser_page):
    page = browser_page
    page.goto(app.url)
    page.locator("#grid img").wait_for(timeout=60_000)  # sampled on load
    first = page.locator("#grid img").get_attribute("src")
    set_number(page, "seed", 7)
    page.locator("#sample").click()
    page.wait_for_function(f"() => document.querySelector('#grid img') && document.querySelector('#grid img').src !== {first!r}", timeout=60_000)
    screenshot(page, "generation_images")
    page.get_by_role("tab", name="Text").click()
    page.locator("#generate").click()
    page.wait_for_function("() => (document.querySelector('#text textarea') || {}).value?.length > 200", timeout=60_000)
    text = page.locator("#text textarea").input_value()
    assert text.startswith("It is a truth universally acknowledged")
    screenshot(page, "generation_text")
