"""The image-similarity card (`model_cards/image_similarity.md`) and the one repo of a train_embedding run: the
model, its pictures, results and run config; the retrieval, one-shot and verification metrics in `model-index`."""

from __future__ import annotations

from pathlib import Path

from hfdl.errors import HfdlError
from hfdl.hub.cards import dataset_ref, eval_results, markdown_table, provenance, render_card, schedule, training_procedure
from hfdl.hub.registry import RepoPlan, finished_run, model_repo_files, register, repo_ids, write_cards

TASK = "image-similarity"
__all__ = ["plans", "similarity_card", "write_cards"]

METRICS = {
    "precision_at_1": ("precision_at_1", "Precision@1"),
    "recall_at_5": ("recall_at_5", "Recall@5 (a same-class image among the 5 nearest)"),
    "map_at_r": ("map_at_r", "MAP@R"),
    "r_precision": ("r_precision", "R-precision"),
    "one_shot_accuracy": ("one_shot_accuracy", "one-shot accuracy"),
    "verification_auroc": ("roc_auc", "Verification ROC AUC (same / different class pairs)"),
    "verification_eer": ("eer", "Verification equal error rate"),
    "verification_accuracy": ("accuracy", "Verification accuracy at the EER threshold"),
}


def metric_names(results: dict, n_way: int) -> dict[str, tuple[str, str]]:
    """model-index (type, name) of every eval_ result (seen and unseen classes)."""
    names = {}
    for key in results:
        if not key.startswith("eval_"):
            continue
        base = key.removeprefix("eval_")
        unseen = base.startswith("unseen_")
        base = base.removeprefix("unseen_")
        if base not in METRICS:
            continue
        mtype, mname = METRICS[base]
        if base == "one_shot_accuracy":
            mname = f"{n_way}-way {mname}"
        names[key] = (("unseen_" if unseen else "") + mtype, mname + (", held-out classes" if unseen else ""))
    return names


def _summary(r: dict, m: dict, ds: dict) -> str:
    loss = "triplet loss (FaceNet)" if m["loss"] == "triplet" else "contrastive loss on siamese pairs"
    return (
        f"An image embedding model ({m['embedding_dim']}-d, L2-normalised) on a {m['model_name_or_path']} backbone, trained with the {loss} "
        f"on {ds['name']} with hfdl's `train_embedding.py`: precision@1 **{r['eval_precision_at_1']:.4f}** "
        f"(the untrained backbone's features: {r['baseline_precision_at_1']:.4f}), MAP@R {r['eval_map_at_r']:.4f} "
        f"(untrained {r['baseline_map_at_r']:.4f}), verification ROC AUC {r['eval_verification_auroc']:.4f}."
    )


