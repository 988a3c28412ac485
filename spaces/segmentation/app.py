"""Semantic segmentation Space: a bundled timm segmenter (LR-ASPP) or Hub segmenters; the opacity slider and class toggles re-render
the kept mask without re-running the model.

Run locally from the repository root:  python spaces/segmentation/app.py   (then open http://127.0.0.1:7860)
API:  Client(url).predict(handle_file("photo.jpg"), api_name="/segment")  ->  (overlay image, label mask PNG: pixel value = class id)
"""

from __future__ import annotations

import atexit
import math
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

try:  # first: hfdl.hub.space_parts turns off analytics and telemetry before gradio loads
    from hfdl.hub.space_parts import ImageInput, ModelMenu, check_image
except ImportError:  # a checkout of the repository: use its hfdl package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from hfdl.hub.space_parts import ImageInput, ModelMenu, check_image

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from hfdl.core.images import to_rgb  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.segmentation.model import background_ids, load_segmenter, mask_image, model_palette, overlay, segment_in_image  # noqa: E402

HERE = Path(__file__).resolve().parent
DISPLAY_SIZE = 640  # the annotated image's longer side (small images are enlarged, large ones reduced)
OPACITY = 0.5  # the slider's start: how strongly the class colours cover the image
MAX_LOGITS = 64_000_000  # class scores held at once (K x H x W floats, 256 MB): larger images are segmented at a reduced size, the mask enlarged
MASK_DIR = Path(tempfile.mkdtemp(prefix="hfdl-segmentation-"))  # the label-mask PNGs handed out (gradio copies them into its cache)
atexit.register(shutil.rmtree, MASK_DIR, ignore_errors=True)


# segmenters offered: bundled folders under models/ plus Hub ids in $HFDL_SEGMENTATION_MODELS (comma list)
MODELS = ModelMenu("segmenter", HERE / "models", "HFDL_SEGMENTATION_MODELS", load_segmenter)
DEFAULT_MODEL = MODELS.default


def _metrics_line(name: str, p: dict) -> str | None:
    """A bundled segmenter's line on the page, from the provenance.json bundle_model.py wrote."""
    if p.get("eval_mean_iou") is None:
        return None
    per_class = {k: v for k, v in (p.get("per_class_iou") or {}).items() if v is not None}
    background = {list(per_class)[i] for i in background_ids(list(per_class))}
    ious = {k: v for k, v in per_class.items() if k not in background}
    spread = ""
    if ious:
        (lo, lo_v), (hi, hi_v) = min(ious.items(), key=lambda kv: kv[1]), max(ious.items(), key=lambda kv: kv[1])
        spread = f" (the item classes' IoU from {lo_v:.2f}, {lo}, to {hi_v:.2f}, {hi})"
    return (
        f"- **{name}** (bundled): mean IoU {p['eval_mean_iou']:.3f}{spread}, pixel accuracy {p.get('eval_overall_accuracy') or 0:.3f} "
        f"on {p.get('validation_images') or '?'} held-out composites; trained {p.get('completed_steps') or '?'} steps "
        f"({p.get('epochs') or '?'} epochs) on {p.get('train_images') or '?'} composites by `{p.get('command')}`"
    )


class ClassToggles(gr.CheckboxGroup):
    """The classes to show. Its choices follow each image (the classes found in it), so a value is not checked against them:
    names that are not in the current mask are ignored."""

    def get_block_name(self) -> str:
        return "checkboxgroup"

    def preprocess(self, payload):
        return [str(v) for v in payload or []]


def _fit(width: int, height: int, longer: int) -> tuple[int, int]:
    scale = longer / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _nearest(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class ids (H, W) resized to (width, height) by nearest neighbour (pixel centres)."""
    w, h = size
    rows = np.minimum(((np.arange(h) + 0.5) * ids.shape[0] / h).astype(np.int64), ids.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * ids.shape[1] / w).astype(np.int64), ids.shape[1] - 1)
    return ids[rows[:, None], cols[None, :]]


def _segment(model, img: Image.Image) -> np.ndarray:
    """`segment_in_image` at the image's size; a very large image (K x H x W scores over MAX_LOGITS) is segmented at a reduced size and its mask enlarged."""
    k = len(model.label_names)
    scale = math.sqrt(MAX_LOGITS / (k * img.width * img.height))
    if scale >= 1:
        return segment_in_image(model, img).numpy()
    small = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.Resampling.LANCZOS)
    return _nearest(segment_in_image(model, small).numpy(), img.size)


