"""The anomaly-detection card (`model_cards/anomaly_detection.md`) and the repos of a train_anomaly run: one per
normal class's autoencoder, its AUROC / AUPRC in `model-index`, the kNN baseline of the same protocol beside it."""

from __future__ import annotations

from pathlib import Path

from hfdl.errors import HfdlError
from hfdl.hub.cards import dataset_ref, eval_results, markdown_table, provenance, render_card, schedule, training_procedure
from hfdl.hub.push import slug
from hfdl.hub.registry import RepoPlan, finished_run, model_repo_files, pick, register, repo_ids, write_cards

TASK = "anomaly-detection"
__all__ = ["anomaly_card", "plans", "write_cards"]
NAMES = {"eval_auroc": ("roc_auc", "AUROC (normal class vs the rest, anomalous = positive)"), "eval_auprc": ("average_precision", "AUPRC (average precision)")}
ANCHORS = "Published means over the 10 Fashion-MNIST classes: Deep SVDD about 0.85, GEOM 0.935, DN2 (ImageNet ResNet features + kNN) 0.944, PANDA about 0.956."


def anomaly_card(out: Path, normal_class: str, repo_id: str):
    """The card of one normal class's autoencoder of a finished run (`repo_id`: a Hub id, or the folder itself)."""
    from huggingface_hub import ModelCardData

    r, rc = finished_run(out)
    m, t, data = rc["model_args"], rc["training_args"], rc["data"]
    ds, name = dataset_ref(rc), Path(repo_id).name
    own = r["per_class"]["autoencoder"][normal_class]
    knn = r["per_class"].get("knn", {}).get(normal_class)
    scored = {"eval_auroc": own["auroc"], "eval_auprc": own["auprc"]}
    card_data = ModelCardData(
        model_name=name, library_name="pytorch", license="apache-2.0", datasets=[ds["hub"]] if ds["hub"] else None,
        tags=["hfdl", "anomaly-detection", "autoencoder", "pytorch_model_hub_mixin", "model_hub_mixin"],
        eval_results=eval_results(scored, task_type="anomaly-detection", dataset_type=ds["type"], dataset_name=ds["name"],
                                  dataset_split=data["eval_split"], dataset_config=ds.get("config"), names=NAMES),
    )  # fmt: skip
    rows = [{"normal class": c, **{f"{meth} AUROC": round(v[c]["auroc"], 4) for meth, v in r["per_class"].items()}} for c in r["normal_classes"]]
    if len(rows) > 1:
        rows.append({"normal class": "mean", **{f"{meth} AUROC": round(r[f"eval_{meth}_auroc"], 4) for meth in r["per_class"]}})
    versus = f" (kNN on frozen pretrained {m['model_name_or_path']} features, the same protocol: {knn['auroc']:.4f})" if knn else ""
    summary = (
        f"A convolutional autoencoder trained on the '{normal_class}' images of {ds['name']} alone: its reconstruction error "
        f"({m['score']}) flags images unlike them. AUROC **{own['auroc']:.4f}** on the test split{versus}, AUPRC {own['auprc']:.4f}."
    )
    hyper = {
        "latent dim": m["latent_dim"], "base channels": m["base_channels"], "hidden units": m["hidden_dim"], "input noise (denoising)": m["noise_std"],
        "score": m["score"], "loss": "binary cross-entropy of pixel values", "learning rate": t["learning_rate"], "batch size": t["per_device_train_batch_size"],
        "schedule": schedule(t),
    }  # fmt: skip
    steps = {"train_seconds": r.get("autoencoder_train_seconds", 0.0), "completed_steps": _class_steps(out, normal_class)}
    code = (
        "import torch\n"
        "from hfdl.tasks.anomaly.model import ConvAutoencoder\n\n"
        f'model = ConvAutoencoder.from_pretrained("{repo_id}")\n'
        f"images = torch.rand(4, model.channels, model.image_size, model.image_size)  # your images in [0, 1], {r['autoencoder_image_size']} px\n"
        "scores = model.anomaly_score(images)  # higher: less like the normal class; pick a threshold on your own normal data"
    )
    return render_card(
        "anomaly_detection",
        card_data,
        model_name=name,
        summary=summary,
        has_reconstructions=(out / "reconstructions.png").is_file() and normal_class == r["normal_classes"][0],
        test_images=r["test_images"],
        eval_split=data["eval_split"],
        metrics_table=markdown_table(rows),
        metrics_notes=ANCHORS if ds["type"] == "zalando-datasets/fashion_mnist" else "",
        model_description=(
            f"Encoder: stride-2 4x4 convolutions ({m['base_channels']} channels first, doubling) and a {m['hidden_dim']}-unit layer to a "
            f"{m['latent_dim']}-d code; a mirrored decoder of transposed convolutions (hfdl's generative bodies, `hfdl.core.conv_nets`). "
            f"Input {r['autoencoder_image_size']} px, values in [0, 1]."
        ),
        data_description=f"{ds['about']}: the {normal_class} images of {r['train_images']:,} training images; all {r['test_images']:,} test images scored.",
        **training_procedure(rc, steps, hyper, f"one autoencoder per normal class; {len(r['normal_classes'])} trained in {steps['train_seconds']:.0f} s"),
        how_to_use_code=code,
        limitations=[
            "An autoencoder also reconstructs simple images of other classes well (few, smooth pixels), so reconstruction error misses such anomalies: "
            "compare it with the kNN column before relying on it.",
            "AUROC measures ranking only; a deployment needs a threshold chosen on normal data of its own.",
            f"Trained on one dataset ({ds['name']}) at {r['autoencoder_image_size']} px: other images are anomalies to it by construction.",
        ],
        provenance=provenance(rc.get("offline_assets", [])) + "\n\nThe model's weights are released under apache-2.0.",
    )


def _class_steps(out: Path, normal_class: str) -> int:
    import json

    done = out / "autoencoder" / slug(normal_class) / "results.json"
    return json.loads(done.read_text())["completed_steps"] if done.is_file() else 0


def plans(out: Path, hub_model_id: str | None, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """One repo per normal class's autoencoder (a kNN-only run has no trained model to publish)."""
    r, _ = finished_run(out)
    if "autoencoder" not in r.get("per_class", {}):
        raise HfdlError(
            f"{out} is a kNN-only run: it trained no model to publish (its features are the pretrained backbone's); run --method autoencoder or compare"
        )
    chosen = pick(r["normal_classes"], only, "normal class", out)
    folders = {c: out / "autoencoder" / slug(c) for c in chosen}
    ids = repo_ids(hub_model_id, folders)
    out_plans = {}
    for c, folder in folders.items():
        files = model_repo_files(out, folder, c, ("config.json", "model.safetensors"))
        files.update({p.name: p for p in out.glob("*.png")})
        auroc = r["per_class"]["autoencoder"][c]["auroc"]
        out_plans[c] = RepoPlan(ids[c], files, anomaly_card(out, c, ids[c]), f"hfdl train_anomaly {c}: AUROC {auroc:.4f}", f"Uploaded by hfdl from {out.name}.")
    return out_plans


register(TASK, plans)
