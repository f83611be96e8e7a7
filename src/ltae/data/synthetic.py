"""Synthetic marketing data with known ground truth.

The generator simulates, week by week:

* spend per channel (flighted, some zero weeks), in currency;
* short-term media effect: geometric adstock (``l_max`` weeks, normalised, as in the model)
  followed by Hill saturation, times a channel coefficient ``beta`` in currency per week;
* controls: competitor spend, GDP growth, unemployment rate, consumer confidence;
* a brand funnel that is a stable VAR with exogenous spend:
  spend -> awareness (same week) -> consideration (next week) -> base sales (the week after),
  so that spend also moves base sales for months;
* base sales = persistent (AR) local level + funnel + seasonality + controls;
* sales = base sales + short-term media effects + observation noise.

Truth (written to ``truth.json``):

* short-term ROI of channel i = true contribution of i over the window / spend of i over the
  window (currency per currency unit of spend, carry-over inside the window included);
* long-term ROI of channel i = cumulative response of base sales (currency) to one extra unit of
  spend in i, summed over ``horizon`` weeks from the week of the extra spend, obtained by
  simulating the funnel with and without the extra spend (same noise);
* total ROI = short + long.

Scenarios (``scenario_truth``): the true response to a future spend plan against a reference plan,
by continuing the same simulation past the data's end with each plan and differencing the sales.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_CHANNELS = ("Content", "Events", "Google", "LinkedIn")

# per-channel defaults, cycled if more channels are asked for
_MEAN_SPEND = (15_000.0, 25_000.0, 40_000.0, 10_000.0, 20_000.0, 30_000.0, 8_000.0, 45_000.0)
_ZERO_SHARE = (0.0, 0.35, 0.0, 0.15, 0.1, 0.0, 0.25, 0.0)
_ALPHA = (0.6, 0.3, 0.2, 0.5, 0.4, 0.7, 0.35, 0.25)
_KAPPA = (1.5, 2.0, 1.2, 1.8, 1.4, 2.2, 1.6, 1.3)
_ST_ROI = (2.5, 1.5, 4.0, 3.0, 2.0, 3.5, 1.8, 2.8)
_LT_ROI = (3.0, 1.0, 0.5, 2.0, 1.5, 2.5, 0.0, 1.2)


@dataclass
class SyntheticParams:
    """Every knob of the generator. Per-channel lists follow ``channels``."""

    channels: list[str]
    mean_spend: list[float]
    zero_share: list[float]
    adstock_alpha: list[float]
    hill_kappa: list[float]
    hill_lambda: list[float]  # in currency (adstocked spend)
    beta: list[float]  # currency per week at full saturation
    awareness_gain: list[float]  # awareness points per currency unit of spend
    l_max: int = 8
    base_level: float = 1_000_000.0
    level_rho: float = 0.9
    level_sd: float = 15_000.0
    noise_sd: float = 10_000.0
    season_amplitude: float = 50_000.0
    awareness_mean: float = 35.0
    awareness_rho: float = 0.7
    awareness_sd: float = 0.8
    consideration_mean: float = 20.0
    consideration_rho: float = 0.6
    consideration_from_awareness: float = 0.3
    consideration_sd: float = 0.5
    sales_from_consideration: float = 8_000.0  # currency per consideration point
    control_coef: dict[str, float] = field(
        default_factory=lambda: {
            "Competitor_A_Spend": -0.5,
            "GDP_Growth": 20_000.0,
            "Unemployment_Rate": -15_000.0,
            "Consumer_Confidence": 1_500.0,
        }
    )


@dataclass
class SyntheticData:
    """Frames as the five CSV files hold them, plus truth and the parameters used."""

    sales: pd.DataFrame
    marketing_spend: pd.DataFrame  # long: Date, Channel, Spend
    brand_metrics: pd.DataFrame
    competitor_activity: pd.DataFrame
    macroeconomic_indicators: pd.DataFrame
    truth: dict
    params: SyntheticParams
    components: pd.DataFrame  # true decomposition, for tests and plots

    @property
    def spend_wide(self) -> pd.DataFrame:
        """Spend as one column per channel, indexed by date."""
        return self.marketing_spend.pivot(index="Date", columns="Channel", values="Spend")[
            self.params.channels
        ]


def _cycle(values, n):
    return [values[i % len(values)] for i in range(n)]


def geometric_adstock_np(x: np.ndarray, alpha: float, l_max: int = 8, normalize: bool = True):
    """Reference geometric adstock (numpy), the same convention as pymc-marketing's."""
    w = alpha ** np.arange(l_max)
    if normalize:
        w = w / w.sum()
    out = np.zeros_like(x, dtype=float)
    for lag in range(l_max):
        out[lag:] += w[lag] * x[: len(x) - lag]
    return out