def _save_mask(ids: np.ndarray, palette: list[list[int]]) -> str:
    """The label mask as a PNG file: a palette PNG (pixel value = class id, shown in the model's colours); 16-bit gray over 256 classes."""
    folder = MASK_DIR / uuid.uuid4().hex
    folder.mkdir()
    path = folder / "segmentation_mask.png"
    if len(palette) <= 256:
        mask_image(torch.from_numpy(ids.astype(np.int64)), palette).save(path)
    else:
        Image.fromarray(ids.astype(np.uint16)).save(path)
    return str(path)


def run_model(image, model_name: str | None) -> dict:
    """Run the segmenter once and keep what re-rendering needs: the mask at the image's size and at display size, the shares."""
    check_image(image)
    name, model = MODELS.get(model_name)
    img = to_rgb(image)  # RGBA (transparency dropped), grayscale, palette ... -> RGB
    t0 = time.perf_counter()
    try:
        ids = _segment(model, img)
    except HfdlError as err:
        raise gr.Error(str(err), print_exception=False) from None
    seconds = time.perf_counter() - t0
    names = list(model.label_names)
    ids = ids.astype(np.uint8 if len(names) <= 256 else np.int32)
    found, counts = np.unique(ids, return_counts=True)
    shares = {int(c): n / ids.size for c, n in zip(found.tolist(), counts.tolist())}
    background = background_ids(names)
    present = sorted((c for c in shares if c not in background), key=lambda c: (-shares[c], c))  # largest first
    print(f"model run: {name} on {img.width}x{img.height} px, {len(present)} classes found, {seconds * 1000:.0f} ms", flush=True)
    palette = model_palette(model)
    size = _fit(img.width, img.height, DISPLAY_SIZE)
    return {
        "model": name,
        "label_names": names,
        "palette": palette,
        "background": list(background),
        "image": img,
        "mask": ids,  # (H, W) class ids at the image's size
        "mask_file": _save_mask(ids, palette),
        "display": img.resize(size, Image.Resampling.BICUBIC if max(img.size) < DISPLAY_SIZE else Image.Resampling.LANCZOS),
        "display_mask": _nearest(ids, size),
        "present": present,
        "shares": shares,
        "seconds": seconds,
    }


def render(state: dict, opacity: float = OPACITY, shown: list[str] | None = None) -> tuple[tuple, dict[str, str], Image.Image]:
    """Kept mask -> (annotated image value, colour map, plain overlay): the classes in `shown` (all found ones when None) at `opacity`; no model run."""
    alpha = min(max(float(opacity), 0.0), 1.0)
    names, palette = state["label_names"], state["palette"]
    visible = [c for c in state["present"] if shown is None or names[c] in shown]
    annotations = [(alpha * (state["display_mask"] == c).astype(np.float32), names[c]) for c in visible]
    colours = {names[c]: "#{:02x}{:02x}{:02x}".format(*palette[c]) for c in visible}
    hidden = tuple(c for c in range(len(names)) if c not in visible)  # background, absent and unticked classes stay uncoloured
    plain = overlay(state["image"], torch.from_numpy(state["mask"].astype(np.int64)), palette, alpha, transparent=hidden)
    return (state["display"], annotations), colours, plain


def _share(share: float) -> str:
    return f"{share:.1%}" if share >= 0.001 else "<0.1%"


def _toggles(state: dict) -> gr.CheckboxGroup:
    names, shares = state["label_names"], state["shares"]
    return gr.CheckboxGroup(choices=[(f"{names[c]} {_share(shares[c])}", names[c]) for c in state["present"]], value=[names[c] for c in state["present"]])


def _status(state: dict, shown: list[str] | None, ran: bool) -> str:
    names, shares = state["label_names"], state["shares"]
    how = (
        f"ran {state['model']} on {state['image'].width}x{state['image'].height} px in {state['seconds'] * 1000:.0f} ms"
        if ran
        else f"re-rendered, {state['model']} not run again"
    )
    if not state["present"]:
        return f"Segmented: no class but background ({how})"
    found = ", ".join(f"{names[c]} {_share(shares[c])}" for c in state["present"])
    hidden = sum(shown is not None and names[c] not in shown for c in state["present"])
    return f"Segmented: {found}{f'; {hidden} hidden' if hidden else ''} ({how})"


