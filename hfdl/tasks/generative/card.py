"""The image-generation card (`model_cards/image_generation.md`) and the one repo of a train_generative run:
the model, its pictures, results and run config; every metric in `model-index` with its feature network named."""

from __future__ import annotations

import os
from pathlib import Path

from hfdl.errors import HfdlError
from hfdl.hub.cards import eval_results, indefinite_article, markdown_table, provenance, render_card, schedule, training_procedure
from hfdl.hub.registry import RepoPlan, finished_run, model_repo_files, register, repo_ids, write_cards

TASK = "image-generation"  # run_config.json's task; the Hub's pipeline tag is unconditional-image-generation
__all__ = ["generation_card", "plans", "write_cards"]

KIND = {
    "vae": "variational autoencoder (MLP, pytorch/examples' 784-400-20 shape)",
    "conv_vae": "convolutional variational autoencoder",
    "dcgan": "DCGAN",
    "autoencoder": "autoencoder",
}


def metric_names(results: dict) -> dict[str, tuple[str, str]]:
    """model-index (type, name) of each result; FID / KID name their feature network."""
    feature = results.get("fid_feature_network", "FID")
    kid_name = feature.replace("FID", "KID", 1)
    return {
        "eval_loss": ("loss", "Test loss (negative ELBO for a VAE, reconstruction NLL otherwise), nats/image"),
        "eval_neg_elbo": ("neg_elbo", "Negative ELBO, nats/image"),
        "eval_reconstruction": ("reconstruction_nll", "Reconstruction NLL, nats/image"),
        "eval_kl": ("kl", "KL(q(z|x) || p(z)), nats/image"),
        "eval_loss_pytorch_example": ("loss_pytorch_example", "pytorch/examples VAE loss (summed BCE + KL), nats/image"),
        "eval_iw_nll": ("iw_nll", f"Importance-weighted NLL bound (K={results.get('iw_samples')}, {results.get('iw_images')} images), nats/image"),
        "eval_mse": ("mse", "Reconstruction MSE per pixel"),
        "eval_fid": ("fid", feature),
        "eval_kid": ("kid", kid_name),
        "eval_kid_std": ("kid_std", f"{kid_name} (std over subsets)"),
        "data_fid_floor": ("fid_data_floor", f"{feature}: training images vs test images (the floor)"),
    }


def _dataset(rc: dict) -> dict:
    d = rc["data_args"]
    name = d.get("dataset_name")
    if name == "fashion_mnist":
        return {"type": "zalando-datasets/fashion_mnist", "name": "Fashion-MNIST", "hub": "zalando-datasets/fashion_mnist"}
    if name and not os.path.exists(name) and "/" in name:
        return {"type": name, "name": name, "hub": name}
    label = Path(name or d.get("train_dir") or "images").name
    return {"type": f"local/{label}", "name": label, "hub": None}


def _summary(r: dict, m: dict, ds: dict) -> str:
    kind = KIND[m["model_type"]] + (", class-conditional" if m.get("conditional") else "")
    bits = []
    if "eval_neg_elbo" in r:
        bits.append(f"test negative ELBO **{r['eval_neg_elbo']:.2f} nats/image**")
    if "eval_iw_nll" in r:
        bits.append(f"importance-weighted NLL bound {r['eval_iw_nll']:.2f}")
    if m["model_type"] == "autoencoder" and "eval_reconstruction" in r:
        bits.append(f"test reconstruction loss **{r['eval_reconstruction']:.2f} nats/image**")
    if "eval_fid" in r:
        bits.append(f"**{r['fid_feature_network']} {r['eval_fid']:.2f}** (the data's own floor: {r['data_fid_floor']:.2f})")
    return f"{indefinite_article(kind).capitalize()} {kind} trained with hfdl's `train_generative.py` on {ds['name']}: " + ", ".join(bits) + "."


