"""ROI summaries: posterior draws -> mean and equal-tailed credible interval; total = short + long."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltae.models.diagnostics import summarize_draws  # noqa: F401 - its old home; re-exported


def prior_posterior_shift(prior: np.ndarray, posterior: np.ndarray) -> dict[str, np.ndarray]:
    """How far the data moved each column (channel) from its prior, without a refit.

    ``contraction`` = 1 - posterior variance / prior variance (1: the data pin the value down; 0: the
    posterior is as wide as the prior, the data said nothing); ``shift`` = (posterior mean - prior
    mean) / prior sd. Both per column of the (draws, C) inputs."""
    prior, posterior = np.asarray(prior, float), np.asarray(posterior, float)
    pv = np.nanvar(prior, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        contraction = 1.0 - np.nanvar(posterior, axis=0) / pv
        shift = (np.nanmean(posterior, axis=0) - np.nanmean(prior, axis=0)) / np.sqrt(pv)
    return {"contraction": contraction, "shift": shift}


# A long-term ROI enters the total only when the long-term model can support it.
LT_ESTIMATED = "estimated"
LT_NO_BRAND = "not estimated: no brand metrics"
LT_UNSTABLE = "unreliable: the VAR is unstable"
UNSTABLE_LIMIT = 0.2  # share of explosive draws from which the long-term model is not used


def long_term_status(n_brand: int, direct_spend_effect: bool, unstable_share: float) -> str:
    """Whether the long-term ROI can be used: without brand metrics and without a direct spend effect
    on base sales (the funnel model), spend has no path to base sales, so nothing is estimated; a VAR
    with ``UNSTABLE_LIMIT`` or more explosive draws is not used."""
    if n_brand == 0 and not direct_spend_effect:
        return LT_NO_BRAND
    if unstable_share >= UNSTABLE_LIMIT:
        return f"{LT_UNSTABLE} ({unstable_share:.0%} explosive draws)"
    return LT_ESTIMATED


def align_draws(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pair draws of two independent-posterior quantities: same count, deterministic permutation."""
    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    ia = np.sort(rng.choice(len(a), n, replace=False)) if len(a) > n else np.arange(n)
    ib = np.sort(rng.choice(len(b), n, replace=False)) if len(b) > n else np.arange(n)
    return a[ia], b[ib]


WEAK_DATA = 0.5  # prior-posterior contraction below which the data said little about a channel's ROI


def roi_table(channels, spend, short_draws, long_draws, credible_interval: float = 0.95,
              long_term_status: str | list[str] = LT_ESTIMATED, short_term_prior: np.ndarray | None = None,
              ) -> pd.DataFrame:
    """The roi.csv table. ``short_draws`` (S, C) and ``long_draws`` (S', C) are paired draw by draw
    (the long-term draws are built on short-term draws, so index k of both belongs together).

    ``long_term_status`` (one for all channels or one per channel): a channel's long-term ROI enters
    the total only when it is :data:`LT_ESTIMATED`; otherwise the total is the short-term ROI and
    ``total_includes_long_term`` says so (the long-term columns are empty when nothing was estimated).
    ``short_term_prior`` (draws, C): prior draws of short-term ROI; adds the data's weight per channel
    (``short_term_contraction``, ``short_term_prior_shift``) and ``short_term_evidence`` = "weak" where
    the posterior is nearly as wide as the prior."""
    s, lt = short_draws, long_draws
    if len(s) != len(lt):
        s, lt = align_draws(s, lt)
    status = [long_term_status] * len(channels) if isinstance(long_term_status, str) else list(long_term_status)
    used = np.array([st == LT_ESTIMATED for st in status])
    total = s + lt * used[None, :]
    shift = prior_posterior_shift(short_term_prior, s) if short_term_prior is not None else None
    rows = []
    for i, ch in enumerate(channels):
        a = summarize_draws(s[:, i], credible_interval)
        b = summarize_draws(lt[:, i], credible_interval) if status[i] != LT_NO_BRAND else dict.fromkeys(
            ("mean", "lower", "upper"), float("nan"))
        c = summarize_draws(total[:, i], credible_interval)
        row = {
            "channel": ch, "spend": float(spend[i]),
            "short_term_roi_mean": a["mean"], "short_term_roi_lower": a["lower"], "short_term_roi_upper": a["upper"],
            "long_term_roi_mean": b["mean"], "long_term_roi_lower": b["lower"], "long_term_roi_upper": b["upper"],
            "total_roi_mean": c["mean"], "total_roi_lower": c["lower"], "total_roi_upper": c["upper"],
            "long_term_status": status[i], "total_includes_long_term": bool(used[i]),
        }
        if shift is not None:
            con = float(shift["contraction"][i])
            row.update({"short_term_contraction": con, "short_term_prior_shift": float(shift["shift"][i]),
                        "short_term_evidence": "weak" if not con >= WEAK_DATA else "ok"})
        rows.append(row)
    return pd.DataFrame(rows)


