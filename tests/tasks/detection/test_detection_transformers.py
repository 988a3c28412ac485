"""transformers detectors behind the YoloDetector interface: re-heading, a training step, post-processing with NMS,
save/load (ours and plain transformers), telling checkpoint kinds apart, scripts/detect.py, one-line errors.

Every model is a tiny random one built here (no download): DETR, Conditional DETR and RT-DETR on a 2-3 stage
ResNet, YOLOS on a 1-layer ViT.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import REPO
from PIL import Image

from hfdl.errors import HfdlError
from hfdl.tasks.detection.args import DetectorArguments
from hfdl.tasks.detection.data import collate_detection
from hfdl.tasks.detection.model import YoloDetector, detect_image, load_detector
from hfdl.tasks.detection.pipeline import detector_kind
from hfdl.tasks.detection.transformers_detector import (
    TransformersDetector,
    build_transformers_detector,
    is_transformers_checkpoint,
    is_transformers_detector_id,
)

sys.path.insert(0, str(REPO / "scripts"))
import detect  # noqa: E402

SIZE = 64
OLD_NAMES = ["cat", "dog", "bird"]
NEW_NAMES = ["square", "bar"]
TINY_DETR = {
    "d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
    "encoder_attention_heads": 2, "decoder_attention_heads": 2, "num_queries": 10,
}  # fmt: skip
CLASS_HEADS = {"detr": "class_labels_classifier", "conditional_detr": "class_labels_classifier", "yolos": "class_labels_classifier", "rt_detr": "class_embed"}


def tiny_detector(kind: str):
    """(model, image processor) of a tiny random transformers detector with OLD_NAMES as classes."""
    import transformers as tf

    labels = {"id2label": dict(enumerate(OLD_NAMES)), "label2id": {n: i for i, n in enumerate(OLD_NAMES)}}
    resnet = {"num_channels": 3, "embedding_size": 8, "layer_type": "basic"}
    torch.manual_seed(0)
    if kind == "rt_detr":
        backbone = tf.RTDetrResNetConfig(**resnet, hidden_sizes=[8, 16, 32], depths=[1, 1, 1], out_features=["stage1", "stage2", "stage3"])
        config = tf.RTDetrConfig(
            backbone_config=backbone, encoder_hidden_dim=16, encoder_in_channels=[8, 16, 32], feat_strides=[4, 8, 16], encoder_ffn_dim=32,
            encoder_attention_heads=2, d_model=16, num_queries=10, decoder_in_channels=[16, 16, 16], decoder_ffn_dim=32, decoder_layers=1,
            decoder_attention_heads=2, decoder_n_points=2, num_denoising=4, **labels,
        )  # fmt: skip
        return tf.RTDetrForObjectDetection(config), tf.RTDetrImageProcessor(size={"height": SIZE, "width": SIZE})
    if kind == "yolos":
        config = tf.YolosConfig(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=[SIZE, SIZE], patch_size=16,
            num_detection_tokens=10, **labels,
        )  # fmt: skip
        return tf.YolosForObjectDetection(config), tf.YolosImageProcessor(size={"height": SIZE, "width": SIZE})
    backbone = tf.ResNetConfig(**resnet, hidden_sizes=[8, 16], depths=[1, 1], out_features=["stage2"])
    config_class, model_class, processor_class = {
        "detr": (tf.DetrConfig, tf.DetrForObjectDetection, tf.DetrImageProcessor),
        "conditional_detr": (tf.ConditionalDetrConfig, tf.ConditionalDetrForObjectDetection, tf.ConditionalDetrImageProcessor),
    }[kind]
    config = config_class(backbone_config=backbone, use_timm_backbone=False, **TINY_DETR, **labels)
    return model_class(config), processor_class(size={"height": SIZE, "width": SIZE})


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    """A saved tiny checkpoint (model + image processor) per kind, as a Hub detector would be."""
    out = {}
    for kind in CLASS_HEADS:
        model, processor = tiny_detector(kind)
        out[kind] = tmp_path_factory.mktemp(kind)
        model.save_pretrained(out[kind])
        processor.save_pretrained(out[kind])
    return out


def squares(n: int, seed: int = 0, empty: tuple[int, ...] = ()) -> tuple[torch.Tensor, list[dict]]:
    """collate_detection's form: images in [0, 1] with one white square (class 0) or bar (class 1); `empty` ones have none."""
    g = torch.Generator().manual_seed(seed)
    batch = []
    for i in range(n):
        image, target = torch.zeros(3, SIZE, SIZE), {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
        if i not in empty:
            w, h = (20, 20) if i % 2 == 0 else (30, 10)
            x, y = torch.randint(0, SIZE - w, (1,), generator=g).item(), torch.randint(0, SIZE - h, (1,), generator=g).item()
            image[:, y : y + h, x : x + w] = 1.0
            target = {"boxes": torch.tensor([[x, y, x + w, y + h]], dtype=torch.float), "labels": torch.tensor([i % 2])}
        batch.append((image, target))
    return collate_detection(batch)


@pytest.mark.parametrize("kind", list(CLASS_HEADS))
def test_build_reheads_the_checkpoint_and_one_step_trains_the_new_head(folders, kind):
    from transformers import AutoModelForObjectDetection

    model = build_transformers_detector(str(folders[kind]), NEW_NAMES, SIZE)
    assert model.training and model.label_names == NEW_NAMES and model.num_classes == 2 and model.image_size == SIZE
    assert model.model.config.id2label == {0: "square", 1: "bar"} and model.model.config.label2id == {"square": 0, "bar": 1}
    # the checkpoint's weights are loaded wherever the shapes still fit; only the class heads are new
    saved = AutoModelForObjectDetection.from_pretrained(folders[kind]).state_dict()  # the checkpoint as it is
    state = model.model.state_dict()
    same = [k for k in saved if k in state and saved[k].shape == state[k].shape]
    assert len(same) > 0.8 * len(saved) and all(torch.equal(saved[k], state[k]) for k in same)
    assert all(CLASS_HEADS[kind] in k or "score_head" in k or "denoising_class_embed" in k for k in saved if k not in same)
    # normalisation from the processor (RT-DETR's does not normalise)
    expected_mean = [0.0, 0.0, 0.0] if kind == "rt_detr" else [0.485, 0.456, 0.406]
    assert model.mean.flatten().tolist() == pytest.approx(expected_mean) and "mean" not in model.state_dict()

    images, targets = squares(3, empty=(1,))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model(model.normalize(images), targets).loss
    loss.backward()
    head = [p for n, p in model.named_parameters() if CLASS_HEADS[kind] in n]
    assert torch.isfinite(loss) and head and all(p.grad is not None and torch.isfinite(p.grad).all() for p in head)
    assert any(p.grad.abs().sum() > 0 for p in head)
    before = [p.detach().clone() for p in head]
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, head))
    # a batch of images without any object still gives a finite loss
    images, targets = squares(2, empty=(0, 1))
    assert torch.isfinite(model(model.normalize(images), targets).loss)
    # each kind's own post-processing (softmax with a no-object class, or sigmoid top-k) ends in the same form
    for found in model.eval().detect(model.normalize(images), score_threshold=0.0, iou_threshold=0.7, max_detections=4):
        assert 0 < len(found["boxes"]) <= 4 and found["boxes"].min() >= 0 and found["boxes"].max() <= SIZE
        assert found["labels"].max() < 2 and found["scores"].tolist() == sorted(found["scores"].tolist(), reverse=True)
    with torch.no_grad():
        raw = model(model.normalize(images))
    for found in model.postprocess(raw, score_threshold=0.0, iou_threshold=0.7, max_detections=4, multi_label=True):
        assert 0 < len(found["boxes"]) <= 4 and found["boxes"].min() >= 0 and found["boxes"].max() <= SIZE and found["labels"].max() < 2


