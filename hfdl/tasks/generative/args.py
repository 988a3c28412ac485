"""Arguments of scripts/train_generative.py: the model, the data, the metrics, and the loop's recipe per model type."""

from __future__ import annotations

from dataclasses import dataclass, field

from hfdl.core.training import TrainingArguments
from hfdl.errors import HfdlError
from hfdl.tasks.generative.model import GAN_LOSSES, LIKELIHOODS, MODEL_TYPES

# The loop's recipe per model type, for every field not given on the command line.
# vae: pytorch/examples' VAE recipe exactly (Adam 1e-3, batch 128, 10 epochs, no schedule, no clipping);
# dcgan: Radford et al. (Adam 2e-4, beta1 0.5, batch 128).
# conv_vae: measured best at --time_budget_minutes 2 (README): a cosine from a high peak; the autoencoder shares it.
RECIPES = {
    "vae": {"learning_rate": 1e-3, "lr_scheduler_type": "constant", "warmup_ratio": 0.0},
    "conv_vae": {"learning_rate": 1.6e-2, "lr_scheduler_type": "cosine", "warmup_ratio": 0.02},
    "autoencoder": {"learning_rate": 1.6e-2, "lr_scheduler_type": "cosine", "warmup_ratio": 0.02},
    "dcgan": {"learning_rate": 2e-4, "lr_scheduler_type": "constant", "warmup_ratio": 0.0},
}
FID_FEATURES = ("classifier", "inception", "none")


