"""Forecasting: windows and splits, baselines, the recurrent family's dropout and direction, bad input, and the
script end to end (in-process, resumed, through accelerate launch with two processes)."""

import json
import os
import re
import shutil
import subprocess
import sys

import hub_servers
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, accelerate_launch

sys.path.insert(0, str(REPO / "scripts"))
import forecast  # noqa: E402
import train_forecaster  # noqa: E402

from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.forecasting.args import SeriesArguments  # noqa: E402
from hfdl.tasks.forecasting.baselines import fit_linear, forecast_metrics, linear_forecast, naive_forecast, seasonal_naive_forecast  # noqa: E402
from hfdl.tasks.forecasting.data import make_windows, prepare_series, window_anchors  # noqa: E402
from hfdl.tasks.forecasting.model import Forecaster, RecurrentStack, recurrence  # noqa: E402

hub_client, olah_hub, write_endpoint = hub_servers.hub_client, hub_servers.olah_hub, hub_servers.write_endpoint


def hourly_table(n: int = 480, seed: int = 0) -> pd.DataFrame:
    """A daily cycle with noise (the target) and a leading indicator, one row per hour."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    lead = np.sin(2 * np.pi * (t + 3) / 24) + 0.1 * rng.standard_normal(n)
    temp = 10 + 5 * np.sin(2 * np.pi * t / 24) + 0.3 * rng.standard_normal(n)
    return pd.DataFrame({"time": pd.date_range("2024-01-01", periods=n, freq="h"), "temp": temp, "lead": lead, "label": ["x"] * n})


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("series") / "hourly.csv"
    hourly_table().to_csv(path, index=False)
    return path


def series_args(path, **kw):
    return SeriesArguments(train_file=str(path), target=kw.pop("target", "temp"), **kw)


def tiny(out, csv, *extra):
    return [
        "--train_file", str(csv), "--target", "temp", "--output_dir", str(out), "--lookback", "24", "--horizon", "6", "--season", "24",
        "--hidden_size", "8", "--per_device_train_batch_size", "32", "--num_train_epochs", "2", "--seed", "0", *extra,
    ]  # fmt: skip


# --- windows and chronological splits ------------------------------------------------------------------------------


def test_window_targets_stay_inside_their_part_and_inputs_only_look_back():
    lookback, horizon, start, end = 5, 3, 20, 40
    anchors = window_anchors(start, end, lookback, horizon)
    assert anchors[0] == start - 1 and anchors[-1] == end - horizon - 1  # first target at `start`, last at `end - 1`
    series = np.arange(60, dtype=np.float32)[:, None].repeat(2, 1)
    series[:, 1] *= -1
    x, y = make_windows(series, 0, anchors, lookback, horizon)
    assert x.shape == (len(anchors), lookback, 2) and y.shape == (len(anchors), horizon)
    for a, xi, yi in zip(anchors, x, y):
        assert xi[:, 0].tolist() == list(range(a - lookback + 1, a + 1)) and xi[:, 1].tolist() == [-v for v in range(a - lookback + 1, a + 1)]
        assert yi.tolist() == list(range(a + 1, a + horizon + 1))
        assert start <= yi.min() and yi.max() < end


def test_splits_are_chronological_and_normalisation_sees_only_training_rows(tmp_path):
    table = hourly_table(400)
    table.to_csv(tmp_path / "a.csv", index=False)
    data, _ = prepare_series(series_args(tmp_path / "a.csv"), 24, 6)
    assert (data.train_end, data.val_end) == (280, 340) and data.feature_names == ["temp", "lead"]
    assert all(data.times[data.train_end - 1] < data.times[data.train_end : data.val_end]) and all(data.times[data.val_end - 1] < data.times[data.val_end :])
    table.loc[data.train_end :, ["temp", "lead"]] *= 100  # a different future leaves the training statistics alone
    table.to_csv(tmp_path / "b.csv", index=False)
    changed, _ = prepare_series(series_args(tmp_path / "b.csv"), 24, 6)
    np.testing.assert_array_equal(changed.mean, data.mean)
    np.testing.assert_array_equal(changed.std, data.std)
    np.testing.assert_allclose(data.mean, table[["temp", "lead"]].to_numpy()[: data.train_end].mean(0), rtol=1e-5)


# --- baselines and metrics -----------------------------------------------------------------------------------------


def test_baselines_on_hand_made_series():
    anchors = np.arange(30, 60)
    constant = np.full(100, 7.0, dtype=np.float32)
    assert forecast_metrics(naive_forecast(constant, anchors, 5), np.full((30, 5), 7.0), 1.0, "test")["test_mae"] == 0.0
    periodic = np.tile(np.array([1, 5, 2, 8], dtype=np.float32), 25)  # season 4
    truth = np.stack([periodic[a + 1 : a + 10] for a in anchors])
    assert np.array_equal(seasonal_naive_forecast(periodic, anchors, 9, 4), truth)  # exact, including steps beyond one season
    assert not np.array_equal(naive_forecast(periodic, anchors, 9), truth)
    # linear regression recovers a linear trend exactly
    ramp = np.arange(200, dtype=np.float32)[:, None] / 100
    x, y = make_windows(ramp, 0, np.arange(10, 150), 8, 3)
    model = fit_linear(x, y, alpha=1e-8)
    xt, yt = make_windows(ramp, 0, np.arange(150, 190), 8, 3)
    np.testing.assert_allclose(linear_forecast(model, xt), yt.numpy(), atol=1e-3)


def test_metrics_per_step_and_mase():
    truth = np.zeros((4, 2))
    pred = np.array([[1.0, 2.0], [-1.0, 2.0], [1.0, -2.0], [-1.0, -2.0]])
    m = forecast_metrics(pred, truth, scale=2.0, prefix="test")
    assert m["test_mae_by_step"] == [1.0, 2.0] and m["test_mae"] == 1.5 and m["test_mase"] == 0.75
    assert m["test_rmse_by_step"] == [1.0, 2.0] and m["test_rmse"] == pytest.approx(np.sqrt(2.5))


# --- the recurrent family ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stepped_cells_equal_the_fused_kernels(cell, bidirectional):
    """The Python-stepped path (used for recurrent dropout) is the same network as nn.RNN / LSTM / GRU."""
    torch.manual_seed(0)
    stack = RecurrentStack(cell, 3, 6, 2, bidirectional, 0.0, 0.0).eval()
    x = torch.randn(4, 7, 3)
    fused_out, fused_summary = stack(x)
    h = x
    for layer in stack.layers:
        stack.recurrent_dropout = 1e-12  # the stepped path with an all-ones mask
        h, summary = stack._stepped(layer, h)
    torch.testing.assert_close(h, fused_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(summary, fused_summary, atol=1e-5, rtol=1e-5)


def test_recurrent_dropout_draws_one_mask_per_sequence():
    """h_t = tanh(1 + m * h_{t-1}): a dropped unit (m = 0) stays at tanh(1) at every step, a kept one moves. The set of
    frozen units is the same at every step (one mask per sequence) and differs between sequences."""
    torch.manual_seed(0)
    B, T, H = 8, 12, 64
    mask = (torch.rand(B, H) > 0.5).float() * 2
    x_proj = torch.ones(B, T, H)
    out, _ = recurrence("rnn", x_proj, torch.zeros(B, H), None, torch.eye(H), torch.zeros(H), mask)
    frozen = (out[:, 1:] - np.tanh(1.0)).abs() < 1e-6  # (B, T-1, H)
    assert torch.equal(frozen, (mask == 0).unsqueeze(1).expand_as(frozen))
    # and the layer draws exactly such a mask: one per sequence, none per step
    stack = RecurrentStack("gru", 4, H, 1, False, 0.0, 0.5).train()
    draws = []
    import hfdl.tasks.forecasting.model as fm

    real = fm.sequence_mask

    def spy(*a):
        draws.append(real(*a))
        return draws[-1]

    fm.sequence_mask = spy
    try:
        stack(torch.randn(B, T, 4))
    finally:
        fm.sequence_mask = real
    assert len(draws) == 1 and draws[0].shape == (B, H)
    kept = (draws[0] > 0).float().mean().item()
    assert 0.35 < kept < 0.65 and torch.allclose(draws[0][draws[0] > 0], torch.tensor(2.0))
    assert not torch.equal(draws[0][0], draws[0][1])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_bidirectional_layer_sees_the_future_within_the_window(cell):
    torch.manual_seed(0)
    x = torch.randn(2, 10, 3)
    later = x.clone()
    later[:, -1] += 1.0  # change only the last step
    for bidirectional in (False, True):
        stack = RecurrentStack(cell, 3, 5, 1, bidirectional, 0.0, 0.0).eval()
        first, first_later = stack(x)[0][:, 0], stack(later)[0][:, 0]
        assert torch.equal(first, first_later) != bidirectional


def test_forecaster_round_trip_and_raw_units(tmp_path):
    torch.manual_seed(0)
    model = Forecaster("lstm", num_features=2, lookback=6, horizon=3, hidden_size=4, target_index=1, feature_names=["a", "b"], mean=[1.0, 10.0], std=[2.0, 5.0])
    model.save_pretrained(tmp_path)
    loaded = Forecaster.from_pretrained(tmp_path)
    window = np.random.default_rng(0).normal(10, 5, size=(6, 2)).astype(np.float32)
    np.testing.assert_array_equal(model.forecast(window), loaded.forecast(window))
    # residual: an untrained head near zero forecasts about the last observed target in raw units
    with torch.no_grad():
        loaded.head[-1].weight.zero_()
        loaded.head[-1].bias.zero_()
    np.testing.assert_allclose(loaded.forecast(window), np.full(3, window[-1, 1]), rtol=1e-5)
    assert loaded.forecast(window, horizon=2).shape == (2,)
    with pytest.raises(HfdlError, match=r"reads \(6, 2\)"):
        loaded.forecast(window[:5])
    with pytest.raises(HfdlError, match="at most 3 steps"):
        loaded.forecast(window, horizon=4)


# --- bad input -----------------------------------------------------------------------------------------------------


def test_bad_series_are_one_line_errors(tmp_path):
    table = hourly_table(200)
    table.iloc[[10, 11]] = table.iloc[[11, 10]].to_numpy()  # two rows swapped
    table.to_csv(tmp_path / "unsorted.csv", index=False)
    with pytest.raises(HfdlError, match="not strictly increasing: row 11 .*sort the rows"):
        prepare_series(series_args(tmp_path / "unsorted.csv"), 24, 6)
    table = hourly_table(200)
    table.loc[[5, 50], "lead"] = np.nan
    table.to_csv(tmp_path / "holes.csv", index=False)
    with pytest.raises(HfdlError, match="2 missing values in rows 5, 50: pass --fill"):
        prepare_series(series_args(tmp_path / "holes.csv"), 24, 6)
    filled, _ = prepare_series(series_args(tmp_path / "holes.csv", fill="ffill"), 24, 6)
    assert filled.filled == 2 and filled.values[5, 1] == filled.values[4, 1]
    with pytest.raises(HfdlError, match="do not fit the series.*shorten --lookback"):
        prepare_series(series_args(tmp_path / "holes.csv", fill="zero"), 150, 24)
    with pytest.raises(HfdlError, match="column\\(s\\) load not in .*fix --target"):
        prepare_series(series_args(tmp_path / "holes.csv", target="load", fill="zero"), 24, 6)
    with pytest.raises(HfdlError, match="label are not numeric"):
        prepare_series(series_args(tmp_path / "holes.csv", features="temp,label", fill="zero"), 24, 6)
    with pytest.raises(HfdlError, match="--time_column 'when' is not a column"):
        prepare_series(series_args(tmp_path / "holes.csv", time_column="when", fill="zero"), 24, 6)


# --- the script ----------------------------------------------------------------------------------------------------


def test_resumed_run_equals_uninterrupted_run(csv, tmp_path):
    args = ["--model_type", "gru", "--dropout", "0.1", "--recurrent_dropout", "0.2", "--checkpointing_steps", "4"]
    full = train_forecaster.main(tiny(tmp_path / "full", csv, *args))
    assert full["completed_steps"] == 2 * (len(window_anchors(0, 336, 24, 6)) // 32)
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    for p in list(part.iterdir()):
        if p.name not in ("step_4", "run_config.json"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    with pytest.raises(HfdlError, match="interrupted run.*--resume_from_checkpoint latest"):
        train_forecaster.main(tiny(part, csv, *args))
    resumed = train_forecaster.main(tiny(part, csv, *args, "--resume_from_checkpoint", "latest"))
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(part / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_mae"] == full["test_mae"]
    assert {k: v["test_mae_by_step"] for k, v in resumed["baselines"].items()} == {k: v["test_mae_by_step"] for k, v in full["baselines"].items()}


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory, csv):
    out = tmp_path_factory.mktemp("compare")
    results = train_forecaster.main(tiny(out, csv, "--compare", "mlp,bigru", "--num_train_epochs", "4"))
    return out, results


def test_compare_scores_networks_and_baselines_on_the_same_windows(compare_run):
    out, results = compare_run
    assert {"mlp", "bigru", "naive", "seasonal_naive", "linear"} == set(results)
    for r in results.values():
        assert len(r["test_mae_by_step"]) == 6 and r["test_mae"] == pytest.approx(np.mean(r["test_mae_by_step"]))
    # the daily cycle: seasonal naive is much better than naive at 6 steps ahead, and the networks learn something
    assert results["seasonal_naive"]["test_mae"] < results["naive"]["test_mae"]
    assert results["bigru"]["bidirectional"] and results["bigru"]["test_mae"] < results["naive"]["test_mae"]
    for f in ("comparison.md", "comparison.png", "mae_by_step.png", "forecast.png", "bigru/model.safetensors", "mlp/README.md"):
        assert (out / f).is_file(), f
    assert "seasonal naive" in (out / "comparison.md").read_text()


def test_card_model_index_equals_all_results(compare_run):
    from huggingface_hub import ModelCard

    out, results = compare_run
    card = ModelCard.load(out / "bigru" / "README.md")
    found = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert found == {"mae": results["bigru"]["test_mae"], "rmse": results["bigru"]["test_rmse"], "mase": results["bigru"]["test_mase"]}
    assert "bidirectional GRU" in card.text and "seasonal naive" in card.text


def test_forecast_script_prints_and_plots(compare_run, csv, tmp_path, capsys):
    out, results = compare_run
    forecast.main(["--model", str(out / "bigru"), "--train_file", str(csv), "--horizon", "4", "--output", str(tmp_path / "f.png")])
    printed = json.loads(capsys.readouterr().out)
    model = Forecaster.from_pretrained(out / "bigru")
    window = pd.read_csv(csv)[model.feature_names].to_numpy()[-24:]
    assert printed["target"] == "temp" and np.allclose(printed["forecast"], model.forecast(window, horizon=4), atol=1e-4)
    assert len(printed["times"]) == 4 and printed["times"][0] == "2024-01-21T00:00:00"
    assert (tmp_path / "f.png").stat().st_size > 5000
    with pytest.raises(HfdlError, match="at most 6 steps"):
        forecast.main(["--model", str(out / "bigru"), "--train_file", str(csv), "--horizon", "7"])


def test_two_processes_keep_the_results_contract(csv, tmp_path):
    """`accelerate launch --num_processes 2` on CPU (gloo): the same output folder, results and card."""
    from conftest import two_processes

    proc = accelerate_launch("train_forecaster.py", tiny(tmp_path, csv, "--model_type", "lstm", "--max_train_steps", "6"), **two_processes())
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "all_results.json").read_text())
    assert results["completed_steps"] == 6 and results["model_type"] == "lstm" and results["test_mae"] > 0
    cfg = json.loads((tmp_path / "run_config.json").read_text())
    assert cfg["environment"]["num_processes"] == 2 and cfg["task"] == "time-series-forecasting"
    assert (tmp_path / "README.md").is_file() and Forecaster.from_pretrained(tmp_path).horizon == 6


def test_the_offline_weather_year_is_real_hourly_data():
    from hfdl.assets.series import SERIES, load_offline_series

    table = load_offline_series("tmy3_greensboro")
    assert len(table) == 8760 and table["time"].is_monotonic_increasing and (table["time"].diff().dropna() == pd.Timedelta("1h")).all()
    assert table.notna().all().all() and SERIES["tmy3_greensboro"].target in table
    summer, winter = table[table.time.dt.month == 7]["temp_air"].mean(), table[table.time.dt.month == 1]["temp_air"].mean()
    assert 20 < summer < 30 and -2 < winter < 8  # Greensboro, NC
    noon, night = table[table.time.dt.hour == 12]["ghi"].mean(), table[table.time.dt.hour == 2]["ghi"].mean()
    assert night == 0 and noon > 300


def test_push_publishes_one_repo_per_network_and_the_snippet_runs_from_the_hub(compare_run, csv, write_endpoint, hub_client, olah_hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from hfdl import hub
    from hfdl.hub.registry import plans, push_run

    out, results = compare_run
    ready = plans(out, "hfdl-tester/weather")
    assert set(ready) == {"mlp", "bigru"} and ready["bigru"].repo_id == "hfdl-tester/weather-bigru"
    monkeypatch.setattr(constants, "ENDPOINT", write_endpoint.endpoint)
    push_run(out, "hfdl-tester/weather")
    files = write_endpoint.files("hfdl-tester/weather-bigru")
    assert {"model.safetensors", "config.json", "README.md", "forecast.png", "mae_by_step.png", "all_results.json", "run_config.json"} <= set(files)
    assert not any(name.startswith("step_") for name in files)
    plan = ready["bigru"]
    with hub.stage(plan.files, plan.card) as staged:
        olah_hub.publish(plan.repo_id, staged)
    shutil.copy(csv, tmp_path / "your.csv")
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": olah_hub.endpoint, "HF_TOKEN": ""}
    code = re.search(r"```python\n(.*?)```", plan.card.text, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = Forecaster.from_pretrained(out / "bigru")
    want = model.forecast(pd.read_csv(csv)[model.feature_names].to_numpy()[-model.lookback :])
    got = np.array(re.findall(r"-?\d+\.\d+(?:e-?\d+)?", proc.stdout), dtype=np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-4)