def hill_np(x: np.ndarray, kappa: float, lam: float) -> np.ndarray:
    """Reference Hill saturation ``x**kappa / (lam**kappa + x**kappa)`` (numpy), 0 at x <= 0."""
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = 1.0 / (1.0 + (lam / x[pos]) ** kappa)
    return out


def _funnel_response(p: SyntheticParams, horizon: int) -> np.ndarray:
    """Base-sales response (currency) over ``horizon`` weeks to one unit of spend that moves
    awareness by one point. Linear funnel, so the response to channel i scales with its gain."""
    aw = np.zeros(horizon)
    co = np.zeros(horizon)
    bs = np.zeros(horizon)
    for h in range(horizon):
        aw[h] = (p.awareness_rho * aw[h - 1] if h else 0.0) + (1.0 if h == 0 else 0.0)
        co[h] = (p.consideration_rho * co[h - 1] + p.consideration_from_awareness * aw[h - 1]) if h else 0.0
        bs[h] = (p.level_rho * bs[h - 1] + p.sales_from_consideration * co[h - 1]) if h else 0.0
    return bs


def default_params(
    channels=DEFAULT_CHANNELS,
    n_weeks: int = 208,
    horizon: int = 24,
    st_roi=None,
    lt_roi=None,
    size: float = 1.0,
) -> SyntheticParams:
    """Defaults with realistic magnitudes; betas and funnel gains are set so the true ROIs are
    near ``st_roi`` / ``lt_roi`` (the exact truth is always computed from the simulation).
    ``size`` scales every currency magnitude (spend, sales, noise, effects) of a market: the ROIs
    (currency per currency) stay as given."""
    channels = list(channels)
    n = len(channels)
    mean_spend = [m * size for m in _cycle(_MEAN_SPEND, n)]
    p = SyntheticParams(
        channels=channels,
        mean_spend=mean_spend,
        zero_share=_cycle(_ZERO_SHARE, n),
        adstock_alpha=_cycle(_ALPHA, n),
        hill_kappa=_cycle(_KAPPA, n),
        hill_lambda=[m * 1.0 for m in mean_spend],
        beta=[0.0] * n,
        awareness_gain=[0.0] * n,
    )
    if size != 1.0:
        for k in ("base_level", "level_sd", "noise_sd", "season_amplitude", "sales_from_consideration"):
            setattr(p, k, getattr(p, k) * size)
        p.control_coef = {k: v * size for k, v in p.control_coef.items()}
    st = list(st_roi) if st_roi is not None else _cycle(_ST_ROI, n)
    lt = list(lt_roi) if lt_roi is not None else _cycle(_LT_ROI, n)
    # beta such that beta * E[hill(adstock)] ~= roi * mean spend (approximate; truth is exact)
    rng = np.random.default_rng(12345)
    for i in range(n):
        x = _simulate_spend(rng, n_weeks, mean_spend[i], p.zero_share[i])
        sat = hill_np(geometric_adstock_np(x, p.adstock_alpha[i], p.l_max), p.hill_kappa[i], p.hill_lambda[i])
        p.beta[i] = st[i] * x.sum() / max(sat.sum(), 1e-12)
    unit = _funnel_response(p, horizon).sum()
    p.awareness_gain = [lt_i / unit for lt_i in lt]
    return p


def _simulate_spend(rng, n_weeks, mean, zero_share):
    x = mean * rng.lognormal(mean=-0.18, sigma=0.6, size=n_weeks)
    if zero_share > 0:
        x[rng.random(n_weeks) < zero_share] = 0.0
    return np.round(x, 2)


