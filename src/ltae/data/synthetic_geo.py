"""Multi-market data with known truth: ltae's generator (:mod:`ltae.data.synthetic`) run once per
market, with market sizes and market-specific ROIs around national values.

* market sizes ~ LogNormal(0, 0.5) (normalised to mean 1) scale every currency magnitude of a market
  (spend, sales, noise, controls' effects): ROIs stay comparable;
* each channel's short- and long-term ROI in market m = its national value x exp(N(0, ``roi_spread``^2));
  adstock, Hill shape and half-saturation (relative to the market's own spend) are shared;
* brand metrics (awareness, consideration) per market;
* truth per market as in ``synthetic``; national short-term ROI = contribution summed over markets /
  spend summed over markets; national long-term ROI = the markets' long-term ROIs weighted by spend
  (the response to one extra unit of spend spread over the markets like the spend).

The five tables carry a ``Geo`` column (one file each, all markets stacked), which ``--geo Geo``
reads as a panel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ltae.data.synthetic import (
    _LT_ROI,
    _ST_ROI,
    DEFAULT_CHANNELS,
    _cycle,
    default_params,
    generate_synthetic_data,
)

GEO = "Geo"


@dataclass
class GeoSyntheticData:
    """The five tables with a ``Geo`` column, the truth, and the per-market single-market data."""

    sales: pd.DataFrame
    marketing_spend: pd.DataFrame  # long: Date, Geo, Channel, Spend
    brand_metrics: pd.DataFrame
    competitor_activity: pd.DataFrame
    macroeconomic_indicators: pd.DataFrame
    truth: dict
    markets: list[str]
    per_market: dict  # market -> SyntheticData

    def panel(self) -> dict[str, np.ndarray]:
        """Arrays for the models: sales (M, T), spend (M, T, C), controls (M, T, J), brand (M, T, B)."""
        ch = self.truth["channels_order"]
        out = {"sales": [], "spend": [], "controls": [], "brand": []}
        for m in self.markets:
            d = self.per_market[m]
            out["sales"].append(d.sales.revenue.to_numpy())
            out["spend"].append(d.spend_wide[ch].to_numpy())
            ctrl = d.competitor_activity.drop(columns="Date").join(d.macroeconomic_indicators.drop(columns="Date"))
            out["controls"].append(ctrl.to_numpy())
            out["brand"].append(d.brand_metrics[["Awareness", "Consideration"]].to_numpy())
        return {k: np.stack(v) for k, v in out.items()}


def market_datasets(data: GeoSyntheticData) -> dict:
    """market -> validated :class:`~ltae.data.dataset.MMMDataset` (what a panel loader returns)."""
    from ltae.data.dataset import MMMDataset

    out = {}
    for m in data.markets:
        d = data.per_market[m]
        ctrl = d.competitor_activity.drop(columns="Date").join(d.macroeconomic_indicators.drop(columns="Date"))
        wide = pd.concat([d.sales[["Date", "revenue"]], d.spend_wide.reset_index(drop=True), ctrl,
                          d.brand_metrics[["Awareness", "Consideration"]]], axis=1)
        out[m] = MMMDataset.from_frame(wide, "revenue", list(d.spend_wide.columns), list(ctrl.columns),
                                       ["Awareness", "Consideration"], source=f"synthetic geo {m}")
    return out


def generate_geo(n_markets: int = 10, n_weeks: int = 156, channels=DEFAULT_CHANNELS, seed: int = 0,
                 roi_spread: float = 0.15, horizon: int = 24) -> GeoSyntheticData:
    """Simulate ``n_markets`` markets (see the module docstring)."""
    channels = list(channels)
    C = len(channels)
    rng = np.random.default_rng(seed)
    sizes = np.exp(rng.normal(0.0, 0.5, n_markets))
    sizes /= sizes.mean()
    st_nat, lt_nat = np.asarray(_cycle(_ST_ROI, C)), np.asarray(_cycle(_LT_ROI, C))
    markets = [f"M{m + 1:02d}" for m in range(n_markets)]
    per_market, tables = {}, {k: [] for k in ("sales", "marketing_spend", "brand_metrics", "competitor_activity",
                                              "macroeconomic_indicators")}
    truth_m = {}
    for m, name in enumerate(markets):
        st = st_nat * np.exp(rng.normal(0.0, roi_spread, C))
        lt = lt_nat * np.exp(rng.normal(0.0, roi_spread, C))
        params = default_params(channels, n_weeks, horizon, st_roi=st, lt_roi=lt, size=float(sizes[m]))
        d = generate_synthetic_data(n_weeks=n_weeks, channels=channels, seed=seed * 1000 + m + 1, params=params,
                                    horizon=horizon)
        per_market[name] = d
        truth_m[name] = d.truth["channels"]
        for k in tables:
            df = getattr(d, k).copy()
            df.insert(1, GEO, name)
            tables[k].append(df)
    frames = {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}
    national = {}
    for c in channels:
        spend = np.array([truth_m[m][c]["spend"] for m in markets])
        contrib = np.array([truth_m[m][c]["contribution"] for m in markets])
        lt = np.array([truth_m[m][c]["long_term_roi"] for m in markets])
        st_n, lt_n = float(contrib.sum() / spend.sum()), float((lt * spend).sum() / spend.sum())
        national[c] = {"spend": float(spend.sum()), "contribution": float(contrib.sum()), "short_term_roi": st_n,
                       "long_term_roi": lt_n, "total_roi": st_n + lt_n}
    truth = {"n_weeks": n_weeks, "n_markets": n_markets, "seed": seed, "horizon": horizon,
             "units": "currency of sales per currency unit of spend", "generator": "ltae.data.synthetic_geo",
             "market_sizes": dict(zip(markets, sizes.round(4).tolist(), strict=True)), "channels_order": channels,
             "national": national, "markets": truth_m}
    return GeoSyntheticData(frames["sales"], frames["marketing_spend"], frames["brand_metrics"],
                            frames["competitor_activity"], frames["macroeconomic_indicators"], truth, markets,
                            per_market)


def save_geo(data: GeoSyntheticData, output_dir) -> Path:
    """Write the five CSV files (each with a ``Geo`` column) and truth.json, atomically."""
    from ltae.io import atomic_write_csv, atomic_write_text

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("sales", "marketing_spend", "brand_metrics", "competitor_activity", "macroeconomic_indicators"):
        df = getattr(data, name).copy()
        df["Date"] = pd.to_datetime(df["Date"]).dt.strftime("%Y-%m-%d")
        atomic_write_csv(out / f"{name}.csv", df)
    atomic_write_text(out / "truth.json", json.dumps(data.truth, indent=2))
    return out


def conversion_prices(data: GeoSyntheticData, seed: int = 0) -> dict[str, np.ndarray]:
    """Revenue per conversion per market and week (2.0 to 2.2)."""
    rng = np.random.default_rng(seed)
    return {m: 2.0 + 0.2 * rng.random(data.truth["n_weeks"]) for m in data.markets}


def meridian_frame(data: GeoSyntheticData, *, revenue_per_conversion: bool = True) -> pd.DataFrame:
    """The panel in Meridian's geo layout (``geo, time, *_impression, *_control, *_spend, conversions,
    revenue_per_conversion, population``), rows by week then market as in Meridian's example files;
    conversions = the generator's revenue / revenue per conversion (:func:`conversion_prices`), so
    conversions x revenue_per_conversion is the generator's revenue."""
    rows = []
    price = conversion_prices(data)
    for k, m in enumerate(data.markets):
        d = data.per_market[m]
        f = pd.DataFrame({"geo": f"Geo{k}", "time": d.sales.Date.dt.strftime("%Y-%m-%d")})
        for c in data.truth["channels_order"]:
            f[f"{c}_impression"] = (d.spend_wide[c].to_numpy() * 120).round()
        f["competitor_sales_control"] = d.competitor_activity.Competitor_A_Spend.to_numpy()
        f["sentiment_score_control"] = d.macroeconomic_indicators.Consumer_Confidence.to_numpy()
        for c in data.truth["channels_order"]:
            f[f"{c}_spend"] = d.spend_wide[c].to_numpy()
        f["conversions"] = d.sales.revenue.to_numpy() / price[m]
        if revenue_per_conversion:
            f["revenue_per_conversion"] = price[m]
        f["population"] = 100_000.0 * (k + 1)
        rows.append(f)
    # the index (0..weeks-1 in each market) is what pandas writes as the unnamed first column
    return pd.concat(rows).sort_values(["time", "geo"], kind="stable")
