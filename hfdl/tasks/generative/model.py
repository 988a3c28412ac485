"""Image generators of the generative lecture in one Hub-ready class: the MLP VAE of pytorch/examples, a
convolutional VAE, DCGAN and the (denoising) autoencoder; sampling, reconstruction and interpolation.

One class for the four kinds (as one class serves RNN / LSTM / GRU): `model_type` picks the bodies, the
config holds every size, so `ImageGenerator.from_pretrained(folder_or_id)` loads any of them strictly.
What a Space imports: no training code here (losses live in `losses.py`).

    model = ImageGenerator.from_pretrained("outputs/generative")
    grid = model.sample(16, seed=0)                  # (16, C, H, W) in [0, 1]
    strip = model.interpolate(0, 1, steps=10)        # between the latents of seeds 0 and 1
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from hfdl.core.conv_nets import ConvDecoder, ConvEncoder, stride2_stages  # noqa: F401 (stride2_stages: part of this module's interface)
from hfdl.core.hubmodel import StrictHubMixin
from hfdl.core.images import square_tensor
from hfdl.errors import HfdlError

MODEL_TYPES = ("vae", "conv_vae", "dcgan", "autoencoder")
LIKELIHOODS = ("bernoulli", "gaussian", "continuous_bernoulli")
GAN_LOSSES = ("nonsaturating", "hinge", "wgan-gp")


class MLPEncoder(nn.Module):
    """pytorch/examples' VAE encoder: 784 -> 400 (ReLU) -> mean and log-variance (fc21, fc22)."""

    def __init__(self, in_features: int, hidden_dim: int, latent_dim: int):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(in_features, hidden_dim), nn.Linear(hidden_dim, latent_dim), nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> (B, 2 * latent)
        h = torch.relu(self.fc1(x.flatten(1)))
        return torch.cat([self.fc21(h), self.fc22(h)], dim=1)


