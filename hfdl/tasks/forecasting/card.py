"""The forecasting card (`model_cards/time_series_forecasting.md`) and the repos of a train_forecaster run: one per
network, its test MAE / RMSE / MASE in `model-index`, the baselines of the same test windows beside it."""

from __future__ import annotations

import os
from pathlib import Path

from hfdl.hub.cards import eval_results, markdown_table, provenance, render_card, schedule, training_procedure
from hfdl.hub.registry import RepoPlan, finished_run, model_repo_files, pick, register, repo_ids, write_cards

TASK = "time-series-forecasting"
__all__ = ["forecasting_card", "plans", "write_cards"]
NAMES = {
    "test_mae": ("mae", "Test MAE (all steps)"),
    "test_rmse": ("rmse", "Test RMSE (all steps)"),
    "test_mase": ("mase", "Test MASE (against the seasonal naive forecast)"),
}
BASELINE_LABELS = {"naive": "naive (last value)", "seasonal_naive": "seasonal naive", "linear": "linear regression on the window"}
TYPE_NAMES = {"rnn": "simple RNN (tanh)", "lstm": "LSTM", "gru": "GRU", "conv1d": "1-D convolutional network", "mlp": "multilayer perceptron"}


def split_results(all_results: dict, config: dict) -> tuple[dict[str, dict], dict[str, dict]]:
    """(networks by name, baselines by name) of a finished run, single or --compare."""
    if config["model_args"].get("compare"):
        nets = {k: v for k, v in all_results.items() if v.get("kind") == "network"}
        return nets, {k: v for k, v in all_results.items() if v.get("kind") == "baseline"}
    name = ("bi" if all_results["bidirectional"] else "") + all_results["model_type"]
    return {name: {k: v for k, v in all_results.items() if k != "baselines"}}, all_results["baselines"]


def _dataset(config: dict) -> dict:
    d = config["data_args"]
    offline = config.get("offline_assets") or []
    if offline:
        a = offline[0]
        return {"type": f"hfdl-offline/{a['name']}", "name": a["name"], "hub": None, "about": f"{a['description']}; {a['origin']}"}
    name = d.get("dataset_name")
    if name and not os.path.exists(name):
        return {"type": name, "name": name, "hub": name, "about": f"the Hub dataset [{name}](https://huggingface.co/datasets/{name})"}
    src = Path(d.get("train_file") or name or "series").name
    return {"type": "csv", "name": src, "hub": None, "about": f"a local file `{src}`"}


