"""Object detection Space: a bundled YOLO-style detector or Hub detectors; threshold and NMS sliders re-filter without re-running the model.

Run locally from the repository root:  python spaces/object_detection/app.py   (then open http://127.0.0.1:7860)
API:  Client(url).predict(handle_file("photo.jpg"), api_name="/detect")  ->  (annotated image, [{"label", "score", "box"}])
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
from PIL import Image  # noqa: E402
from torchvision.ops import clip_boxes_to_image  # noqa: E402

from hfdl.core.images import to_rgb  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.detection import boxes as box_ops  # noqa: E402
from hfdl.tasks.detection.model import detect_in_image, load_detector  # noqa: E402

HERE = Path(__file__).resolve().parent
RAW_THRESHOLD = 0.05  # the model runs once per image and model, keeping every detection from this score on ...
RAW_IOU = 1.0  # ... without non-max suppression (a box is suppressed only above IoU 1: never) ...
MAX_RAW = 300  # ... up to this many; the sliders then only re-filter them
MAX_SHOWN = 100  # detections kept after filtering (the JSON) ...
MAX_DRAWN = 25  # ... of which the best are drawn (each box is a full-size mask image, about 20 ms)
DISPLAY_SIZE = 640  # the annotated image's longer side (small images are enlarged, large ones reduced)
PALETTE = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4")


# detectors offered: bundled folders under models/ plus Hub ids in $HFDL_DETECTION_MODELS (comma list)
MODELS = ModelMenu("detector", HERE / "models", "HFDL_DETECTION_MODELS", load_detector)
DEFAULT_MODEL = MODELS.default


def _metrics_line(name: str, p: dict) -> str | None:
    """A bundled detector's line on the page, from the provenance.json bundle_model.py wrote."""
    if p.get("eval_map_50") is None:
        return None
    return (
        f"- **{name}** (bundled): mAP@.5 {p['eval_map_50']:.3f}, mAP@[.5:.95] {p.get('eval_map') or 0:.3f} on "
        f"{p.get('validation_images') or '?'} held-out composites; trained on {p.get('train_images') or '?'} composites by `{p.get('command')}`"
    )


def run_model(image, model_name: str | None) -> dict:
    """Run the detector once: every detection from RAW_THRESHOLD on, no NMS, boxes in the image's pixels (not yet clipped)."""
    check_image(image)
    name, model = MODELS.get(model_name)
    img = to_rgb(image)  # RGBA (transparency dropped), grayscale, palette ... -> RGB
    t0 = time.perf_counter()
    try:
        found = detect_in_image(model, img, score_threshold=RAW_THRESHOLD, iou_threshold=RAW_IOU, max_detections=MAX_RAW)
    except HfdlError as err:
        raise gr.Error(str(err), print_exception=False) from None
    seconds = time.perf_counter() - t0
    print(f"model run: {name} on {img.width}x{img.height} px, {len(found['scores'])} raw detections, {seconds * 1000:.0f} ms", flush=True)
    display = img.resize(_display_size(img.width, img.height), Image.Resampling.BICUBIC if max(img.size) < DISPLAY_SIZE else Image.Resampling.LANCZOS)
    return {
        "model": name,
        "label_names": list(model.label_names),
        "image": display,
        "width": img.width,
        "height": img.height,
        **found,  # boxes (N, 4) xyxy in the image's pixels, scores, labels
        "seconds": seconds,
    }


def _display_size(width: int, height: int) -> tuple[int, int]:
    scale = DISPLAY_SIZE / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def refilter(raw: dict, score_threshold: float = 0.3, iou_threshold: float = 0.5) -> tuple[tuple, dict[str, str], list[dict]]:
    """Raw detections -> (annotated image value, colour map, detections): score >= threshold, then class-wise NMS; no model run."""
    threshold = min(max(float(score_threshold), RAW_THRESHOLD), 1.0)
    iou = min(max(float(iou_threshold), 0.0), 1.0)
    boxes, scores, labels = box_ops.postprocess(raw["boxes"], raw["scores"], raw["labels"], threshold, iou, MAX_SHOWN)
    boxes = clip_boxes_to_image(boxes, (raw["height"], raw["width"]))
    names = raw["label_names"]
    detections = [
        {"label": names[c], "score": round(s, 4), "box": [round(v, 1) for v in b]} for c, s, b in zip(labels.tolist(), scores.tolist(), boxes.tolist())
    ]
    display = raw["image"]
    sx, sy = display.width / raw["width"], display.height / raw["height"]
    annotations, colours = [], {}
    for det, c in zip(detections[:MAX_DRAWN], labels.tolist()):
        x1, y1, x2, y2 = det["box"]
        caption = f"{det['label']} {det['score']:.2f}"
        annotations.append(((round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy)), caption))
        colours[caption] = PALETTE[c % len(PALETTE)]  # one colour per class
    return (display, annotations), colours, detections


