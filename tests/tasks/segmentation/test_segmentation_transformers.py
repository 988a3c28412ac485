"""transformers segmenters behind the segmenter interface: re-heading, logits at the input size, a training step with
the pipeline's loss, save/load (ours and plain transformers), telling checkpoint kinds apart, one-line errors.

Every model is a tiny random one built here (no download), saved as a Hub checkpoint would be: SegFormer (2 stages)
and UperNet on a 3-stage ConvNeXt with its auxiliary head.
"""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from torch.nn import functional

from hfdl.errors import HfdlError
from hfdl.tasks.segmentation.transformers_segmenter import TransformersSegmenter, build_transformers_segmenter, is_transformers_segmenter_id

SIZE = 64
OLD_NAMES = ["road", "car", "tree"]
NEW_NAMES = ["background", "square"]
CLASSIFIERS = {"segformer": ("decode_head.classifier.",), "upernet": ("decode_head.classifier.", "auxiliary_head.")}


def tiny_segmenter(kind: str):
    """(model, image processor) of a tiny random transformers segmenter with OLD_NAMES as classes; the processor is an
    ADE20k-style one (512 x 512, labels reduced) that build_transformers_segmenter must change."""
    import transformers as tf

    labels = {"id2label": dict(enumerate(OLD_NAMES)), "label2id": {n: i for i, n in enumerate(OLD_NAMES)}}
    torch.manual_seed(0)
    processor = tf.SegformerImageProcessor(size={"height": 512, "width": 512}, do_reduce_labels=True)
    if kind == "segformer":
        config = tf.SegformerConfig(
            num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2],
            num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16, **labels,
        )  # fmt: skip
        return tf.SegformerForSemanticSegmentation(config), processor
    backbone = tf.ConvNextConfig(num_stages=3, hidden_sizes=[8, 16, 32], depths=[1, 1, 1], out_features=["stage1", "stage2", "stage3"])
    config = tf.UperNetConfig(backbone_config=backbone, hidden_size=16, pool_scales=[1, 2], auxiliary_channels=8, **labels)
    return tf.UperNetForSemanticSegmentation(config), processor


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    """A saved tiny checkpoint (model + image processor) per kind, as a Hub segmenter would be."""
    out = {}
    for kind in CLASSIFIERS:
        model, processor = tiny_segmenter(kind)
        out[kind] = tmp_path_factory.mktemp(kind)
        model.save_pretrained(out[kind])
        processor.save_pretrained(out[kind])
    return out