class MLPDecoder(nn.Module):
    """pytorch/examples' VAE decoder: latent -> 400 (ReLU) -> 784 logits."""

    def __init__(self, image_size: int, channels: int, hidden_dim: int, latent_dim: int):
        super().__init__()
        self.shape = (channels, image_size, image_size)
        self.fc3, self.fc4 = nn.Linear(latent_dim, hidden_dim), nn.Linear(hidden_dim, math.prod(self.shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc4(torch.relu(self.fc3(z))).view(-1, *self.shape)


@dataclass
class VAEOutput:
    logits: torch.Tensor  # (B, C, S, S) decoder output before the likelihood's link
    mean: torch.Tensor  # (B, latent) posterior mean (the code, for an autoencoder)
    logvar: torch.Tensor | None  # (B, latent) posterior log-variance (None for an autoencoder)
    z: torch.Tensor  # (B, latent) the sample decoded


class ImageGenerator(StrictHubMixin, nn.Module):
    """A VAE (`vae`: MLP, `conv_vae`), a DCGAN (`dcgan`) or an autoencoder (`autoencoder`) on `channels` x
    `image_size`^2 images in [0, 1].

    Args:
        model_type: vae | conv_vae | dcgan | autoencoder.
        latent_dim: size of z (the code of an autoencoder).
        hidden_dim: hidden units of the fully connected layers: the MLP VAE's (400 in pytorch/examples); in the conv
            VAE and the autoencoder, the layer between the conv body and the latent, both ways (0: none). Not used by dcgan.
        base_channels: width of the first conv stage (doubling per stage).
        likelihood: the decoder's p(x|z) for VAEs and the autoencoder's reconstruction loss:
            bernoulli (logits), gaussian (mean sigmoid(logits), one learned scale), continuous_bernoulli.
        num_classes: > 0 makes the decoder (and a GAN's discriminator) class-conditional.
        label_names: class names (conditional sampling, latent arithmetic on class means).
        gan_loss: nonsaturating | hinge | wgan-gp (wgan-gp: no BatchNorm in the critic).
    """

    load_what: ClassVar[str] = "an hfdl image generator"

    def __init__(
        self,
        model_type: str = "conv_vae",
        image_size: int = 28,
        channels: int = 1,
        latent_dim: int = 20,
        hidden_dim: int = 400,
        base_channels: int = 32,
        likelihood: str = "bernoulli",
        num_classes: int = 0,
        label_names: list[str] | None = None,
        gan_loss: str = "nonsaturating",
    ):
        super().__init__()
        if model_type not in MODEL_TYPES:
            raise HfdlError(f"model_type '{model_type}' is unknown: use one of {', '.join(MODEL_TYPES)}")
        if latent_dim < 1:
            raise HfdlError(f"--latent_dim must be >= 1, got {latent_dim}")
        if likelihood not in LIKELIHOODS:
            raise HfdlError(f"--likelihood '{likelihood}' is unknown: use one of {', '.join(LIKELIHOODS)}")
        if gan_loss not in GAN_LOSSES:
            raise HfdlError(f"--gan_loss '{gan_loss}' is unknown: use one of {', '.join(GAN_LOSSES)}")
        self.model_type, self.image_size, self.channels, self.latent_dim = model_type, image_size, channels, latent_dim
        self.likelihood, self.num_classes, self.gan_loss = likelihood, num_classes, gan_loss
        self.label_names = list(label_names) if label_names else [str(i) for i in range(num_classes)]
        self.encoder: nn.Module | None = None
        self.discriminator: nn.Module | None = None
        if model_type == "vae":
            self.encoder = MLPEncoder(channels * image_size**2, hidden_dim, latent_dim)
            body: nn.Module = MLPDecoder(image_size, channels, hidden_dim, latent_dim)
        elif model_type in ("conv_vae", "autoencoder"):
            self.encoder = ConvEncoder(image_size, channels, base_channels, latent_dim * (2 if model_type == "conv_vae" else 1), hidden=hidden_dim)
            body = ConvDecoder(image_size, channels, base_channels, latent_dim, hidden=hidden_dim)
        else:
            body = ConvDecoder(image_size, channels, base_channels, latent_dim)  # DCGAN: the generator mirrors the discriminator
        self.decoder = Decoder(body, latent_dim, num_classes)
        if model_type == "dcgan":
            norm = "none" if gan_loss == "wgan-gp" else "batch"  # a gradient penalty per sample needs no batch statistics
            self.discriminator = Discriminator(image_size, channels, base_channels, num_classes, norm)
        self.log_scale = nn.Parameter(torch.zeros(())) if likelihood == "gaussian" and model_type != "dcgan" else None
        if self.encoder is not None and self.label_names:  # each class's mean code of the training images (set after training)
            self.register_buffer("class_means", torch.zeros(len(self.label_names), latent_dim))
        else:
            self.class_means = None

    # -- properties -------------------------------------------------------------------------------------
    @property
    def is_vae(self) -> bool:
        return self.model_type in ("vae", "conv_vae")

    @property
    def is_gan(self) -> bool:
        return self.model_type == "dcgan"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    # -- the pieces -------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, log-variance) of q(z|x) for a VAE, (code, None) for an autoencoder; `x` in [0, 1]."""
        if self.encoder is None:
            raise HfdlError(f"a {self.model_type} has no encoder: reconstruction needs a vae, conv_vae or autoencoder")
        h = self.encoder(x)
        if not self.is_vae:
            return h, None
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder logits (B, C, S, S) of latents `z` (B, latent_dim), conditioned on `labels` when conditional."""
        return self.decoder(z, labels)

    def to_images(self, logits: torch.Tensor) -> torch.Tensor:
        """The decoder's image (its likelihood's mean; a GAN's tanh output) in [0, 1]."""
        if self.is_gan:
            return (torch.tanh(logits) + 1) / 2
        if self.likelihood == "continuous_bernoulli":
            return torch.distributions.ContinuousBernoulli(logits=logits.float()).mean.to(logits.dtype)
        return torch.sigmoid(logits)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, sample: bool = True) -> VAEOutput:
        """Encode, draw z by the reparameterisation trick (`sample`; else the mean), decode. Not for a GAN."""
        mean, logvar = self.encode(x)
        z = mean
        if logvar is not None and sample:
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)  # z = mu + sigma * eps: gradients reach mu and sigma
        return VAEOutput(self.decode(z, labels), mean, logvar, z)

    # -- generation -------------------------------------------------------------------------------------
    def latents(self, num: int, seed: int | None = None, device=None) -> torch.Tensor:
        """`num` prior draws z ~ N(0, I), seeded on the CPU so the same seed gives the same images on any device."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(num, self.latent_dim, generator=g).to(device or self._device())

    def _labels(self, labels, num: int) -> torch.Tensor | None:
        if self.num_classes == 0:
            return None
        if labels is None:
            return torch.arange(num, device=self._device()) % self.num_classes  # every class in turn
        if isinstance(labels, int):
            self._check_label(labels)
            return torch.full((num,), labels, device=self._device(), dtype=torch.long)
        labels = torch.as_tensor(labels, device=self._device(), dtype=torch.long)
        for v in labels.unique().tolist():
            self._check_label(v)
        return labels

    def _check_label(self, label: int) -> None:
        if not 0 <= label < self.num_classes:
            raise HfdlError(f"class label {label} is out of range: this generator has classes 0..{self.num_classes - 1} ({', '.join(self.label_names)})")

    @torch.inference_mode()
    def sample(self, num: int, seed: int | None = None, labels=None, batch_size: int = 1024, decoder: nn.Module | None = None) -> torch.Tensor:
        """`num` images (num, C, S, S) in [0, 1] from the prior; `labels` (an int or one per image) for a conditional
        model (default: every class in turn); `decoder` another decoder of the same shape (an EMA copy)."""
        z, y = self.latents(num, seed), self._labels(labels, num)
        return self.generate(z, y, batch_size, decoder)

    @torch.inference_mode()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 1024, decoder: nn.Module | None = None) -> torch.Tensor:
        """Images in [0, 1] of given latents (in batches)."""
        decoder = decoder or self.decoder
        z = z.to(self._device())
        out = [self.to_images(decoder(z[i : i + batch_size], None if labels is None else labels[i : i + batch_size])) for i in range(0, len(z), batch_size)]
        return torch.cat(out).float().clamp(0, 1)

    @torch.inference_mode()
    def interpolate(self, seed_a: int, seed_b: int, steps: int = 10, label: int | None = None) -> torch.Tensor:
        """`steps` images along the spherical interpolation between the prior draws of two seeds (slerp keeps
        every point at a typical radius of the Gaussian prior, where the decoder was trained)."""
        if steps < 2:
            raise HfdlError(f"--steps must be >= 2, got {steps}")
        za, zb = self.latents(1, seed_a)[0], self.latents(1, seed_b)[0]
        t = torch.linspace(0, 1, steps, device=za.device)
        z = slerp(za, zb, t)
        return self.generate(z, self._labels(label, steps))

    @torch.inference_mode()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The decoded posterior mean (code) of images `x` (B, C, S, S) in [0, 1]."""
        mean, _ = self.encode(x.to(self._device()))
        return self.to_images(self.decode(mean, labels)).float().clamp(0, 1)

    def _device(self) -> torch.device:
        return next(self.parameters()).device