def _status(raw: dict, detections: list, ran: bool) -> str:
    how = f"ran {raw['model']} on {raw['width']}x{raw['height']} px in {raw['seconds'] * 1000:.0f} ms" if ran else f"re-filtered, {raw['model']} not run again"
    drawn = f", the best {MAX_DRAWN} drawn" if len(detections) > MAX_DRAWN else ""
    return f"Detected: {len(detections)} kept of {len(raw['scores'])} raw detections{drawn} ({how})"


def detect(image, model_name: str | None = DEFAULT_MODEL, score_threshold: float = 0.3, iou_threshold: float = 0.5):
    """The `/detect` API: an image (any size or mode) -> (annotated image, [{"label", "score", "box" xyxy in the image's pixels}])."""
    raw = run_model(image, model_name)
    annotated, _, detections = refilter(raw, score_threshold, iou_threshold)
    return annotated, detections, raw


def run_detection(image, model_name=DEFAULT_MODEL, score_threshold=0.3, iou_threshold=0.5):
    """A new image or model: run the model once and keep its raw detections; a cleared image clears the outputs."""
    if image is None:
        return None, None, None, ""
    raw = run_model(image, model_name)
    annotated, colours, detections = refilter(raw, score_threshold, iou_threshold)
    return gr.AnnotatedImage(annotated, color_map=colours), detections, raw, _status(raw, detections, ran=True)


def on_slider(raw, score_threshold=0.3, iou_threshold=0.5):
    """A slider moved: re-filter the kept raw detections (no model run)."""
    if raw is None:
        return gr.skip(), gr.skip(), gr.skip()
    annotated, colours, detections = refilter(raw, score_threshold, iou_threshold)
    return gr.AnnotatedImage(annotated, color_map=colours), detections, _status(raw, detections, ran=False)


with gr.Blocks(title="Object detection") as demo:
    gr.Markdown(
        "# Object detection\n"
        "Upload, paste or take a photo. The detector runs once per image and model; the **score threshold** and **NMS IoU** "
        "sliders then only re-filter its detections (scores from the threshold on, then class-wise non-max suppression), so "
        "they answer at once. Each JSON `box` is x1, y1, x2, y2 in the image's pixels. The bundled detector was trained on "
        "Fashion-MNIST items pasted on photos (try the composite examples): on ordinary photos it finds little. Hub detectors "
        "listed in `HFDL_DETECTION_MODELS` (e.g. `facebook/detr-resnet-50`) are offered in the model menu.\n" + MODELS.bundled_metrics(_metrics_line)
    )
    with gr.Row():
        image_in = ImageInput(label="Image", type="pil", image_mode=None, sources=["upload", "clipboard", "webcam"], elem_id="image", height=400)
        with gr.Column():
            annotated_out = gr.AnnotatedImage(label="Detections", elem_id="annotated", format="jpeg", height=400)
            status = gr.Markdown(elem_id="status")
    with gr.Row():
        model_in = gr.Dropdown(MODELS.choices, value=DEFAULT_MODEL, label="Detector", elem_id="model")
        threshold_in = gr.Slider(RAW_THRESHOLD, 1.0, value=0.3, step=0.01, label="Score threshold", elem_id="threshold")
        iou_in = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="NMS IoU (1 = no suppression)", elem_id="iou")
    gr.Examples(
        examples=[[str(HERE / "examples" / name)] for name in ("composite_17.png", "composite_39.png", "astronaut.jpg", "chelsea.jpg")],
        inputs=[image_in],
        example_labels=["Composite (4 items)", "Composite (2 items)", "Astronaut (photo)", "Chelsea the cat (photo)"],
        cache_examples=False,
    )
    detections_out = gr.JSON(label="Detections (JSON)", elem_id="detections", height=320)
    raw_state = gr.State()
    api_btn = gr.Button(visible=False)  # carries the clean /detect API (image first); the visible events add a status line
    inputs = [image_in, model_in, threshold_in, iou_in]
    api_btn.click(detect, inputs, [annotated_out, detections_out, raw_state], api_name="detect")
    gr.on([image_in.change, model_in.change], run_detection, inputs, [annotated_out, detections_out, raw_state, status], api_name=False)
    gr.on(
        [threshold_in.change, iou_in.change],
        on_slider,
        [raw_state, threshold_in, iou_in],
        [annotated_out, detections_out, status],
        api_name="refilter",
        api_visibility="undocumented",
        show_progress="hidden",
        trigger_mode="always_last",
    )


if __name__ == "__main__":
    demo.queue().launch(share=False)