def squares(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] with one white square (class 1) on black (class 0); its border is 255 (ignored), as in VOC masks."""
    g = torch.Generator().manual_seed(seed)
    images, masks = torch.zeros(n, 3, SIZE, SIZE), torch.zeros(n, SIZE, SIZE, dtype=torch.long)
    for i in range(n):
        x, y = torch.randint(2, SIZE - 26, (2,), generator=g).tolist()
        images[i, :, y : y + 24, x : x + 24] = 1.0
        masks[i, y - 2 : y + 26, x - 2 : x + 26] = 255
        masks[i, y : y + 24, x : x + 24] = 1
    return images, masks


@pytest.mark.parametrize("kind", list(CLASSIFIERS))
def test_build_reheads_the_checkpoint_and_one_step_trains_the_new_classifier(folders, kind):
    from transformers import AutoModelForSemanticSegmentation

    model = build_transformers_segmenter(str(folders[kind]), NEW_NAMES, SIZE)
    assert model.training and model.label_names == NEW_NAMES and model.num_classes == 2 and model.image_size == SIZE
    assert model.model.config.id2label == {0: "background", 1: "square"} and model.model.config.label2id == {"background": 0, "square": 1}
    # the checkpoint's weights are kept exactly wherever the shapes still fit; only the classifier is new (and the
    # auxiliary head, which the pipeline's loss does not read, is left out)
    saved = AutoModelForSemanticSegmentation.from_pretrained(folders[kind]).state_dict()  # the checkpoint as it is
    state = model.model.state_dict()
    same = [k for k in saved if k in state and saved[k].shape == state[k].shape]
    assert len(same) > 0.8 * len(saved) and all(torch.equal(saved[k], state[k]) for k in same)
    assert {k for k in saved if k not in same} == {k for k in saved if k.startswith(CLASSIFIERS[kind])}
    assert not any(k.startswith("auxiliary_head") for k in state) and state["decode_head.classifier.weight"].shape[0] == 2
    # normalisation from the processor, not saved with the weights; the processor reduces no labels
    assert model.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406]) and "mean" not in model.state_dict()
    assert not model.processor.do_reduce_labels

    images, masks = squares(2)
    logits = model(model.normalize(images))
    assert logits.shape == (2, 2, SIZE, SIZE) and logits.dtype == torch.float32
    assert model(torch.rand(2, 3, 96, 96)).shape == (2, 2, 96, 96)  # always the input's size
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = functional.cross_entropy(logits, masks, ignore_index=255)  # the pipeline's loss
    loss.backward()
    head = [p for n, p in model.model.named_parameters() if n.startswith("decode_head.classifier")]
    assert torch.isfinite(loss) and head and all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in head)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)  # nothing unused (distributed training needs that)
    before = [p.detach().clone() for p in head]
    optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, head))
    predicted = model.eval().predict(model.normalize(images))
    assert predicted.shape == (2, SIZE, SIZE) and predicted.dtype == torch.long and predicted.max() < 2


def test_pretrained_false_builds_the_architecture_with_random_weights(folders):
    pretrained = build_transformers_segmenter(str(folders["segformer"]), NEW_NAMES, SIZE)
    scratch = build_transformers_segmenter(str(folders["segformer"]), NEW_NAMES, SIZE, pretrained=False)
    assert scratch.label_names == NEW_NAMES and scratch.image_size == SIZE and scratch.training
    a, b = pretrained.model.state_dict(), scratch.model.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    key = next(k for k in a if "patch_embeddings" in k and k.endswith("proj.weight"))  # the encoder's first convolution
    assert not torch.equal(a[key], b[key])
    assert scratch(scratch.normalize(squares(1)[0])).shape == (1, 2, SIZE, SIZE)


def test_save_pretrained_loads_back_identically_and_with_plain_transformers(folders, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    model = build_transformers_segmenter(str(folders["segformer"]), NEW_NAMES, SIZE)
    images, masks = squares(2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    functional.cross_entropy(model(model.normalize(images)), masks, ignore_index=255).backward()
    optimizer.step()  # the saved weights are not the checkpoint's
    model.eval().save_pretrained(tmp_path / "out")
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in (tmp_path / "out").iterdir()}

    loaded = TransformersSegmenter.from_pretrained(tmp_path / "out")
    assert not loaded.training and loaded.label_names == NEW_NAMES and loaded.image_size == SIZE and torch.equal(loaded.mean, model.mean)
    x = model.normalize(images)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert torch.equal(loaded.predict(x), model.predict(x))

    plain = AutoModelForSemanticSegmentation.from_pretrained(tmp_path / "out")
    processor = AutoImageProcessor.from_pretrained(tmp_path / "out")
    assert plain.config.id2label == {0: "background", 1: "square"} and processor.size.height == SIZE and processor.size.width == SIZE
    with torch.no_grad():
        upsampled = functional.interpolate(plain(pixel_values=x).logits, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    assert torch.equal(upsampled, model(x))
    # the processor reproduces the pipeline's input and keeps label 0 (no reduce_labels): S x S, normalised like `normalize`
    image = (torch.rand(SIZE, SIZE, 3) * 255).to(torch.uint8)
    mask = Image.fromarray(torch.zeros(SIZE, SIZE, dtype=torch.uint8).numpy())
    encoded = processor(images=Image.fromarray(image.numpy()), segmentation_maps=mask, return_tensors="pt")
    assert encoded["pixel_values"].shape == (1, 3, SIZE, SIZE) and encoded["labels"].unique().tolist() == [0]
    expected = model.normalize(image.permute(2, 0, 1)[None].float() / 255)
    assert torch.allclose(encoded["pixel_values"], expected, atol=1e-5)
    assert processor(images=Image.new("RGB", (90, 40)), return_tensors="pt")["pixel_values"].shape == (1, 3, SIZE, SIZE)


def test_the_processor_decides_normalisation_input_size_and_channel_order(folders):
    """MobileViT's processor does not normalise, centre-crops to crop_size and wants BGR: all three are followed."""
    from transformers import MobileViTImageProcessor

    segformer, _ = tiny_segmenter("segformer")
    model = TransformersSegmenter(segformer, MobileViTImageProcessor(crop_size={"height": 96, "width": 96}))
    assert model.image_size == 96 and model.mean.flatten().tolist() == [0, 0, 0] and model.std.flatten().tolist() == [1, 1, 1]
    images = torch.rand(1, 3, 8, 8)
    assert torch.equal(model.normalize(images), images.flip(1))


