"""hfdl.hub.space_parts, what the Spaces share: the model menu, the image input and the image check (no app launched)."""

import json
import subprocess
import sys

import pytest
from conftest import REPO
from PIL import Image

gr = pytest.importorskip("gradio")
from hfdl.errors import HfdlError  # noqa: E402
from hfdl.hub import space_parts  # noqa: E402
from hfdl.hub.space_parts import ImageInput, ModelMenu, check_image  # noqa: E402


def _bundle(models, name, *, weights=True, provenance=None):
    folder = models / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    if weights:
        (folder / "model.safetensors").write_bytes(b"")
    if provenance is not None:
        (folder / "provenance.json").write_text(json.dumps(provenance))
    return folder


def _one_line_error(excinfo) -> str:
    err = excinfo.value
    assert isinstance(err, gr.Error) and err.print_exception is False  # shown on the page, no server traceback
    assert "\n" not in err.message
    return err.message


@pytest.fixture
def models(tmp_path):
    models = tmp_path / "models"
    _bundle(models, "b-net")
    _bundle(models, "a-net")
    _bundle(models, "half", weights=False)  # no model.safetensors: not offered
    (models / "notes.txt").write_text("not a folder")
    return models


def test_menu_offers_bundled_folders_then_env_ids(models, monkeypatch):
    monkeypatch.setenv("HFDL_TEST_MODELS", " org/one, ,org/two ,")
    loaded = []
    menu = ModelMenu("detector", models, "HFDL_TEST_MODELS", lambda source: loaded.append(source) or f"model from {source}")
    assert menu.choices == ["a-net (bundled)", "b-net (bundled)", "org/one", "org/two"]
    assert menu.default == "a-net (bundled)"
    assert menu.sources["a-net (bundled)"] == str(models / "a-net") and menu.sources["org/two"] == "org/two"
    assert menu.get() == ("a-net (bundled)", f"model from {models / 'a-net'}")  # None: the default
    assert menu.get("org/two") == ("org/two", "model from org/two")
    assert menu.get("org/two") == ("org/two", "model from org/two")
    assert loaded == [str(models / "a-net"), "org/two"]  # each loaded once, then cached


def test_menu_without_bundles_takes_the_env_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("HFDL_TEST_MODELS", "org/only")
    menu = ModelMenu("segmenter", tmp_path / "missing", "HFDL_TEST_MODELS", str)
    assert (menu.choices, menu.default) == (["org/only"], "org/only")


def test_empty_menu_says_how_to_add_a_model(tmp_path, monkeypatch):
    monkeypatch.delenv("HFDL_TEST_MODELS", raising=False)
    menu = ModelMenu("detector", tmp_path, "HFDL_TEST_MODELS", str)
    assert (menu.choices, menu.default) == ([], None)
    with pytest.raises(gr.Error) as excinfo:
        menu.get(None)
    assert _one_line_error(excinfo) == "No detector is available here: bundle one into models/ or set HFDL_TEST_MODELS to Hub ids"
    custom = ModelMenu("fast style network", tmp_path, "HFDL_TEST_MODELS", str, empty="No fast style network here: choose optimisation")
    with pytest.raises(gr.Error) as excinfo:
        custom.get("anything")
    assert _one_line_error(excinfo) == "No fast style network here: choose optimisation"


def test_unknown_name_lists_the_choices(models, monkeypatch):
    monkeypatch.setenv("HFDL_TEST_MODELS", "org/one")
    menu = ModelMenu("segmenter", models, "HFDL_TEST_MODELS", str)
    with pytest.raises(gr.Error) as excinfo:
        menu.get("org/other")
    assert _one_line_error(excinfo) == "Unknown segmenter 'org/other': choose one of a-net (bundled), b-net (bundled), org/one"