def _simulate(p: SyntheticParams, spend: np.ndarray, shocks: dict, n_weeks: int) -> dict:
    """Run the funnel and the sales equation for given spend and noise draws."""
    n = len(p.channels)
    aw = np.zeros(n_weeks)
    co = np.zeros(n_weeks)
    lvl = np.zeros(n_weeks)
    gain = np.asarray(p.awareness_gain)
    spend_centre = np.asarray(p.mean_spend)
    for t in range(n_weeks):
        a_prev = aw[t - 1] if t else 0.0
        c_prev = co[t - 1] if t else 0.0
        l_prev = lvl[t - 1] if t else 0.0
        # deviations from steady state; spend enters relative to its usual level
        aw[t] = p.awareness_rho * a_prev + gain @ (spend[t] - spend_centre) + shocks["aw"][t]
        co[t] = p.consideration_rho * c_prev + p.consideration_from_awareness * a_prev + shocks["co"][t]
        lvl[t] = p.level_rho * l_prev + p.sales_from_consideration * c_prev + shocks["lvl"][t]
    media = np.zeros((n_weeks, n))
    for i in range(n):
        ad = geometric_adstock_np(spend[:, i], p.adstock_alpha[i], p.l_max)
        media[:, i] = p.beta[i] * hill_np(ad, p.hill_kappa[i], p.hill_lambda[i])
    return {"awareness_dev": aw, "consideration_dev": co, "level_dev": lvl, "media": media}


def generate_synthetic_data(
    n_weeks: int = 208,
    channels=DEFAULT_CHANNELS,
    seed: int = 42,
    params: SyntheticParams | None = None,
    horizon: int = 24,
    start: str = "2021-01-04",
) -> SyntheticData:
    """Simulate the five input tables and the true ROIs (see module docstring)."""
    if n_weeks < 4:
        raise ValueError("n_weeks must be at least 4")
    p = params if params is not None else default_params(channels, n_weeks, horizon)
    channels = list(p.channels)
    n = len(channels)
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start=start, periods=n_weeks, freq="7D")
    t = np.arange(n_weeks)

    spend = np.column_stack(
        [_simulate_spend(rng, n_weeks, p.mean_spend[i], p.zero_share[i]) for i in range(n)]
    ) if n else np.zeros((n_weeks, 0))

    # controls
    competitor = np.round(np.clip(60_000 + 15_000 * rng.standard_normal(n_weeks), 0, None), 2)
    gdp = 2.0 + np.cumsum(0.05 * rng.standard_normal(n_weeks))
    unemployment = 5.0 + np.cumsum(0.04 * rng.standard_normal(n_weeks))
    confidence = 100.0 + np.cumsum(0.5 * rng.standard_normal(n_weeks))
    controls = {
        "Competitor_A_Spend": competitor,
        "GDP_Growth": gdp,
        "Unemployment_Rate": unemployment,
        "Consumer_Confidence": confidence,
    }
    ctrl_effect = np.zeros(n_weeks)
    for name, series in controls.items():
        ctrl_effect += p.control_coef.get(name, 0.0) * (series - series.mean())

    season = p.season_amplitude * (
        np.sin(2 * np.pi * t / 52.0) + 0.4 * np.cos(4 * np.pi * t / 52.0)
    )
    shocks = {
        "aw": p.awareness_sd * rng.standard_normal(n_weeks),
        "co": p.consideration_sd * rng.standard_normal(n_weeks),
        "lvl": p.level_sd * rng.standard_normal(n_weeks),
    }
    noise = p.noise_sd * rng.standard_normal(n_weeks)
    sim = _simulate(p, spend, shocks, n_weeks)

    base_sales = p.base_level + sim["level_dev"] + season + ctrl_effect
    media = sim["media"]
    sales = base_sales + media.sum(axis=1) + noise
    awareness = p.awareness_mean + sim["awareness_dev"]
    consideration = p.consideration_mean + sim["consideration_dev"]

    # ---- truth -------------------------------------------------------------------------
    truth_channels = {}
    for i, ch in enumerate(channels):
        total_spend = float(spend[:, i].sum())
        contrib = float(media[:, i].sum())
        st = contrib / total_spend if total_spend > 0 else 0.0
        # long term: one extra unit of spend at week t0, same noise, with and without
        t0 = 0
        hz = horizon
        ext = max(n_weeks, t0 + hz)
        sp_ext = np.zeros((ext, n))
        sp_ext[:n_weeks] = spend
        sp_ext[n_weeks:] = np.asarray(p.mean_spend)
        sh_ext = {k: np.concatenate([v, np.zeros(ext - n_weeks)]) for k, v in shocks.items()}
        delta = 1_000.0  # linear system: response to 1000 units / 1000 = response to one unit
        sp_plus = sp_ext.copy()
        sp_plus[t0, i] += delta
        base0 = _simulate(p, sp_ext, sh_ext, ext)["level_dev"]
        base1 = _simulate(p, sp_plus, sh_ext, ext)["level_dev"]
        lt = float((base1 - base0)[t0 : t0 + hz].sum() / delta)
        truth_channels[ch] = {
            "spend": total_spend,
            "contribution": contrib,
            "short_term_roi": st,
            "long_term_roi": lt,
            "total_roi": st + lt,
            "adstock_alpha": p.adstock_alpha[i],
            "hill_kappa": p.hill_kappa[i],
            "hill_lambda": p.hill_lambda[i],
            "beta": p.beta[i],
            "awareness_gain": p.awareness_gain[i],
        }
    truth = {
        "n_weeks": n_weeks,
        "seed": seed,
        "horizon": horizon,
        "units": "currency of sales per currency unit of spend",
        "channels": truth_channels,
        "base_sales_mean": float(base_sales.mean()),
        "sales_mean": float(sales.mean()),
    }

    sales_df = pd.DataFrame(
        {
            "Date": dates,
            "revenue": np.round(sales, 2),
            "lead_quantity": np.round(np.clip(sales / 500.0 + 40 * rng.standard_normal(n_weeks), 0, None)).astype(int),
        }
    )
    spend_long = pd.DataFrame(
        {
            "Date": np.repeat(dates, n),
            "Channel": np.tile(channels, n_weeks),
            "Spend": spend.reshape(-1),
        }
    )
    brand = pd.DataFrame(
        {"Date": dates, "Awareness": np.round(awareness, 3), "Consideration": np.round(consideration, 3)}
    )
    competitor_df = pd.DataFrame({"Date": dates, "Competitor_A_Spend": competitor})
    macro = pd.DataFrame(
        {
            "Date": dates,
            "GDP_Growth": np.round(gdp, 4),
            "Unemployment_Rate": np.round(unemployment, 4),
            "Consumer_Confidence": np.round(confidence, 3),
        }
    )
    components = pd.DataFrame(
        {"Date": dates, "sales": sales, "base_sales": base_sales, "seasonality": season,
         "controls": ctrl_effect, "noise": noise}
    )
    for i, ch in enumerate(channels):
        components[f"media_{ch}"] = media[:, i]
    return SyntheticData(sales_df, spend_long, brand, competitor_df, macro, truth, p, components)


