"""Small multi-market inputs for the panel tests, all written from ltae's multi-market generator
(``ltae.data.synthetic_geo``), so every loaded number can be checked against the generator.

* :func:`geo_folder`: the five CSV files with a ``Geo`` column (``save_geo``);
* Meridian's geo layout: ``ltae.data.synthetic_geo.meridian_frame`` (``geo, time, *_impression, *_control, *_spend,
  conversions, revenue_per_conversion, population``), rows ordered by week then market as in
  Meridian's example files, with the unnamed pandas index column they have;
* :func:`pymc_frame`: pymc-marketing's multidimensional example layout (``date, geo, x1, x2,
  event_1, event_2, dayofyear, y``);
* :func:`wide_frame`: one wide table with a ``Market`` column (ltae's own names).

Line numbers: in ``sales.csv`` of :func:`geo_folder` the markets are stacked (market k's week i is
on line ``2 + k * n_weeks + i``); ``marketing_spend.csv`` is long with the channels of a week on
consecutive lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ltae.data.synthetic_geo import GeoSyntheticData, generate_geo, save_geo

N_MARKETS = 3
N_WEEKS = 60
CHANNELS = ("TV", "Search")
SEED = 5


def make_geo(n_markets: int = N_MARKETS, n_weeks: int = N_WEEKS, seed: int = SEED,
             channels=CHANNELS) -> GeoSyntheticData:
    return generate_geo(n_markets=n_markets, n_weeks=n_weeks, channels=list(channels), seed=seed)


def geo_folder(folder: Path, data: GeoSyntheticData | None = None) -> Path:
    save_geo(data or make_geo(), folder)
    return folder


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False)


def write(folder: Path, name: str, df: pd.DataFrame) -> None:
    df.to_csv(folder / name, index=False)


def sales_line(data: GeoSyntheticData, market: str, week: int) -> int:
    """The line of a market's week in the geo folder's sales.csv."""
    return 2 + data.markets.index(market) * data.truth["n_weeks"] + week


def pymc_frame(data: GeoSyntheticData) -> pd.DataFrame:
    """pymc-marketing's multidimensional example layout: x1, x2 are the first two channels, y the revenue."""
    rows = []
    ch = data.truth["channels_order"]
    for m in data.markets:
        d = data.per_market[m]
        dates = d.sales.Date
        rows.append(pd.DataFrame({
            "date": dates.dt.strftime("%Y-%m-%d"), "geo": f"geo_{m.lower()}",
            "x1": d.spend_wide[ch[0]].to_numpy(), "x2": d.spend_wide[ch[1]].to_numpy(),
            "event_1": (np.arange(len(dates)) == 10).astype(float), "event_2": (np.arange(len(dates)) == 40).astype(float),
            "dayofyear": dates.dt.dayofyear.to_numpy(), "y": d.sales.revenue.to_numpy()}))
    return pd.concat(rows, ignore_index=True)


def wide_frame(data: GeoSyntheticData) -> pd.DataFrame:
    """One wide table with ltae's names and a Market column (markets stacked)."""
    rows = []
    ch = data.truth["channels_order"]
    for m in data.markets:
        d = data.per_market[m]
        f = pd.DataFrame({"Date": d.sales.Date, "Market": m, "revenue": d.sales.revenue.to_numpy()})
        for c in ch:
            f[c] = d.spend_wide[c].to_numpy()
        f["GDP_Growth"] = d.macroeconomic_indicators.GDP_Growth.to_numpy()
        f["Awareness"] = d.brand_metrics.Awareness.to_numpy()
        rows.append(f)
    return pd.concat(rows, ignore_index=True)
