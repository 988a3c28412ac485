"""Generation Space: images from the bundled VAE and DCGAN (Fashion-MNIST) or Hub generators, text from the bundled
char-LM (Jane Austen) or Hub char-LMs, streamed character by character.

Run locally from the repository root:  python spaces/generation/app.py   (then open http://127.0.0.1:7860)
API:  Client(url).predict(0, 16, api_name="/sample_images")  ->  the grid (PNG)
      Client(url).predict("It is a truth", api_name="/generate_text")  ->  the prompt and its continuation
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
import torch  # noqa: E402
from torchvision.transforms.functional import to_pil_image  # noqa: E402

from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.char_lm.model import check_sampling, load_char_lm  # noqa: E402
from hfdl.tasks.generative.model import ImageGenerator, input_and_reconstruction, label_id, latent_arithmetic, slerp  # noqa: E402
from hfdl.tasks.generative.pictures import grid  # noqa: E402

HERE = Path(__file__).resolve().parent
EVERY_CLASS = "every class in turn"
MAX_IMAGES = 64
MAX_CHARS = 2000
torch.set_grad_enabled(False)

# bundled folders under models/images and models/text, plus Hub ids in the env vars (comma lists)
IMAGES = ModelMenu("generator", HERE / "models" / "images", "HFDL_GENERATION_MODELS", ImageGenerator.from_pretrained)
TEXTS = ModelMenu("char-LM", HERE / "models" / "text", "HFDL_CHAR_LM_MODELS", load_char_lm)
DEFAULT_IMAGES, DEFAULT_TEXT = IMAGES.default, TEXTS.default


def _grid(images: torch.Tensor, nrow: int):
    return to_pil_image(grid(images, nrow, min_side=84))


def _label(model: ImageGenerator, class_name):
    try:
        return label_id(model, None if class_name in (None, "", EVERY_CLASS) or not model.num_classes else class_name)
    except HfdlError as err:
        raise gr.Error(str(err), print_exception=False) from None


def _int(value, name: str, low: int, high: int) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a whole number, got {value!r}", print_exception=False) from None
    if not low <= v <= high:
        raise gr.Error(f"{name} must be between {low} and {high}, got {v}", print_exception=False)
    return v


def sample_images(seed=0, count=16, model_name=DEFAULT_IMAGES, class_name=EVERY_CLASS):
    """The `/sample_images` API: `count` samples of `seed` (the same seed, the same grid) -> a PIL grid."""
    seed, count = _int(seed, "Seed", 0, 2**31 - 1), _int(count, "Count", 1, MAX_IMAGES)
    name, model = IMAGES.get(model_name)
    label = _label(model, class_name)
    t0 = time.perf_counter()
    images = model.sample(count, seed=seed, labels=label)
    print(f"model run: {name}, {count} images, {(time.perf_counter() - t0) * 1000:.0f} ms", flush=True)
    nrow = model.num_classes if model.num_classes and label is None else 8
    return _grid(images, nrow)


def interpolate(seed_a=0, seed_b=1, position=0.5, model_name=DEFAULT_IMAGES, class_name=EVERY_CLASS, steps=10):
    """The image at `position` (0: seed A, 1: seed B) on the spherical path between the two seeds' latents, and the whole strip."""
    seed_a, seed_b = _int(seed_a, "Seed A", 0, 2**31 - 1), _int(seed_b, "Seed B", 0, 2**31 - 1)
    name, model = IMAGES.get(model_name)
    label = _label(model, class_name)
    label = label if label is not None else (0 if model.num_classes else None)
    strip = model.interpolate(seed_a, seed_b, steps, label)
    za, zb = model.latents(1, seed_a)[0], model.latents(1, seed_b)[0]
    z = slerp(za, zb, torch.tensor([min(max(float(position), 0.0), 1.0)]))
    point = model.generate(z, None if label is None else torch.tensor([label]))
    return _grid(point, 1), _grid(strip, steps)


