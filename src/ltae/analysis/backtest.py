"""Rolling-origin backtests of the short-term model: honest out-of-sample forecast errors.

Fold k (k = 1..K) fits the short-term model on the first N - k * h weeks (h = 4) and forecasts the
next h weeks with the spend and controls that actually happened (``ShortTermMMM.forecast``: the
level filtered to the fold's last week and carried forward, seasonality continued, the media
response of the actual spend, carry-over from the fitted weeks included, observation noise). The
forecasts are scored against the sales of those weeks: the absolute percentage error of the mean
forecast and whether the sales fall inside the forecast's credible interval, per fold and per step
ahead (1 = the week right after the fold's data, ... h).

Folds are independent fits: :func:`run_backtest` fans them out with :func:`ltae.distributed.fan_out`
(serially, on a Dask LocalCluster or on a cluster); every fold uses the run's seed, so the numbers do
not depend on where the folds ran.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ltae.data.validate import fmt_date

BACKTEST_HORIZON = 4  # weeks forecast by each fold (and the spacing of the fold origins)


def fold_origins(n_weeks: int, folds: int, horizon: int = BACKTEST_HORIZON) -> list[int]:
    """The training lengths of the folds, latest first: N - h, N - 2h, ..., N - K h."""
    return [n_weeks - k * horizon for k in range(1, folds + 1)]


def _fit_fold(item: dict) -> dict:
    """One fold (a task for :func:`ltae.distributed.fan_out`: a pure function of its item): fit on the
    first ``train_weeks`` weeks, forecast the next ``horizon`` weeks; returns the forecast draws."""
    from ltae.analysis.calibration import lift_tests_within
    from ltae.models.mmm import MMMPriors, ShortTermMMM

    ds, n, h = item["dataset"], item["train_weeks"], item["horizon"]
    priors = MMMPriors.model_validate(item["priors"])
    train = ds.subset(0, n)
    mmm = ShortTermMMM.from_dataset(train, item["channel_groups"], priors,
                                    lift_tests=lift_tests_within(item["lift_tests"], train.dates))
    s = item["sampling"]
    mmm.fit(draws=s["draws"], tune=s["tune"], chains=s["chains"], target_accept=s["target_accept"],
            sampler=s["sampler"], seed=s["seed"])
    # the future controls exactly as the model builds them (brand-lag controls included)
    future = ShortTermMMM.from_dataset(ds.subset(0, n + h), item["channel_groups"], priors).controls[n:]
    fc = mmm.forecast(ds.spend.values[n:n + h], future if future.shape[1] else None, seed=s["seed"])
    conv = mmm.summary()
    return {"train_weeks": n, "draws": fc, "max_rhat": conv.get("max_rhat"), "divergences": conv.get("divergences")}


def score_fold(actual: np.ndarray, draws: np.ndarray, credible_interval: float) -> dict:
    """Mean forecast, interval, absolute percentage error (%) and coverage of one fold's forecast
    draws (S, h) against the actual sales (h,)."""
    actual = np.asarray(actual, dtype=float)
    q = (1 - credible_interval) / 2
    mean = draws.mean(axis=0)
    lo, hi = np.quantile(draws, [q, 1 - q], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ape = np.where(actual != 0, np.abs(actual - mean) / np.abs(actual) * 100, np.nan)
    return {"actual": actual.tolist(), "mean": mean.tolist(), "lower": lo.tolist(), "upper": hi.tolist(),
            "ape": ape.tolist(), "covered": ((actual >= lo) & (actual <= hi)).tolist()}


def summarize_folds(folds: list[dict], horizon: int, credible_interval: float) -> dict:
    """Overall figures of scored folds: MAPE (%) and coverage per step ahead (``mape_by_step``,
    ``coverage_by_step``), for 1 and ``horizon`` weeks ahead, and pooled over every step."""
    ape = np.array([f["ape"] for f in folds], dtype=float)  # (K, h)
    cov = np.array([f["covered"] for f in folds], dtype=float)
    by_mape = [float(np.nanmean(ape[:, j])) if np.isfinite(ape[:, j]).any() else None for j in range(horizon)]
    by_cov = [float(cov[:, j].mean()) for j in range(horizon)]
    return {"folds": len(folds), "horizon": horizon, "credible_interval": credible_interval,
            "n_forecasts": int(cov.size), "mape_1_week": by_mape[0], f"mape_{horizon}_weeks": by_mape[-1],
            "coverage_1_week": by_cov[0], f"coverage_{horizon}_weeks": by_cov[-1],
            "mape_all": float(np.nanmean(ape)) if np.isfinite(ape).any() else None,
            "coverage_all": float(cov.mean()), "n_covered": int(cov.sum()),
            "mape_by_step": by_mape, "coverage_by_step": by_cov}


def run_backtest(ds, folds: int, *, priors, channel_groups=None, sampling: dict, credible_interval: float = 0.95,
                 lift_tests: pd.DataFrame | None = None, scheduler: str | None = "serial",
                 horizon: int = BACKTEST_HORIZON, progress: Callable[[int, int], None] | None = None) -> dict:
    """Rolling-origin backtest of the short-term model on ``ds`` (an
    :class:`~ltae.data.dataset.MMMDataset`) with ``folds`` folds (see the module docstring).

    ``priors``: :class:`~ltae.models.mmm.MMMPriors`; ``sampling``: draws, tune, chains, target_accept,
    sampler, seed; ``lift_tests``: the run's lift tests (each fold keeps those measured inside its
    weeks); ``scheduler``: "serial", None (a Dask LocalCluster on this machine) or a Dask scheduler
    address.

    Returns ``{"folds": [...], "overall": {...}}``: per fold (latest origin first) ``fold``,
    ``train_weeks``, ``origin`` (the fold's last fitted week), ``dates`` (the forecast weeks),
    ``actual``, ``mean``, ``lower``, ``upper`` (currency of sales), ``ape`` (%), ``covered``,
    ``max_rhat``, ``divergences``; overall as :func:`summarize_folds`."""
    from ltae.distributed import fan_out

    origins = fold_origins(ds.n_weeks, folds, horizon)
    if not origins or origins[-1] < 2:
        raise ValueError(f"{folds} folds of {horizon} weeks do not fit in {ds.n_weeks} weeks")
    pri = priors.model_dump() if hasattr(priors, "model_dump") else dict(priors)
    keys = ("draws", "tune", "chains", "target_accept", "sampler", "seed")
    items = [{"dataset": ds, "train_weeks": n, "horizon": horizon, "priors": pri, "channel_groups": channel_groups,
              "sampling": {k: sampling[k] for k in keys}, "lift_tests": lift_tests} for n in origins]
    results = fan_out(_fit_fold, items, scheduler=scheduler, progress=progress)
    dates = pd.DatetimeIndex(ds.dates)
    y = ds.target.to_numpy(dtype=float)
    out = []
    for k, (n, res) in enumerate(zip(origins, results, strict=True), start=1):
        rec = {"fold": k, "train_weeks": n, "origin": fmt_date(dates[n - 1]),
               "dates": [fmt_date(d) for d in dates[n:n + horizon]]}
        rec.update(score_fold(y[n:n + horizon], res["draws"], credible_interval))
        rec.update({"max_rhat": res["max_rhat"], "divergences": res["divergences"]})
        out.append(rec)
    return {"folds": out, "overall": summarize_folds(out, horizon, credible_interval)}


def coverage_consistent(n_covered: int, n: int, level: float) -> float:
    """Two-sided binomial test p-value of ``n_covered`` of ``n`` forecasts inside their ``level``
    intervals (1: exactly as expected; small: too few or too many)."""
    from scipy.stats import binomtest

    if n <= 0:
        return float("nan")
    return float(binomtest(int(n_covered), int(n), level).pvalue)