def test_load_failures_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HFDL_TEST_MODELS", "org/hfdl, org/broken, org/silent")

    def loader(source):
        if source == "org/hfdl":
            raise HfdlError("org/hfdl is not a detector folder: pass one written by train_detector.py")
        if source == "org/broken":
            raise OSError("We couldn't connect to the Hub\n  and no cached copy   was found " + "x" * 400)
        raise RuntimeError()

    menu = ModelMenu("detector", tmp_path, "HFDL_TEST_MODELS", loader)
    with pytest.raises(gr.Error) as excinfo:
        menu.get("org/hfdl")
    assert _one_line_error(excinfo) == "org/hfdl is not a detector folder: pass one written by train_detector.py"
    with pytest.raises(gr.Error) as excinfo:
        menu.get("org/broken")
    message = _one_line_error(excinfo)
    assert message.startswith("Could not load the detector org/broken (OSError: We couldn't connect to the Hub and no cached copy was found xxx")
    assert len(message) < 300  # the loader's message is cut at 240 characters
    with pytest.raises(gr.Error) as excinfo:
        menu.get("org/silent")
    assert _one_line_error(excinfo) == "Could not load the detector org/silent (RuntimeError: RuntimeError)"
    with pytest.raises(gr.Error):  # a failure is not cached: the next request tries again
        menu.get("org/silent")


def test_bundled_metrics_formats_each_provenance(tmp_path, monkeypatch):
    monkeypatch.delenv("HFDL_TEST_MODELS", raising=False)
    models = tmp_path / "models"
    _bundle(models, "second", provenance={"eval_map_50": 0.5})
    _bundle(models, "first", provenance={"eval_map_50": 0.25})
    _bundle(models, "no-metrics", provenance={"command": "train"})
    _bundle(models, "no-provenance")
    menu = ModelMenu("detector", models, "HFDL_TEST_MODELS", str)
    line = lambda name, p: f"- {name}: {p['eval_map_50']}" if "eval_map_50" in p else None  # noqa: E731
    assert menu.bundled_metrics(line) == "- first: 0.25\n- second: 0.5"
    assert ModelMenu("detector", tmp_path / "none", "HFDL_TEST_MODELS", str).bundled_metrics(line) == ""


def test_check_image(monkeypatch):
    with pytest.raises(gr.Error) as excinfo:
        check_image(None)
    assert _one_line_error(excinfo) == "No image: upload one (or pick an example below)"
    with pytest.raises(gr.Error) as excinfo:
        check_image(None, "content image")
    assert _one_line_error(excinfo) == "No content image: upload one (or pick an example below)"
    check_image(Image.new("RGB", (40, 30)))  # fine: no error
    monkeypatch.setattr(space_parts, "MAX_INPUT_PIXELS", 40 * 30 - 1)
    with pytest.raises(gr.Error) as excinfo:
        check_image(Image.new("RGB", (40, 30)), "style image")
    assert _one_line_error(excinfo) == "The style image has 40x30 pixels, more than this demo decodes: downscale it first"


def test_image_input_turns_unreadable_uploads_into_one_line_errors(tmp_path):
    from gradio.data_classes import ImageData

    image = ImageInput(label="Content image", type="pil", image_mode="RGB")
    assert image.get_block_name() == "image"  # the frontend's Image component
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 6), "red").save(good)
    assert image.preprocess(ImageData(path=str(good))).size == (8, 6)
    assert image.preprocess(None) is None
    text = tmp_path / "notes.png"
    text.write_text("not pixels")
    with pytest.raises(gr.Error) as excinfo:
        image.preprocess(ImageData(path=str(text)))
    message = _one_line_error(excinfo)
    assert message.startswith("Content image is not an image we can read (") and message.endswith("): upload a PNG or JPEG file")
    assert not (REPO / "hfdl" / "hub" / "space_parts.pyi").exists()  # no gradio stub in the package


def test_hfdl_hub_does_not_import_gradio():
    code = "import sys, hfdl.hub; assert 'gradio' not in sys.modules and 'hfdl.hub.space_parts' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
