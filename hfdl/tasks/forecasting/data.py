"""A multivariate series -> checked, chronologically split, normalised (on the training part only) -> windows.

Sources: an offline series (`hfdl.assets.series`), a CSV / Parquet / JSON-lines file with a time column
(`--train_file`), or a Hub dataset (`--dataset_name`): one row per time step, or GluonTS-style rows holding a
whole series (`target` list, one row per series, `--series_index`). Every source becomes one table in time order.

Splits are chronological (train, then validation, then test, never shuffled across a boundary). A window's
targets all lie inside one part; its inputs may reach back into the part before, as a forecaster in use would.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import torch

from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)

FILLS = ("none", "ffill", "interpolate", "zero")
TIME_COLUMNS = ("time", "date", "datetime", "timestamp", "ds", "Date Time")


@dataclass
class SeriesData:
    """A series ready for windowing: raw values (time, feature) in time order and the training part's statistics."""

    source: str
    values: np.ndarray  # (T, F) float32, raw units
    feature_names: list[str]
    target: str
    times: np.ndarray | None  # (T,) datetime64, or None when the source has no time column
    train_end: int  # rows [0, train_end) train, [train_end, val_end) validation, [val_end, T) test
    val_end: int
    mean: np.ndarray  # (F,) of the training rows
    std: np.ndarray
    season: int
    filled: int = 0  # missing values filled by --fill
    frequency: str | None = None  # pandas offset alias of the time step, when known

    @property
    def target_index(self) -> int:
        return self.feature_names.index(self.target)

    @property
    def parts(self) -> dict[str, tuple[int, int]]:
        return {"train": (0, self.train_end), "validation": (self.train_end, self.val_end), "test": (self.val_end, len(self.values))}

    def normalised(self) -> np.ndarray:
        return ((self.values - self.mean) / self.std).astype(np.float32)

    def describe(self) -> dict:
        def span(a: int, b: int) -> str:
            if self.times is None:
                return f"rows {a}-{b - 1}"
            return f"{np.datetime_as_string(self.times[a], unit='m')} .. {np.datetime_as_string(self.times[b - 1], unit='m')}"

        return {
            "source": self.source,
            "rows": len(self.values),
            "features": self.feature_names,
            "target": self.target,
            "season": self.season,
            "frequency": self.frequency,
            "filled_missing_values": self.filled,
            **{f"{name}_rows": b - a for name, (a, b) in self.parts.items()},
            **{f"{name}_span": span(a, b) for name, (a, b) in self.parts.items()},
            "normalisation": "per feature, mean and std of the training rows only",
            "fingerprint": hashlib.sha256(self.values.tobytes()).hexdigest()[:16],
        }


def window_anchors(start: int, end: int, lookback: int, horizon: int, stride: int = 1) -> np.ndarray:
    """The last observed rows `t` of the windows whose targets `t+1 .. t+horizon` all lie in rows [start, end)
    and whose inputs `t-lookback+1 .. t` exist (they may lie before `start`)."""
    first = max(start - 1, lookback - 1)
    last = end - horizon - 1
    return np.arange(first, last + 1, stride) if last >= first else np.zeros(0, dtype=np.int64)


