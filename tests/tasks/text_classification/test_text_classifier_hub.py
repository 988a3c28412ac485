"""Text classifiers on the Hub: one transformers repo per compared model, model-index = all_results.json, and the
card's snippet, run verbatim in plain transformers against a real Hub API (olah), predicts what hfdl predicts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import hub_servers
import pytest
from conftest import REPO
from huggingface_hub import ModelCard
from tiny_texts import one_torch_thread, tiny_args, write_splits  # noqa: F401 (a fixture)

from hfdl import hub
from hfdl.hub.registry import plans, push_run

sys.path.insert(0, str(REPO / "scripts"))
import train_text_classifier  # noqa: E402

hub_client, olah_hub, write_endpoint = hub_servers.hub_client, hub_servers.olah_hub, hub_servers.write_endpoint
NO_TOKEN = {"HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": ""}
# model-index metric type of each all_results.json key: eval_* is the validation split, test_* the test split
INDEX_TYPES = {"accuracy": "accuracy", "f1_macro": "f1", "top5": "top_5_accuracy", "loss": "loss"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def compared_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tc_pub")
    out = root / "run"
    return out, train_text_classifier.main(tiny_args(out, write_splits(root / "texts"), "--compare", "gru,bilstm"))


@pytest.fixture
def at(monkeypatch):
    from huggingface_hub import constants

    return lambda url: monkeypatch.setattr(constants, "ENDPOINT", url)


def _model_index(card: ModelCard) -> dict[tuple[str, str], float]:
    return {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}


def test_cards_model_index_equals_all_results_and_push_one_repo_per_model(compared_run, write_endpoint, hub_client, at):
    out, results = compared_run
    ready = plans(out, "hfdl-tester/tc")
    assert {p.repo_id for p in ready.values()} == {"hfdl-tester/tc-gru", "hfdl-tester/tc-bilstm"}
    for name, plan in ready.items():
        card = ModelCard(str(plan.card))  # what the Hub (and users) parse
        expected = {
            ("validation" if prefix == "eval" else "test", INDEX_TYPES[metric]): value
            for key, value in results[name].items()
            for prefix, _, metric in [key.partition("_")]
            if prefix in ("eval", "test") and metric in INDEX_TYPES
        }
        assert _model_index(card) == pytest.approx(expected) and len(expected) == 6  # accuracy, macro-F1, loss on 2 splits
        assert _model_index(card)[("test", "accuracy")] == results[name]["test_accuracy"]
        assert _model_index(card)[("validation", "f1")] == results[name]["eval_f1_macro"]
        d = card.data.to_dict()
        assert d["library_name"] == "transformers" and d["pipeline_tag"] == "text-classification" and "custom_code" in d["tags"]
        assert card.data.eval_results[0].dataset_revision == json.loads((out / "run_config.json").read_text())["data"]["fingerprint"]
        assert "| gru |" in card.text and "| bilstm |" in card.text and "TF-IDF + logistic regression" in card.text  # the comparison
        assert "`food`, `sport`, `weather`" in card.text
        assert not any(p in card.text for p in hub.PLACEHOLDERS) and not re.search(r"\b(None|nan|null)\b", card.text)
    at(write_endpoint.endpoint)
    push_run(out, "hfdl-tester/tc-bilstm", ["bilstm"])  # one model of the run: the id as given
    files = write_endpoint.files("hfdl-tester/tc-bilstm")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "text_rnn.py", "README.md", "all_results.json"} <= set(files)
    assert not any(f.startswith(("step_", "epoch_")) for f in files) and "hfdl-tester/tc-gru" not in write_endpoint.repos
    (commit,) = [c for c in write_endpoint.commits("hfdl-tester/tc-bilstm") if c.message.startswith("hfdl")]
    assert commit.message == f"hfdl train_text_classifier: bilstm, test accuracy {results['bilstm']['test_accuracy']:.4f}"


def test_cards_snippet_runs_in_plain_transformers_from_the_hub(compared_run, olah_hub, tmp_path):
    """Published to a real Hub API and prefetched with pull.py, the card's `pipeline("text-classification")` snippet
    (remote code from the repo) prints hfdl's own top label and probability."""
    from hfdl.tasks.text_classification.model import load_text_classifier

    out, _ = compared_run
    plan = plans(out, "hfdl-tester/tc-bilstm", ["bilstm"])["bilstm"]
    with hub.stage(plan.files, plan.card) as staged:
        olah_hub.publish("hfdl-tester/tc-bilstm", staged)
    code = re.search(r"```python\n(.*?)```", plan.card.text, re.S).group(1)
    assert 'pipeline("text-classification", model="hfdl-tester/tc-bilstm", trust_remote_code=True)' in code
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": olah_hub.endpoint, **NO_TOKEN}
    # olah does not serve the tree listing AutoTokenizer asks for: prefetch, then load offline (as the char-LM test)
    pulled = subprocess.run([sys.executable, str(REPO / "scripts" / "pull.py"), "hfdl-tester/tc-bilstm"], env=env, capture_output=True, text=True, timeout=120)
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    example = json.loads((out / "run_config.json").read_text())["data"]["example_text"]
    (top,) = load_text_classifier(str(out / "bilstm")).predict([example])
    assert proc.stdout.strip().splitlines()[-1] == f"{top['label']}: {top['score']:.3f}"