@dataclass
class GenerativeArguments:
    """Model flags of scripts/train_generative.py (the same flags for every type; each uses those it has)."""

    model_type: str = field(default="conv_vae", metadata={"help": f"{' | '.join(MODEL_TYPES)}."})
    latent_dim: int | None = field(
        default=None, metadata={"help": "Size of z (default: 20 for the VAEs, as pytorch/examples; 100 for dcgan; 32 for the autoencoder)."}
    )
    hidden_dim: int | None = field(
        default=None,
        metadata={
            "help": "Fully connected hidden units: the MLP VAE's (default 400, as pytorch/examples); the conv VAE's and autoencoder's between conv body and latent (default 256; 0: none)."
        },
    )
    base_channels: int = field(default=32, metadata={"help": "Channels of the first conv stage (doubled per stage)."})
    beta: float = field(default=1.0, metadata={"help": "Weight of the KL term of a VAE (beta-VAE; 1 trains the ELBO)."})
    likelihood: str = field(default="bernoulli", metadata={"help": f"The decoder's p(x|z) and the autoencoder's loss: {' | '.join(LIKELIHOODS)}."})
    gan_loss: str = field(default="nonsaturating", metadata={"help": f"{' | '.join(GAN_LOSSES)}."})
    gp_weight: float = field(default=10.0, metadata={"help": "Gradient-penalty weight of wgan-gp."})
    critic_steps: int | None = field(default=None, metadata={"help": "Discriminator updates per generator update (default 1; wgan-gp 5)."})
    conditional: bool = field(default=False, metadata={"help": "Condition the decoder / generator (and a GAN's discriminator) on the class label."})
    ema_decay: float = field(default=0.999, metadata={"help": "EMA of the GAN generator's weights (the saved generator); 0 turns it off."})
    noise_std: float = field(default=0.0, metadata={"help": "Denoising autoencoder: Gaussian noise added to the input (0: undercomplete autoencoder)."})

    def __post_init__(self):
        if self.model_type not in MODEL_TYPES:
            raise HfdlError(f"--model_type '{self.model_type}' is unknown: use one of {', '.join(MODEL_TYPES)}")
        if self.latent_dim is None:
            self.latent_dim = {"dcgan": 100, "autoencoder": 32}.get(self.model_type, 20)
        if self.latent_dim < 1:
            raise HfdlError(f"--latent_dim must be >= 1, got {self.latent_dim}")
        if self.likelihood not in LIKELIHOODS:
            raise HfdlError(f"--likelihood '{self.likelihood}' is unknown: use one of {', '.join(LIKELIHOODS)}")
        if self.gan_loss not in GAN_LOSSES:
            raise HfdlError(f"--gan_loss '{self.gan_loss}' is unknown: use one of {', '.join(GAN_LOSSES)}")
        if self.hidden_dim is None:
            self.hidden_dim = 400 if self.model_type == "vae" else (0 if self.model_type == "dcgan" else 256)
        if self.critic_steps is None:
            self.critic_steps = 5 if self.gan_loss == "wgan-gp" else 1
        if self.hidden_dim < 0 or (self.model_type == "vae" and self.hidden_dim < 1):
            raise HfdlError(f"--hidden_dim must be >= 1 for the MLP VAE and >= 0 otherwise, got {self.hidden_dim}")
        for name in ("base_channels", "critic_steps"):
            if getattr(self, name) < 1:
                raise HfdlError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.beta < 0 or self.noise_std < 0 or self.gp_weight < 0:
            raise HfdlError("--beta, --noise_std and --gp_weight must be >= 0")
        if not 0 <= self.ema_decay < 1:
            raise HfdlError(f"--ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass
class GenerativeDataArguments:
    """Where the images come from (any image dataset the other tasks read)."""

    dataset_name: str | None = field(default="fashion_mnist", metadata={"help": "Hub id, saved/imagefolder path, or offline: fashion_mnist | digits."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_dir: str | None = field(default=None, metadata={"help": "An imagefolder (class subfolders give labels) instead of --dataset_name."})
    validation_dir: str | None = field(default=None, metadata={"help": "Its test imagefolder (else --train_val_split of --train_dir)."})
    image_column: str | None = field(default=None, metadata={"help": "Image column (default: the one Image feature)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (default: the ClassLabel feature; none is fine without --conditional)."})
    image_size: int | None = field(default=None, metadata={"help": "Resize (shorter side) and centre-crop to N x N (needed for images of mixed sizes)."})
    train_val_split: float = field(default=0.1, metadata={"help": "Held-out fraction when the dataset has no test/validation split."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only N training images (seeded)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only N test images (seeded)."})

    def __post_init__(self):
        if self.train_dir:
            self.dataset_name = None  # the offline default gives way to a folder
        if self.image_size is not None and not 8 <= self.image_size <= 256:
            raise HfdlError(f"--image_size must be in [8, 256], got {self.image_size}")


@dataclass
class GenerativeMetricArguments:
    """Sample-quality and likelihood metrics, and the pictures."""

    fid_features: str = field(
        default="classifier", metadata={"help": "classifier (a CNN trained for the purpose on this dataset) | inception (torchmetrics, internet) | none."}
    )
    fid_samples: int = field(default=10_000, metadata={"help": "Generated images scored by FID/KID at the end (against as many test images)."})
    eval_fid_samples: int = field(default=1_000, metadata={"help": "Generated images scored at each evaluation during training (0: none)."})
    iw_samples: int = field(default=1_000, metadata={"help": "Importance samples K of the importance-weighted NLL bound of a VAE (0: skip)."})
    iw_images: int = field(default=500, metadata={"help": "Test images the importance-weighted bound is computed on."})
    num_samples_grid: int = field(default=64, metadata={"help": "Images in samples.png."})

    def __post_init__(self):
        if self.fid_features not in FID_FEATURES:
            raise HfdlError(f"--fid_features '{self.fid_features}' is unknown: use one of {', '.join(FID_FEATURES)}")
        for name in ("fid_samples", "eval_fid_samples", "iw_samples", "iw_images"):
            if getattr(self, name) < 0:
                raise HfdlError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.num_samples_grid < 1:
            raise HfdlError(f"--num_samples_grid must be >= 1, got {self.num_samples_grid}")


@dataclass
class GenerativeTrainingArguments(TrainingArguments):
    """The shared loop's arguments; learning rate, schedule and warmup come from the model type's recipe (RECIPES) unless given."""

    default_epochs = 10

    output_dir: str = field(default="outputs/generative", metadata={"help": "Where the model, pictures, results and checkpoints go."})
    per_device_train_batch_size: int = field(default=128, metadata={"help": "Batch size per device (128: pytorch/examples' VAE and DCGAN)."})
    per_device_eval_batch_size: int = field(default=500, metadata={"help": "Batch size of evaluation."})
    learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate (default: the model type's recipe: vae 1e-3, conv_vae 1.6e-2, dcgan 2e-4)."}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (0: Adam, as the recipes)."})
    warmup_ratio: float | None = field(default=None, metadata={"help": "Fraction of steps for linear warmup (default: the recipe's: conv_vae 0.02, else 0)."})
    lr_scheduler_type: str | None = field(
        default=None, metadata={"help": "cosine | linear | constant | constant_with_warmup (default: the recipe's: conv_vae cosine, vae and dcgan constant)."}
    )
    max_grad_norm: float | None = field(default=None, metadata={"help": "Gradient clipping norm (None: off, as the recipes)."})

    def for_model(self, model_type: str) -> GenerativeTrainingArguments:
        """These arguments with the unset recipe fields of `model_type` filled in."""
        return self.with_unset(**RECIPES[model_type])
