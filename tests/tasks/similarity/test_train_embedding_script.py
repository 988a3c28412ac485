"""scripts/train_embedding.py end to end on the offline digits: the run folder, the card's model-index, the untrained
baseline beside the trained model, the index round trip (build_index.py / search.py), exact resume, two processes
and bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import datasets
import hub_servers
import numpy as np
import pytest
import torch
from conftest import REPO, accelerate_launch, two_processes
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file

sys.path.insert(0, str(REPO / "scripts"))
import build_index  # noqa: E402
import search  # noqa: E402
import train_embedding  # noqa: E402

import hfdl.tasks.similarity.card  # noqa: E402, F401 (registers the task's Hub plans)
from hfdl import hub  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402
from hfdl.hub.registry import plans  # noqa: E402
from hfdl.tasks.similarity.index import load_index  # noqa: E402
from hfdl.tasks.similarity.model import EmbeddingModel  # noqa: E402

olah_hub = hub_servers.olah_hub
REPO_ID = "hfdl-tester/tiny-embedding"


def tiny(out, *extra):
    return [
        "--dataset_name", "digits", "--image_size", "32", "--output_dir", str(out), "--max_train_steps", "4", "--embedding_dim", "16",
        "--episodes", "100", "--verification_pairs", "200", "--projection", "pca", "--seed", "0", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One real `accelerate launch --num_processes 2` on CPU (gloo): the run folder every other test reads."""
    out = tmp_path_factory.mktemp("emb") / "run"
    proc = accelerate_launch("train_embedding.py", tiny(out, "--holdout_classes", "8,9", "--classes_per_batch", "8"), **two_processes())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_run_folder_card_and_baseline(launched):
    out = launched
    assert {"config.json", "model.safetensors", "embeddings.png", "retrieval.png", "embeddings.safetensors", "README.md", "history.json"} <= {
        p.name for p in out.iterdir()
    }
    r = json.loads((out / "all_results.json").read_text())
    assert r["train_images"] < 1527 and r["eval_images"] == 270  # 8 and 9 held out of the 85% training part
    for key in ("precision_at_1", "recall_at_5", "map_at_r", "one_shot_accuracy", "verification_auroc"):
        assert 0 <= r[f"eval_{key}"] <= 1 and 0 <= r[f"baseline_{key}"] <= 1
    assert "eval_unseen_precision_at_1" in r and "baseline_unseen_precision_at_1" in r
    assert r["baseline_feature_dim"] == 1280 and r["completed_steps"] == 4 and r["batch_size"] == 128  # 2 processes x 8 classes x 8 images
    assert json.loads((out / "run_config.json").read_text())["environment"]["num_processes"] == 2
    model = EmbeddingModel.from_pretrained(out)
    assert model.embedding_dim == 16 and model.image_size == 32 and model.threshold == pytest.approx(r["eval_verification_threshold"])
    saved = load_file(out / "embeddings.safetensors")
    vectors = model.embed_images([Image.fromarray((torch.rand(8, 8) * 255).byte().numpy())] * 2)
    assert vectors.shape == (2, 16) and torch.allclose(vectors.norm(dim=1), torch.ones(2)) and saved["embeddings"].shape == (270, 16)
    card = ModelCard.load(out / "README.md")
    metrics = {m["type"]: m["value"] for m in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]}
    assert metrics["precision_at_1"] == r["eval_precision_at_1"] and metrics["map_at_r"] == r["eval_map_at_r"]
    assert metrics["roc_auc"] == r["eval_verification_auroc"] and metrics["unseen_precision_at_1"] == r["eval_unseen_precision_at_1"]
    assert "untrained backbone" in card.text and "Held out of training and evaluated as unseen classes: 8, 9" in card.text
    assert json.loads((out / "run_config.json").read_text())["task"] == "image-similarity"