def forecasting_card(out: Path, name: str, repo_id: str):
    from huggingface_hub import ModelCardData

    all_results, rc = finished_run(out)
    networks, base = split_results(all_results, rc)
    r, m, s, t, data = networks[name], rc["model_args"], rc["data_args"], rc["training_args"], rc["data"]
    ds = _dataset(rc)
    kind = ("bidirectional " if r["bidirectional"] else "") + TYPE_NAMES[r["model_type"]]
    scored = {k: r[k] for k in NAMES}
    card_data = ModelCardData(
        model_name=Path(repo_id).name, library_name="pytorch", license="apache-2.0", datasets=[ds["hub"]] if ds["hub"] else None,
        pipeline_tag="time-series-forecasting", tags=["hfdl", "time-series-forecasting", r["model_type"], "pytorch_model_hub_mixin", "model_hub_mixin"],
        eval_results=eval_results(scored, task_type="time-series-forecasting", dataset_type=ds["type"], dataset_name=ds["name"], dataset_split="test (the last rows)", names=NAMES),
    )  # fmt: skip
    rows = [
        {"model": n + (" (this model)" if n == name else ""), "test MAE": v["test_mae"], "test RMSE": v["test_rmse"], "test MASE": v["test_mase"],
         "MAE step 1": v["test_mae_by_step"][0], f"MAE step {s['horizon']}": v["test_mae_by_step"][-1]}
        for n, v in [*networks.items(), *((BASELINE_LABELS[b], v) for b, v in base.items())]
    ]  # fmt: skip
    rows = [{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
    beaten = [BASELINE_LABELS[b] for b in ("naive", "seasonal_naive", "linear") if r["test_mae"] < base[b]["test_mae"]]
    lost = [BASELINE_LABELS[b] for b in ("naive", "seasonal_naive", "linear") if r["test_mae"] >= base[b]["test_mae"]]
    verdict = f"On test MAE this model beats {', '.join(beaten) or 'no baseline'}" + (f" and does not beat {', '.join(lost)}." if lost else ".")
    summary = (
        f"A {kind} that forecasts `{data['target']}` {s['horizon']} steps ahead from the last {s['lookback']} steps of "
        f"{len(data['features'])} variables of {ds['name']}: test MAE **{r['test_mae']:.3f}** (MASE {r['test_mase']:.3f}; "
        f"seasonal naive {base['seasonal_naive']['test_mae']:.3f}, naive {base['naive']['test_mae']:.3f})."
    )
    hyper = {
        "model type": kind, "hidden size": m["hidden_size"], "layers": m["num_layers"], "dropout (inputs, one mask per sequence)": m["dropout"],
        "recurrent dropout (one mask per sequence)": m["recurrent_dropout"], "residual on the last value": m["residual"], "loss": m["loss"],
        "lookback / horizon / stride": f"{s['lookback']} / {s['horizon']} / {s['stride']}", "learning rate": t["learning_rate"],
        "batch size": t["per_device_train_batch_size"], "schedule": schedule(t),
    }  # fmt: skip
    features = ", ".join(f"`{f}`" for f in data["features"])
    code = (
        "import pandas as pd\n"
        "from hfdl.tasks.forecasting.model import Forecaster\n\n"
        f'model = Forecaster.from_pretrained("{repo_id}")\n'
        f'table = pd.read_csv("your.csv")  # one row per {data.get("frequency") or "time step"}, columns {", ".join(data["features"][:4])}{", ..." if len(data["features"]) > 4 else ""}\n'
        "window = table[model.feature_names].to_numpy()[-model.lookback:]\n"
        f"print(model.forecast(window))  # the next {s['horizon']} values of {data['target']}"
    )
    return render_card(
        "time_series_forecasting",
        card_data,
        model_name=Path(repo_id).name,
        summary=summary,
        forecast_caption=f"The best network of the run: {s['horizon']}-step forecasts issued every {s['horizon']} steps along the start of the test part, against the truth.",
        evaluation_description=(
            f"Chronological split: train {data['train_span']}, validation {data['validation_span']}, test {data['test_span']} "
            f"({data['windows']['test']:,} test windows, every step). MAE and RMSE in `{data['target']}`'s units; MASE divides the MAE by "
            f"the in-sample MAE of the seasonal naive forecast (season {data['season']}) on the training part ({data['mase_scale']:.3f}). "
            "Baselines are scored on the same windows."
        ),
        metrics_table=markdown_table(rows),
        verdict=verdict,
        model_description=(
            f"{kind[0].upper() + kind[1:]}, {m['num_layers']} layer(s) of {m['hidden_size']} units, {r['num_params']:,} parameters; a linear head gives all "
            f"{s['horizon']} steps at once" + (", added to the last observed value (residual)" if m["residual"] else "") + ". Inputs are normalised with "
            f"the training part's mean and standard deviation, stored in the model. {r['inference_ms_per_window']:.2f} ms per window on the training machine's CPU."
        ),
        data_description=f"{ds['about']}. Inputs: {features}; target `{data['target']}`.",
        **training_procedure(rc, r, hyper, f"{r['train_windows_per_second']:.0f} windows/s"),
        lookback=s["lookback"],
        repo_id=repo_id,
        how_to_use_code=code,
        limitations=[
            f"Trained on one series ({ds['name']}); it forecasts that kind of data at that sampling rate. Retrain on your own series.",
            "Scores come from one chronological test part; a different season or year can be harder.",
            *(
                ["A typical meteorological year joins 12 real months of different years: the series jumps a little at month boundaries."]
                if ds["type"] == "hfdl-offline/tmy3_greensboro"
                else []
            ),
        ],
        provenance=provenance(rc.get("offline_assets", [])) + "\n\nThe model's weights are released under apache-2.0.",
    )


def plans(out: Path, hub_model_id: str | None, only: list[str] | None = None) -> dict[str, RepoPlan]:
    """One repo per network of the run (`<id>-<name>` under --compare)."""
    all_results, rc = finished_run(out)
    networks, _ = split_results(all_results, rc)
    chosen = pick(list(networks), only, "model", out)
    compared = bool(rc["model_args"].get("compare"))
    folders = {n: out / n if compared else out for n in chosen}
    ids = repo_ids(hub_model_id, folders)
    result = {}
    for n, folder in folders.items():
        files = model_repo_files(out, folder, n, ("config.json", "model.safetensors"))
        files.update({p.name: p for p in out.glob("*.png")})
        result[n] = RepoPlan(
            ids[n],
            files,
            forecasting_card(out, n, ids[n]),
            f"hfdl train_forecaster {n}: test MAE {networks[n]['test_mae']:.4f}",
            f"Uploaded by hfdl from {out.name}.",
        )
    return result


register(TASK, plans)