def test_pretrained_false_builds_the_architecture_with_random_weights(folders):
    pretrained = build_transformers_detector(str(folders["detr"]), NEW_NAMES, SIZE)
    scratch = build_transformers_detector(str(folders["detr"]), NEW_NAMES, SIZE, pretrained=False)
    assert scratch.label_names == NEW_NAMES and scratch.image_size == SIZE and scratch.training
    a, b = pretrained.model.state_dict(), scratch.model.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    assert not torch.equal(a["model.query_position_embeddings.weight"], b["model.query_position_embeddings.weight"])


def test_targets_become_normalised_centre_boxes():
    pixels = torch.zeros(1, 3, SIZE, SIZE)
    labels = TransformersDetector.to_labels({"boxes": torch.tensor([[16.0, 8.0, 48.0, 24.0]]), "labels": torch.tensor([1])}, pixels)
    assert labels["boxes"].tolist() == [[0.5, 0.25, 0.5, 0.25]] and labels["class_labels"].tolist() == [1]
    assert labels["class_labels"].dtype == torch.long and labels["boxes"].dtype == torch.float32
    empty = TransformersDetector.to_labels({"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}, pixels)
    assert empty["boxes"].shape == (0, 4) and empty["class_labels"].shape == (0,)


def test_postprocess_gives_input_pixels_and_suppresses_a_duplicate_of_the_same_class(folders):
    from transformers.models.detr.modeling_detr import DetrObjectDetectionOutput

    model = build_transformers_detector(str(folders["detr"]), NEW_NAMES, SIZE).eval()
    # DETR: softmax over [square, bar, no object]; boxes (cx, cy, w, h) in [0, 1]
    logits = torch.tensor([[[5.0, 0, 0], [4.0, 0, 0], [0, 3.0, 0], [0, 4.5, 0], [0, 0, 5.0]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.5], [0.51, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5], [0.95, 0.1, 0.5, 0.5], [0.2, 0.2, 0.1, 0.1]]])
    raw = DetrObjectDetectionOutput(logits=logits, pred_boxes=boxes)
    (found,) = model.postprocess(raw, score_threshold=0.3, iou_threshold=0.5)
    # query 1 duplicates query 0 (same class, IoU ~0.96): dropped; query 2 overlaps too but is another class: kept;
    # query 3 reaches beyond the image: clipped; query 4 is "no object": below the threshold
    assert found["labels"].tolist() == [0, 1, 1]
    assert found["boxes"][0].tolist() == pytest.approx([16.0, 16.0, 48.0, 48.0])
    assert found["boxes"][1].tolist() == pytest.approx([44.8, 0.0, 64.0, 22.4])
    assert found["scores"].tolist() == sorted(found["scores"].tolist(), reverse=True)
    assert len(model.postprocess(raw, score_threshold=0.3, iou_threshold=0.5, max_detections=2)[0]["boxes"]) == 2
    assert len(model.postprocess(raw, score_threshold=0.3, iou_threshold=1.0)[0]["boxes"]) == 4  # no suppression at IoU 1

    # multi_label (what mAP wants): an uncertain query ranks under both classes; the boxes are the same
    uncertain = DetrObjectDetectionOutput(logits=torch.tensor([[[5.0, 4.9, 0], [0, 0, 5.0]]]), pred_boxes=boxes[:, :2])
    (best,) = model.postprocess(uncertain, score_threshold=0.3)
    (pairs,) = model.postprocess(uncertain, score_threshold=0.3, multi_label=True)
    assert best["labels"].tolist() == [0] and pairs["labels"].tolist() == [0, 1]
    assert torch.allclose(pairs["boxes"], best["boxes"].expand(2, 4)) and torch.allclose(pairs["scores"][:1], best["scores"])
    (same,) = model.postprocess(raw, score_threshold=0.3, iou_threshold=0.5, multi_label=True)  # one class above 0.3 per query
    assert torch.allclose(same["boxes"], found["boxes"]) and same["labels"].tolist() == found["labels"].tolist()

    images, _ = squares(2)
    for found in model.detect(model.normalize(images), score_threshold=0.0, max_detections=5):
        assert 0 < len(found["boxes"]) <= 5 and found["boxes"].min() >= 0 and found["boxes"].max() <= SIZE
        assert set(found["labels"].tolist()) <= {0, 1}


def test_save_pretrained_loads_back_identically_and_with_plain_transformers(folders, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForObjectDetection

    model = build_transformers_detector(str(folders["detr"]), NEW_NAMES, SIZE)
    images, targets = squares(2)
    model(model.normalize(images), targets).loss.backward()  # the saved weights are not the checkpoint's
    model.eval().save_pretrained(tmp_path / "out")
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in (tmp_path / "out").iterdir()}

    loaded = load_detector(str(tmp_path / "out"))
    assert isinstance(loaded, TransformersDetector) and not loaded.training
    assert loaded.label_names == NEW_NAMES and loaded.image_size == SIZE and torch.equal(loaded.mean, model.mean)
    x = model.normalize(images)
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits) and torch.equal(loaded(x).pred_boxes, model(x).pred_boxes)
    ours, theirs = model.detect(x, 0.0), loaded.detect(x, 0.0)
    assert all(torch.equal(a[k], b[k]) for a, b in zip(ours, theirs) for k in ("boxes", "scores", "labels"))

    plain = AutoModelForObjectDetection.from_pretrained(tmp_path / "out")
    processor = AutoImageProcessor.from_pretrained(tmp_path / "out")
    assert plain.config.id2label == {0: "square", 1: "bar"} and processor.size.height == SIZE and processor.size.width == SIZE
    assert not processor.do_pad
    with torch.no_grad():
        assert torch.equal(plain(pixel_values=x).logits, model(x).logits)
    # the processor reproduces the pipeline's input: a uint8 image resized to S x S and normalised
    image = Image.fromarray((torch.rand(40, 90, 3) * 255).to(torch.uint8).numpy())
    assert processor(images=image, return_tensors="pt")["pixel_values"].shape == (1, 3, SIZE, SIZE)


