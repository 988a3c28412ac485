"""The similarity task's parts on hand-made cases: the losses against hand computations, the semihard and hard
miners by their definitions, retrieval / one-shot / verification metrics, the P x K sampler."""

from __future__ import annotations

import math

import pytest
import torch

from hfdl.errors import HfdlError
from hfdl.tasks.similarity.data import ClassBalancedSampler, hold_out, parse_classes
from hfdl.tasks.similarity.losses import build_loss
from hfdl.tasks.similarity.metrics import embedding_metrics, one_shot_accuracy, retrieval_metrics, verification_metrics, verification_pairs


def at(*degrees: float) -> torch.Tensor:
    """Unit vectors in the plane at these angles."""
    r = torch.tensor([math.radians(d) for d in degrees])
    return torch.stack([r.cos(), r.sin()], 1)


def test_triplet_loss_is_facenets_on_squared_distances_averaged_over_active_triplets():
    # a=(1,0), p=(0,1) of class 0, n=(0.6,0.8) of class 1: |a-p|^2 = 2, |a-n|^2 = 0.8, |p-n|^2 = 0.4
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = torch.tensor([0, 0, 1])
    loss = build_loss("triplet", margin=0.2, miner="all")(emb, labels)
    # (a, p, n): 2 - 0.8 + 0.2 = 1.4; (p, a, n): 2 - 0.4 + 0.2 = 1.8; n has no positive
    assert loss.item() == pytest.approx((1.4 + 1.8) / 2, abs=1e-5)
    # far-apart classes give no loss
    assert build_loss("triplet", miner="all")(at(0, 1, 180), labels).item() == pytest.approx(0.0, abs=1e-6)


def test_contrastive_loss_pulls_same_class_pairs_and_pushes_others_past_the_margin():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = torch.tensor([0, 0, 1])
    loss = build_loss("contrastive", margin=1.0, miner="all")(emb, labels)
    pos = math.sqrt(2)  # the one same-class pair, at distance sqrt(2)
    neg = ((1 - math.sqrt(0.8)) + (1 - math.sqrt(0.4))) / 2  # both negative pairs inside the margin 1
    assert loss.item() == pytest.approx(pos + neg, abs=1e-5)


def test_semihard_and_hard_miners_pick_what_their_definitions_say():
    # anchor a (0 deg) and positive p (60 deg): |a-p|^2 = 1; negatives at 65, 50 and 125 degrees, one class each
    emb = at(0, 60, 65, 50, 125)
    labels = torch.tensor([0, 0, 1, 2, 3])
    semihard = build_loss("triplet", margin=0.2, miner="semihard").miner(emb, labels)
    hard = build_loss("triplet", margin=0.2, miner="hard").miner(emb, labels)
    as_set = lambda mined: set(zip(*(t.tolist() for t in mined)))  # noqa: E731
    # semihard: d(a,p) < d(a,n) <= d(a,p) + margin. For a: n at 65 deg (|a-n|^2 = 1.155). For p: n at 125 deg (1.155).
    assert as_set(semihard) == {(0, 1, 2), (1, 0, 4)}
    # hard: d(a,n) <= d(a,p). For a: n at 50 deg (0.714). For p: n at 65 and 50 deg (5 and 10 degrees away).
    assert as_set(hard) == {(0, 1, 3), (1, 0, 2), (1, 0, 3)}


def test_loss_and_miner_choices_are_checked_in_one_line():
    with pytest.raises(HfdlError, match="--miner semihard is defined for triplets"):
        build_loss("contrastive", miner="semihard")
    with pytest.raises(HfdlError, match="--loss 'arcface' is unknown"):
        build_loss("arcface")
    with pytest.raises(HfdlError, match="--margin must be > 0"):
        build_loss("triplet", margin=0.0)


