"""Neural style transfer Space: Gatys optimisation (live previews) or fast feed-forward style networks.

Run locally from the repository root:  python spaces/style_transfer/app.py   (then open http://127.0.0.1:7860)
API:  Client(url).predict(handle_file("content.jpg"), handle_file("style.jpg"), api_name="/stylize")
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

try:  # first: hfdl.hub.space_parts turns off analytics and telemetry before gradio loads
    from hfdl.hub.space_parts import ImageInput, ModelMenu, check_image
except ImportError:  # a checkout of the repository: use its hfdl package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from hfdl.hub.space_parts import ImageInput, ModelMenu, check_image

import gradio as gr  # noqa: E402

from hfdl.core.images import image_to_tensor, open_image, tensor_to_image  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.style.gatys import GatysConfig, gatys_iter  # noqa: E402
from hfdl.tasks.style.model import TransformerNet  # noqa: E402

HERE = Path(__file__).resolve().parent
STYLES = {
    "Waves (generated, CC0)": HERE / "styles" / "waves.png",
    "Immunohistochemistry (scikit-image)": HERE / "styles" / "ihc.png",
    "Hubble Deep Field (NASA, public domain)": HERE / "styles" / "hubble.jpg",
}
NO_STYLE = "(uploaded image)"
METHODS = ("optimisation", "fast")
MAX_SIZE = 512  # longest output side the sliders allow
LARGE_UPLOAD = 2048  # uploads with a longer side above this get a notice (they are resized anyway)


# fast style networks offered: bundled folders under models/ plus Hub ids in $HFDL_STYLE_MODELS (comma list)
FAST_MODELS = ModelMenu(
    "fast style network",
    HERE / "models",
    "HFDL_STYLE_MODELS",
    TransformerNet.from_pretrained,
    empty="No fast style network is available here: choose optimisation, or set HFDL_STYLE_MODELS to Hub ids",
)


def _metrics_line(name: str, p: dict) -> str | None:
    """What a bundled network scores on the held-out photos against Gatys optimisation of the same loss."""
    if "gatys_reference_loss" not in p:
        return None
    return (
        f"- `{name}`: perceptual loss {p['eval_loss']:.3g} on the held-out example photos at {p['eval_size']} px, "
        f"{p['loss_vs_gatys_reference']:.2f}x that of Gatys optimisation stopped after {p['gatys_reference_steps']} L-BFGS steps "
        f"from {p['gatys_reference_init']} ({p['steps']:,} training steps, {p['train_seconds'] / 60:.0f} min on 2 CPU cores)"
        + (f"; optimisation needs {p['gatys_steps_to_match']} steps to get as low" if p.get("gatys_steps_to_match") is not None else "")
    )


def _network_for_style(label: str) -> str | None:
    """The bundled fast network trained on a bundled style (folder named after the style file), if there is one."""
    name = f"{STYLES[label].stem} (bundled)" if label in STYLES else None
    return name if name in FAST_MODELS.sources else None


def _check_image(img, what: str) -> None:
    check_image(img, what)
    if max(img.size) > LARGE_UPLOAD:
        gr.Warning(f"The {what} is large ({img.width}x{img.height}); it was resized to the output size.")


def run_style_transfer(
    content,
    style=None,
    bundled_style: str = NO_STYLE,
    method: str = "optimisation",
    fast_model: str | None = None,
    steps: int = 50,
    strength: float = 1.0,
    preserve_colour: bool = False,
    size: int = 256,
):
    """Yield `(image, status)`: optimisation yields intermediate images, the last one is the result."""
    _check_image(content, "content image")
    if method not in METHODS:
        raise gr.Error(f"Unknown method '{method}': choose optimisation or fast", print_exception=False)
    size = int(min(max(int(size), 32), MAX_SIZE))
    t0 = time.perf_counter()
    try:
        content_t = image_to_tensor(content, size)
        if method == "fast":
            name, net = FAST_MODELS.get(fast_model if fast_model in FAST_MODELS.sources else None)  # an unknown name: the default
            if style is not None:
                gr.Info("Fast mode uses the style its network was trained on; the style image is ignored.")
            out = net.stylize(content_t, strength=float(strength), preserve_colour=bool(preserve_colour))
            yield tensor_to_image(out), f"Stylised: fast network {name}, {out.shape[-1]}x{out.shape[-2]} px, {time.perf_counter() - t0:.2f} s"
            return
        if style is None and bundled_style in STYLES:
            style = open_image(STYLES[bundled_style])
        _check_image(style, "style image")
        cfg = GatysConfig(
            steps=int(steps), style_weight=1e6 * max(float(strength), 1e-3), preserve_colour=bool(preserve_colour), preview_every=max(1, int(steps) // 10)
        )
        for n, image, losses in gatys_iter(content_t, [image_to_tensor(style, size)], cfg):
            done = "" if n < int(steps) else "done, "
            status = (
                f"Stylised: optimisation, {done}{n}/{int(steps)} steps, {image.shape[-1]}x{image.shape[-2]} px, {time.perf_counter() - t0:.1f} s "
                f"(content loss {losses['content_loss']:.3g}, style loss {losses['style_loss']:.3g})"
            )
            yield tensor_to_image(image), status
    except HfdlError as err:
        raise gr.Error(str(err), print_exception=False) from None


def stylize(content, style=None, bundled_style=NO_STYLE, method="optimisation", fast_model=None, steps=50, strength=1.0, preserve_colour=False, size=256):
    """The `/stylize` API: content and style image first; yields the (intermediate and final) stylised image."""
    for image, _ in run_style_transfer(content, style, bundled_style, method, fast_model, steps, strength, preserve_colour, size):
        yield image


def _show_bundled(name: str):
    """Show the bundled style and select the fast network trained on it."""
    network = _network_for_style(name)
    return (gr.Image(value=str(STYLES[name])) if name in STYLES else gr.Image()), (gr.Dropdown(value=network) if network else gr.Dropdown())


with gr.Blocks(title="Neural style transfer") as demo:
    gr.Markdown(
        "# Neural style transfer\n"
        "Upload a content photo and a style image (or pick a bundled style). **Optimisation** (Gatys et al.) optimises the "
        "pixels against a frozen VGG16 and shows intermediate results; **fast** runs a feed-forward network (Johnson et al.) "
        "trained for one style (picking a bundled style selects its network). Large images are resized to the output size.\n"
        + FAST_MODELS.bundled_metrics(_metrics_line)
    )
    with gr.Row():
        content_in = ImageInput(label="Content image", type="pil", image_mode="RGB", elem_id="content", height=320)
        style_in = ImageInput(label="Style image", type="pil", image_mode="RGB", elem_id="style", height=320)
        with gr.Column():
            output = gr.Image(label="Stylised", type="pil", elem_id="output", interactive=False, format="png", height=320)
            status = gr.Markdown(elem_id="status")
    with gr.Row():
        bundled_in = gr.Dropdown([NO_STYLE, *STYLES], value=NO_STYLE, label="Bundled style", elem_id="bundled")
        method_in = gr.Radio(list(METHODS), value="optimisation", label="Method", elem_id="method")
        fast_in = gr.Dropdown(FAST_MODELS.choices, value=FAST_MODELS.default, label="Fast style network", elem_id="fast_model")
    with gr.Row():
        steps_in = gr.Slider(5, 300, value=50, step=5, label="Steps (optimisation)", elem_id="steps")
        strength_in = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Style strength", elem_id="strength")
        colour_in = gr.Checkbox(value=False, label="Preserve content colours", elem_id="colour")
        size_in = gr.Slider(64, MAX_SIZE, value=256, step=32, label="Output size (longer side, px)", elem_id="size")
    run_btn = gr.Button("Stylise", variant="primary", elem_id="run")
    api_btn = gr.Button(visible=False)  # carries the clean /stylize API (image only); the visible button adds a status line
    inputs = [content_in, style_in, bundled_in, method_in, fast_in, steps_in, strength_in, colour_in, size_in]
    bundled_in.change(_show_bundled, bundled_in, [style_in, fast_in], api_name=False)
    run_btn.click(run_style_transfer, inputs, [output, status], api_name="stylize_with_status", api_visibility="undocumented")
    api_btn.click(stylize, inputs, output, api_name="stylize")
    gr.Examples(
        examples=[
            [
                str(HERE / "examples" / "astronaut.jpg"),
                None,
                "Waves (generated, CC0)",
                "fast",
                _network_for_style("Waves (generated, CC0)") or FAST_MODELS.default,
                50,
                1.0,
                False,
                256,
            ],
            [str(HERE / "examples" / "chelsea.jpg"), str(STYLES["Immunohistochemistry (scikit-image)"]), NO_STYLE, "optimisation", None, 40, 1.0, False, 192],
        ],
        inputs=inputs,
        outputs=[output, status],
        fn=run_style_transfer,
        cache_examples=True,
        cache_mode="lazy",
    )


if __name__ == "__main__":
    demo.queue().launch(share=False)