def segment(image, model_name: str | None = DEFAULT_MODEL, opacity: float = OPACITY):
    """The `/segment` API: an image (any size or mode) -> (overlay at the image's size, label mask PNG file: pixel value = class id)."""
    state = run_model(image, model_name)
    _, _, plain = render(state, opacity)
    return plain, state["mask_file"], state


def run_segmentation(image, model_name=DEFAULT_MODEL, opacity=OPACITY):
    """A new image or model: run the model once and keep its mask; every found class shown. A cleared image clears the outputs."""
    if image is None:
        return None, None, None, gr.CheckboxGroup(choices=[], value=[]), None, ""
    state = run_model(image, model_name)
    annotated, colours, plain = render(state, opacity)
    return gr.AnnotatedImage(annotated, color_map=colours), plain, state["mask_file"], _toggles(state), state, _status(state, None, ran=True)


def on_controls(state, opacity=OPACITY, shown=None):
    """The opacity or a class toggle changed: re-render the kept mask (no model run)."""
    if state is None:
        return gr.skip(), gr.skip(), gr.skip()
    annotated, colours, plain = render(state, opacity, shown)
    return gr.AnnotatedImage(annotated, color_map=colours), plain, _status(state, shown, ran=False)


with gr.Blocks(title="Semantic segmentation") as demo:
    gr.Markdown(
        "# Semantic segmentation\n"
        "Upload, paste or take a photo: the segmenter gives every pixel a class. It runs once per image and model; the "
        "**opacity** slider and the **class toggles** then only re-draw its mask, so they answer at once (hover the legend "
        "to pick out a class). The bundled segmenter was trained on Fashion-MNIST items pasted on photos (try the composite "
        "examples): on ordinary photos it sees mostly background. Hub segmenters listed in `HFDL_SEGMENTATION_MODELS` "
        "(e.g. `nvidia/segformer-b0-finetuned-ade-512-512`) are offered in the model menu.\n" + MODELS.bundled_metrics(_metrics_line)
    )
    with gr.Row():
        image_in = ImageInput(label="Image", type="pil", image_mode=None, sources=["upload", "clipboard", "webcam"], elem_id="image", height=400)
        with gr.Column():
            annotated_out = gr.AnnotatedImage(label="Segmentation", elem_id="annotated", format="jpeg", height=400)
            status = gr.Markdown(elem_id="status")
    with gr.Row():
        model_in = gr.Dropdown(MODELS.choices, value=DEFAULT_MODEL, label="Segmenter", elem_id="model")
        opacity_in = gr.Slider(0.0, 1.0, value=OPACITY, step=0.05, label="Opacity", elem_id="opacity")
    classes_in = ClassToggles(choices=[], value=[], label="Classes shown (found in the image, share of its pixels)", elem_id="classes")
    gr.Examples(
        examples=[[str(HERE / "examples" / name)] for name in ("composite_17.png", "composite_40.png", "astronaut.jpg", "chelsea.jpg")],
        inputs=[image_in],
        example_labels=["Composite (4 items)", "Composite (5 items)", "Astronaut (photo)", "Chelsea the cat (photo)"],
        cache_examples=False,
    )
    with gr.Row():
        overlay_out = gr.Image(label="Overlay", type="pil", format="png", interactive=False, elem_id="overlay", height=320)
        mask_out = gr.File(label="Label mask (palette PNG: pixel value = class id)", elem_id="mask")
    state = gr.State()
    api_btn = gr.Button(visible=False)  # carries the clean /segment API (image first); the visible events add toggles and a status line
    api_btn.click(segment, [image_in, model_in, opacity_in], [overlay_out, mask_out, state], api_name="segment")
    gr.on(
        [image_in.change, model_in.change],
        run_segmentation,
        [image_in, model_in, opacity_in],
        [annotated_out, overlay_out, mask_out, classes_in, state, status],
        api_name=False,
    )
    gr.on(
        [opacity_in.change, classes_in.input],  # `input`: a person's click, not the new choices a model run sets
        on_controls,
        [state, opacity_in, classes_in],
        [annotated_out, overlay_out, status],
        api_name="rerender",
        api_visibility="undocumented",
        show_progress="hidden",
        trigger_mode="always_last",
    )


if __name__ == "__main__":
    demo.queue().launch(share=False)
