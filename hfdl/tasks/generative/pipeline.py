"""Generative models: images -> the shared accelerate loop -> metrics, pictures and a Hub-ready folder.

VAEs and the autoencoder train through the loop's `compute_loss`; DCGAN through a `TrainStep` that runs the
discriminator and generator updates with their own Adam optimizers and keeps an EMA of the generator.
Evaluation (each epoch): a VAE's negative ELBO on the test split in nats per image with its parts, the
autoencoder's reconstruction loss, and for every generator FID / KID of fresh samples on the feature
network. At the end: the same on more samples, the importance-weighted NLL bound, the data's own FID
(train vs test) as the floor, sampling speed, and the pictures.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from hfdl import assets
from hfdl.core.checkpoints import list_checkpoints, resolve_checkpoint
from hfdl.core.image_tensors import ImageTensors, load_image_tensors
from hfdl.core.rundir import ALL_RESULTS, RUN_CONFIG, check_output_dir, run_config, write_json
from hfdl.core.runtime import PeakMemory
from hfdl.core.training import TrainStep, make_accelerator, tensor_loader, train
from hfdl.errors import HfdlError
from hfdl.tasks.generative import losses
from hfdl.tasks.generative.args import GenerativeArguments, GenerativeDataArguments, GenerativeMetricArguments, GenerativeTrainingArguments
from hfdl.tasks.generative.fid import SampleQuality, feature_classifier, inception_quality
from hfdl.tasks.generative.model import ImageGenerator
from hfdl.tasks.generative.pictures import write_pictures

logger = logging.getLogger(__name__)

TASK = "image-generation"
OUTPUTS = ("config.json", "model.safetensors", "samples.png", "reconstructions.png", "interpolation.png", "latent_space.png", "feature_network.json")
SAMPLING_BATCH = 256


class GANStep(TrainStep):
    """DCGAN's alternating updates: `critic_steps` discriminator steps on real vs generated images, then one
    generator step, then the generator's EMA. Registered for checkpointing (its step count and running loss)."""

    def __init__(self, model: ImageGenerator, args: GenerativeArguments, ema=None):
        self.kind, self.latent_dim, self.num_classes = args.gan_loss, model.latent_dim, model.num_classes
        self.conditional, self.critic_steps, self.gp_weight = args.conditional, args.critic_steps, args.gp_weight
        self.ema, self.steps = ema, 0
        self.g_loss_sum, self.g_loss_count = 0.0, 0

    def parts(self, model):
        return {"discriminator": model.discriminator, "generator": model.decoder}

    def optimizer_options(self, name):
        return {"betas": (0.0, 0.9) if self.kind == "wgan-gp" else (0.5, 0.999)}  # Gulrajani et al. / Radford et al.

    def step(self, parts, optimizers, batch, accelerator):
        G, D = parts["generator"], parts["discriminator"]
        x = batch[0]
        real = x.float() / 127.5 - 1  # uint8 -> [-1, 1], the tanh range
        labels = batch[1] if self.conditional else None
        n = real.size(0)

        def fake_batch():
            z = torch.randn(n, self.latent_dim, device=real.device)
            y = torch.randint(0, self.num_classes, (n,), device=real.device) if self.conditional else None
            return z, y

        for _ in range(self.critic_steps):
            z, y = fake_batch()
            with torch.no_grad():
                fake = torch.tanh(G(z, y))
            d_loss = losses.discriminator_loss(self.kind, D(real, labels), D(fake, y))
            if self.kind == "wgan-gp":
                d_loss = d_loss + self.gp_weight * losses.gradient_penalty(D, real, fake, labels if labels is not None else y)
            optimizers["discriminator"].zero_grad(set_to_none=True)
            accelerator.backward(d_loss)
            optimizers["discriminator"].step()
        z, y = fake_batch()
        g_loss = losses.generator_loss(self.kind, D(torch.tanh(G(z, y)), y))
        optimizers["generator"].zero_grad(set_to_none=True)
        accelerator.backward(g_loss)
        optimizers["generator"].step()
        optimizers["discriminator"].zero_grad(set_to_none=True)  # the generator step's discriminator gradients are not used
        self.steps += 1
        if not (torch.isfinite(d_loss) and torch.isfinite(g_loss)):
            raise GANDiverged(self.steps, d_loss.item(), g_loss.item())
        if self.ema is not None:
            self.ema.update(accelerator.unwrap_model(G), step=self.steps)
        self.g_loss_sum += g_loss.item()
        self.g_loss_count += 1
        return d_loss.detach()

    def take_generator_loss(self) -> float | None:
        """The generator's mean loss since the last call."""
        if not self.g_loss_count:
            return None
        mean = self.g_loss_sum / self.g_loss_count
        self.g_loss_sum, self.g_loss_count = 0.0, 0
        return mean

    def state_dict(self) -> dict:
        return {"steps": self.steps, "g_loss_sum": self.g_loss_sum, "g_loss_count": self.g_loss_count}

    def load_state_dict(self, sd: dict) -> None:
        self.steps, self.g_loss_sum, self.g_loss_count = int(sd["steps"]), float(sd["g_loss_sum"]), int(sd["g_loss_count"])


