"""The CNN explorer Space, launched for real (gradio_client and headless Chromium), and its lesson functions."""

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image
from spaces_harness import screenshot, upload

from hfdl.core.labelled_images import AugmentConfig
from hfdl.errors import HfdlError
from hfdl.tasks.classification import explorer

APP = REPO / "spaces" / "cnn_explorer"
CAT = APP / "examples" / "cat.jpg"


def _step_edge(tmp_path=None, size=(40, 30)):
    a = np.zeros((size[1], size[0]), np.uint8)
    a[:, size[0] // 2 :] = 255  # dark left half, bright right half: one vertical edge
    img = Image.fromarray(a)
    if tmp_path is not None:
        img.save(tmp_path / "edge.png")
    return img


def test_sobel_x_on_a_vertical_step_edge_gives_a_vertical_line():
    out, sizes = explorer.convolve(_step_edge(), explorer.KERNELS["sobel x"], padding="valid")
    g = out[0, 0]  # every channel is the same grayscale image
    assert sizes["measured"] == sizes["formula"] == [28, 38]
    strong = (g > 0.5).float()
    columns = strong.mean(0).nonzero().flatten().tolist()
    assert columns == [18, 19]  # the two output columns whose 3 x 3 window straddles the edge (input columns 19 | 20)
    assert strong[:, 18:20].all()  # the whole height: a vertical line
    sobel_y, _ = explorer.convolve(_step_edge(), explorer.KERNELS["sobel y"], padding="valid")
    assert sobel_y.max() == 0  # nothing changes from row to row


@pytest.mark.parametrize(
    ("n", "k", "p", "s", "d"), [(28, 3, 0, 1, 1), (28, 3, 1, 2, 1), (32, 5, 2, 1, 1), (33, 5, 0, 3, 1), (40, 3, 2, 1, 2), (17, 5, 1, 4, 2)]
)
def test_output_sizes_match_the_formula(n, k, p, s, d):
    img = Image.new("RGB", (n, n + 3), "gray")
    kernel = [[1.0] * k for _ in range(k)]
    _, sizes = explorer.convolve(img, kernel, stride=s, padding=p, dilation=d)
    want = [(n + 3 + 2 * p - (d * (k - 1) + 1)) // s + 1, (n + 2 * p - (d * (k - 1) + 1)) // s + 1]
    assert sizes["formula"] == sizes["measured"] == want
    if s == 1:  # 'same' keeps the size at stride 1
        assert explorer.convolve(img, kernel, padding="same", dilation=d)[1]["measured"] == [n + 3, n]


def test_pooling_sizes_and_values():
    a = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    y, sizes = explorer.pool(Image.fromarray(a), "max", 2, 2)
    assert sizes["measured"] == sizes["formula"] == [2, 2]
    assert torch.allclose(y[0, 0] * 255, torch.tensor([[80.0, 112.0], [208.0, 240.0]]))
    avg, _ = explorer.pool(Image.fromarray(a), "average", 2, 2)
    assert torch.allclose(avg[0, 0] * 255, torch.tensor([[40.0, 72.0], [168.0, 200.0]]))


def test_bad_lesson_inputs_are_one_line_errors():
    for call, message in (
        (lambda: explorer.convolve(_step_edge(), [[1, 2], [3, 4]]), "3 x 3 or 5 x 5"),
        (lambda: explorer.convolve(_step_edge(), explorer.KERNELS["identity"], padding="wide"), "padding 'wide' is unknown"),
        (lambda: explorer.convolve(Image.new("L", (6, 6)), explorer.KERNELS["gaussian"], padding="valid", dilation=4), "larger than the padded image"),
        (lambda: explorer.pool(_step_edge(), "median"), "pooling 'median' is unknown"),
    ):
        with pytest.raises(HfdlError, match=message):
            call()


def test_augmentation_preview_is_deterministic_with_a_seed():
    img = Image.open(CAT)
    aug = AugmentConfig(hflip=0.5, rotation=20, translate=0.1, scale_min=0.3, gaussian_noise=0.1)
    a, b = explorer.augmentation_preview(img, aug, seed=5), explorer.augmentation_preview(img, aug, seed=5)
    c = explorer.augmentation_preview(img, aug, seed=6)
    assert a.shape == (8, 3, 224, 224) and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # eight different samples
    plain = explorer.augmentation_preview(img, AugmentConfig(hflip=0.0, scale_min=1.0), seed=5)
    assert torch.allclose(plain[0], plain[7])  # nothing random left: every sample is the image itself


@pytest.fixture(scope="module")
def app(space):
    return space("cnn_explorer")


def _grid(rows):
    """A kernel as the API's Dataframe value."""
    return {"headers": [str(i + 1) for i in range(len(rows[0]))], "data": rows, "metadata": None}


def _file(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def test_convolve_and_pool_through_the_api(app, tmp_path):
    _step_edge(tmp_path)
    image, sizes = app.client().predict(_file(tmp_path / "edge.png"), "sobel x", 1, "valid", 1, api_name="/convolve")
    assert sizes["measured"] == sizes["formula"] == [28, 38]
    shown = np.asarray(Image.open(image).convert("L"), dtype=np.float32) / 255
    column_means = shown.mean(0)
    assert column_means.argmax() * 38 // shown.shape[1] in (18, 19) and column_means.max() > 0.9 and column_means.min() == 0
    custom, custom_sizes = app.client().predict(_file(CAT), "custom (edit the grid)", 2, "1", 1, _grid([[0, 0, 0], [0, 1, 0], [0, 0, 0]]), api_name="/convolve")
    assert custom_sizes["measured"] == custom_sizes["formula"] == [113, 150]  # the 225 x 300 cat, stride 2, padding 1
    pooled, pool_sizes = app.client().predict(_file(CAT), "max", 4, 4, api_name="/pool")
    assert pool_sizes["measured"] == [56, 75]


def test_feature_maps_filters_and_receptive_field(app):
    maps, filters, info = app.client().predict(_file(CAT), "tf_efficientnet_lite0", 3, api_name="/feature_maps")
    assert info["stage"] == 3 and info["stride"] == 16 and info["shape"][1:] == [14, 14] and len(info["channels_shown"]) == 16
    assert info["receptive_field"] == 339 and [f["receptive_field"] for f in info["receptive_fields_of_every_stage"]] == [7, 19, 67, 339, 851]
    assert Image.open(maps).size[0] > 300 and Image.open(filters).size[0] > 100


def test_augment_through_the_api_repeats_with_the_seed(app):
    a = app.client().predict(_file(CAT), 3, api_name="/augment")
    b = app.client().predict(_file(CAT), 3, api_name="/augment")
    c = app.client().predict(_file(CAT), 4, api_name="/augment")
    pixels = [np.asarray(Image.open(p)) for p in (a, b, c)]
    assert np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[0], pixels[2])


def test_bad_input_is_a_one_line_error(app, tmp_path):
    from gradio_client.exceptions import AppError

    text = tmp_path / "notes.png"
    text.write_text("not pixels")
    for call, message in (
        (lambda: app.client().predict(_file(text), "sobel x", api_name="/convolve"), "not an image we can read"),
        (lambda: app.client().predict(None, api_name="/pool"), "No image: upload one"),
        (lambda: app.client().predict(_file(CAT), "custom (edit the grid)", 1, "same", 1, _grid([[1, 2], [3, 4]]), api_name="/convolve"), "3 x 3 or 5 x 5"),
        (lambda: app.client().predict(_file(CAT), "tf_efficientnet_lite0", 9, api_name="/feature_maps"), "greater than maximum|stage 9 does not exist"),
    ):
        with pytest.raises(AppError, match=message) as err:
            call()
        assert "\n" not in str(err.value)


def test_in_chromium(app, browser_page, tmp_path):
    """A student's path: upload the edge, see the Sobel line and the sizes; look inside the network; sample augmentations."""
    page = browser_page
    page.goto(app.url)
    page.get_by_text("CNN explorer").first.wait_for(timeout=60_000)
    upload(page, "conv_image", CAT)  # a new image convolves at once
    page.locator("#conv_output img").wait_for(timeout=60_000)
    page.locator("#conv_sizes").get_by_text('"measured"').wait_for(timeout=30_000)
    screenshot(page, "cnn_explorer_convolution")
    page.get_by_role("tab", name="Inside a network").click()
    upload(page, "net_image", CAT)
    page.locator("#show").click()
    page.locator("#maps img").wait_for(timeout=90_000)
    page.locator("#net_info").get_by_text("receptive_field").first.wait_for(timeout=30_000)
    screenshot(page, "cnn_explorer_network")
    page.get_by_role("tab", name="Augmentation").click()
    upload(page, "aug_image", CAT)
    page.locator("#augment").click()
    page.locator("#aug_output img").wait_for(timeout=60_000)
    screenshot(page, "cnn_explorer_augmentation")
    assert page.locator(".toast-body.error").count() == 0