def make_windows(series: np.ndarray, target_index: int, anchors: np.ndarray, lookback: int, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (N, lookback, F) and targets (N, horizon) at `anchors`, as strided views gathered once (no Python loop)."""
    x = torch.from_numpy(np.ascontiguousarray(series, dtype=np.float32))
    a = torch.from_numpy(np.asarray(anchors, dtype=np.int64))
    inputs = x.unfold(0, lookback, 1)[a - lookback + 1].transpose(1, 2).contiguous()  # unfold: (T-L+1, F, L)
    targets = x[:, target_index].unfold(0, horizon, 1)[a + 1].contiguous()
    return inputs, targets


def _parse_columns(spec: str | None) -> list[str] | None:
    return [c.strip() for c in spec.split(",") if c.strip()] if spec else None


def _table_from_dataset(ds, args) -> "pandas.DataFrame":  # noqa: F821
    """One table from a `datasets.Dataset`: rows are time steps, or (GluonTS style) each row a whole series."""
    import pandas as pd

    seq_cols = [c for c, f in ds.features.items() if type(f).__name__ in ("Sequence", "List", "LargeList")]
    if "target" in seq_cols:
        if not 0 <= args.series_index < len(ds):
            raise HfdlError(f"--series_index {args.series_index} is out of range: the dataset holds {len(ds)} series (0..{len(ds) - 1})")
        row = ds[args.series_index]
        target = np.asarray(row["target"], dtype=np.float32)
        columns = {"target": target} if target.ndim == 1 else {f"target_{i}": v for i, v in enumerate(target)}
        dyn = row.get("feat_dynamic_real")
        for i, v in enumerate(dyn or []):
            columns[f"feat_dynamic_real_{i}"] = np.asarray(v, dtype=np.float32)[: target.shape[-1]]
        table = pd.DataFrame(columns)
        if row.get("start") is not None and args.frequency:
            table.insert(0, "time", pd.date_range(pd.Timestamp(row["start"]), periods=len(table), freq=args.frequency))
        return table
    return ds.to_pandas()


def load_table(args) -> tuple["pandas.DataFrame", str, object]:  # noqa: F821
    """(table, description, offline asset or None) of the source the arguments name."""
    import datasets

    from hfdl.assets.series import SERIES, load_offline_series

    if args.train_file:
        ext = args.train_file.rsplit(".", 1)[-1].lower()
        builder = {"csv": "csv", "tsv": "csv", "parquet": "parquet", "json": "json", "jsonl": "json"}.get(ext)
        if builder is None:
            raise HfdlError(f"--train_file {args.train_file}: unknown extension .{ext}: use .csv, .tsv, .parquet, .json or .jsonl")
        kw = {"delimiter": "\t"} if ext == "tsv" else {}
        try:
            ds = datasets.load_dataset(builder, data_files=args.train_file, split="train", **kw)
        except FileNotFoundError as err:
            raise HfdlError(f"--train_file {args.train_file} does not exist: pass a CSV / Parquet / JSON-lines file with one row per time step") from err
        return _table_from_dataset(ds, args), f"file {args.train_file}", None
    if args.dataset_name:
        import os

        if os.path.isdir(args.dataset_name) and (
            os.path.isfile(os.path.join(args.dataset_name, "dataset_dict.json")) or os.path.isfile(os.path.join(args.dataset_name, "dataset_info.json"))
        ):
            ds = datasets.load_from_disk(args.dataset_name)
            ds = ds[args.dataset_split] if isinstance(ds, datasets.DatasetDict) else ds
        else:
            ds = datasets.load_dataset(args.dataset_name, args.dataset_config_name, split=args.dataset_split)
        return _table_from_dataset(ds, args), f"Hub dataset {args.dataset_name} ({args.dataset_split})", None
    name = args.series
    if name not in SERIES:
        raise HfdlError(f"--series '{name}' is unknown: use one of {', '.join(SERIES)}, or --train_file / --dataset_name")
    return load_offline_series(name), f"offline series {name} ({SERIES[name].description})", SERIES[name]


def time_column_of(table, wanted: str | None) -> str | None:
    """The table's time column: `wanted` (which must exist), else the first of the usual names, else None."""
    if wanted:
        if wanted not in table.columns:
            raise HfdlError(f"--time_column '{wanted}' is not a column (columns: {', '.join(map(str, table.columns))}): name the time column")
        return wanted
    return next((c for c in TIME_COLUMNS if c in table.columns), None)


def _fill(frame, how: str, columns: list[str]) -> int:
    missing = int(frame[columns].isna().to_numpy().sum())
    if not missing:
        return 0
    if how == "none":
        rows = np.flatnonzero(frame[columns].isna().to_numpy().any(axis=1))
        shown = ", ".join(str(r) for r in rows[:5]) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
        raise HfdlError(f"{missing} missing values in rows {shown}: pass --fill ffill, interpolate or zero, or clean the data")
    if how == "ffill":
        frame[columns] = frame[columns].ffill().bfill()
    elif how == "interpolate":
        frame[columns] = frame[columns].interpolate(limit_direction="both")
    else:
        frame[columns] = frame[columns].fillna(0.0)
    return missing


def prepare_series(args, lookback: int, horizon: int) -> tuple[SeriesData, object]:
    """Load, check, split and normalise the series the arguments name; returns it and the offline asset (or None)."""
    import pandas as pd

    table, source, asset = load_table(args)
    if len(table) == 0:
        raise HfdlError(f"{source} holds no rows: pass a series with data")
    time_col = time_column_of(table, args.time_column)
    times = None
    if time_col is not None:
        try:
            t = pd.to_datetime(table[time_col])
        except (ValueError, TypeError) as err:
            raise HfdlError(
                f"time column '{time_col}' does not parse as dates ({str(err).splitlines()[0][:120]}): fix it or name another --time_column"
            ) from err
        bad = np.flatnonzero(np.diff(t.to_numpy().astype("datetime64[ns]").astype(np.int64)) <= 0)
        if len(bad):
            i = int(bad[0]) + 1
            raise HfdlError(
                f"time column '{time_col}' is not strictly increasing: row {i} ({t.iloc[i]}) does not come after row {i - 1} ({t.iloc[i - 1]}); sort the rows and drop duplicate times"
            )
        times = t.to_numpy().astype("datetime64[s]")
    numeric = [c for c in table.columns if c != time_col and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]
    features = _parse_columns(args.features)
    target = args.target or (asset.target if asset is not None else None)
    named = [c for c in [*(features or []), *([target] if target else [])] if c not in table.columns]
    if named:
        raise HfdlError(f"column(s) {', '.join(named)} not in {source} (columns: {', '.join(map(str, table.columns))}): fix --target / --features")
    if target is None:
        if len(numeric) != 1:
            raise HfdlError(f"{source} has {len(numeric)} numeric columns ({', '.join(numeric[:8])}): name the one to forecast with --target")
        target = numeric[0]
    features = features or numeric
    if target not in features:
        features = [target, *features]
    not_numeric = [c for c in features if c not in numeric]
    if not_numeric:
        raise HfdlError(f"column(s) {', '.join(not_numeric)} are not numeric: leave them out of --features (or encode them as numbers)")
    frame = table[features].astype("float64").copy()
    filled = _fill(frame, args.fill, features)
    values = frame.to_numpy(dtype=np.float32)
    n = len(values)
    n_test, n_val = int(round(n * args.test_fraction)), int(round(n * args.validation_fraction))
    train_end, val_end = n - n_test - n_val, n - n_test
    need = lookback + horizon
    if train_end < need or min(n_val, n_test) < horizon:
        raise HfdlError(
            f"--lookback {lookback} + --horizon {horizon} = {need} rows do not fit the series: {n} rows give train {train_end}, validation {n_val}, test {n_test} "
            f"(each later part needs >= horizon rows): shorten --lookback / --horizon or use a longer series"
        )
    mean = values[:train_end].mean(axis=0)
    std = values[:train_end].std(axis=0)
    flat = [f for f, s in zip(features, std) if s == 0]
    if flat:
        raise HfdlError(f"feature(s) {', '.join(flat)} are constant on the training part: leave them out with --features")
    season = args.season or (asset.season if asset is not None else 1)
    frequency = asset.frequency if asset is not None else args.frequency
    if frequency is None and times is not None and len(times) >= 3:
        frequency = pd.infer_freq(pd.DatetimeIndex(times))
    data = SeriesData(source, values, features, target, times, train_end, val_end, mean.astype(np.float32), std.astype(np.float32), season, filled, frequency)
    return data, asset