class GANDiverged(HfdlError):
    def __init__(self, step: int, d_loss: float, g_loss: float):
        self.step = step
        super().__init__(f"the GAN diverged at step {step} (discriminator loss {d_loss}, generator loss {g_loss})")


def build_model(model_args: GenerativeArguments, data: ImageTensors) -> ImageGenerator:
    if model_args.conditional and data.train_labels is None:
        raise HfdlError("--conditional needs class labels, and this dataset has no label column: pass --label_column NAME or drop --conditional")
    return ImageGenerator(
        model_type=model_args.model_type,
        image_size=data.image_size,
        channels=data.channels,
        latent_dim=model_args.latent_dim,
        hidden_dim=model_args.hidden_dim,
        base_channels=model_args.base_channels,
        likelihood=model_args.likelihood,
        num_classes=len(data.label_names) if model_args.conditional else 0,
        label_names=data.label_names or None,
        gan_loss=model_args.gan_loss,
    )


@torch.no_grad()
def evaluate_likelihood(model: ImageGenerator, images: torch.Tensor, labels: torch.Tensor | None, batch_size: int) -> dict[str, float]:
    """Test-set losses in nats per image (one seeded posterior sample per image, as pytorch/examples' test)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].to(device).float() / 255
            y = None if labels is None or model.num_classes == 0 else labels[i : i + batch_size].to(device)
            if model.is_vae:
                t = losses.negative_elbo(model, x, y)
                parts = {
                    "neg_elbo": t["neg_elbo"],
                    "reconstruction": t["reconstruction"],
                    "kl": t["kl"],
                    "loss_pytorch_example": losses.pytorch_example_loss(t["logits"], x, t["mean"], t["logvar"]),
                }
            else:
                out = model(x, y, sample=False)
                parts = {"reconstruction": losses.reconstruction_nll(model, out.logits, x), "mse": (model.to_images(out.logits) - x).pow(2).flatten(1).mean(1)}
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v.sum().item()
    model.train(was)
    out = {f"eval_{k}": v / len(images) for k, v in sums.items()}
    out["eval_loss"] = out["eval_neg_elbo"] if model.is_vae else out["eval_reconstruction"]
    return out


@torch.no_grad()
def set_class_means(model: ImageGenerator, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> None:
    """Each class's mean code (posterior mean) of `images`, kept in the model for latent arithmetic."""
    codes = torch.cat([model.encode(images[i : i + batch_size].float() / 255)[0].float() for i in range(0, len(images), batch_size)])
    sums = torch.zeros_like(model.class_means).index_add_(0, labels, codes)
    counts = torch.bincount(labels, minlength=len(model.class_means)).clamp(min=1).unsqueeze(1)
    model.class_means.copy_(sums / counts)


def sampling_speed(model: ImageGenerator, batch_size: int = SAMPLING_BATCH, repeats: int = 20) -> float:
    """Images per second the decoder generates at `batch_size` (after one warm-up batch)."""
    z = model.latents(batch_size, seed=0)
    y = model._labels(None, batch_size)
    model.generate(z, y, batch_size)
    t0 = time.perf_counter()
    for _ in range(repeats):
        model.generate(z, y, batch_size)
    return repeats * batch_size / (time.perf_counter() - t0)


def _quality_scorer(metric_args: GenerativeMetricArguments, data: ImageTensors):
    """(scorer of generated images against the test images, description of the feature network), or (None, None)."""
    if metric_args.fid_features == "none":
        return None, None
    real = data.test[: metric_args.fid_samples or len(data.test)]
    if metric_args.fid_features == "inception":
        return inception_quality(real), {"name": "Inception-v3 (torchmetrics / torch-fidelity)", "metric_name": "FID, Inception-v3 features"}
    if data.train_labels is None:
        raise HfdlError("--fid_features classifier needs class labels to train its feature network: pass --label_column NAME, or --fid_features inception|none")
    # one feature network per dataset, whatever the run's seed: FIDs of different runs stay comparable
    net, info = feature_classifier(data.train, data.train_labels, data.test, data.test_labels, len(data.label_names))
    name = Path(data.source.split(" (")[0].split()[-1]).name or "data"
    info = {**info, "metric_name": f"FID, {_dataset_title(name)} classifier features"}
    return SampleQuality(net, real), info