def total_draws(short_draws: np.ndarray, long_draws: np.ndarray, roi: pd.DataFrame) -> np.ndarray:
    """Total ROI draws as the ROI table adds them (long term only where it is used)."""
    used = roi["total_includes_long_term"].to_numpy(bool) if "total_includes_long_term" in roi else True
    return short_draws + long_draws * np.asarray(used)[None, :]


# ---- a KPI that is not revenue: labels and cost per incremental KPI ----------------------------

ROI_TERMS = ("short_term", "long_term", "total")


def _kpi_dict(kpi) -> dict:
    """A :class:`ltae.data.kpi.KPI` or its ``to_dict()`` (e.g. read from a manifest) as a dict."""
    d = kpi.to_dict() if hasattr(kpi, "to_dict") else dict(kpi)
    if d.get("type") not in ("revenue", "non_revenue"):
        raise ValueError(f"KPI type must be 'revenue' or 'non_revenue', not {d.get('type')!r}")
    return d


def kpi_labels(kpi) -> dict[str, str | None]:
    """How outputs name the return of spend for a KPI (a :class:`~ltae.data.kpi.KPI` or its dict).

    Revenue: ``return_name`` "ROI", ``return_unit`` "currency per currency unit of spend", no cost
    measure. A non-revenue KPI with unit ``u`` (e.g. conversions): ``return_name`` "incremental u per
    unit of spend", ``return_unit`` "u per currency unit of spend", ``cost_name`` "CPIK (cost per
    incremental u)", ``cost_unit`` "currency per u"."""
    d = _kpi_dict(kpi)
    if d["type"] == "revenue":
        return {"kpi_type": "revenue", "kpi_unit": "currency", "return_name": "ROI",
                "return_unit": "currency per currency unit of spend", "cost_name": None, "cost_unit": None}
    u = str(d.get("unit") or d.get("name") or "KPI")
    return {"kpi_type": "non_revenue", "kpi_unit": u, "return_name": f"incremental {u} per unit of spend",
            "return_unit": f"{u} per currency unit of spend", "cost_name": f"CPIK (cost per incremental {u})",
            "cost_unit": f"currency per {u}"}


def _reciprocal(x: np.ndarray) -> np.ndarray:
    """1/x for x > 0; +inf for x <= 0 (no incremental KPI for the spend); NaN stays NaN."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(np.isnan(x), np.nan, np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), np.inf))


def kpi_columns(roi: pd.DataFrame, kpi) -> pd.DataFrame:
    """An ROI table (:func:`roi_table`, or the per-market table of a panel) in the units of its KPI.

    For a revenue KPI the table is returned as it is (a copy). For a non-revenue KPI the
    ``*_roi_*`` columns are "incremental KPI per currency unit of spend" (same numbers, same names,
    so every reader keeps working) and the table gets, for each term (short_term, long_term, total)
    present, the cost per incremental KPI (CPIK = spend / incremental KPI):

    * ``<term>_cpik`` = 1 / ``<term>_roi_mean`` (spend per unit of the posterior-mean incremental KPI);
    * ``<term>_cpik_lower`` = 1 / ``<term>_roi_upper`` and ``<term>_cpik_upper`` = 1 / ``<term>_roi_lower``:
      CPIK falls as ROI rises, so these are exactly the ends of the same equal-tailed interval of the
      CPIK draws (when the ROI interval is above 0);
    * an ROI at or below 0 means no incremental KPI for the spend: its CPIK is +inf (an interval whose
      lower ROI end is <= 0 has no upper CPIK bound); NaN (e.g. no long-term estimate) stays NaN;

    plus ``return_unit`` (e.g. "conversions per currency unit of spend"). ``attrs["kpi"]`` and
    ``attrs["labels"]`` (:func:`kpi_labels`) are set in both cases."""
    d = _kpi_dict(kpi)
    labels = kpi_labels(d)
    out = roi.copy()
    out.attrs = {**roi.attrs, "kpi": d, "labels": labels}
    if d["type"] == "revenue":
        return out
    for term in ROI_TERMS:
        mean, lo, hi = (f"{term}_roi_{s}" for s in ("mean", "lower", "upper"))
        if mean not in roi:
            continue
        out[f"{term}_cpik"] = _reciprocal(roi[mean].to_numpy())
        if hi in roi and lo in roi:
            out[f"{term}_cpik_lower"] = _reciprocal(roi[hi].to_numpy())
            out[f"{term}_cpik_upper"] = _reciprocal(roi[lo].to_numpy())
    out["return_unit"] = labels["return_unit"]
    return out