def reconstruct(image, model_name=DEFAULT_IMAGES, class_name=EVERY_CLASS):
    """An upload (any size or mode) as the model sees it, beside its reconstruction (VAE / autoencoder)."""
    check_image(image)
    name, model = IMAGES.get(model_name)
    if model.encoder is None:
        raise gr.Error(f"{name} is a {model.model_type}: it has no encoder to reconstruct with; pick a VAE", print_exception=False)
    return _grid(input_and_reconstruction(model, image, _label(model, class_name)), 2)


def arithmetic(expression="Trouser - Shirt + Dress", model_name=DEFAULT_IMAGES):
    """The decoded sum of class-mean codes, e.g. "Trouser - Shirt + Dress"."""
    name, model = IMAGES.get(model_name)
    try:
        return _grid(latent_arithmetic(model, expression or ""), 1)
    except HfdlError as err:
        raise gr.Error(str(err), print_exception=False) from None


def generate_text(prompt="It is a truth universally acknowledged", model_name=DEFAULT_TEXT, temperature=0.8, top_k=0, top_p=0.95, seed=0, length=300):
    """The `/generate_text` API: the prompt and its continuation, streamed character by character (the same seed, the same text)."""
    prompt = prompt or "\n"
    length, seed = _int(length, "Length", 1, MAX_CHARS), _int(seed, "Seed", 0, 2**31 - 1)
    top_k = int(top_k) if top_k else None
    top_p = float(top_p) if top_p and float(top_p) < 1 else None
    try:
        check_sampling(float(temperature), top_k, top_p, length)
    except HfdlError as err:
        raise gr.Error(str(err), print_exception=False) from None
    name, generator = TEXTS.get(model_name)
    text = prompt
    yield text
    for piece in generator.stream(prompt, length, float(temperature), top_k, top_p, seed=seed, chunk_size=1):
        text += piece
        yield text


def _class_choices(model_name):
    """The class menu follows the model: its classes for a conditional one, else nothing to choose."""
    try:
        _, model = IMAGES.get(model_name)
    except gr.Error:
        return gr.Dropdown(choices=[EVERY_CLASS], value=EVERY_CLASS, interactive=False)
    if not model.num_classes:
        return gr.Dropdown(choices=[EVERY_CLASS], value=EVERY_CLASS, interactive=False)
    return gr.Dropdown(choices=[EVERY_CLASS, *model.label_names], value=EVERY_CLASS, interactive=True)


def _metrics_line(name: str, p: dict) -> str | None:
    if p.get("eval_fid") is not None:
        elbo = f", test negative ELBO {p['eval_neg_elbo']:.1f} nats/image" if p.get("eval_neg_elbo") is not None else ""
        return f"- **{name}** (bundled): {p.get('fid_feature_network', 'FID')} {p['eval_fid']:.2f} (the data's own: {p.get('data_fid_floor', 0):.2f}){elbo}; trained by `{p.get('command')}`"
    if p.get("eval_bpc") is not None:
        return f"- **{name}** (bundled): {p['eval_bpc']:.3f} bits/char on held-out text; trained by `{p.get('command')}`"
    return None