def _dataset_title(name: str) -> str:
    return {"fashion_mnist": "Fashion-MNIST"}.get(name, name)


def _check_resume_type(out: Path, training_args: GenerativeTrainingArguments, model_args: GenerativeArguments) -> None:
    """A checkpoint of another model type is refused with the type it holds (before anything is written)."""
    ckpt = resolve_checkpoint(training_args.resume_from_checkpoint, out)
    cfg = (ckpt.parent if ckpt else out) / RUN_CONFIG
    if ckpt is None or not cfg.is_file():
        return
    saved = json.loads(cfg.read_text(encoding="utf-8")).get("model_args", {})
    for key in ("model_type", "conditional", "latent_dim"):
        if key in saved and saved[key] != getattr(model_args, key):
            raise HfdlError(
                f"checkpoint {ckpt} is of a run with --{key} {saved[key]}, this run has --{key} {getattr(model_args, key)}: "
                f"resume with --{key} {saved[key]} or start afresh in another --output_dir"
            )


def run(
    model_args: GenerativeArguments,
    data_args: GenerativeDataArguments,
    metric_args: GenerativeMetricArguments,
    training_args: GenerativeTrainingArguments,
    argv: list[str] | None = None,
) -> dict:
    """Train one generative model into `--output_dir`; returns all_results."""
    t0 = time.perf_counter()
    out = Path(training_args.output_dir)
    training_args = training_args.for_model(model_args.model_type)
    check_output_dir(out, [out], training_args, OUTPUTS)
    _check_resume_type(out, training_args, model_args)
    accelerator = make_accelerator(training_args)
    with accelerator.main_process_first():
        data = load_image_tensors(
            data_args.dataset_name, data_args.train_dir, data_args.validation_dir, data_args.dataset_config_name, data_args.image_column,
            data_args.label_column, data_args.image_size, data_args.train_val_split, data_args.max_train_samples, data_args.max_eval_samples,
            training_args.seed,
        )  # fmt: skip
        scorer, feature_info = _quality_scorer(metric_args, data)
    accelerator.print(
        f"data: {data.source}: {len(data.train):,} train / {len(data.test):,} test images ({data.test_split}), "
        f"{data.channels} x {data.image_size} x {data.image_size}, {len(data.label_names)} classes"
    )
    if feature_info and "test_accuracy" in feature_info:
        accelerator.print(f"feature network for FID/KID: {feature_info['name']}, test accuracy {feature_info['test_accuracy']:.4f}")
    torch.manual_seed(training_args.seed)
    model = build_model(model_args, data)
    num_params = sum(p.numel() for p in model.parameters())
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(
        TASK, argv, {"model_args": model_args, "data_args": data_args, "metric_args": metric_args, "training_args": training_args}, accelerator,
        data={"source": data.source, "train_images": len(data.train), "test_images": len(data.test), "test_split": data.test_split,
              "image_size": data.image_size, "channels": data.channels, "label_names": data.label_names},
        feature_network=feature_info,
        offline_assets=[assets.DATASETS[data_args.dataset_name].provenance()] if data_args.dataset_name in assets.DATASETS else [],
    )  # fmt: skip
    write_json(out / RUN_CONFIG, config, accelerator.is_main_process)

    labels = data.train_labels if data.train_labels is not None else torch.zeros(len(data.train), dtype=torch.long)
    train_dl = tensor_loader(data.train, labels, batch_size=training_args.per_device_train_batch_size, shuffle=True, drop_last=model.is_gan)
    conditional = model_args.conditional
    gan_step = None
    ema = None
    if model.is_gan:
        if model_args.ema_decay > 0:
            from timm.utils import ModelEmaV3

            ema = ModelEmaV3(model.decoder, decay=model_args.ema_decay, use_warmup=True)
            accelerator.register_for_checkpointing(ema)
        gan_step = GANStep(model, model_args, ema)
        accelerator.register_for_checkpointing(gan_step)

    def compute_loss(m, batch):
        x = batch[0].float() / 255
        y = batch[1] if conditional else None
        if model.is_vae:
            return losses.negative_elbo(model, x, beta=model_args.beta, out=m(x, y))["loss"].mean()
        noisy = x + model_args.noise_std * torch.randn_like(x) if model_args.noise_std else x  # denoising: reconstruct the clean image
        return losses.reconstruction_nll(model, m(noisy, y, sample=False).logits, x).mean()

    def evaluate(m) -> dict:
        metrics = {} if model.is_gan else evaluate_likelihood(model, data.test, data.test_labels, training_args.per_device_eval_batch_size)
        if gan_step is not None:
            g = gan_step.take_generator_loss()
            if g is not None:
                metrics["train_generator_loss"] = g
        if scorer is not None and metric_args.eval_fid_samples:
            was = model.training
            model.eval()
            fake = model.sample(metric_args.eval_fid_samples, seed=training_args.seed, decoder=ema.module if ema is not None else None)
            model.train(was)
            q = scorer(fake)
            metrics.update({f"eval_{k}": v for k, v in q.items()})
        return metrics

    mem = PeakMemory()
    try:
        with mem:
            model, result = train(
                accelerator, model, None, train_dl, training_args, out, compute_loss=None if model.is_gan else compute_loss, evaluate=evaluate,
                run_name=model_args.model_type, train_step=gan_step,
            )  # fmt: skip
    except GANDiverged as err:
        ckpts = list_checkpoints(out)
        last = f"the last good checkpoint is {ckpts[-1]}" if ckpts else "no checkpoint was saved (pass --checkpointing_steps N next time)"
        raise HfdlError(f"{err}: {last}; lower --learning_rate or try --gan_loss hinge, then --resume_from_checkpoint it") from None
    model.eval()
    results: dict = {"model_type": model_args.model_type}
    if accelerator.is_main_process:
        results.update(_final_metrics(model, ema, data, scorer, feature_info, metric_args, training_args, result))
        results.update(
            {
                "num_parameters": num_params,
                "sampling_images_per_second": sampling_speed(model),
                "train_seconds": result.train_seconds,
                "train_images_per_second": result.train_samples_per_second,
                "completed_steps": result.completed_steps,
                "epochs": result.train_samples / len(data.train),
                **({"schedule_steps": result.schedule_steps} if result.schedule_steps else {}),
                "peak_rss_mb": mem.peak_rss_mb,
                "train_images": len(data.train),
                "test_images": len(data.test),
            }
        )
        if model.class_means is not None and data.train_labels is not None:
            set_class_means(model, data.train, data.train_labels)
        write_pictures(model, data, out, metric_args.num_samples_grid, training_args.seed)
        model.save_pretrained(out)
        write_json(out / "history.json", result.history)
        if feature_info:
            write_json(out / "feature_network.json", feature_info)
        config["wall_seconds"] = time.perf_counter() - t0
        results["wall_seconds"] = config["wall_seconds"]
        write_json(out / RUN_CONFIG, config)
        write_json(out / ALL_RESULTS, results)
        from hfdl.tasks.generative.card import write_cards

        write_cards(out, accelerator)
        accelerator.print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in results.items()}))
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return results


