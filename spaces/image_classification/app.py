"""Image classification Space: the top-5 labels of an upload for pretrained ImageNet backbones and hfdl's bundled
Fashion-MNIST classifier, and the class activation map (Grad-CAM, Grad-CAM++ or EigenCAM, the grad-cam package) of
the top or a chosen class.

Run locally from the repository root:  python spaces/image_classification/app.py   (then open http://127.0.0.1:7860)
API:  Client(url).predict(handle_file("cat.jpg"), "tf_efficientnet_lite0 (ImageNet)", api_name="/classify")  ->  label dict
      Client(url).predict(handle_file("cat.jpg"), "tf_efficientnet_lite0 (ImageNet)", "", "gradcam", api_name="/explain")  ->  overlay
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

try:  # first: hfdl.hub.space_parts turns off analytics and telemetry before gradio loads
    from hfdl.hub.space_parts import ImageInput, ModelMenu, check_image, when_given
except ImportError:  # a checkout of the repository: use its hfdl package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from hfdl.hub.space_parts import ImageInput, ModelMenu, check_image, when_given

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.classification.explain import CAM_METHODS, HEAD_FILE, load_any_classifier  # noqa: E402

HERE = Path(__file__).resolve().parent
IMAGENET = {f"{name} (ImageNet)": name for name in ("tf_efficientnet_lite0", "mobilenetv2_100")}
torch.set_grad_enabled(False)


def _load(source: str):
    return load_any_classifier(IMAGENET.get(source, source))


# the offline ImageNet backbones, the bundled heads under models/, then HFDL_CLASSIFIER_MODELS (Hub ids or folders)
MODELS = ModelMenu(
    "classifier", HERE / "models", "HFDL_CLASSIFIER_MODELS", _load, required=("config.json", HEAD_FILE), cache_size=6, first={k: k for k in IMAGENET}
)


def classify(image, model_name=MODELS.default):
    """The `/classify` API: the top-5 labels with probabilities (a gr.Label dict)."""
    check_image(image)
    name, clf = MODELS.get(model_name)
    t0 = time.perf_counter()
    top = clf.top_k(image, 5)
    print(f"model run: {name}, {(time.perf_counter() - t0) * 1000:.0f} ms", flush=True)
    return top


BUNDLED = [name for name in MODELS.choices if name.endswith("(bundled)")]  # hfdl's Fashion-MNIST classifiers, side by side


def _bundled_title(name: str) -> str:
    """A side-by-side column's title: the bundle's name with its test accuracy, as the run measured it (from the
    bundle's config.json: building the page loads no model)."""
    accuracy = json.loads((Path(MODELS.sources[name]) / "config.json").read_text()).get("eval_accuracy")
    return f"{name}: test accuracy {accuracy:.4f}" if accuracy is not None else name


def compare(image):
    """The `/compare` API: the top-5 of every bundled Fashion-MNIST classifier (feature-based, fine-tuned) for one image."""
    check_image(image)
    return tuple(MODELS.get(name)[1].top_k(image, 5) for name in BUNDLED)


def explain(image, model_name=MODELS.default, class_name="", method="gradcam"):
    """The `/explain` API: the model's view of the image with the CAM of `class_name` (empty: the top class) over it."""
    check_image(image)
    _, clf = MODELS.get(model_name)
    try:
        overlay, explained, _ = clf.explain(image, class_name or None, method)
    except HfdlError as err:
        raise gr.Error(str(err), print_exception=False) from None
    return overlay


def _everything(image, model_name, class_name, method):
    top = classify(image, model_name)
    _, clf = MODELS.get(model_name)
    chosen = class_name if class_name in clf.label_names else ""
    return top, explain(image, model_name, chosen, method), clf.preprocessing(), gr.Dropdown(choices=["", *top], value=chosen)


with gr.Blocks(title="Image classification") as demo:
    gr.Markdown(
        "# Image classification, explained\n"
        "The top-5 classes of an image for a pretrained ImageNet network (1,000 classes) or hfdl's Fashion-MNIST classifiers "
        "(`accelerate launch scripts/finetune.py`: a linear head on frozen Lite0 features, and the same network with its last "
        "stage fine-tuned), and where the network looked: a class activation map of the top class, or of the class you pick, "
        "over the image as the model sees it. Below, the same image through both Fashion-MNIST classifiers, side by side."
    )
    with gr.Row():
        image_in = ImageInput(label="Image", type="pil", image_mode=None, sources=["upload", "clipboard", "webcam"], elem_id="image", height=300)
        overlay_out = gr.Image(label="Where it looked (the model's view)", type="pil", format="png", interactive=False, elem_id="overlay", height=300)
    with gr.Row():
        model_in = gr.Dropdown(MODELS.choices, value=MODELS.default, label="Model", elem_id="model")
        class_in = gr.Dropdown([""], value="", label="Explain the class (empty: the top one)", elem_id="class_name", allow_custom_value=True)
        method_in = gr.Radio(list(CAM_METHODS), value="gradcam", label="CAM method", elem_id="method")
    label_out = gr.Label(num_top_classes=5, label="Top 5", elem_id="top5")
    with gr.Row():  # the same image through each bundled Fashion-MNIST classifier
        compare_out = [gr.Label(num_top_classes=3, label=_bundled_title(name), elem_id=f"bundled_{i}") for i, name in enumerate(BUNDLED)]
    preprocessing_out = gr.Textbox(label="Preprocessing applied (the model's timm data config)", elem_id="preprocessing", interactive=False)
    gr.Examples([[str(p)] for p in sorted((HERE / "examples").glob("*.*"))], [image_in])

    gr.Button("Classify", visible=False).click(classify, [image_in, model_in], label_out, api_name="classify")
    gr.Button("Explain", visible=False).click(explain, [image_in, model_in, class_in, method_in], overlay_out, api_name="explain")
    if BUNDLED:
        gr.Button("Compare", visible=False).click(compare, [image_in], compare_out, api_name="compare")
        image_in.change(when_given(compare, len(BUNDLED)), [image_in], compare_out, api_name=False)
    gr.on(
        [image_in.change, model_in.change, class_in.input, method_in.change],
        when_given(_everything, 4),
        [image_in, model_in, class_in, method_in],
        [label_out, overlay_out, preprocessing_out, class_in],
        api_name=False,
    )


if __name__ == "__main__":
    demo.queue().launch(share=False)