def similarity_card(out: Path, repo_id: str):
    """Render the card of a finished train_embedding run (`repo_id`: a Hub id, or the folder itself)."""
    from huggingface_hub import ModelCardData

    r, rc = finished_run(out)
    m, t, data = rc["model_args"], rc["training_args"], rc["data"]
    ds, name = dataset_ref(rc), Path(repo_id).name
    names = metric_names(r, m["n_way"])
    card_data = ModelCardData(
        model_name=name, library_name="pytorch", license="apache-2.0", datasets=[ds["hub"]] if ds["hub"] else None,
        base_model=rc.get("base_model"), tags=["hfdl", "image-similarity", "metric-learning", m["loss"], "timm", "pytorch_model_hub_mixin", "model_hub_mixin"],
        pipeline_tag="image-feature-extraction",
        eval_results=eval_results({k: r[k] for k in names}, task_type="image-feature-extraction", dataset_type=ds["type"], dataset_name=ds["name"],
                                  dataset_split=data["eval_split"], dataset_config=ds.get("config"), names=names),
    )  # fmt: skip
    rows = []
    for key, (_, title) in names.items():
        base = "baseline_" + key.removeprefix("eval_")
        rows.append({"metric": title, "trained": round(r[key], 4), "untrained backbone": round(r[base], 4) if base in r else None})
    unseen = data.get("holdout_classes") or []
    notes = [
        f"One-shot: {m['episodes']} seeded episodes of {m['n_way']} classes, one support image each; the query takes the class of its most similar support.",
        f"Verification: {m['verification_pairs']} seeded same-class and as many different-class pairs, scored by cosine similarity; the model's "
        f"`threshold` ({r['eval_verification_threshold']:.3f}) is the one at the equal error rate, saved in its config.",
    ]
    if unseen:
        notes.append(f"Held out of training and evaluated as unseen classes: {', '.join(unseen)}.")
    hyper = {
        "loss": m["loss"], "margin": m["margin"] if m["margin"] is not None else ("0.2 (default)" if m["loss"] == "triplet" else "1.0 (default)"),
        "miner": m["miner"], "batch": f"{m['classes_per_batch']} classes x {m['samples_per_class']} images", "embedding dim": m["embedding_dim"],
        "learning rate": f"{t['learning_rate']} (head), x {m['backbone_lr_scale']} (backbone)", "weight decay": t["weight_decay"],
        "schedule": schedule(t), "image size": data["image_size"], "epochs": r["epochs"],
    }  # fmt: skip
    code = (
        "from PIL import Image\n"
        "from hfdl.tasks.similarity.model import EmbeddingModel\n\n"
        f'model = EmbeddingModel.from_pretrained("{repo_id}")\n'
        'a, b = model.embed_images([Image.open("a.png"), Image.open("b.png")])  # unit vectors\n'
        "similarity = float(a @ b)\n"
        'print(similarity, "same" if similarity >= model.threshold else "different")'
    )
    return render_card(
        "image_similarity",
        card_data,
        model_name=name,
        repo_id=repo_id,
        summary=_summary(r, m, ds),
        eval_images=r["eval_images"],
        eval_split=data["eval_split"],
        baseline_dim=r["baseline_feature_dim"],
        metrics_table=markdown_table(rows),
        metrics_notes="\n\n".join(notes),
        model_description=(
            f"timm `{m['model_name_or_path']}` ({'ImageNet-pretrained' if m['pretrained'] else 'random init'}), its pooled features through a linear "
            f"projection to {m['embedding_dim']} dimensions, L2-normalised; {r['num_parameters']:,} parameters. Input {data['image_size']} px RGB "
            "with the backbone's normalisation (in the config, applied by `embed_images`)."
        ),
        data_description=f"{ds['about']}: {r['train_images']:,} training images, {r['eval_images']:,} evaluation images ({data['eval_split']}).",
        **training_procedure(rc, r, hyper, f"{r['train_images_per_second']:.0f} images/s, batch {r['batch_size']}"),
        how_to_use_code=code,
        limitations=[
            f"Trained on the classes of one dataset ({ds['name']}): distances between images unlike those are not meaningful, and the verification threshold is that data's.",
            'Similar means "same class" in the sense of the training labels, not visually similar in general.',
            f"Inputs are resized to {data['image_size']} px.",
            "A CPU-sized baseline, not a tuned retrieval model.",
        ],
        provenance=provenance(rc.get("offline_assets", [])) + "\n\nThe model's weights are released under apache-2.0.",
    )


def plans(out: Path, hub_model_id: str | None, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """One repo: the model, its pictures, the evaluation embeddings, results, run config and card."""
    r, _ = finished_run(out)
    if only and only != ["embedding"]:
        raise HfdlError(f"{out} holds one model ('embedding'): drop --only")
    files = model_repo_files(out, out, "embedding", ("config.json", "model.safetensors"))
    repo_id = repo_ids(hub_model_id, {"embedding": out})["embedding"]
    message = f"hfdl train_embedding: precision@1 {r['eval_precision_at_1']:.4f}"
    return {"embedding": RepoPlan(repo_id, files, similarity_card(out, repo_id), message, f"Uploaded by hfdl from {out.name}.")}


register(TASK, plans)