def test_retrieval_metrics_on_hand_made_embeddings():
    # class 0 at 0 and 8 degrees, class 1 at 20 and 90: 20's nearest image is 8 (class 0), the other three are right
    emb, labels = at(0, 8, 20, 90), torch.tensor([0, 0, 1, 1])
    r = retrieval_metrics(emb, labels)
    assert r["precision_at_1"] == pytest.approx(0.75)
    assert r["map_at_r"] == pytest.approx(0.75)  # R = 1 same-class image each: MAP@R is precision@1 here
    assert r["recall_at_5"] == pytest.approx(1.0)
    # three per class, class 0 at 0, 4, 14 and class 1 at 20, 25, 40 degrees (R = 2):
    # 0 -> 4, 14 (both right): AP 1; 4 -> 0, 14: 1; 14 -> 20 (wrong), 4: (0 + 1/2) / 2; 20 -> 25, 14 (wrong): 1/2;
    # 25 -> 20, 14 (wrong): 1/2; 40 -> 25, 20: 1
    emb, labels = at(0, 4, 14, 20, 25, 40), torch.tensor([0, 0, 0, 1, 1, 1])
    r = retrieval_metrics(emb, labels)
    assert r["precision_at_1"] == pytest.approx(5 / 6)
    assert r["map_at_r"] == pytest.approx((1 + 1 + 0.25 + 0.5 + 0.5 + 1) / 6)


def test_one_shot_and_verification_of_perfect_and_random_embeddings():
    torch.manual_seed(0)
    labels = torch.arange(8).repeat_interleave(50)
    perfect = torch.eye(8)[labels] + 0.01 * torch.randn(400, 8)
    assert one_shot_accuracy(perfect, labels, n_way=5, episodes=300) == 1.0
    v = verification_metrics(perfect, labels, num_pairs=500)
    assert v["verification_auroc"] == pytest.approx(1.0) and v["verification_eer"] == pytest.approx(0.0) and v["verification_accuracy"] == 1.0
    noise = torch.randn(400, 64)
    assert abs(one_shot_accuracy(noise, labels, n_way=5, episodes=2000) - 0.2) < 0.04
    assert abs(verification_metrics(noise, labels, num_pairs=3000)["verification_auroc"] - 0.5) < 0.05
    # the same seed draws the same pairs and episodes: two models are scored on the same ones
    assert all(torch.equal(a, b) for a, b in zip(verification_pairs(labels, 100, seed=3), verification_pairs(labels, 100, seed=3)))
    assert embedding_metrics(perfect, labels, episodes=50, pairs=50) == embedding_metrics(perfect, labels, episodes=50, pairs=50)


def test_pairs_are_what_they_claim():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])
    first, second, same = verification_pairs(labels, 200, seed=1)
    assert torch.equal(labels[first] == labels[second], same) and not (first == second).any()
    assert int(same.sum()) == 200 and int((~same).sum()) == 200


def test_class_balanced_sampler_gives_p_classes_of_k_images_seeded_by_epoch():
    labels = [c for c in range(6) for _ in range(10)] + [6, 6, 6]  # class 6 has 3 images (< K: drawn with replacement)
    s = ClassBalancedSampler(labels, classes_per_batch=4, samples_per_class=4, seed=1)
    first = list(s)
    assert len(first) == len(s) == (63 // 16) * 16
    for b in range(len(first) // 16):
        batch = [labels[i] for i in first[b * 16 : (b + 1) * 16]]
        assert len(set(batch)) == 4 and all(batch.count(c) == 4 for c in set(batch))
        assert all([labels[i] for i in first[b * 16 + 4 * j : b * 16 + 4 * j + 4]].count(batch[4 * j]) == 4 for j in range(4))
    assert list(s) == first  # the same epoch: the same order (exact resume)
    s.set_epoch(1)
    assert list(s) != first


def test_sampler_and_holdout_refuse_what_cannot_train_in_one_line():
    with pytest.raises(HfdlError, match="--classes_per_batch 5 is larger than the 3 classes"):
        ClassBalancedSampler([0, 0, 1, 1, 2, 2], 5, 2)
    with pytest.raises(HfdlError, match=r"class id\(s\) \[2\] have a single training image"):
        ClassBalancedSampler([0, 0, 1, 1, 2], 2, 2)
    names = ["cat", "dog", "fox"]
    assert parse_classes("fox, 0", names) == [0, 2]
    with pytest.raises(HfdlError, match="class 'wolf' is not a label of this dataset"):
        parse_classes("wolf", names)
    import datasets

    ds = datasets.Dataset.from_dict({"label": [0, 1, 2, 2, 1]})
    assert hold_out(ds, "label", [2], 3)["label"] == [0, 1, 1]
    with pytest.raises(HfdlError, match="leaves 1 class"):
        hold_out(ds, "label", [1, 2], 3)