def test_index_round_trip_and_search(launched, tmp_path, capsys):
    index = tmp_path / "index"
    config = build_index.main(["--model", str(launched), "--dataset_name", "digits", "--split", "train", "--max_samples", "300", "--output_dir", str(index)])
    assert config["size"] == 300 and config["embedding_dim"] == 16
    gallery, cfg = load_index(index)
    query = tmp_path / "q.png"
    gallery[7]["image"].save(query)
    capsys.readouterr()
    hits = search.main(["--index", str(index), "--image", str(query), "--k", "3", "--output", str(tmp_path / "n.png")])
    assert hits[0]["index"] == 7 and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)  # a gallery image finds itself first
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True) and (tmp_path / "n.png").is_file()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == hits
    # the same neighbours after loading again (the saved FAISS file, not a rebuilt one)
    assert search.main(["--index", str(index), "--image", str(query), "--k", "3"]) == hits
    with pytest.raises(HfdlError, match="already holds an index"):
        build_index.main(["--model", str(launched), "--dataset_name", "digits", "--max_samples", "10", "--split", "train", "--output_dir", str(index)])
    other = tmp_path / "other"
    model = EmbeddingModel.from_pretrained(launched)
    with torch.no_grad():
        model.head.weight.add_(0.01)
    model.save_pretrained(other)
    with pytest.raises(HfdlError, match="the index was built with the model .* has other weights"):
        search.main(["--index", str(index), "--image", str(query), "--model", str(other)])
    with pytest.raises(HfdlError, match="the gallery is empty"):
        build_index.main(["--model", str(launched), "--dataset_name", "digits", "--split", "train", "--max_samples", "0", "--output_dir", str(tmp_path / "e")])
    assert load_index(index)[1] == cfg  # nothing lost


def test_a_compact_index_answers_as_the_full_one(launched, tmp_path):
    """compact_index (what a Space bundles): float16 embeddings, no FAISS file; load_index rebuilds the exact flat
    index from unit vectors, so the neighbours and their scores are the full index's."""
    from hfdl.tasks.similarity.index import FAISS_FILE, compact_index

    full, small = tmp_path / "full", tmp_path / "small"
    build_index.main(["--model", str(launched), "--dataset_name", "digits", "--split", "train", "--max_samples", "200", "--output_dir", str(full)])
    config = compact_index(full, small)
    assert not (small / FAISS_FILE).exists() and config["embeddings_dtype"] == "float16"
    (a, _), (b, _) = load_index(full), load_index(small)
    queries = np.asarray(a.with_format("numpy")["embeddings"][:50], dtype=np.float32)
    want_scores, want = a.search_batch("embeddings", queries, k=5)
    got_scores, got = b.search_batch("embeddings", queries, k=5)
    np.testing.assert_allclose(got_scores, want_scores, atol=2e-3)
    assert (got[:, 0] == np.arange(50)).all() and got_scores.max() <= 1.0 + 1e-6  # each finds itself; unit vectors again
    labels = np.asarray(a["label"])
    assert (labels[got] == labels[want]).mean() > 0.95


def test_a_compact_index_of_an_offline_split_names_its_images_and_loads_them_back(launched, tmp_path):
    """What the Space bundles for the Fashion-MNIST test split, here on the digits asset: the images are not copied but
    named (checked pixel for pixel against the split), and load_index joins them back, row for row."""
    from hfdl.tasks.similarity.index import GALLERY, compact_index

    full, small = tmp_path / "full", tmp_path / "small"
    build_index.main(["--model", str(launched), "--dataset_name", "digits", "--split", "train", "--output_dir", str(full)])
    source = {"dataset": "digits", "hub_equivalent": None, "split": "train", "column": "image"}
    config = compact_index(full, small, images_from=source)
    assert config["images_from"] == source and "image" not in datasets.Dataset.from_parquet(str(small / GALLERY)).column_names
    (a, _), (b, cfg) = load_index(full), load_index(small)
    assert b.column_names == a.column_names and cfg == config
    for i in (0, 901, 1796):
        assert np.array_equal(np.asarray(a[i]["image"]), np.asarray(b[i]["image"])) and a[i]["label"] == b[i]["label"]
    queries = np.asarray(a.with_format("numpy")["embeddings"][:20], dtype=np.float32)
    assert (a.search_batch("embeddings", queries, k=3)[1] == b.search_batch("embeddings", queries, k=3)[1]).all()
    cut = tmp_path / "cut"  # a gallery that lost rows no longer lines up with its source split: refused, not misjoined
    shutil.copytree(small, cut)
    datasets.Dataset.from_parquet(str(small / GALLERY)).select(range(100)).to_parquet(str(cut / GALLERY))
    with pytest.raises(HfdlError, match=r"its images come from digits train \(1797 rows\), but the gallery has 100: rebuild the index"):
        load_index(cut)
    part = tmp_path / "part"  # 300 rows are not the split
    build_index.main(["--model", str(launched), "--dataset_name", "digits", "--split", "train", "--max_samples", "300", "--output_dir", str(part)])
    with pytest.raises(HfdlError, match="the gallery's images are not digits train, row for row: bundle the index with its images"):
        compact_index(part, tmp_path / "bad", images_from=source)
    assert not (tmp_path / "bad").exists()


