"""Freezing a timm features_only backbone's stem and early stages."""

import pytest
import timm
import torch

from hfdl.core.backbones import freeze_until_stride, train_except
from hfdl.errors import HfdlError


def _features(name):
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, features_only=True, out_indices=(-3, -2, -1))


@pytest.mark.parametrize(
    "name, stride, frozen_names",
    [
        ("tf_efficientnet_lite0", 4, ["conv_stem", "bn1", "blocks.0", "blocks.1"]),  # stages inside `blocks`
        ("resnet18", 4, ["conv1", "bn1", "act1", "maxpool", "layer1"]),  # stages as children
        ("resnet18", 2, ["conv1", "bn1", "act1"]),
    ],
)
def test_the_modules_up_to_the_stage_at_that_stride_are_frozen_and_the_rest_train(name, stride, frozen_names):
    net = _features(name)
    frozen = freeze_until_stride(net, stride)
    named = {id(m): n for n, m in net.named_modules()}
    assert [named[id(m)] for m in frozen] == frozen_names
    frozen_params = {id(p) for m in frozen for p in m.parameters()}
    assert frozen_params and all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in net.parameters() if id(p) not in frozen_params)


def test_training_with_a_frozen_stem_leaves_its_weights_and_batchnorm_statistics_and_updates_the_rest():
    net = _features("tf_efficientnet_lite0")
    frozen = freeze_until_stride(net, 4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    train_except(frozen)(net)
    assert not net.bn1.training and net.blocks[2].training
    for _ in range(2):
        sum(f.mean() for f in net(torch.randn(2, 3, 64, 64))).backward()
        opt.step()
    after = net.state_dict()
    for key in before:
        same = torch.equal(before[key], after[key])
        if key.startswith(("conv_stem.", "bn1.", "blocks.0.", "blocks.1.")):
            assert same, key  # weights and running statistics
        elif key.endswith("running_mean"):
            assert not same, key  # trained BatchNorm layers keep updating theirs
    assert freeze_until_stride(_features("resnet18"), 0) == []


def test_a_stride_the_backbone_does_not_have_is_a_one_line_error():
    with pytest.raises(HfdlError, match="--freeze_until_stride 3: this backbone's stages end at strides 2, 4, 8, 16, 32: use one of them"):
        freeze_until_stride(_features("resnet18"), 3)
