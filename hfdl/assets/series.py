"""Real multivariate time series shipped inside pip packages, read into the table a Hub time-series dataset gives.

The offline default of the forecasting task is an hourly weather year: NREL's Typical Meteorological Year
(TMY3) file for Greensboro, NC, that `pvlib` ships as test data (`pvlib/data/723170TYA.CSV`), read with pvlib's
own `read_tmy3`. It is the closest offline relative of the lecture's Jena climate exercise (temperature from
several weather variables). A TMY is a typical year assembled from 12 real months of different years (1976-2005),
so the series jumps a little at month boundaries: the model card says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from hfdl.errors import HfdlError


@dataclass(frozen=True)
class SeriesAsset:
    name: str
    package: str
    file: str  # inside the package
    license: str
    origin: str
    hub_equivalent: str
    description: str
    target: str
    frequency: str
    season: int  # time steps per seasonal cycle (seasonal naive, MASE)

    def provenance(self) -> dict:
        return asdict(self)

    def source_file(self) -> Path:
        import importlib.util

        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise HfdlError(f"offline series '{self.name}' needs the pip package {self.package}: run `pip install {self.package}` (or ./setup.sh)")
        path = Path(spec.origin).parent / self.file
        if not path.is_file():
            raise HfdlError(
                f"offline series '{self.name}': {path} is missing from the installed {self.package}: reinstall it (pip install --force-reinstall {self.package})"
            )
        return path


SERIES: dict[str, SeriesAsset] = {
    "tmy3_greensboro": SeriesAsset(
        name="tmy3_greensboro",
        package="pvlib",
        file="data/723170TYA.CSV",
        license="public domain (NREL TMY3 data, U.S. government work); pvlib package bsd-3-clause",
        origin="NREL National Solar Radiation Database TMY3 file for Greensboro Piedmont Triad International Airport, NC (USAF 723170), shipped in the pvlib wheel, read with pvlib.iotools.read_tmy3",
        hub_equivalent="(none official; the Jena climate series of the lecture, or any Hub weather dataset with --dataset_name / --train_file)",
        description="hourly weather of a typical meteorological year (8,760 hours; each month a real month of 1976-2005): air temperature, dew point, humidity, pressure, wind, sun and cloud",
        target="temp_air",
        frequency="1h",
        season=24,
    ),
}

# The TMY3 columns kept (pvlib's names) and what they are; wind direction becomes a (u, v) vector so 359 and 1 degree are close.
_TMY3_COLUMNS = {
    "temp_air": "dry-bulb air temperature (C)",
    "temp_dew": "dew-point temperature (C)",
    "relative_humidity": "relative humidity (%)",
    "pressure": "station pressure (mbar)",
    "wind_speed": "wind speed (m/s)",
    "ghi": "global horizontal irradiance (W/m^2)",
    "dni": "direct normal irradiance (W/m^2)",
    "dhi": "diffuse horizontal irradiance (W/m^2)",
    "TotCld (tenths)": "total sky cover (tenths)",
    "precipitable_water": "precipitable water (cm)",
}


def load_offline_series(name: str):
    """The table of an offline series: a `time` column (ordered) and one numeric column per variable."""
    import numpy as np

    if name not in SERIES:
        raise HfdlError(f"offline series '{name}' is unknown: use one of {', '.join(SERIES)}")
    asset = SERIES[name]
    from pvlib.iotools import read_tmy3

    # a typical year's months come from different years: put them on one calendar year (pvlib's coerce_year)
    df, _ = read_tmy3(str(asset.source_file()), coerce_year=1990, map_variables=True)
    table = df[list(_TMY3_COLUMNS)].rename(columns={"TotCld (tenths)": "total_cloud"}).astype("float32")
    rad = np.deg2rad(df["wind_direction"].to_numpy(dtype="float64"))
    table["wind_u"] = (-df["wind_speed"] * np.sin(rad)).astype("float32")  # meteorological convention: direction the wind comes from
    table["wind_v"] = (-df["wind_speed"] * np.cos(rad)).astype("float32")
    table.insert(0, "time", df.index.tz_localize(None))
    return table.reset_index(drop=True)
