"""Losses and likelihood bounds of the generative models, per image in nats.

- `kl_to_standard_normal`: KL(q(z|x) || N(0, I)) in closed form.
- `reconstruction_nll`: -log p(x|z) under the decoder's likelihood (summed over pixels).
- `negative_elbo`: reconstruction + beta * KL (beta = 1: the bound itself).
- `importance_weighted_nll`: the IWAE bound (Burda et al. 2016) on -log p(x) with K samples, tighter than the ELBO.
- `pytorch_example_loss`: pytorch/examples' VAE loss (summed BCE of the decoder's sigmoid + KL), for comparison.
- GAN losses: non-saturating, hinge, WGAN-GP.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hfdl.tasks.generative.model import ImageGenerator, VAEOutput


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per row: -1/2 sum(1 + logvar - mean^2 - exp(logvar))."""
    return -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(dim=1)


def reconstruction_nll(model: ImageGenerator, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per image (nats), summed over pixels, for pixel values `x` in [0, 1]."""
    logits = logits.float()
    if model.likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    elif model.likelihood == "continuous_bernoulli":
        nll = -torch.distributions.ContinuousBernoulli(logits=logits).log_prob(x)
    else:  # gaussian: mean sigmoid(logits), one learned scale
        nll = -torch.distributions.Normal(torch.sigmoid(logits), model.log_scale.exp()).log_prob(x)
    return nll.flatten(1).sum(dim=1)


def negative_elbo(
    model: ImageGenerator, x: torch.Tensor, labels: torch.Tensor | None = None, beta: float = 1.0, out: VAEOutput | None = None
) -> dict[str, torch.Tensor]:
    """Per-image `loss` (reconstruction + beta * KL), `reconstruction`, `kl` and `neg_elbo` (beta 1) of a VAE.

    `out`: the model's output on `x` when it was computed elsewhere (through a DDP wrapper, whose forward syncs
    gradients); `model` then only supplies the likelihood."""
    out = out if out is not None else model(x, labels)
    rec = reconstruction_nll(model, out.logits, x)
    kl = kl_to_standard_normal(out.mean.float(), out.logvar.float())
    return {"loss": rec + beta * kl, "reconstruction": rec, "kl": kl, "neg_elbo": rec + kl, "logits": out.logits, "mean": out.mean, "logvar": out.logvar}


def pytorch_example_loss(logits: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """pytorch/examples' VAE loss per image: BCE(sigmoid(logits), x) summed over pixels + KL (whatever the likelihood trained)."""
    bce = F.binary_cross_entropy(torch.sigmoid(logits.float()), x, reduction="none").flatten(1).sum(1)
    return bce + kl_to_standard_normal(mean.float(), logvar.float())


@torch.no_grad()
def importance_weighted_nll(model: ImageGenerator, x: torch.Tensor, num_samples: int, labels: torch.Tensor | None = None, chunk: int = 256) -> torch.Tensor:
    """The K-sample importance-weighted bound on -log p(x) per image (nats): -log mean_k p(x, z_k) / q(z_k|x).

    K = 1 is the ELBO in expectation; the bound tightens (decreases) as K grows.
    """
    mean, logvar = model.encode(x)
    mean, logvar = mean.float(), logvar.float()
    std = (0.5 * logvar).exp()
    out = []
    for i in range(len(x)):
        log_w = []
        for start in range(0, num_samples, chunk):
            k = min(chunk, num_samples - start)
            eps = torch.randn(k, mean.size(1), device=x.device)
            z = mean[i] + std[i] * eps  # (k, latent)
            lab = None if labels is None else labels[i : i + 1].expand(k)
            logits = model.decode(z, lab)
            log_px_z = -reconstruction_nll(model, logits, x[i : i + 1].expand(k, *x.shape[1:]))
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)
            log_qz = -0.5 * (eps.pow(2) + math.log(2 * math.pi) + logvar[i]).sum(1)
            log_w.append(log_px_z + log_pz - log_qz)
        log_w = torch.cat(log_w)
        out.append(-(torch.logsumexp(log_w, 0) - math.log(num_samples)))
    return torch.stack(out)


def discriminator_loss(kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The discriminator's (critic's) loss on real and generated scores (before any gradient penalty)."""
    if kind == "nonsaturating":
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()  # -log D(x) - log(1 - D(G(z)))
    if kind == "hinge":
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
    return fake_scores.mean() - real_scores.mean()  # wgan-gp: the critic's Wasserstein estimate, negated


def generator_loss(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    """The generator's loss: non-saturating -log D(G(z)) (Goodfellow et al.), else -critic(G(z))."""
    if kind == "nonsaturating":
        return F.softplus(-fake_scores).mean()
    return -fake_scores.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017): (||grad critic(x_hat)|| - 1)^2 at random points between real and fake."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(x_hat, labels)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
