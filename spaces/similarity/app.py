"""Similarity Space: image search in a bundled gallery, verification of a pair, and anomaly scores, with the
embedding network (triplet loss, FaceNet) and the per-class autoencoders that hfdl trains on Fashion-MNIST.

Run locally from the repository root:  python spaces/similarity/app.py   (then open http://127.0.0.1:7860)
API:  Client(url).predict(handle_file("shoe.png"), api_name="/search")            ->  (gallery, hits)
      Client(url).predict(handle_file("a.png"), handle_file("b.png"), api_name="/verify")  ->  (verdict, details)
      Client(url).predict(handle_file("x.png"), "Trouser (bundled)", api_name="/anomaly") ->  (details, reconstruction)
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

try:  # first: hfdl.hub.space_parts turns off analytics and telemetry before gradio loads
    from hfdl.hub.space_parts import ImageInput, ModelMenu, check_image, when_given
except ImportError:  # a checkout of the repository: use its hfdl package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from hfdl.hub.space_parts import ImageInput, ModelMenu, check_image, when_given

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from hfdl.core.images import square_tensor, tensor_to_image  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.anomaly.model import ConvAutoencoder  # noqa: E402
from hfdl.tasks.similarity.index import INDEX_CONFIG, check_model, load_index  # noqa: E402
from hfdl.tasks.similarity.index import search as search_index  # noqa: E402
from hfdl.tasks.similarity.model import EmbeddingModel  # noqa: E402

HERE = Path(__file__).resolve().parent
MAX_K = 20
SHOWN = 112  # gallery thumbnails are upscaled to at least this many pixels
UNUSUAL = 95.0  # percentile of the normal test images' scores above which an upload is called unusual
torch.set_grad_enabled(False)


@dataclass
class Gallery:
    images: object  # datasets.Dataset with its FAISS index
    config: dict
    model: EmbeddingModel


def load_gallery(source: str) -> Gallery:
    """An index folder or Hub dataset repo, with the embedding model it was built with (refused if the weights differ)."""
    gallery, config = load_index(source)
    reference = config["model"]
    bundled = HERE / reference
    model = EmbeddingModel.from_pretrained(str(bundled) if bundled.is_dir() else reference)
    check_model(model, config, reference)
    return Gallery(gallery, config, model)


@dataclass
class Detector:
    model: ConvAutoencoder
    normal_scores: torch.Tensor | None  # sorted scores of the normal class's test images (bundled models)
    provenance: dict


def load_detector(source: str) -> Detector:
    model = ConvAutoencoder.from_pretrained(source)
    p = Path(source) / "provenance.json"
    provenance = json.loads(p.read_text()) if p.is_file() else {}
    scores = provenance.get("normal_test_scores")
    return Detector(model, torch.tensor(scores) if scores else None, provenance)


def _class_name(folder: Path) -> str:
    p = folder / "provenance.json"
    return json.loads(p.read_text()).get("normal_class", folder.name) if p.is_file() else folder.name


GALLERIES = ModelMenu("gallery", HERE / "models" / "gallery", "HFDL_SIMILARITY_INDEXES", load_gallery, required=(INDEX_CONFIG,), cache_size=2)
EMBEDDERS = ModelMenu("embedding model", HERE / "models" / "embedding", "HFDL_EMBEDDING_MODELS", EmbeddingModel.from_pretrained)
DETECTORS = ModelMenu("anomaly autoencoder", HERE / "models" / "anomaly", "HFDL_ANOMALY_MODELS", load_detector, name=_class_name, cache_size=16)


def _error(err: Exception) -> gr.Error:
    return gr.Error(str(err), print_exception=False)


def _shown(img: Image.Image, size: int = SHOWN) -> Image.Image:
    """Small images (Fashion-MNIST's 28 x 28) upscaled with nearest neighbours to at least `size` pixels high, so
    their pixels stay visible."""
    scale = -(-size // min(img.size))
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST) if scale > 1 else img


def search(image, gallery_name=GALLERIES.default, k=8):
    """The `/search` API: the `k` most similar gallery images of an upload -> ([(image, caption)], hits)."""
    check_image(image, "query image")
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise gr.Error(f"k must be a whole number, got {k!r}", print_exception=False) from None
    if not 1 <= k <= MAX_K:
        raise gr.Error(f"k must be between 1 and {MAX_K}, got {k}", print_exception=False)
    name, g = GALLERIES.get(gallery_name)
    t0 = time.perf_counter()
    try:
        (hits,) = search_index(g.images, g.config, g.model, [image], k)
    except HfdlError as err:
        raise _error(err) from None
    print(f"search: {name}, k={k}, {(time.perf_counter() - t0) * 1000:.0f} ms", flush=True)
    column = g.config["image_column"]
    shown, table = [], []
    for rank, hit in enumerate(hits, 1):
        distance = 1.0 - hit["score"]
        label = hit.get("label")
        shown.append((_shown(g.images[hit["index"]][column]), f"{rank}. {label if label is not None else ''} · distance {distance:.4f}".strip()))
        table.append({"rank": rank, "index": hit["index"], "label": label, "cosine_similarity": hit["score"], "distance": round(distance, 6)})
    return shown, table


def verify(image_a, image_b, model_name=EMBEDDERS.default):
    """The `/verify` API: two images -> (a verdict line, {cosine_similarity, distance, threshold, same})."""
    check_image(image_a, "first image")
    check_image(image_b, "second image")
    name, model = EMBEDDERS.get(model_name)
    if model.threshold is None:
        raise gr.Error(f"{name} has no verification threshold: use a model trained by train_embedding.py (it saves the EER threshold)", print_exception=False)
    a, b = model.embed_images([image_a, image_b])
    cosine = float(a @ b)
    same = cosine >= model.threshold
    details = {
        "cosine_similarity": round(cosine, 6),
        "distance": round(1.0 - cosine, 6),
        "threshold_distance": round(1.0 - model.threshold, 6),
        "same": bool(same),
    }
    verdict = f"**{'Same' if same else 'Different'}**: distance {1 - cosine:.4f} {'≤' if same else '>'} threshold {1 - model.threshold:.4f} (1 − cosine similarity; the threshold is the validation pairs' equal-error rate)"
    return verdict, details


def anomaly(image, normal_class=DETECTORS.default):
    """The `/anomaly` API: an upload against a class's autoencoder -> ({score, percentile, ...}, input | reconstruction)."""
    check_image(image)
    name, d = DETECTORS.get(normal_class)
    x = square_tensor(image, d.model.image_size, d.model.channels)
    score = float(d.model.anomaly_score(x)[0])
    rebuilt = d.model.reconstruct(x)
    details = {"normal_class": d.model.normal_class, "score": float(f"{score:.6g}"), "score_kind": d.model.score_kind}
    if d.normal_scores is not None:
        percentile = float((d.normal_scores <= score).float().mean() * 100)
        details.update(
            percentile=round(percentile, 2),
            normal_test_images=len(d.normal_scores),
            verdict=f"unusual for {d.model.normal_class}" if percentile > UNUSUAL else f"looks like {d.model.normal_class}",
        )
    if d.provenance.get("eval_auroc") is not None:
        details["auroc_of_this_autoencoder"] = round(d.provenance["eval_auroc"], 4)
    side = tensor_to_image(make_grid(torch.cat([x, rebuilt]), nrow=2, padding=2, pad_value=1.0))
    return details, _shown(side, 160)


def _embedding_line(name: str, p: dict) -> str | None:
    if p.get("eval_precision_at_1") is None:
        return None
    return (
        f"- **{name}** (bundled): precision@1 {p['eval_precision_at_1']:.4f} on the test split (the untrained backbone: "
        f"{p.get('baseline_precision_at_1', float('nan')):.4f}), MAP@R {p.get('eval_map_at_r', float('nan')):.4f}, verification ROC AUC "
        f"{p.get('eval_verification_auroc', float('nan')):.4f}; trained by `{p.get('command')}`"
    )


def _anomaly_line() -> str:
    found = [json.loads(p.read_text()) for p in sorted((HERE / "models" / "anomaly").glob("*/provenance.json"))]
    if not found:
        return ""
    mean = sum(p["eval_auroc"] for p in found) / len(found)
    return f"- **{len(found)} autoencoders** (bundled, one per normal class): mean AUROC {mean:.4f} over their classes; trained by `{found[0].get('command')}`"


with gr.Blocks(title="Image similarity") as demo:
    gr.Markdown(
        "# Image similarity\n"
        "One network embeds every image (a timm backbone, a projection, unit length), trained with the triplet loss so that "
        "images of a class lie close together: search a gallery, verify a pair (the siamese idea), and score how unusual an "
        "image is for a class with an autoencoder trained on that class alone.\n" + EMBEDDERS.bundled_metrics(_embedding_line) + "\n" + _anomaly_line()
    )
    with gr.Tab("Search"):
        with gr.Row():
            query_in = ImageInput(label="Query", type="pil", image_mode=None, sources=["upload", "clipboard", "webcam"], elem_id="query", height=240)
            with gr.Column():
                gallery_in = gr.Dropdown(GALLERIES.choices, value=GALLERIES.default, label="Gallery", elem_id="gallery_name")
                k_in = gr.Slider(1, MAX_K, value=8, step=1, label="k (images returned)", elem_id="k")
                search_btn = gr.Button("Search", variant="primary", elem_id="search")
        results_out = gr.Gallery(label="Most similar (distance = 1 − cosine similarity)", columns=8, height=300, elem_id="results", format="png")
        hits_out = gr.JSON(label="Hits", elem_id="hits")
        gr.Examples([[str(p)] for p in sorted((HERE / "examples").glob("query_*.png"))], [query_in], label="Examples (training images, not in the gallery)")
    with gr.Tab("Verify"):
        with gr.Row():
            a_in = ImageInput(label="Image A", type="pil", image_mode=None, sources=["upload", "clipboard", "webcam"], elem_id="image_a", height=200)
            b_in = ImageInput(label="Image B", type="pil", image_mode=None, sources=["upload", "clipboard", "webcam"], elem_id="image_b", height=200)
        model_in = gr.Dropdown(EMBEDDERS.choices, value=EMBEDDERS.default, label="Embedding model", elem_id="model")
        verify_btn = gr.Button("Same or different?", variant="primary", elem_id="verify")
        verdict_out = gr.Markdown(elem_id="verdict")
        details_out = gr.JSON(label="Details", elem_id="details")
        pairs = sorted((HERE / "examples").glob("query_*.png"))
        gr.Examples([[str(pairs[i]), str(pairs[j])] for i, j in ((0, 1), (0, 2))] if len(pairs) > 2 else [], [a_in, b_in], label="Examples")
    with gr.Tab("Anomaly"):
        with gr.Row():
            odd_in = ImageInput(label="Image", type="pil", image_mode=None, sources=["upload", "clipboard", "webcam"], elem_id="odd", height=200)
            with gr.Column():
                class_in = gr.Dropdown(DETECTORS.choices, value=DETECTORS.default, label="Normal class (its autoencoder)", elem_id="normal_class")
                score_btn = gr.Button("Score", variant="primary", elem_id="score")
        with gr.Row():
            score_out = gr.JSON(label=f"Score (percentile among the class's test images; above {UNUSUAL:.0f}: unusual)", elem_id="anomaly_score")
            recon_out = gr.Image(
                label="As the model sees it | reconstructed", type="pil", format="png", interactive=False, elem_id="reconstruction", height=200
            )
        gr.Examples([[str(p)] for p in sorted((HERE / "examples").glob("*.png"))], [odd_in], label="Examples")

    # The buttons and the API check their inputs; a new upload or example runs at once (a cleared input clears the outputs).
    search_btn.click(search, [query_in, gallery_in, k_in], [results_out, hits_out], api_name="search")
    gr.on([query_in.change, gallery_in.change, k_in.release], when_given(search, 2), [query_in, gallery_in, k_in], [results_out, hits_out], api_name=False)
    verify_btn.click(verify, [a_in, b_in, model_in], [verdict_out, details_out], api_name="verify")
    score_btn.click(anomaly, [odd_in, class_in], [score_out, recon_out], api_name="anomaly")
    gr.on([odd_in.change, class_in.change], when_given(anomaly, 2), [odd_in, class_in], [score_out, recon_out], api_name=False)


if __name__ == "__main__":
    demo.queue().launch(share=False)
