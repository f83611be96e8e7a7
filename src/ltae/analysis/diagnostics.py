"""Fit diagnostics (MAPE, R², interval coverage); convergence summaries live in
:mod:`ltae.models.diagnostics` (re-exported here)."""

from __future__ import annotations

import numpy as np

from ltae.models.diagnostics import convergence_summary  # noqa: F401 - its old home; re-exported


def fit_metrics(y: np.ndarray, pred_mean: np.ndarray, pred_draws: np.ndarray, ci: float = 0.95) -> dict:
    """MAPE (%), R^2 and the share of observations inside the predictive interval."""
    y = np.asarray(y, dtype=float)
    q = (1 - ci) / 2
    lo, hi = np.quantile(pred_draws, [q, 1 - q], axis=0)
    nz = np.abs(y) > 0
    mape = float(np.mean(np.abs((y[nz] - pred_mean[nz]) / y[nz])) * 100)
    ss_res = float(np.sum((y - pred_mean) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"mape": mape, "r2": 1 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
            "coverage": float(np.mean((y >= lo) & (y <= hi))), "n": int(len(y))}