with gr.Blocks(title="Generation") as demo:
    gr.Markdown(
        "# Generation\n"
        "Images from a VAE or a GAN, text from a character-level RNN: the generative models of the course, trained by hfdl. "
        "The same seed always gives the same images or text.\n" + IMAGES.bundled_metrics(_metrics_line) + "\n" + TEXTS.bundled_metrics(_metrics_line)
    )
    with gr.Tab("Images"):
        with gr.Row():
            model_in = gr.Dropdown(IMAGES.choices, value=DEFAULT_IMAGES, label="Generator", elem_id="model")
            class_in = gr.Dropdown(  # its choices follow the model; the API may name any class of the chosen model
                [EVERY_CLASS], value=EVERY_CLASS, label="Class (conditional models)", elem_id="class", interactive=False, allow_custom_value=True
            )
        with gr.Row():
            seed_in = gr.Number(0, precision=0, label="Seed", elem_id="seed")
            count_in = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Images", elem_id="count")
            sample_btn = gr.Button("Sample", variant="primary", elem_id="sample")
        grid_out = gr.Image(label="Samples", type="pil", format="png", interactive=False, elem_id="grid", height=420)
        gr.Markdown("### Interpolation: the path between two seeds' latents")
        with gr.Row():
            seed_a_in = gr.Number(0, precision=0, label="Seed A", elem_id="seed_a")
            seed_b_in = gr.Number(1, precision=0, label="Seed B", elem_id="seed_b")
            position_in = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Position (0: A, 1: B)", elem_id="position")
        with gr.Row():
            point_out = gr.Image(label="At the position", type="pil", format="png", interactive=False, elem_id="point", height=160)
            strip_out = gr.Image(label="The whole path", type="pil", format="png", interactive=False, elem_id="strip", height=160)
        gr.Markdown("### VAE: reconstruction of an upload, and latent arithmetic on class means")
        with gr.Row():
            upload_in = ImageInput(label="Image", type="pil", image_mode=None, sources=["upload", "clipboard"], elem_id="upload", height=200)
            recon_out = gr.Image(label="As the model sees it | reconstructed", type="pil", format="png", interactive=False, elem_id="recon", height=200)
        with gr.Row():
            expression_in = gr.Textbox("Trouser - Shirt + Dress", label="Class arithmetic (class names joined by + and -)", elem_id="expression")
            arithmetic_out = gr.Image(label="Decoded", type="pil", format="png", interactive=False, elem_id="arithmetic", height=160)
        arithmetic_btn = gr.Button("Decode", elem_id="decode")
    with gr.Tab("Text"):
        with gr.Row():
            text_model_in = gr.Dropdown(TEXTS.choices, value=DEFAULT_TEXT, label="Char-LM", elem_id="text_model")
            text_seed_in = gr.Number(0, precision=0, label="Seed", elem_id="text_seed")
            length_in = gr.Slider(10, MAX_CHARS, value=300, step=10, label="Characters", elem_id="length")
        prompt_in = gr.Textbox("It is a truth universally acknowledged", label="Prompt", elem_id="prompt")
        with gr.Row():
            temperature_in = gr.Slider(0.0, 2.0, value=0.8, step=0.05, label="Temperature (0: greedy)", elem_id="temperature")
            top_k_in = gr.Number(0, precision=0, label="Top-k (0: off)", elem_id="top_k")
            top_p_in = gr.Slider(0.05, 1.0, value=0.95, step=0.05, label="Top-p (1: off)", elem_id="top_p")
        generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
        text_out = gr.Textbox(label="Text", lines=12, elem_id="text")

    sample_btn.click(sample_images, [seed_in, count_in, model_in, class_in], grid_out, api_name="sample_images")
    model_in.change(_class_choices, model_in, class_in, api_name=False)
    gr.on(
        [position_in.change, seed_a_in.submit, seed_b_in.submit],
        interpolate,
        [seed_a_in, seed_b_in, position_in, model_in, class_in],
        [point_out, strip_out],
        api_name="interpolate",
        trigger_mode="always_last",
    )
    upload_in.change(reconstruct, [upload_in, model_in, class_in], recon_out, api_name="reconstruct")
    arithmetic_btn.click(arithmetic, [expression_in, model_in], arithmetic_out, api_name="arithmetic")
    generate_btn.click(
        generate_text, [prompt_in, text_model_in, temperature_in, top_k_in, top_p_in, text_seed_in, length_in], text_out, api_name="generate_text"
    )
    demo.load(_class_choices, model_in, class_in, api_name=False).then(sample_images, [seed_in, count_in, model_in, class_in], grid_out, api_name=False).then(
        interpolate, [seed_a_in, seed_b_in, position_in, model_in, class_in], [point_out, strip_out], api_name=False
    )


if __name__ == "__main__":
    demo.queue().launch(share=False)