def test_checkpoint_kinds_are_told_apart(folders, tmp_path):
    (tmp_path / "timm").mkdir()
    (tmp_path / "timm" / "config.json").write_text(json.dumps({"backbone": "x", "num_classes": 2}))
    for kind, folder in folders.items():
        assert is_transformers_segmenter_id(str(folder)), kind
    for name in ("tf_efficientnet_lite0", "resnet18.a1_in1k", "timm/resnet18.a1_in1k", "hf-hub:timm/resnet18.a1_in1k", str(tmp_path / "timm")):
        assert not is_transformers_segmenter_id(name), name  # no Hub access needed for any of these
    (tmp_path / "remote").mkdir()
    remote = {"model_type": "my_segmenter", "auto_map": {"AutoModelForSemanticSegmentation": "modeling.MySegmenter"}}
    (tmp_path / "remote" / "config.json").write_text(json.dumps(remote))
    assert is_transformers_segmenter_id(str(tmp_path / "remote"))  # a segmenter; building it asks for trust (below)


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(HfdlError) as info:
        call(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_errors_are_one_line_and_name_the_fix(folders, tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(tmp_path / "bert")
    bert = str(tmp_path / "bert")
    for call in (build_transformers_segmenter, is_transformers_segmenter_id, TransformersSegmenter.from_pretrained):
        args = (bert, NEW_NAMES, SIZE) if call is build_transformers_segmenter else (bert,)
        message = one_line_error(call, *args)
        assert "'bert' model, not a semantic segmenter" in message and "nvidia/mit-b0" in message
    for call in (is_transformers_segmenter_id, TransformersSegmenter.from_pretrained):
        message = one_line_error(call, "nobody/no-such-segmenter")  # offline and not cached
        assert "nobody/no-such-segmenter" in message and "scripts/pull.py nobody/no-such-segmenter" in message
    (tmp_path / "remote").mkdir()
    remote = {"model_type": "my_segmenter", "auto_map": {"AutoModelForSemanticSegmentation": "modeling.MySegmenter"}}
    (tmp_path / "remote" / "config.json").write_text(json.dumps(remote))
    assert "--trust_remote_code true" in one_line_error(build_transformers_segmenter, str(tmp_path / "remote"), NEW_NAMES, SIZE)
    (tmp_path / "empty").mkdir()
    assert "has no config.json" in one_line_error(build_transformers_segmenter, str(tmp_path / "empty"), NEW_NAMES, SIZE)
    for names in (["a", "a"], [], ["a", ""], ["background"]):
        assert "distinct, non-empty and at least two" in one_line_error(build_transformers_segmenter, str(folders["segformer"]), names, SIZE)
    assert ">= 32" in one_line_error(build_transformers_segmenter, str(folders["segformer"]), NEW_NAMES, 16)
    assert "neither a local folder nor a Hub id" in one_line_error(TransformersSegmenter.from_pretrained, "not a repo!")
    (tmp_path / "no_processor").mkdir()
    (tmp_path / "no_processor" / "config.json").write_text((folders["segformer"] / "config.json").read_text())
    assert "could not load a transformers segmenter" in one_line_error(TransformersSegmenter.from_pretrained, str(tmp_path / "no_processor"))