def _model_description(m: dict, rc: dict) -> str:
    data = rc["data"]
    shape = f"{data['channels']} x {data['image_size']} x {data['image_size']}"
    t = m["model_type"]
    if t == "vae":
        text = (f"pytorch/examples' VAE: encoder {data['channels'] * data['image_size'] ** 2}-{m['hidden_dim']} (ReLU) to the mean and log-variance of a "
                f"{m['latent_dim']}-d Gaussian posterior, decoder {m['latent_dim']}-{m['hidden_dim']}-{data['channels'] * data['image_size'] ** 2} to {m['likelihood']} pixel logits.")  # fmt: skip
    elif t == "conv_vae":
        fc = f", a {m['hidden_dim']}-unit layer" if m.get("hidden_dim") else ""
        text = (f"A convolutional VAE: stride-2 4x4 convolutions (BatchNorm, LeakyReLU; {m['base_channels']} channels first, doubling){fc} to a {m['latent_dim']}-d Gaussian posterior; "
                f"a mirrored decoder{fc.replace(', a', ' (a', 1) + ', then' if fc else ' of'} transposed convolutions{')' if fc else ''} with one bias per pixel, a {m['likelihood']} likelihood per pixel; "
                f"trained on reconstruction + {m['beta']} x KL.")  # fmt: skip
    elif t == "autoencoder":
        noise = f"a denoising autoencoder (Gaussian input noise, std {m['noise_std']})" if m.get("noise_std") else "an undercomplete autoencoder"
        fc = f" (through a {m['hidden_dim']}-unit layer each way)" if m.get("hidden_dim") else ""
        text = f"{noise[0].upper()}{noise[1:]}: convolutional encoder to a {m['latent_dim']}-d code and a mirrored decoder{fc}, trained on the {m['likelihood']} reconstruction loss."
    else:
        text = (f"DCGAN (Radford et al.): a generator of transposed convolutions with BatchNorm and ReLU from a {m['latent_dim']}-d Gaussian z to tanh images, "
                f"a discriminator of stride-2 convolutions with LeakyReLU{' (no BatchNorm: WGAN-GP critic)' if m['gan_loss'] == 'wgan-gp' else ''}; "
                f"{m['gan_loss']} loss, {m['critic_steps']} discriminator step(s) per generator step; the saved generator is the EMA of its weights (decay {m['ema_decay']}).")  # fmt: skip
    if m.get("conditional"):
        text += " Class-conditional: a learned class embedding is added to z" + (", and the discriminator has a projection term." if t == "dcgan" else ".")
    return f"{text} Images: {shape}, pixel values in [0, 1]."


def _notes(r: dict, rc: dict) -> str:
    notes = []
    fn = rc.get("feature_network") or {}
    if "eval_fid" in r:
        acc = f" (test accuracy {fn['test_accuracy']:.3f})" if "test_accuracy" in fn else ""
        notes.append(
            f"FID and KID (torchmetrics) of {r['fid_samples']} samples against {r['fid_samples']} test images on the penultimate features of {fn.get('name', 'the feature network')}"
            f"{acc}: {fn.get('description', '')}. Not Inception FID: compare these numbers only with runs on the same feature network. "
            f"The floor, {r['data_fid_floor']:.2f}, is the FID of as many training images against the same test images."
        )
    if "eval_neg_elbo" in r:
        notes.append(
            "Negative ELBO = reconstruction NLL + KL, one posterior sample per test image. With a Bernoulli likelihood on grey pixel values the "
            "reconstruction term is a cross-entropy with soft targets (pytorch/examples' loss), not a normalised density of grey images."
        )
    if "fid_raw_generator" in r:
        notes.append(f"The generator's raw (non-EMA) weights score {r['fid_raw_generator']:.2f} on the same FID.")
    return "\n\n".join(notes)