def test_checkpoint_kinds_are_told_apart(folders, tmp_path):
    yolo = YoloDetector("test_efficientnet", num_classes=2, label_names=NEW_NAMES, image_size=SIZE, neck_channels=8)
    yolo.save_pretrained(tmp_path / "yolo")
    assert not is_transformers_checkpoint(str(tmp_path / "yolo")) and is_transformers_checkpoint(str(folders["detr"]))
    assert isinstance(load_detector(str(tmp_path / "yolo")), YoloDetector)
    for kind, folder in folders.items():
        assert is_transformers_detector_id(str(folder)), kind
    for name in ("tf_efficientnet_lite0", "resnet18.a1_in1k", "timm/resnet18.a1_in1k", "hf-hub:timm/resnet18.a1_in1k", str(tmp_path / "yolo")):
        assert not is_transformers_detector_id(name), name  # no Hub access needed for any of these


def test_detect_image_and_the_detect_script_on_a_transformers_folder(folders, tmp_path, capsys):
    model = load_detector(str(folders["detr"]))
    picture = tmp_path / "photo.png"
    Image.fromarray((torch.rand(48, 80, 3) * 255).to(torch.uint8).numpy()).save(picture)
    detections, drawn = detect_image(model, str(picture), score_threshold=0.0)
    assert detections and drawn.size == (80, 48)
    for d in detections:
        assert d["label"] in OLD_NAMES and 0 <= d["box"][0] <= d["box"][2] <= 80 and 0 <= d["box"][1] <= d["box"][3] <= 48

    printed = detect.main(["--model", str(folders["detr"]), "--image", str(picture), "--threshold", "0.0", "--output", str(tmp_path / "out.png")])
    assert json.loads(capsys.readouterr().out) == printed == detections
    assert Image.open(tmp_path / "out.png").size == (80, 48)


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(HfdlError) as info:
        call(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_errors_are_one_line_and_name_the_fix(folders, tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(tmp_path / "bert")
    bert = str(tmp_path / "bert")
    for call in (build_transformers_detector, is_transformers_detector_id, TransformersDetector.from_pretrained, load_detector):
        args = (bert, NEW_NAMES, SIZE) if call is build_transformers_detector else (bert,)
        message = one_line_error(call, *args)
        assert "'bert' model, not an object detector" in message and "facebook/detr-resnet-50" in message
    for call in (is_transformers_detector_id, is_transformers_checkpoint):
        message = one_line_error(call, "nobody/no-such-detector")  # offline and not cached
        assert "nobody/no-such-detector" in message and "scripts/pull.py nobody/no-such-detector" in message
    (tmp_path / "empty").mkdir()
    assert "has no config.json" in one_line_error(build_transformers_detector, str(tmp_path / "empty"), NEW_NAMES, SIZE)
    assert "distinct" in one_line_error(build_transformers_detector, str(folders["detr"]), ["a", "a"], SIZE)
    assert "neither a local folder nor a Hub id" in one_line_error(load_detector, "not a repo!")
    (tmp_path / "no_processor").mkdir()
    (tmp_path / "no_processor" / "config.json").write_text((folders["detr"] / "config.json").read_text())
    assert "could not load a transformers detector" in one_line_error(TransformersDetector.from_pretrained, str(tmp_path / "no_processor"))
    frozen = DetectorArguments(model_name_or_path=str(folders["detr"]), freeze_until_stride=4)  # a yolo-only option is not ignored silently
    assert "--freeze_until_stride applies to the yolo type" in one_line_error(detector_kind, frozen)


def test_a_tiny_detr_trains_evaluates_and_publishes_through_train_detector(folders, tmp_path):
    """train_detector.py with a transformers checkpoint: re-headed for the data's classes, trained with its own loss and the
    transformers example's optimiser recipe, evaluated with mAP, saved for plain transformers; the card's snippet runs."""
    import re
    import subprocess

    import train_detector
    from huggingface_hub import ModelCard

    from hfdl import assets

    if not (assets.datasets.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian dataset-fashion-mnist not installed")
    assets.composite_dataset(num_train=8, num_validation=4, image_size=SIZE, max_objects=2, seed=3).save_to_disk(str(tmp_path / "set"))
    out = tmp_path / "run"
    results = train_detector.main(
        ["--dataset_name", str(tmp_path / "set"), "--model_name_or_path", str(folders["detr"]), "--output_dir", str(out),
         "--image_size", str(SIZE), "--per_device_train_batch_size", "4", "--max_train_steps", "2", "--seed", "0"]
    )  # fmt: skip
    assert 0 <= results["eval_map_50"] <= 1 and results["eval_loss"] > 0 and results["completed_steps"] == 2
    config = json.loads((out / "run_config.json").read_text())
    assert config["detector_kind"] == "transformers" and config["base_model"] is None  # a local folder of unknown origin
    assert config["training_args"]["learning_rate"] == 5e-5 and config["training_args"]["weight_decay"] == 1e-4  # the example's recipe
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_type"] == "detr" and len(saved["id2label"]) == 10  # re-headed for the 10 composite classes
    assert (out / "preprocessor_config.json").is_file() and (out / "pr_curve.png").is_file()
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers" and "DetrForObjectDetection" in card.text
    code = re.search(r"```python\n(.*?)```", card.text, re.S).group(1).replace("threshold=0.3", "threshold=0.0")
    Image.new("RGB", (90, 70), (120, 60, 30)).save(tmp_path / "image.jpg")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = proc.stdout.strip().splitlines()
    assert printed and all(line.split(" ")[0] in "".join(saved["id2label"].values()) for line in printed)
    with pytest.raises(HfdlError, match="needs a transformers detector"):
        train_detector.main(["--dataset_name", str(tmp_path / "set"), "--model_type", "transformers", "--output_dir", str(tmp_path / "x")])