def scenario_truth(data: SyntheticData, plan_spend, reference_spend, horizon: int | None = None) -> dict:
    """The generator's true response to a future spend plan against a reference plan.

    ``plan_spend`` and ``reference_spend`` are (W, C) weekly spend (currency, channels in the order of
    ``data.params.channels``) for the W weeks right after the data's last week. The simulation is
    continued past the data's end with each, with the same noise (future shocks identical in both),
    and the sales are differenced: the short-term part is the media response (adstock and Hill on
    the spend history followed by the plan), the long-term part the response of base sales through
    the brand funnel. The funnel is linear and the media carry no noise, so the difference does not
    depend on the noise at all.

    Returns, in currency of sales:

    * ``weekly_short`` (W, C), ``weekly_long_window`` (W, C): the simulated weekly differences per
      channel (long term: every effect that lands inside the W weeks);
    * ``irf`` (horizon, C): the true base-sales response per unit of spend, weeks 0..horizon-1;
    * ``weekly_long`` (W, C): long-term differences counting ``horizon`` weeks of response per
      week of extra spend, the convention of long-term ROI (and of ``ltae.analysis.scenarios``);
    * ``short_term``, ``long_term``, ``total`` (C,) sums over the W weeks (long term with the
      horizon convention), and ``*_all`` the sums over channels; ``long_term_window`` (C,) the
      simulated long-term sum inside the window."""
    p = data.params
    horizon = int(horizon or data.truth.get("horizon", 24))
    hist = data.spend_wide.to_numpy(dtype=float)
    n, C = hist.shape
    plan = np.asarray(plan_spend, dtype=float).reshape(-1, C)
    ref = np.asarray(reference_spend, dtype=float).reshape(-1, C)
    if plan.shape != ref.shape:
        raise ValueError(f"plan {plan.shape} and reference {ref.shape} must have the same shape")
    W = len(plan)
    total = n + W + horizon

    def sim(future: np.ndarray) -> dict:
        sp = np.vstack([hist, future, np.tile(ref[-1:] if W else np.asarray(p.mean_spend)[None], (horizon, 1))])
        zero = {k: np.zeros(total) for k in ("aw", "co", "lvl")}  # the same (any) noise in every run
        return _simulate(p, sp, zero, total)

    base = sim(ref)
    short = np.zeros((W, C))
    long_window = np.zeros((W, C))
    for c in range(C):  # the funnel is linear and media are per channel: channel c's own part
        fut = ref.copy()
        fut[:, c] = plan[:, c]
        run = sim(fut)
        short[:, c] = (run["media"] - base["media"])[n:n + W, c]
        long_window[:, c] = (run["level_dev"] - base["level_dev"])[n:n + W]
    # true impulse responses (one unit of spend in week 0), for the horizon convention
    irf = np.zeros((horizon, C))
    delta = 1_000.0
    for c in range(C):
        fut = np.vstack([ref, np.tile(ref[-1:] if W else np.asarray(p.mean_spend)[None], (horizon, 1))])
        imp = fut.copy()
        imp[0, c] += delta
        sp0 = np.vstack([hist, fut])
        sp1 = np.vstack([hist, imp])
        zero = {k: np.zeros(len(sp0)) for k in ("aw", "co", "lvl")}
        d = _simulate(p, sp1, zero, len(sp1))["level_dev"] - _simulate(p, sp0, zero, len(sp0))["level_dev"]
        irf[:, c] = d[n:n + horizon] / delta
    dspend = plan - ref
    weekly_long = np.zeros((W, C))
    for h in range(min(horizon, W)):
        weekly_long[h:] += irf[h][None, :] * dspend[:W - h]
    st, lt = short.sum(0), irf.sum(0) * dspend.sum(0)
    return {"channels": list(p.channels), "weekly_short": short, "weekly_long_window": long_window,
            "weekly_long": weekly_long, "irf": irf, "short_term": st, "long_term": lt, "total": st + lt,
            "long_term_window": long_window.sum(0), "short_term_all": float(st.sum()),
            "long_term_all": float(lt.sum()), "total_all": float((st + lt).sum()),
            "units": "currency of sales", "horizon": horizon}


