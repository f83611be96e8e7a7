"""Posterior summaries shared by the models and the analysis layer (no dependency on either).

``summarize_draws``: mean and equal-tailed credible interval of a set of draws;
``convergence_summary``: max R-hat, min bulk/tail ESS and divergences of a fitted posterior.
The models call these for their spec methods (``calculate_short_term_roi``, ``summary``), the
analysis layer for the ROI table and the checklist; ``ltae.analysis.roi`` and
``ltae.analysis.diagnostics`` re-export them under their old names.
"""

from __future__ import annotations

import warnings

import numpy as np

from ltae.models.sampling import posterior_dataset


def summarize_draws(draws, credible_interval: float = 0.95) -> dict:
    """Mean, median, equal-tailed ``credible_interval`` bounds, sd and P(> 0) of finite draws."""
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "lower": float("nan"), "upper": float("nan"),
                "sd": float("nan"), "prob_positive": float("nan")}
    q = (1.0 - credible_interval) / 2.0
    lo, hi = np.quantile(d, [q, 1.0 - q])
    return {"mean": float(d.mean()), "median": float(np.median(d)), "lower": float(lo), "upper": float(hi),
            "sd": float(d.std()), "prob_positive": float((d > 0).mean())}


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
