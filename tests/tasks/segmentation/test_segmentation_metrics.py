"""Segmentation metrics and loss on hand-made masks: IoU of known overlaps, the ignore index, absent classes."""

import math

import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from hfdl.tasks.segmentation.metrics import class_keys, confusion_matrices, segmentation_loss, segmentation_scores, soft_dice_loss

N = 255  # the ignore index
# One 4 x 4 image, 3 classes. Truth: class 0 on the left half, class 1 on the right half, the last row ignored.
TRUTH = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [N, N, N, N]])
# Prediction: class 1 spills one column into the left half; class 2 (absent from the truth) on one pixel; the ignored row all wrong.
PREDICTED = torch.tensor([[0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 2], [2, 2, 2, 2]])


def test_iou_of_known_overlaps_with_the_ignore_index():
    confusion = confusion_matrices(PREDICTED[None], TRUTH[None], 3)
    assert confusion.shape == (1, 3, 3)
    assert confusion[0].tolist() == [[3, 3, 0], [0, 5, 1], [0, 0, 0]]  # rows true, columns predicted; the ignored row counts nowhere
    scores = segmentation_scores(confusion.sum(0), ["background", "T-shirt/top", "bag"])
    # class 0: 3 hits, union 6 -> 1/2; class 1: 5 hits, union 6 + 8 - 5 = 9 -> 5/9; class 2: predicted once, never true -> 0
    assert scores["eval_iou_background"] == pytest.approx(3 / 6)
    assert scores["eval_iou_t_shirt_top"] == pytest.approx(5 / 9)
    assert scores["eval_iou_bag"] == 0.0
    assert scores["eval_mean_iou"] == pytest.approx((1 / 2 + 5 / 9 + 0) / 3)
    assert scores["eval_mean_accuracy"] == pytest.approx((3 / 6 + 5 / 6) / 2)  # class 2 has no true pixel: out of the accuracy mean
    assert scores["eval_overall_accuracy"] == pytest.approx(8 / 12)
    assert scores["pixel_share"] == pytest.approx([0.5, 0.5, 0.0])
    jaccard = MulticlassJaccardIndex(3, average=None, ignore_index=N)(PREDICTED[None], TRUTH[None])  # torchmetrics agrees
    assert [scores[f"eval_iou_{k}"] for k in ("background", "t_shirt_top", "bag")] == pytest.approx(jaccard.tolist())


def test_a_class_absent_from_truth_and_prediction_is_left_out():
    confusion = confusion_matrices(TRUTH.clamp(max=1)[None], TRUTH[None], 4).sum(0)  # perfect on the labelled pixels; classes 2, 3 nowhere
    scores = segmentation_scores(confusion, ["a", "b", "c", "d"])
    assert scores["eval_mean_iou"] == 1.0 and scores["eval_mean_accuracy"] == 1.0
    assert "eval_iou_c" not in scores and "eval_iou_d" not in scores
    assert math.isnan(scores["per_class_iou"][2])


def test_per_image_matrices_add_up_over_a_batch():
    truth = torch.stack([TRUTH, TRUTH.flip(1)])
    predicted = torch.stack([PREDICTED, torch.zeros(4, 4, dtype=torch.long)])
    matrices = confusion_matrices(predicted, truth, 3)
    assert matrices.shape == (2, 3, 3) and matrices.sum().item() == 24
    assert matrices[1].tolist() == [[6, 0, 0], [6, 0, 0], [0, 0, 0]]


def test_class_keys_are_safe_and_unique():
    assert class_keys(["T-shirt/top", "Ankle boot", "bag", "Bag", "!!"]) == ["t_shirt_top", "ankle_boot", "bag", "bag_3", "4"]


def test_loss_ignores_255_and_dice_is_zero_for_a_perfect_prediction():
    logits = torch.randn(1, 3, 4, 4)
    changed = logits.clone()
    changed[..., 3, :] = torch.randn(3, 4)  # only the ignored row differs
    assert segmentation_loss(logits, TRUTH[None]) == pytest.approx(segmentation_loss(changed, TRUTH[None]).item())
    perfect = torch.nn.functional.one_hot(TRUTH.clamp(max=1), 3).permute(2, 0, 1)[None].float() * 50
    assert soft_dice_loss(perfect, TRUTH[None]).item() == pytest.approx(0.0, abs=0.1)  # class 2 absent: 1 - (0 + 1) / (0 + 1) = 0 too
    assert segmentation_loss(perfect, TRUTH[None], dice_weight=1.0).item() == pytest.approx(0.0, abs=0.1)
    assert soft_dice_loss(-perfect, TRUTH[None]).item() > 0.4


def test_dice_without_one_hot_equals_the_textbook_form_in_value_and_gradient():
    """The loss's soft Dice sums p(true class) per class instead of multiplying by a one-hot truth: the same number and
    the same gradient as the textbook 2|P n T| / (|P| + |T|), ignored pixels (255) counting nowhere."""
    torch.manual_seed(0)
    masks = torch.randint(0, 5, (2, 6, 7))
    masks[0, :2] = N
    masks[1, :, 0] = N
    logits = torch.randn(2, 5, 6, 7, requires_grad=True)

    valid = (masks != N).unsqueeze(1)
    probs = logits.softmax(1) * valid
    truth = torch.nn.functional.one_hot(masks.masked_fill(~valid[:, 0], 0), 5).permute(0, 3, 1, 2) * valid
    textbook = 1 - ((2 * (probs * truth).sum((0, 2, 3)) + 1) / ((probs + truth).sum((0, 2, 3)) + 1)).mean()
    expected = torch.nn.functional.cross_entropy(logits, masks, ignore_index=N) + 0.5 * textbook
    loss = segmentation_loss(logits, masks, dice_weight=0.5)

    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    (got,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (want,) = torch.autograd.grad(expected, logits)
    assert torch.allclose(got, want, atol=1e-7)
    assert soft_dice_loss(logits, masks).item() == pytest.approx(textbook.item(), rel=1e-6)