def generation_card(out: Path, repo_id: str):
    """Render the card of a finished train_generative run (`repo_id`: a Hub id, or the folder itself)."""
    from huggingface_hub import ModelCardData

    r, rc = finished_run(out)
    m, t = rc["model_args"], rc["training_args"]
    ds, name = _dataset(rc), Path(repo_id).name
    names = metric_names(r)
    scored = {k: v for k, v in r.items() if k in names}
    card_data = ModelCardData(
        model_name=name, library_name="pytorch", license="apache-2.0", datasets=[ds["hub"]] if ds["hub"] else None,
        tags=["hfdl", "image-generation", m["model_type"], "pytorch_model_hub_mixin", "model_hub_mixin"], pipeline_tag="unconditional-image-generation",
        eval_results=eval_results(scored, task_type="unconditional-image-generation", dataset_type=ds["type"], dataset_name=ds["name"], dataset_split="test", names=names),
    )  # fmt: skip
    rows = [{"metric": names[k][1], "value": round(v, 4)} for k, v in r.items() if k in names]
    conditional = m.get("conditional")
    labels = rc["data"]["label_names"]
    hyper = {
        "model type": m["model_type"], "latent dim": m["latent_dim"], "hidden units": m.get("hidden_dim"), "batch size (per device)": t["per_device_train_batch_size"],
        "learning rate": t["learning_rate"], "optimizer": "Adam" + (" (betas 0.5, 0.999) x 2" if m["model_type"] == "dcgan" else ""),
        "schedule": schedule(t), "epochs": round(r["epochs"], 2), "conditional": bool(conditional),
    }  # fmt: skip
    code = (
        "from torchvision.utils import save_image\n"
        "from hfdl.tasks.generative.model import ImageGenerator\n\n"
        f'model = ImageGenerator.from_pretrained("{repo_id}")\n'
        f"images = model.sample(16, seed=0{', labels=0' if conditional else ''})  # (16, C, H, W) in [0, 1]; the same seed gives the same images\n"
        'save_image(images, "samples.png", nrow=4)'
    )
    if m["model_type"] in ("vae", "conv_vae", "autoencoder"):
        code += "\nreconstructed = model.reconstruct(images)  # the decoded posterior mean (code)"
    return render_card(
        "image_generation",
        card_data,
        model_name=name,
        repo_id=repo_id,
        summary=_summary(r, m, ds),
        samples_caption=f"Samples of seed {t['seed']}" + (f", one class per column ({', '.join(labels)})." if conditional else "."),
        has_reconstructions=(out / "reconstructions.png").is_file(),
        has_latent_map=(out / "latent_space.png").is_file(),
        test_images=r["test_images"],
        test_split=rc["data"]["test_split"],
        metrics_table=markdown_table(rows),
        metrics_notes=_notes(r, rc),
        model_description=_model_description(m, rc),
        num_parameters=f"{r['num_parameters']:,}",
        data_description=f"{rc['data']['source']}: {r['train_images']:,} training images, {r['test_images']:,} test images.",
        **training_procedure(
            rc, r, hyper, f"{r['train_images_per_second']:.0f} images/s; sampling {r['sampling_images_per_second']:.0f} images/s at batch 256"
        ),
        how_to_use_code=code,
        limitations=[
            f"Trained on {r['train_images']:,} images of one dataset at {rc['data']['image_size']} px: it generates images like those and nothing else.",
            "FID here is computed on a small classifier's features trained on the same data; it ranks models on this dataset and is not comparable with published Inception FIDs.",
            "VAE samples are blurry (the Gaussian posterior and pixel-wise likelihood average over plausible images); GAN samples are sharper but may miss modes.",
            "A CPU-sized baseline, not a tuned generator.",
        ],
        provenance=provenance(rc.get("offline_assets", [])) + "\n\nThe model's weights are released under apache-2.0.",
    )


def plans(out: Path, hub_model_id: str | None, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """One repo: the model, its pictures, the feature network's description, results, run config and card."""
    r, rc = finished_run(out)
    kind = rc["model_args"]["model_type"]
    if only and only != [kind]:
        raise HfdlError(f"{out} holds one model ('{kind}'): drop --only")
    files = model_repo_files(out, out, kind, ("config.json", "model.safetensors", "samples.png"))
    repo_id = repo_ids(hub_model_id, {kind: out})[kind]
    score = f"FID {r['eval_fid']:.2f}" if "eval_fid" in r else f"loss {r.get('eval_loss', float('nan')):.2f}"
    return {kind: RepoPlan(repo_id, files, generation_card(out, repo_id), f"hfdl train_generative {kind}: {score}", f"Uploaded by hfdl from {out.name}.")}


register(TASK, plans)