def image_tensor(model: ImageGenerator, img: "PIL.Image.Image") -> torch.Tensor:  # noqa: F821
    """Any PIL image as the model's input: (1, C, S, S) in [0, 1]."""
    return square_tensor(img, model.image_size, model.channels)


def input_and_reconstruction(model: ImageGenerator, img: "PIL.Image.Image", label: int | None = None) -> torch.Tensor:  # noqa: F821
    """(2, C, S, S): an image as the model sees it, then its reconstruction (a conditional model: `label`, default class 0)."""
    x = image_tensor(model, img)
    y = torch.tensor([label if label is not None else 0]) if model.num_classes else None
    return torch.cat([x, model.reconstruct(x, y).cpu()])


def label_id(model: ImageGenerator, label: str | int | None) -> int | None:
    """A class given by id or name as its id (None stays None); a one-line error for an unknown class or an unconditional model."""
    if label is None or label == "":
        return None
    if model.num_classes == 0:
        raise HfdlError(f"this {model.model_type} is not class-conditional: drop the class label")
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        if label not in model.label_names:
            raise HfdlError(f"class '{label}' is unknown: this generator has {', '.join(model.label_names)}")
        return model.label_names.index(label)
    model._check_label(int(label))
    return int(label)


def _squash(text: str) -> str:
    return "".join(text.split()).lower()


