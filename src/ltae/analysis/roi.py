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
