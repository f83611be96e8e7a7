"""Convergence and fit diagnostics, and the spec's validation checklist."""

from __future__ import annotations

import warnings

import numpy as np

from ltae.models.sampling import posterior_dataset


def _sample_stats(idata):
    try:
        ss = idata["sample_stats"]
    except (KeyError, TypeError):
        return None
    return ss.to_dataset() if hasattr(ss, "to_dataset") else ss


def convergence_summary(idata, var_names=None) -> dict:
    """max R-hat, min bulk/tail ESS, divergences over the named parameters."""
    import arviz as az

    post = posterior_dataset(idata)
    names = [v for v in (var_names or list(post.data_vars)) if v in post]
    ds = post[names]
    n_chains = ds.sizes.get("chain", 1)
    n_draws = ds.sizes.get("chain", 1) * ds.sizes.get("draw", 1)
    out = {"n_chains": int(n_chains), "n_draws": int(n_draws), "parameters": {}}
    with warnings.catch_warnings():  # constant entries (coefficients fixed at 0, a correlation's
        warnings.simplefilter("ignore", RuntimeWarning)  # diagonal) have no R-hat or ESS: skipped below
        rhat = az.rhat(ds) if n_chains > 1 else None
        ess_b = az.ess(ds, method="bulk")
        ess_t = az.ess(ds, method="tail")
    maxr, minb, mint = 1.0, np.inf, np.inf

    def _over(arr, fn, sampled):
        vals = np.asarray(arr)[sampled]
        vals = vals[np.isfinite(vals)]
        return float(fn(vals)) if vals.size else float("nan")

    for v in names:
        x = ds[v].values
        sampled = np.ptp(x.reshape((-1,) + x.shape[2:]), axis=0) > 0  # entries that vary over draws
        r = _over(rhat[v].values, np.max, sampled) if rhat is not None else float("nan")
        b = _over(ess_b[v].values, np.min, sampled)
        t = _over(ess_t[v].values, np.min, sampled)
        if not np.any(sampled):
            continue
        out["parameters"][v] = {"max_rhat": r, "min_ess_bulk": b, "min_ess_tail": t,
                                "mean": float(ds[v].mean()), "sd": float(ds[v].std())}
        if rhat is not None and r == r:
            maxr = max(maxr, r)
        minb, mint = min(minb, b if b == b else np.inf), min(mint, t if t == t else np.inf)
    ss = _sample_stats(idata)
    div = 0
    if ss is not None:
        for key in ("diverging", "divergences"):
            if key in ss:
                div = int(np.asarray(ss[key].values).sum())
                break
    out.update({"max_rhat": maxr if rhat is not None else float("nan"), "min_ess_bulk": float(minb),
                "min_ess_tail": float(mint), "divergences": div,
                "divergence_rate": div / max(n_draws, 1)})
    return out


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