def lift_test_truth(data: SyntheticData, channel: str, start: int, end: int, spend_change: float,
                    measured_until: int | None = None, spread: str = "even") -> dict:
    """The generator's true lift of a lift test: channel ``channel``'s spend changed by ``spend_change``
    in total over weeks ``start``..``end`` (0-based week indices, inclusive; ``spread``: ``"even"``, the
    same amount each week, or ``"proportional"`` to each week's spend), sales
    measured over weeks ``start``..``measured_until`` (default ``end``).

    Returns, in currency of sales: ``short_term``: the change of the channel's media effect (its own
    adstock, Hill and beta, the carry-over into the measured weeks included), the lift the short-term
    model describes; ``long_term``: the change of base sales through the brand funnel inside the
    measured weeks (not part of the short-term model's lift); ``total``: their sum."""
    p = data.params
    i = p.channels.index(channel)
    until = end if measured_until is None else measured_until
    if not 0 <= start <= end <= until < len(data.sales):
        raise ValueError(f"weeks must satisfy 0 <= start <= end <= measured_until < {len(data.sales)}")
    spend = data.spend_wide.to_numpy(dtype=float)
    changed = spend.copy()
    x = spend[start:end + 1, i]
    if spread == "proportional":
        changed[start:end + 1, i] += spend_change * x / x.sum()
    else:
        changed[start:end + 1, i] += spend_change / (end - start + 1)
    if (changed[:, i] < -1e-9).any():
        raise ValueError("the change makes the spend negative")
    changed[:, i] = np.maximum(changed[:, i], 0.0)
    n = len(spend)
    zero = {k: np.zeros(n) for k in ("aw", "co", "lvl")}  # the funnel is linear: the noise cancels
    a, b = _simulate(p, spend, zero, n), _simulate(p, changed, zero, n)
    w = slice(start, until + 1)
    st = float((b["media"][w, i] - a["media"][w, i]).sum())
    lt = float((b["level_dev"][w] - a["level_dev"][w]).sum())
    return {"short_term": st, "long_term": lt, "total": st + lt}


def save_to_csv(data: SyntheticData, output_dir) -> Path:
    """Write the five CSV files plus ``truth.json`` (atomically, file by file)."""
    from ltae.io import atomic_write_csv, atomic_write_json

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = {
        "sales.csv": data.sales,
        "marketing_spend.csv": data.marketing_spend,
        "brand_metrics.csv": data.brand_metrics,
        "competitor_activity.csv": data.competitor_activity,
        "macroeconomic_indicators.csv": data.macroeconomic_indicators,
    }
    for name, df in frames.items():
        df = df.copy()
        df["Date"] = pd.to_datetime(df["Date"]).dt.strftime("%Y-%m-%d")
        atomic_write_csv(out / name, df)
    payload = dict(data.truth)
    payload["params"] = asdict(data.params)
    atomic_write_json(out / "truth.json", payload)
    return out
