"""A second data-generating process with known truth, unlike ltae's own generator (``synthetic``).

It exists so that recovery studies are not run only on data shaped like the model. Differences from
:mod:`ltae.data.synthetic`:

* channels ``TV, Search, Social, Display``: TV in bursts (flights of several weeks, nothing between),
  Search always on and following the season, Social and Display with gaps;
* short term: geometric adstock and Hill saturation with half-saturation points away from the mean
  spend (0.5x to 2x) and different shapes;
* brand funnel that builds over months and is **non-linear**: awareness responds to *adstocked* spend
  through a concave curve, log(1 + x / s), with weekly retention 0.88; consideration follows
  awareness with two lags (retention 0.8); the baseline follows consideration (retention 0.93);
  Social also moves consideration directly (not only through awareness); Search has no brand effect
  at all (true long-term ROI 0);
* base sales = level + seasonality with a holiday peak + a stationary price index + a random-walk
  market index; sales = base + media + noise.

Truth (``truth.json``, same layout as ``synthetic``):

* short-term ROI = the channel's true contribution over the window / its spend over the window;
* long-term ROI = the *average marginal* response: for each week t0 of the window, the extra base
  sales summed over ``horizon`` weeks from t0 caused by a small extra spend (1% of the channel's mean
  weekly spend) in week t0, per unit of that extra spend, averaged over t0 (same noise; finite
  difference). The funnel is non-linear, so this slope is what a linear long-term model estimates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ltae.data.synthetic import SyntheticData, geometric_adstock_np, hill_np, save_to_csv

__all__ = ["FunnelParams", "generate", "save"]


@dataclass
class FunnelParams:
    """Every knob of the funnel generator (per-channel lists follow ``channels``)."""
    channels: list[str] = field(default_factory=lambda: ["TV", "Search", "Social", "Display"])
    mean_spend: list[float] = field(default_factory=lambda: [60_000.0, 30_000.0, 12_000.0, 8_000.0])
    adstock_alpha: list[float] = field(default_factory=lambda: [0.7, 0.1, 0.4, 0.3])
    hill_kappa: list[float] = field(default_factory=lambda: [1.1, 2.5, 1.6, 1.3])
    lambda_ratio: list[float] = field(default_factory=lambda: [1.5, 0.6, 1.0, 2.0])  # x mean spend
    st_roi: list[float] = field(default_factory=lambda: [1.2, 3.0, 2.0, 1.5])  # approximate targets
    # awareness points per week at adstocked spend x: a * log(1 + x / s)
    aware_a: list[float] = field(default_factory=lambda: [1.6, 0.0, 0.5, 0.35])
    aware_s: list[float] = field(default_factory=lambda: [40_000.0, 1.0, 10_000.0, 8_000.0])
    brand_alpha: list[float] = field(default_factory=lambda: [0.8, 0.0, 0.5, 0.5])  # adstock feeding awareness
    direct_consideration: list[float] = field(default_factory=lambda: [0.0, 0.0, 4e-6, 0.0])  # per unit spend
    l_max: int = 8
    base_level: float = 2_000_000.0
    aware_retention: float = 0.88
    aware_sd: float = 0.6
    cons_retention: float = 0.8
    cons_from_aware: tuple[float, float] = (0.12, 0.06)  # lags 1 and 2
    cons_sd: float = 0.4
    base_retention: float = 0.93
    base_from_cons: float = 2_000.0
    level_sd: float = 18_000.0
    noise_sd: float = 22_000.0
    season_amplitude: float = 90_000.0
    holiday_lift: float = 160_000.0
    price_coef: float = -300_000.0
    market_coef: float = 2_500.0
    beta: list[float] = field(default_factory=list)  # filled by ``generate`` from ``st_roi``


def _spend(rng, p: FunnelParams, n: int) -> np.ndarray:
    t = np.arange(n)
    season = 1 + 0.35 * np.sin(2 * np.pi * (t - 10) / 52)
    out = np.zeros((n, 4))
    # TV: flights of 3-6 weeks on, 2-8 weeks off
    on, k = np.zeros(n, bool), 0
    while k < n:
        length = rng.integers(3, 7)
        on[k:k + length] = True
        k += length + rng.integers(2, 9)
    out[:, 0] = np.where(on, p.mean_spend[0] * 2.2 * rng.lognormal(-0.05, 0.3, n), 0.0)
    out[:, 1] = p.mean_spend[1] * season * rng.lognormal(-0.03, 0.25, n)
    out[:, 2] = np.where(rng.random(n) < 0.2, 0.0, p.mean_spend[2] * rng.lognormal(-0.1, 0.5, n))
    out[:, 3] = np.where(rng.random(n) < 0.3, 0.0, p.mean_spend[3] * 1.4 * rng.lognormal(-0.1, 0.45, n))
    return np.round(out, 2)


def _media(p: FunnelParams, spend: np.ndarray) -> np.ndarray:
    out = np.zeros_like(spend)
    for i in range(spend.shape[1]):
        ad = geometric_adstock_np(spend[:, i], p.adstock_alpha[i], p.l_max)
        out[:, i] = p.beta[i] * hill_np(ad, p.hill_kappa[i], p.lambda_ratio[i] * p.mean_spend[i])
    return out


def _pushes(p: FunnelParams, spend: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    push = np.zeros(len(spend))
    for i in range(spend.shape[1]):
        if p.aware_a[i]:
            ad = geometric_adstock_np(spend[:, i], p.brand_alpha[i], p.l_max) if p.brand_alpha[i] else spend[:, i]
            push += p.aware_a[i] * np.log1p(ad / p.aware_s[i])
    return push, spend @ np.asarray(p.direct_consideration)


def _funnel(p: FunnelParams, spend: np.ndarray, shocks: dict, centre: tuple[float, float]) -> dict:
    """Deviations of awareness, consideration and the level from their steady state; ``centre`` is
    the mean push of the data window (so the window starts near steady state)."""
    n = len(spend)
    push, direct = _pushes(p, spend)
    push, direct = push - centre[0], direct - centre[1]
    aw, co, lv = np.zeros(n), np.zeros(n), np.zeros(n)
    c1, c2 = p.cons_from_aware
    for t in range(n):
        aw[t] = (p.aware_retention * aw[t - 1] if t else 0.0) + push[t] + shocks["aw"][t]
        co[t] = ((p.cons_retention * co[t - 1] + c1 * aw[t - 1] if t else 0.0)
                 + (c2 * aw[t - 2] if t > 1 else 0.0) + direct[t] + shocks["co"][t])
        lv[t] = (p.base_retention * lv[t - 1] + p.base_from_cons * co[t - 1] if t else 0.0) + shocks["lv"][t]
    return {"aw": aw, "co": co, "lv": lv}


def generate(seed: int = 0, n_weeks: int = 208, horizon: int = 24, params: FunnelParams | None = None,
             start: str = "2020-01-06") -> SyntheticData:
    """Simulate the five input tables and the truth (see the module docstring)."""
    p = params or FunnelParams()
    rng = np.random.default_rng(seed)
    n, C = n_weeks, len(p.channels)
    spend = _spend(rng, p, n)
    # beta so that the short-term ROI is near its target on this spend (truth is computed exactly)
    p.beta = [1.0] * C
    unit = _media(p, spend).sum(0)
    p.beta = [float(p.st_roi[i] * spend[:, i].sum() / max(unit[i], 1e-12)) for i in range(C)]
    media = _media(p, spend)

    t = np.arange(n)
    week = pd.date_range(start=start, periods=n, freq="7D")
    season = p.season_amplitude * np.sin(2 * np.pi * t / 52 + 0.8)
    holiday = p.holiday_lift * np.isin(week.isocalendar().week.to_numpy(), [47, 48, 50, 51])
    price = np.zeros(n)
    for k in range(n):  # stationary AR(1) price index around 1
        price[k] = 0.7 * (price[k - 1] if k else 0.0) + 0.02 * rng.standard_normal()
    price = 1.0 + price
    market = 100 + np.cumsum(0.6 * rng.standard_normal(n))
    ctrl = p.price_coef * (price - price.mean()) + p.market_coef * (market - market.mean())
    shocks = {"aw": p.aware_sd * rng.standard_normal(n), "co": p.cons_sd * rng.standard_normal(n),
              "lv": p.level_sd * rng.standard_normal(n)}
    noise = p.noise_sd * rng.standard_normal(n)
    push, direct = _pushes(p, spend)
    centre = (float(push.mean()), float(direct.mean()))
    f = _funnel(p, spend, shocks, centre)
    base = p.base_level + f["lv"] + season + holiday + ctrl
    sales = base + media.sum(1) + noise

    # truth: long-term = average marginal response over start weeks (finite difference, same noise)
    sp_ext = np.vstack([spend, np.tile(spend[-52:].mean(0), (horizon, 1))])
    sh_ext = {k: np.concatenate([v, np.zeros(horizon)]) for k, v in shocks.items()}
    base0 = _funnel(p, sp_ext, sh_ext, centre)["lv"]
    truth = {}
    for i, ch in enumerate(p.channels):
        delta = 0.01 * p.mean_spend[i]
        resp = []
        for t0 in range(0, n, 4):  # every 4th week: enough for the average, 52 simulations
            sp = sp_ext.copy()
            sp[t0, i] += delta
            d = _funnel(p, sp, sh_ext, centre)["lv"] - base0
            resp.append(d[t0:t0 + horizon].sum() / delta)
        lt = float(np.mean(resp))
        st = float(media[:, i].sum() / spend[:, i].sum())
        truth[ch] = {"spend": float(spend[:, i].sum()), "contribution": float(media[:, i].sum()),
                     "short_term_roi": st, "long_term_roi": lt, "total_roi": st + lt}
    truth_doc = {"n_weeks": n, "seed": seed, "horizon": horizon, "generator": "ltae.data.synthetic_funnel",
                 "units": "currency of sales per currency unit of spend",
                 "long_term_definition": "average marginal response over the window (non-linear funnel)",
                 "channels": truth, "base_sales_mean": float(base.mean()), "sales_mean": float(sales.mean())}
    rev = np.round(sales, 2)
    frames = dict(
        sales=pd.DataFrame({"Date": week, "revenue": rev}),
        marketing_spend=pd.DataFrame({"Date": np.repeat(week, C), "Channel": np.tile(p.channels, n),
                                      "Spend": spend.reshape(-1)}),
        brand_metrics=pd.DataFrame({"Date": week, "Awareness": np.round(30 + f["aw"], 3),
                                    "Consideration": np.round(15 + f["co"], 3)}),
        competitor_activity=pd.DataFrame({"Date": week, "Price_Index": np.round(price, 4)}),
        macroeconomic_indicators=pd.DataFrame({"Date": week, "Market_Index": np.round(market, 3)}),
    )
    comp = pd.DataFrame({"Date": week, "sales": sales, "base_sales": base, "seasonality": season + holiday,
                         "controls": ctrl, "noise": noise})
    for i, ch in enumerate(p.channels):
        comp[f"media_{ch}"] = media[:, i]
    return SyntheticData(frames["sales"], frames["marketing_spend"], frames["brand_metrics"],
                         frames["competitor_activity"], frames["macroeconomic_indicators"], truth_doc, p, comp)


def save(data: SyntheticData, output_dir):
    """Write the five CSV files and truth.json (as :func:`ltae.data.synthetic.save_to_csv`)."""
    return save_to_csv(data, output_dir)
