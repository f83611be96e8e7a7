"""ROI summaries: posterior draws -> mean and equal-tailed credible interval; total = short + long."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltae.models.diagnostics import summarize_draws  # noqa: F401 - its old home; re-exported


def align_draws(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pair draws of two independent-posterior quantities: same count, deterministic permutation."""
    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    ia = np.sort(rng.choice(len(a), n, replace=False)) if len(a) > n else np.arange(n)
    ib = np.sort(rng.choice(len(b), n, replace=False)) if len(b) > n else np.arange(n)
    return a[ia], b[ib]


def roi_table(channels, spend, short_draws, long_draws, credible_interval: float = 0.95) -> pd.DataFrame:
    """The roi.csv table. ``short_draws`` (S, C) and ``long_draws`` (S', C) are paired draw by draw
    (the long-term draws are built on short-term draws, so index k of both belongs together)."""
    rows = []
    s, lt = short_draws, long_draws
    if len(s) != len(lt):
        s, lt = align_draws(s, lt)
    total = s + lt
    for i, ch in enumerate(channels):
        a = summarize_draws(s[:, i], credible_interval)
        b = summarize_draws(lt[:, i], credible_interval)
        c = summarize_draws(total[:, i], credible_interval)
        rows.append({
            "channel": ch, "spend": float(spend[i]),
            "short_term_roi_mean": a["mean"], "short_term_roi_lower": a["lower"], "short_term_roi_upper": a["upper"],
            "long_term_roi_mean": b["mean"], "long_term_roi_lower": b["lower"], "long_term_roi_upper": b["upper"],
            "total_roi_mean": c["mean"], "total_roi_lower": c["lower"], "total_roi_upper": c["upper"],
        })
    return pd.DataFrame(rows)
