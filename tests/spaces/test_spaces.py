"""Every Space under spaces/: README front matter and requirements that make the folder pushable as a Space."""

import importlib.metadata

import pytest
from spaces_harness import SPACES, front_matter, requirement_names, space_names

NAMES = space_names()
REQUIRED_KEYS = {"title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "license", "short_description"}
COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}  # what the Hub accepts


def test_there_are_spaces():
    assert NAMES, "no spaces/<name>/app.py found"


@pytest.mark.parametrize("name", NAMES)
def test_readme_front_matter(name):
    import gradio

    meta = front_matter(SPACES / name / "README.md")
    assert REQUIRED_KEYS <= set(meta), f"missing keys: {REQUIRED_KEYS - set(meta)}"
    assert meta["sdk"] == "gradio"
    assert (SPACES / name / meta["app_file"]).is_file()
    assert str(meta["sdk_version"]) == gradio.__version__, "sdk_version must be the gradio version the tests ran against"
    assert meta["colorFrom"] in COLOURS and meta["colorTo"] in COLOURS
    assert len(meta["short_description"]) <= 60  # the Hub's limit
    assert isinstance(meta.get("models", []), list)


@pytest.mark.parametrize("name", NAMES)
def test_requirements_are_installable_names(name):
    reqs = requirement_names(SPACES / name / "requirements.txt")
    assert reqs
    for req in reqs:
        if req.url:  # a direct reference (e.g. git+https) is installable by pip as written
            continue
        assert req.name.lower() != "hfdl", "PyPI's `hfdl` is an unrelated package: install hfdl from its repository URL"
        assert req.name.lower() not in ("gradio",), "gradio comes from sdk_version; do not pin it twice"
        # installed here from the package index by setup.sh: the name exists and resolves
        version = importlib.metadata.version(req.name)
        assert req.specifier.contains(version, prereleases=True), f"{req} does not admit the tested {req.name} {version}"


@pytest.mark.parametrize("name", NAMES)
def test_the_readme_shows_every_space(name):
    """The README's Spaces section links each app and shows its Chromium screenshot."""
    readme = (SPACES.parent / "README.md").read_text()
    shot = SPACES.parent / "docs" / "spaces" / f"{name}.jpg"
    assert shot.is_file() and shot.stat().st_size < 200_000
    assert f"](docs/spaces/{name}.jpg)" in readme and f"](spaces/{name})" in readme
