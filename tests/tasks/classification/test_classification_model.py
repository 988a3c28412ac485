"""Strategies on timm models: what is frozen, what trains, what survives save and load."""

import copy

import pytest
import timm
import torch

from hfdl.core.backbones import resolve_model_source
from hfdl.errors import HfdlError
from hfdl.tasks.classification.model import (
    apply_strategy,
    attach_head,
    create_classifier,
    frozen_modules_to_eval,
    head_parameter_names,
    load_classifier,
    make_head,
    optimizer_param_groups,
    parameter_groups,
    pooled_features,
    save_classifier,
    set_classifier,
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return timm.create_model("test_efficientnet", num_classes=3)


def test_feature_strategy_freezes_backbone_and_keeps_bn_statistics(model):
    frozen = apply_strategy(model, "feature")
    assert head_parameter_names(model) == {"classifier.weight", "classifier.bias"}
    assert len(frozen) == len(list(model.parameters())) - 2
    buffers = copy.deepcopy({k: v for k, v in model.state_dict().items() if "running" in k})
    frozen_modules_to_eval(model.train())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    for n, p in model.named_parameters():
        assert (p.grad is None) == (n in frozen), n
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in buffers.items())


def test_unfreeze_trains_only_the_last_groups(model):
    groups = parameter_groups(model)
    frozen = set(apply_strategy(model, "finetune", unfreeze=2))
    assert frozen == {n for g in groups[:-2] for n in g}
    assert "conv_stem.weight" in frozen and "conv_head.weight" not in frozen
    with pytest.raises(HfdlError, match="--unfreeze 99 is out of range"):
        apply_strategy(model, "finetune", unfreeze=99)


def test_backbone_learning_rate_is_scaled(model):
    apply_strategy(model, "finetune")
    groups = optimizer_param_groups(model, lr=1e-2, weight_decay=0.05, backbone_lr_scale=0.1)
    head = {id(p) for n, p in model.named_parameters() if n.startswith("classifier")}
    for g in groups:
        is_head = all(id(p) in head for p in g["params"])
        assert g["lr"] == pytest.approx(1e-2 if is_head else 1e-3)
        assert g["weight_decay"] == (0.0 if all(p.ndim <= 1 for p in g["params"]) else 0.05)


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_save_and_load_give_identical_logits_and_label_names(tmp_path, model, head):
    import json

    if head == "mlp":
        set_classifier(model, make_head(model.num_features, 3, "mlp", hidden=16))
    model.eval()
    cfg = timm.data.resolve_model_data_config(model)
    cfg["input_size"] = (3, 32, 32)
    save_classifier(model, tmp_path, ["cat", "dog", "eel"], cfg, head=head)
    loaded = load_classifier(tmp_path).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
    assert loaded.pretrained_cfg["label_names"] == ["cat", "dog", "eel"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32] and "file" not in config["pretrained_cfg"]
    if head == "linear":  # plain timm loads it too
        plain = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
        assert torch.equal(model(x), plain(x))


def test_attached_feature_head_equals_head_on_pooled_features(model):
    model.eval()
    head = torch.nn.Linear(model.num_features, 3)
    x = torch.randn(2, 3, 32, 32)
    expected = head(pooled_features(model, x))
    attach_head(model, head)
    torch.testing.assert_close(model(x), expected)


def test_unknown_model_is_one_line_with_alternatives():
    with pytest.raises(HfdlError, match=r"unknown model 'no_such_net'.*offline backbone \(tf_efficientnet_lite0, mobilenetv2_100\)"):
        resolve_model_source("no_such_net")


def test_hub_model_offline_says_so():
    with pytest.raises(
        HfdlError,
        match=r"could not fetch 'timm/nope.in1k' from the Hub \(offline and not cached.*python scripts/pull.py timm/nope.in1k.*use an offline backbone",
    ):
        create_classifier("timm/nope.in1k", 3)
