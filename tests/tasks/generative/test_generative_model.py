"""The generative models' parts: KL in closed form, the reparameterisation gradient, the importance-weighted
bound against the ELBO, FID / KID on a feature network, sampling, interpolation and the strict Hub round trip."""

from __future__ import annotations

import pytest
import torch

from hfdl.errors import HfdlError
from hfdl.tasks.generative import losses
from hfdl.tasks.generative.fid import FeatureClassifier, SampleQuality
from hfdl.tasks.generative.model import ImageGenerator, stride2_stages


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(5, 7), torch.ones(5, 7))
    expected = torch.distributions.kl_divergence(q, p).sum(1)
    torch.testing.assert_close(losses.kl_to_standard_normal(mean, logvar), expected)
    assert torch.all(losses.kl_to_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)  # the prior itself


@pytest.mark.parametrize("model_type", ["vae", "conv_vae"])
def test_reparameterisation_gradient_reaches_mean_and_variance(model_type):
    torch.manual_seed(0)
    model = ImageGenerator(model_type, image_size=16, channels=1, latent_dim=4, hidden_dim=32, base_channels=8)
    x = torch.rand(6, 1, 16, 16)
    out = model(x)
    out.mean.retain_grad()
    out.logvar.retain_grad()
    loss = losses.reconstruction_nll(model, out.logits, x).mean()  # the KL term left out: only the sampled z links the two
    loss.backward()
    assert out.mean.grad.abs().sum() > 0 and out.logvar.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    with torch.no_grad():  # sample=False decodes the mean: no noise
        a, b = model(x, sample=False).logits, model(x, sample=False).logits
    assert torch.equal(a, b)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "continuous_bernoulli"])
def test_importance_weighted_bound_is_tighter_than_the_elbo(likelihood):
    torch.manual_seed(0)
    model = ImageGenerator("vae", image_size=8, channels=1, latent_dim=3, hidden_dim=16, likelihood=likelihood).eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():  # the ELBO's expectation, estimated with many posterior samples
        neg_elbo = torch.stack([losses.negative_elbo(model, x)["neg_elbo"] for _ in range(400)]).mean(0)
    iw = losses.importance_weighted_nll(model, x, num_samples=400)
    assert torch.all(iw <= neg_elbo + 1e-3)  # -log p(x) <= IW bound <= negative ELBO
    assert torch.all(torch.isfinite(iw))


def test_fid_of_a_set_with_itself_is_zero_and_with_noise_large():
    torch.manual_seed(0)
    net = FeatureClassifier(1, 10).eval()
    g = torch.Generator().manual_seed(1)
    real = (torch.rand(400, 1, 16, 16, generator=g) < torch.linspace(0, 1, 16).view(1, 1, 1, 16)).float()  # structured images
    score = SampleQuality(net, real)
    same = score(real)
    noise = score(torch.rand(400, 1, 16, 16, generator=g))
    assert abs(same["fid"]) < 1e-3 and abs(same["kid"]) < 1e-3
    assert noise["fid"] > 100 * max(same["fid"], 1e-4) and noise["fid"] > 0.05
    assert noise["kid"] > 0
    assert score(real[:200]) == score(real[:200])  # deterministic (KID's subsets seeded)


@pytest.mark.parametrize("size,stages", [(28, 2), (32, 3), (64, 4), (8, 1), (10, 1), (7, 0)])
def test_conv_bodies_fit_every_image_size(size, stages):
    assert stride2_stages(size) == stages
    for model_type in ("conv_vae", "dcgan", "autoencoder"):
        model = ImageGenerator(model_type, image_size=size, channels=3, latent_dim=5, base_channels=4).eval()
        assert model.sample(3, seed=0).shape == (3, 3, size, size)
        if model.encoder is not None:
            assert model.reconstruct(torch.rand(2, 3, size, size)).shape == (2, 3, size, size)


def test_sampling_is_seeded_and_interpolation_ends_at_the_seeds_samples():
    torch.manual_seed(0)
    model = ImageGenerator("conv_vae", image_size=16, latent_dim=6, base_channels=8).eval()
    a, b = model.sample(4, seed=3), model.sample(4, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, model.sample(4, seed=4))
    assert a.min() >= 0 and a.max() <= 1
    strip = model.interpolate(5, 9, steps=6)
    assert strip.shape == (6, 1, 16, 16)
    torch.testing.assert_close(strip[0], model.sample(1, seed=5)[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(strip[-1], model.sample(1, seed=9)[0], atol=1e-5, rtol=0)


def test_conditional_generator_needs_valid_labels():
    torch.manual_seed(0)
    model = ImageGenerator("dcgan", image_size=16, latent_dim=6, base_channels=4, num_classes=3, label_names=["a", "b", "c"]).eval()
    per_class = [model.sample(2, seed=0, labels=k) for k in range(3)]
    assert not torch.equal(per_class[0], per_class[1])  # the label changes the image for the same z
    with pytest.raises(HfdlError, match="class label 3 is out of range: this generator has classes 0..2 \\(a, b, c\\)"):
        model.sample(2, seed=0, labels=3)


def test_bad_sizes_are_one_line_errors():
    with pytest.raises(HfdlError, match="--latent_dim must be >= 1, got 0"):
        ImageGenerator("vae", latent_dim=0)
    with pytest.raises(HfdlError, match="model_type 'gan' is unknown"):
        ImageGenerator("gan")
    with pytest.raises(HfdlError, match="a dcgan has no encoder"):
        ImageGenerator("dcgan", image_size=16, base_channels=4).reconstruct(torch.rand(1, 1, 16, 16))


@pytest.mark.parametrize("model_type", ["vae", "dcgan"])
def test_save_and_load_round_trip_is_strict_and_exact(tmp_path, model_type):
    torch.manual_seed(0)
    model = ImageGenerator(model_type, image_size=16, latent_dim=4, hidden_dim=16, base_channels=4, num_classes=2, label_names=["x", "y"]).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = ImageGenerator.from_pretrained(tmp_path / "m")
    assert loaded.model_type == model_type and loaded.label_names == ["x", "y"] and not loaded.training
    assert torch.equal(model.sample(5, seed=1), loaded.sample(5, seed=1))
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "m" / "model.safetensors")
    weights.pop(next(k for k in weights if k.endswith(".weight")))
    save_file(weights, tmp_path / "m" / "model.safetensors")
    with pytest.raises(HfdlError, match="could not load an hfdl image generator from .*Missing key"):
        ImageGenerator.from_pretrained(tmp_path / "m")