def test_resume_is_exact(tmp_path):
    train_embedding.main(tiny(tmp_path / "a", "--checkpointing_steps", "2", "--episodes", "10"))
    train_embedding.main(tiny(tmp_path / "b", "--resume_from_checkpoint", str(tmp_path / "a" / "step_2"), "--episodes", "10"))
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_input_gets_one_line_errors(tmp_path):
    with pytest.raises(HfdlError, match="--classes_per_batch 12 is larger than the 10 classes"):
        train_embedding.main(tiny(tmp_path / "a", "--classes_per_batch", "12"))
    with pytest.raises(HfdlError, match="class 'Cat' is not a label of this dataset"):
        train_embedding.main(tiny(tmp_path / "b", "--holdout_classes", "Cat"))
    lone = tmp_path / "lone"
    for cls, n in (("a", 4), ("b", 4), ("c", 1)):
        (lone / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (16, 16), color=(i * 40, 0, 0)).save(lone / cls / f"{i}.png")
    with pytest.raises(HfdlError, match=r"have a single training image \(no positive for a triplet or pair\)"):
        train_embedding.main(
            ["--train_dir", str(lone), "--train_val_split", "0.01", "--output_dir", str(tmp_path / "c"), "--classes_per_batch", "2", "--samples_per_class", "2"]
        )


def test_cards_snippet_verifies_from_the_hub_as_the_local_model_does(launched, olah_hub, tmp_path):
    (plan,) = plans(launched, REPO_ID).values()
    assert {"config.json", "model.safetensors", "embeddings.png", "retrieval.png", "all_results.json", "run_config.json"} <= set(plan.files)
    assert "precision@1" in plan.commit_message and not any(p in plan.card.text for p in hub.PLACEHOLDERS)
    with hub.stage(plan.files, plan.card) as staged:
        olah_hub.publish(REPO_ID, staged)
    for name, value in (("a.png", 30), ("b.png", 200)):
        Image.new("L", (8, 8), color=value).save(tmp_path / name)
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": olah_hub.endpoint, "HF_TOKEN": ""}
    code = re.search(r"```python\n(.*?)```", plan.card.text, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:] + olah_hub.logs()[-1000:]
    similarity, verdict = proc.stdout.split()[-2:]
    local = EmbeddingModel.from_pretrained(launched)
    a, b = local.embed_images([Image.open(tmp_path / "a.png"), Image.open(tmp_path / "b.png")])
    assert float(similarity) == pytest.approx(float(a @ b), abs=1e-6)
    assert verdict == ("same" if float(a @ b) >= local.threshold else "different")


def test_a_pushed_index_loads_with_load_dataset_and_load_faiss_index(launched, olah_hub, tmp_path):
    """The index folder as a Hub dataset repo: users load it with datasets alone; search.py takes the repo id."""
    from hfdl.tasks.similarity.index import FAISS_FILE, GALLERY, INDEX_CONFIG, index_card

    index = tmp_path / "index"
    config = build_index.main(["--model", str(launched), "--dataset_name", "digits", "--split", "train", "--max_samples", "120", "--output_dir", str(index)])
    repo_id = "hfdl-tester/tiny-index"
    files = {name: index / name for name in (GALLERY, FAISS_FILE, INDEX_CONFIG)}
    with hub.stage(files, index_card(config, repo_id)) as staged:
        olah_hub.publish(repo_id, staged, repo_type="dataset")
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_ENDPOINT": olah_hub.endpoint, "HF_TOKEN": ""}
    code = (
        "import json, numpy as np\n"
        "from datasets import load_dataset\nfrom huggingface_hub import hf_hub_download\n"
        f"gallery = load_dataset('{repo_id}', split='train')\n"
        f"gallery.load_faiss_index('embeddings', hf_hub_download('{repo_id}', 'embeddings.faiss', repo_type='dataset'))\n"
        "scores, found = gallery.get_nearest_examples('embeddings', np.asarray(gallery[5]['embeddings'], dtype='float32'), k=3)\n"
        "print(json.dumps([len(gallery), found['label'], gallery.features['label'].names]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:] + olah_hub.logs()[-1000:]
    size, labels, names = json.loads(proc.stdout.strip().splitlines()[-1])
    local, _ = load_index(index)
    assert size == 120 and labels[0] == local[5]["label"] and names == [str(i) for i in range(10)]
    query = tmp_path / "q.png"
    local[5]["image"].save(query)
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "search.py"), "--index", repo_id, "--image", str(query), "--k", "2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    hits = json.loads(proc.stdout.strip().splitlines()[-1])
    assert hits[0]["index"] == 5 and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)  # the repo's index, queried by search.py