def parse_arithmetic(model: ImageGenerator, expression: str) -> list[tuple[int, int]]:
    """ "Trouser - Shirt + Dress" -> [(+1, 1), (-1, 6), (+1, 3)]: class names (case and spaces ignored, the longest
    name that fits wins, so "T - shirt / top" is one name) joined by + and -."""
    names = sorted(((_squash(n), i) for i, n in enumerate(model.label_names)), key=lambda t: -len(t[0]))
    text, pos, terms, sign = _squash(expression), 0, [], None
    hint = f"use class names ({', '.join(model.label_names)}) joined by + and -"
    if not text:
        raise HfdlError(f"the expression is empty: {hint}")
    while pos < len(text):
        if text[pos] in "+-" and (sign is None or not terms):
            sign = (-1 if text[pos] == "-" else 1) * (sign or 1)
            pos += 1
            continue
        if terms and sign is None:
            raise HfdlError(f"'{expression}' has two classes without + or - between them: {hint}")
        found = next(((n, i) for n, i in names if text.startswith(n, pos)), None)
        if found is None:
            raise HfdlError(f"'{expression}' has no class name at '{text[pos:]}': {hint}")
        terms.append((sign or 1, found[1]))
        pos, sign = pos + len(found[0]), None
    if sign is not None:
        raise HfdlError(f"'{expression}' ends with + or -: {hint}")
    return terms


@torch.inference_mode()
def latent_arithmetic(model: ImageGenerator, expression: str) -> torch.Tensor:
    """The decoded sum (+/-) of class-mean codes, e.g. "Trouser - Shirt + Dress" -> (1, C, S, S) in [0, 1]."""
    if model.class_means is None or not bool(model.class_means.abs().sum()):
        raise HfdlError(f"latent arithmetic needs the class means of a VAE or autoencoder trained on labelled images, and this {model.model_type} has none")
    terms = parse_arithmetic(model, expression)
    z = sum(sign * model.class_means[i] for sign, i in terms)
    labels = torch.tensor([terms[0][1]], device=z.device) if model.num_classes else None
    return model.generate(z[None], labels)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between vectors `a` and `b` at fractions `t` (T,) -> (T, D)."""
    omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
    if omega.abs() < 1e-6:
        return torch.lerp(a[None], b[None], t[:, None])
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so)[:, None] * a[None] + (torch.sin(t * omega) / so)[:, None] * b[None]


class Decoder(nn.Module):
    """The decoder (a GAN's generator): z, plus a learned class embedding when conditional, to logits."""

    def __init__(self, body: nn.Module, latent_dim: int, num_classes: int = 0):
        super().__init__()
        self.body = body
        self.label_embedding = nn.Embedding(num_classes, latent_dim) if num_classes else None

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:  # (B, latent) -> (B, C, S, S)
        if self.label_embedding is not None:
            if labels is None:
                raise HfdlError("this generator is class-conditional: pass a class label")
            z = z + self.label_embedding(labels)
        return self.body(z)


class Discriminator(nn.Module):
    """DCGAN's discriminator (no BatchNorm on the first layer), with a projection for classes (Miyato & Koyama 2018)."""

    def __init__(self, image_size: int, channels: int, base_channels: int, num_classes: int = 0, norm: str = "batch"):
        super().__init__()
        self.features = ConvEncoder(image_size, channels, base_channels, 4 * base_channels, norm=norm, first_norm=False)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.out = nn.Linear(4 * base_channels, 1)
        self.embed = nn.Embedding(num_classes, 4 * base_channels) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:  # x in [-1, 1] -> (B,) scores
        h = self.act(self.features(x))
        score = self.out(h).squeeze(1)
        if self.embed is not None:
            score = score + (self.embed(labels) * h).sum(1)
        return score