def _final_metrics(model, ema, data, scorer, feature_info, metric_args, training_args, result) -> dict:
    """Test metrics of the trained model (EMA generator for a GAN), its sample quality, the data's own floor, the IW bound."""
    res = {k: v for k, v in result.final_metrics.items() if not k.startswith("eval_fid") and not k.startswith("eval_kid")}
    if ema is not None:
        if scorer is not None:
            raw = scorer(model.sample(metric_args.fid_samples, seed=training_args.seed))
            res["fid_raw_generator"] = raw["fid"]
        model.decoder.load_state_dict(ema.module.state_dict())  # the saved generator is the EMA one
    if model.is_vae and metric_args.iw_samples and metric_args.iw_images:
        x = data.test[: metric_args.iw_images].float() / 255
        y = data.test_labels[: metric_args.iw_images] if (model.num_classes and data.test_labels is not None) else None
        with torch.random.fork_rng():
            torch.manual_seed(training_args.seed)
            iw = losses.importance_weighted_nll(model, x, metric_args.iw_samples, y)
            sub = evaluate_likelihood(model, data.test[: metric_args.iw_images], y, training_args.per_device_eval_batch_size)
        res["eval_iw_nll"] = iw.mean().item()
        res["neg_elbo_on_iw_images"] = sub["eval_neg_elbo"]
        res["iw_samples"], res["iw_images"] = metric_args.iw_samples, len(x)
    if scorer is not None:
        n = min(metric_args.fid_samples, len(data.test))
        q = scorer(model.sample(n, seed=training_args.seed))
        floor = scorer(data.train[torch.randperm(len(data.train), generator=torch.Generator().manual_seed(training_args.seed))[:n]])
        res.update({"eval_fid": q["fid"], **({"eval_kid": q["kid"], "eval_kid_std": q["kid_std"]} if "kid" in q else {})})
        res.update({"data_fid_floor": floor["fid"], **({"data_kid_floor": floor["kid"]} if "kid" in floor else {}), "fid_samples": n})
        res["fid_feature_network"] = feature_info["metric_name"]
        if "test_accuracy" in feature_info:
            res["fid_feature_network_test_accuracy"] = feature_info["test_accuracy"]
    return res
