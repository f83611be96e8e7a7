"""The two-step pipeline: validate -> prepare -> short-term model -> base sales -> long-term model
-> IRFs -> ROI -> checklist -> budget -> figures -> report -> store.

Every artefact is written atomically. Each fitted posterior is saved as netCDF with its step key
(hash of the data, the settings the step depends on and, for the long-term step, the short-term
step's key) in the file's own attributes; a re-run with the same inputs loads a posterior whose
embedded key and shape (chains, draws, channels) match instead of refitting, so an interrupted run
resumes where it stopped, and a posterior from any other run is never reused.

One run at a time owns an output folder (``ltae.store.lock``: a second run into it stops at once).
``manifest.json`` says ``"running"`` while a run writes into the folder and ``"complete"`` (with
every artefact's sha256 and the step keys) only as the very last step; ``ltae.store.runs.open_run``
opens complete folders only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ltae.analysis.calibration import (
    lift_test_check,
    lift_test_checklist_row,
    lift_tests_frame,
    lift_tests_hash,
    lift_tests_within,
    read_lift_tests,
)
from ltae.analysis.diagnostics import fit_metrics
from ltae.analysis.optimize import ResponseModel, optimize_budget
from ltae.analysis.roi import (
    LT_ESTIMATED,
    LT_NO_BRAND,
    WEAK_DATA,
    align_draws,
    kpi_columns,
    long_term_status,
    roi_table,
    total_draws,
)
from ltae.analysis.scenarios import irf_dataset
from ltae.config import RunConfig, check_against_data
from ltae.models.bvar import BVAR
from ltae.models.mmm import ShortTermMMM, _fourier
from ltae.results import LongTermResult, RunResult, ShortTermResult
from ltae.store import artifacts as art
from ltae.store import runs as saved_runs

STEPS = ("prepare", "short_term", "long_term", "roi", "checklist", "budget", "figures", "report", "store")

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def _noop(step: str, status: str) -> None:  # progress callback
    pass


_load_posterior = saved_runs.load_posterior


def _posterior_mismatch(tree, expect: dict[str, int]) -> str | None:
    """Why a loaded posterior does not have the expected sizes (chain, draw, channel...), or None."""
    from ltae.models.sampling import posterior_dataset

    sizes = dict(posterior_dataset(tree).sizes)
    for dim, n in expect.items():
        if dim in sizes and sizes[dim] != n:
            return f"has {sizes[dim]} {dim}s, this run needs {n}"
    missing = [d for d in ("chain", "draw") if d not in sizes]
    return f"has no {' or '.join(missing)} dimension" if missing else None


def _saved_posterior(post: Path, step: str, key: str, expect: dict[str, int]):
    """(posterior, fit_info) if ``post`` holds this step's posterior for ``key`` with the expected
    sizes; else (None, why not)."""
    if not post.exists():
        return None, None
    try:
        attrs = saved_runs.posterior_attrs(post)
    except Exception as exc:  # noqa: BLE001 - unreadable (e.g. a truncated file): refit
        return None, f"cannot be read ({type(exc).__name__})"
    got = attrs.get(saved_runs.POSTERIOR_KEY_ATTR)
    if attrs.get(saved_runs.POSTERIOR_STEP_ATTR) != step or got != key:
        return None, (f"was fitted with other data or settings (key {got or 'none'}, this run {key})")
    try:
        tree = _load_posterior(post)
    except Exception as exc:  # noqa: BLE001
        return None, f"cannot be read ({type(exc).__name__})"
    why = _posterior_mismatch(tree, expect)
    if why:
        return None, why
    try:
        info = json.loads(attrs.get(saved_runs.POSTERIOR_FIT_INFO_ATTR) or "{}")
    except ValueError:
        info = {}
    return (tree, info), None


def _with_key(idata, meta: dict):
    """A shallow copy of ``idata`` whose root attributes carry ``meta`` (the step key)."""
    import xarray as xr

    if isinstance(idata, xr.DataTree):
        tree = idata.copy(deep=False)
        tree.attrs = {**idata.attrs, **meta}
        return tree
    idata = idata.copy() if hasattr(idata, "copy") else idata  # arviz InferenceData
    idata.attrs = {**getattr(idata, "attrs", {}), **meta}
    return idata


def _fit_or_resume(model, step: str, out: Path, key: str, cfg: RunConfig, progress, sampler: str, *,
                   upstream: str = "", data_hash: str = "", expect: dict[str, int] | None = None
                   ) -> tuple[bool, float]:
    """Fit ``model`` unless ``posteriors/<step>.nc`` holds this step's posterior: its embedded key
    is ``key`` and its sizes are ``expect`` (chains, draws, ...). Returns (resumed, seconds)."""
    post = out / "posteriors" / f"{step}.nc"
    s = cfg.sampling
    expect = {"chain": s.chains, "draw": s.draws, **(expect or {})}
    t0 = time.perf_counter()
    saved, why = _saved_posterior(post, step, key, expect)
    if saved is not None:
        if model.model is None:
            model.build_model()
        model.idata, model.fit_info = saved
        progress(step, "resumed")
        return True, time.perf_counter() - t0
    if why:
        progress(step, f"note: not reusing {post.relative_to(out)}: it {why}; fitting again")
    model.fit(draws=s.draws, tune=s.tune, chains=s.chains, target_accept=s.target_accept, sampler=sampler,
              seed=s.seed)
    meta = {saved_runs.POSTERIOR_STEP_ATTR: step, saved_runs.POSTERIOR_KEY_ATTR: key,
            saved_runs.POSTERIOR_UPSTREAM_ATTR: upstream, saved_runs.POSTERIOR_DATA_ATTR: data_hash,
            saved_runs.POSTERIOR_FIT_INFO_ATTR: art.dumps_strict(model.fit_info)}
    art.write_netcdf(post, _with_key(model.idata, meta))
    (out / "posteriors" / f"{step}.json").unlink(missing_ok=True)  # step key sidecar of older versions
    return False, time.perf_counter() - t0


def short_term_result(mmm: ShortTermMMM, ds, ci: float = 0.95) -> ShortTermResult:
    """The short-term model's results for the report and the store: ROI draws, contributions, base sales
    and fit with ``ci`` intervals, fit metrics, convergence, response curves."""
    q = (1 - ci) / 2
    contrib = mmm.media_contributions()
    base = mmm.base_sales_draws()
    ppc = mmm.posterior_predictive()
    fitted = mmm.predictive_mean()
    osa = mmm.one_step_ahead()
    metrics = fit_metrics(mmm.sales, fitted.mean(0), ppc, ci)
    osa_metrics = fit_metrics(mmm.sales, osa.mean(0), osa, ci)
    metrics["one_step_mape"] = osa_metrics["mape"]
    metrics["one_step_coverage"] = osa_metrics["coverage"]
    metrics["one_step_r2"] = osa_metrics["r2"]
    resp = ResponseModel.from_mmm(mmm)
    return ShortTermResult(
        channels=list(mmm.channels), dates=pd.DatetimeIndex(ds.dates), sales=mmm.sales, spend=mmm.spend,
        roi_draws=mmm.short_term_roi_draws(), marginal_roi_draws=mmm.marginal_roi_draws(),
        contributions_mean=contrib.mean(0), contributions_lower=np.quantile(contrib, q, 0),
        contributions_upper=np.quantile(contrib, 1 - q, 0), base_sales_mean=base.mean(0),
        base_sales_lower=np.quantile(base, q, 0), base_sales_upper=np.quantile(base, 1 - q, 0),
        fitted_mean=fitted.mean(0), fitted_lower=np.quantile(ppc, q, 0), fitted_upper=np.quantile(ppc, 1 - q, 0),
        fit_metrics=metrics, convergence=mmm.summary(), adstock_alpha_draws=mmm.draws("adstock_alpha"),
        l_max=mmm.priors.l_max, response_curves=resp.curves(credible_interval=ci), fit_info=mmm.fit_info,
    )


def build_bvar(ds, base_draws: np.ndarray, cfg: RunConfig) -> BVAR:
    """Endogenous: base sales (R replicate draws) + brand metrics; exogenous: spend (the impulse
    responses), plus Fourier terms and the controls as further inputs (``deterministic``)."""
    brand = ds.brand.values if ds.brand.shape[1] else np.zeros((ds.n_weeks, 0))
    reps = [np.column_stack([b, brand]) for b in base_draws]
    names = ["base_sales"] + list(ds.brand.columns)
    cols, col_names = [], []
    if cfg.bvar_seasonality:
        f = _fourier(np.arange(ds.n_weeks, dtype=float), cfg.mmm_priors.fourier_order, cfg.mmm_priors.period)
        cols.append(f)
        col_names += [f"fourier_{i}" for i in range(f.shape[1])]
    if cfg.bvar_controls and ds.controls.shape[1]:
        for lag in range(cfg.bvar_controls_lags + 1):  # lagged base sales carry lagged control effects
            # standardised inside the BVAR; the first weeks repeat week 1 (as the MMM's brand lags)
            cols.append(ds.controls.shift(lag).bfill().to_numpy(dtype=float))
            col_names += [f"control_{c}" + (f"_lag{lag}" if lag else "") for c in ds.controls.columns]
    det = np.column_stack(cols) if cols else None
    return BVAR(reps, ds.spend.values, cfg.bvar_priors.lags, names, list(ds.spend.columns), deterministic=det,
                deterministic_names=col_names or None, priors=cfg.bvar_priors)


def pick_base_draws(mmm: ShortTermMMM, replicates: int, seed: int, net_of_controls: bool = False) -> np.ndarray:
    """R base-sales draws spread over the posterior (or the mean when R == 1). ``net_of_controls``:
    minus the short-term model's control and seasonality effects of the same draw."""
    base = mmm.base_sales_draws()
    if net_of_controls:
        base = base - mmm.control_effect_draws()
    if replicates <= 1:
        return base.mean(0, keepdims=True)
    idx = np.sort(np.random.default_rng(seed).choice(len(base), replicates, replace=False))
    return base[idx]


def long_term_result(bvar: BVAR, cfg: RunConfig, irf: dict | None = None) -> LongTermResult:
    """The long-term model's results: impulse responses with intervals, long-term ROI draws, explosive
    draws, convergence."""
    if irf is None:
        irf = bvar.calculate_irf(periods=cfg.horizon, credible_interval=cfg.credible_interval)
    return LongTermResult(
        endog_names=bvar.endog_names, channels=bvar.exog_names, horizon=cfg.horizon, irf_mean=irf["mean"],
        irf_lower=irf["lower"], irf_upper=irf["upper"], cumulative_mean=irf["cumulative_mean"],
        cumulative_lower=irf["cumulative_lower"], cumulative_upper=irf["cumulative_upper"],
        roi_draws=bvar.long_term_roi_draws(irf, horizon=cfg.horizon), n_unstable=irf["n_unstable"],
        n_draws=irf["n_draws"], convergence=bvar.summary(), replicates=bvar.n_replicates, fit_info=bvar.fit_info,
    )


def _status(ok: bool, warn: bool = False) -> str:
    return "pass" if ok else ("warn" if warn else "fail")


def checklist(short: ShortTermResult, long: LongTermResult, roi: pd.DataFrame, sensitivity: dict | None,
              credible_interval: float = 0.95, lift_tests: list[dict] | None = None,
              backtest: dict | None = None) -> list:
    """The spec's validation checklist: one dict per check with ``check``, ``value``, ``threshold``,
    ``status`` ("pass", "warn", "fail", "not run" or "not applicable") and ``action``. The coverage
    check's band follows ``credible_interval`` (for 0.95: pass 90-98%, warn 85-99.5%). With a
    ``backtest`` (:func:`ltae.analysis.backtest.run_backtest`) the MAPE and coverage rows use its
    out-of-sample forecasts; ``lift_tests`` (:func:`ltae.analysis.calibration.lift_test_check`) adds
    whether the model agrees with each experiment."""
    conv = [short.convergence, long.convergence]
    rhat = max(c["max_rhat"] for c in conv)
    ess = min(c["min_ess_bulk"] for c in conv)
    div = max(c["divergence_rate"] for c in conv)
    m = short.fit_metrics
    ci_pct = round(credible_interval * 100, 6)
    cov_pass, cov_warn = coverage_band(credible_interval)
    out = [
        {"check": "R-hat", "value": rhat, "threshold": "< 1.01", "status": _status(rhat < 1.01, rhat < 1.05),
         "action": "Increase draws/tune, use 4 chains, or simplify the model / strengthen priors; if one chain alone is stuck (nearly all its transitions divergent), rerun with another seed."},
        {"check": "ESS (bulk)", "value": ess, "threshold": "> 1000", "status": _status(ess > 1000, ess > 400),
         "action": "Increase draws; reduce autocorrelation (reparameterise)."},
        {"check": "Divergences", "value": div * 100, "threshold": "< 1% of draws",
         "status": _status(div < 0.01, div < 0.05), "action": "Increase target_accept to 0.95+ or reparameterise."},
        {"check": "MAPE (one week ahead)", "value": m["one_step_mape"], "threshold": "< 15%",
         "status": _status(m["one_step_mape"] < 15), "action": "Add variables or revise the model structure."},
        {"check": "R² (one week ahead)", "value": m["one_step_r2"], "threshold": "> 0.80",
         "status": _status(m["one_step_r2"] > 0.8, m["one_step_r2"] > 0.6),
         "action": "Check for missing confounders."},
        {"check": f"{ci_pct:g}% interval coverage (one week ahead)", "value": m["one_step_coverage"] * 100,
         "threshold": f"{cov_pass[0] * 100:g}-{cov_pass[1] * 100:g}%",
         "status": _status(cov_pass[0] <= m["one_step_coverage"] <= cov_pass[1],
                           cov_warn[0] <= m["one_step_coverage"] <= cov_warn[1]),
         "action": "Adjust the noise priors or check data quality."},
    ]
    if backtest:
        out[3], out[5] = _backtest_rows(backtest["overall"], credible_interval)
    if sensitivity:
        ch = sensitivity["max_relative_change"]
        out.append({"check": "Prior sensitivity", "value": ch * 100, "threshold": "< 20% change in ROI",
                    "status": _status(ch < 0.2, ch < 0.4),
                    "action": "Use informative priors (experiments, industry benchmarks)."})
    else:
        out.append({"check": "Prior sensitivity", "value": None, "threshold": "< 20% change in ROI",
                    "status": "not run", "action": "Run with --prior-sensitivity (refits the short-term model)."})
    if lift_tests:
        out.append(lift_test_checklist_row(lift_tests))
    if short.fit_info.get("sampler") == "advi":  # variational: MCMC diagnostics do not apply
        for c in out[:3]:
            c["status"] = "not applicable"
            c["action"] = ("ADVI is a fast approximation (mean-field: it can understate uncertainty) with no "
                           "convergence diagnostics: refit with a NUTS sampler before acting.")
    bad = roi[(roi.total_roi_mean <= 0) | (roi.total_roi_mean >= 10)].channel.tolist()
    out.append({"check": "Business logic", "value": len(bad), "threshold": "0 < total ROI < 10 per unit",
                "status": _status(not bad, True),
                "action": ("Validate with holdout experiments: " + ", ".join(map(str, bad))) if bad else
                "Validate with holdout experiments."})
    unstable = long.n_unstable / max(long.n_draws, 1)
    out.append({"check": "BVAR stability", "value": unstable * 100, "threshold": "< 5% explosive draws",
                "status": _status(unstable < 0.05, unstable < 0.2),
                "action": "Use the Minnesota prior or fewer lags."})
    if "short_term_evidence" in roi:
        weak = roi[roi.short_term_evidence == "weak"].channel.tolist()
        out.append({"check": "Data informativeness (short-term ROI)", "value": len(weak),
                    "threshold": f"posterior variance < {1 - WEAK_DATA:.0%} of the prior's for every channel",
                    "status": _status(not weak, True),
                    "action": ("The data moved the short-term ROI of " + ", ".join(map(str, weak)) + " little from "
                               "its prior: treat it as the prior's guess, not a measurement, before moving budget; "
                               "an experiment (lift test) or more varied spend would inform it") if weak else
                    "None needed: the data narrowed every channel's short-term ROI well below its prior."})
    lt_ok = long.status == LT_ESTIMATED
    out.append({"check": "Long-term model", "value": None, "threshold": "estimated from brand metrics, stable",
                "status": "pass" if lt_ok else ("warn" if long.status == LT_NO_BRAND else "fail"),
                "action": "None needed." if lt_ok else (
                    f"Long-term ROI {long.status}: the total ROI is the short-term ROI only. "
                    + ("Add brand metrics (awareness, consideration...) to estimate long-term effects."
                       if long.status == LT_NO_BRAND else "Use fewer lags or the Minnesota prior."))})
    return out


def _backtest_rows(bt: dict, credible_interval: float) -> tuple[dict, dict]:
    """The MAPE and coverage rows from a backtest's out-of-sample forecasts. Coverage passes inside the
    in-sample band or when the count of covered forecasts is consistent with the nominal level (binomial
    test p >= 0.05; warn p >= 0.01): a few dozen forecasts cannot tell 95% from 100%."""
    from ltae.analysis.backtest import coverage_consistent

    k, n, h = bt["folds"], bt["n_forecasts"], bt["horizon"]
    ci_pct = round(credible_interval * 100, 6)
    cov_pass, cov_warn = coverage_band(credible_interval)
    mape = bt["mape_1_week"]
    cov = bt["coverage_all"]
    p = coverage_consistent(bt["n_covered"], n, credible_interval)
    mape_row = {"check": f"MAPE (out of sample: 1 week ahead, backtest of {k} folds)", "value": mape,
                "threshold": "< 15%", "status": "not run" if mape is None else _status(mape < 15),
                "action": "Add variables or revise the model structure."}
    cov_row = {"check": f"{ci_pct:g}% interval coverage (out of sample: 1-{h} weeks ahead, {n} forecasts in "
                        f"{k} folds)", "value": cov * 100,
               "threshold": f"{cov_pass[0] * 100:g}-{cov_pass[1] * 100:g}%, or consistent with {ci_pct:g}% "
                            "(binomial test p >= 0.05)",
               "status": _status(cov_pass[0] <= cov <= cov_pass[1] or p >= 0.05,
                                 cov_warn[0] <= cov <= cov_warn[1] or p >= 0.01),
               "action": "Adjust the noise priors or check data quality."}
    return mape_row, cov_row


NO_TESTS_STEP = "short_term_without_lift_tests"


def _lift_tests_step(mmm: ShortTermMMM, ds, cfg: RunConfig, out: Path, data_hash: str, progress,
                     timings: dict) -> tuple[dict | None, str | None]:
    """With lift tests: the model's predicted lift of each test against the measured one, with the tests
    in the likelihood and (``lift_tests_refit``) from the same model fitted without them (saved and
    resumed as ``posteriors/short_term_without_lift_tests.nc``, whose key is that of a run without
    tests). Returns (the ``lift_tests`` entry of diagnostics.json, the refit's key or None)."""
    post = out / "posteriors" / f"{NO_TESTS_STEP}.nc"
    if mmm.lift_tests is None:
        post.unlink(missing_ok=True)
        return None, None
    alone, key = None, None
    ci = cfg.credible_interval
    if cfg.lift_tests_refit:
        alone = ShortTermMMM.from_dataset(ds, cfg.channel_groups, cfg.mmm_priors)
        key = cfg.step_key("short_term", data_hash)
        progress("short_term", "note: fitting the short-term model once more without the lift tests, to compare "
                               "each test with what the sales data alone say")
        _, timings["lift_tests_refit_s"] = _fit_or_resume(
            alone, NO_TESTS_STEP, out, key, cfg, progress, cfg.sampling.sampler, data_hash=data_hash,
            expect={"channel": len(ds.channels), "control": len(ds.control_names)})
    else:
        post.unlink(missing_ok=True)
    q = (1 - ci) / 2

    def roi(m):
        d = m.short_term_roi_draws()
        return {c: {"mean": float(np.nanmean(d[:, i])), "lower": float(np.nanquantile(d[:, i], q)),
                    "upper": float(np.nanquantile(d[:, i], 1 - q))} for i, c in enumerate(m.channels)}

    diag = {"tests": lift_test_check(mmm, alone, ci), "credible_interval": ci,
            "roi_with_tests": roi(mmm), "roi_without_tests": roi(alone) if alone is not None else None}
    return diag, key


def backtest_check(ds, cfg: RunConfig, lift_tests: pd.DataFrame | None = None, progress=None) -> dict:
    """The rolling-origin backtest of ``cfg.backtest_folds`` folds (:func:`ltae.analysis.backtest.run_backtest`),
    the folds run where ``cfg.scheduler`` says."""
    from ltae.analysis.backtest import run_backtest

    progress = progress or _noop
    where = {None: "on a Dask LocalCluster", "serial": "one after the other"}.get(cfg.scheduler, f"on {cfg.scheduler}")
    progress("checklist", f"note: backtest: {cfg.backtest_folds} refits of the short-term model, {where}")
    s = cfg.sampling
    return run_backtest(ds, cfg.backtest_folds, priors=cfg.mmm_priors, channel_groups=cfg.channel_groups,
                        sampling=s.model_dump(), credible_interval=cfg.credible_interval,
                        lift_tests=lift_tests, scheduler=cfg.scheduler)


def coverage_band(credible_interval: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(pass, warn) ranges of the one-week-ahead interval coverage: the spec's 90-98% (warn 85-99.5%)
    for a 95% interval, shifted with the nominal level and capped at 100%."""
    c = credible_interval
    return ((round(c - 0.05, 6), round(min(c + 0.03, 1.0), 6)),
            (round(c - 0.10, 6), round(min(c + 0.045, 1.0), 6)))


def prior_sensitivity(ds, cfg: RunConfig, base_roi: np.ndarray, lift_tests: pd.DataFrame | None = None) -> dict:
    """Refit the short-term model with every prior scale halved and doubled (with the run's lift tests)."""
    res = {}
    for f in (0.5, 2.0):
        mmm = ShortTermMMM.from_dataset(ds, cfg.channel_groups, cfg.mmm_priors.scaled(f), lift_tests=lift_tests)
        s = cfg.sampling
        mmm.fit(draws=s.draws, tune=s.tune, chains=s.chains, target_accept=s.target_accept, sampler=s.sampler,
                seed=s.seed)
        res[f] = mmm.short_term_roi_draws().mean(0)
    base = base_roi.mean(0)
    rel = max(float(np.nanmax(np.abs(r - base) / np.maximum(np.abs(base), 1e-9))) for r in res.values())
    return {"factors": [0.5, 2.0], "roi_mean": {str(k): v.tolist() for k, v in res.items()},
            "max_relative_change": rel}


def holdout_check(ds, cfg: RunConfig, weeks: int, lift_tests: pd.DataFrame | None = None) -> dict:
    """Fit on the first N - weeks weeks and score the last ``weeks`` (time-ordered holdout); the lift
    tests measured inside the fitted weeks stay in the model."""
    n = ds.n_weeks - weeks
    train = ds.subset(0, n)
    mmm = ShortTermMMM.from_dataset(train, cfg.channel_groups, cfg.mmm_priors,
                                    lift_tests=lift_tests_within(lift_tests, train.dates))
    s = cfg.sampling
    mmm.fit(draws=s.draws, tune=s.tune, chains=s.chains, target_accept=s.target_accept, sampler=s.sampler,
            seed=s.seed)
    test = ds.subset(n, ds.n_weeks)
    fc = mmm.forecast(test.spend.values, test.controls.values if test.controls.shape[1] else None)
    m = fit_metrics(test.target.values, fc.mean(0), fc, cfg.credible_interval)
    m["train_weeks"], m["test_weeks"] = n, weeks
    return m


def run(data=None, out="ltae_output", config: RunConfig | dict | None = None,
        progress: Callable[[str, str], None] | None = None, store_path: str | Path | None = None,
        refresh_of: dict | None = None) -> RunResult:
    """Run the whole two-step pipeline and write every output into ``out``.

    ``progress(step, status)`` is called with status "start", "done", "resumed" and, for things a
    user should know (a stale lock taken over, a saved posterior not reused), "note: <text>".
    Raises :class:`ltae.store.lock.RunFolderBusy` at once if another run is writing into ``out``, and
    :class:`ltae.config.ConfigError` for settings that do not fit the data, before writing anything.
    ``store_path``: the DuckDB results store (default :func:`ltae.store.results.default_store`).
    ``refresh_of``: set by :func:`ltae.refresh.refresh` (the previous run it updates: its ROI table and
    what changed); the run then also writes ``refresh.json`` with the ROI before and after."""
    with contextlib.ExitStack() as stack:  # holds the output folder's lock until the run ends
        result = _run(data, out, config, progress, store_path, stack, refresh_of)
    _register(result, progress or _noop)  # after the lock is released: the folder is a finished run
    return result


def _register(result: RunResult, progress) -> None:
    """With ``mlflow.enabled`` in the config: log the finished run to MLflow and register a model
    version (``ltae.store.registry.log_run``)."""
    cfg = RunConfig.model_validate(result.config)
    if not cfg.mlflow.enabled:
        return
    from ltae.store.registry import RegistryError, log_run

    progress("registry", "start")
    m = cfg.mlflow
    try:
        result.registry = log_run(result.out_dir, tracking_uri=m.tracking_uri, experiment=m.experiment,
                                  model_name=m.model_name)
    except RegistryError as exc:
        raise RegistryError(exc.problem, file=exc.file,
                            hint=f"the run itself is complete in {result.out_dir}; register it later with "
                                 f"`ltae register --run {result.out_dir}`") from None
    progress("registry", f"note: registered {result.registry['model_uri']} in MLflow "
                         f"({result.registry['tracking_uri']}, run {result.registry['mlflow_run_id']})")
    progress("registry", "done")


def new_run_id(cfg: RunConfig, data_hash: str) -> str:
    """``<UTC time>-<settings key>-<random>``: unique also for identical runs in the same second."""
    return (f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}-{cfg.step_key('bvar', data_hash)[:8]}-"
            f"{secrets.token_hex(3)}")


def _run(data, out, config, progress, store_path, stack: contextlib.ExitStack, refresh_of: dict | None = None
         ) -> RunResult:
    from ltae.data import load_dataset
    from ltae.data.quality import quality_report
    from ltae.store.lock import RunLock, check_free

    progress = progress or _noop
    cfg = config if isinstance(config, RunConfig) else RunConfig.model_validate(config or {})
    if data is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": str(data)})})
    out = Path(out)
    if out.exists() and not out.is_dir():
        from ltae.data.validate import DataValidationError

        raise DataValidationError("the output path is a file, not a folder", file=str(out),
                                  hint="pass a folder to --out")
    check_free(out)  # a second run into a folder in use stops here, before any work
    timings: dict = {}
    t_all = time.perf_counter()

    # 1. validate + prepare (nothing is written before the data and the settings are valid)
    progress("prepare", "start")
    t = time.perf_counter()
    d = cfg.data
    ds = load_dataset(d.path, d.roles)
    check_against_data(cfg, ds)
    lift_tests = read_lift_tests(cfg.lift_tests, ds) if cfg.lift_tests else None  # errors before any write
    quality = quality_report(ds.national() if hasattr(ds, "national") else ds).to_dict()
    data_hash = ds.data_hash()
    run_id = new_run_id(cfg, data_hash)
    lock = stack.enter_context(RunLock(out, run_id))
    for note in lock.notices:
        progress("prepare", f"note: {note}")
    art.atomic_write_json(out / "manifest.json", {
        "status": "running", "run_id": run_id, "started": dt.datetime.now(dt.UTC).isoformat(),
        "pid": os.getpid(), "host": socket.gethostname(), "data_hash": data_hash})
    art.remove_stale_temporaries(out)
    from ltae.data.prepare import write_prepared

    write_prepared(ds, out / "prepared_data.csv")
    if lift_tests is not None:
        art.atomic_write_csv(out / "lift_tests.csv", lift_tests_frame(lift_tests))
    else:
        (out / "lift_tests.csv").unlink(missing_ok=True)  # an earlier run's tests are not this run's
    art.atomic_write_json(out / "quality.json", quality)
    timings["prepare_s"] = time.perf_counter() - t
    progress("prepare", "done")

    from ltae.data.panel import PanelDataset

    if isinstance(ds, PanelDataset):  # several markets: one hierarchical model, then each market's long term
        from ltae.pipeline_geo import geo_steps

        result, keys = geo_steps(ds, cfg, out, progress, timings, data_hash, run_id, quality)
    else:
        result, keys = _model_steps(ds, cfg, out, progress, timings, data_hash, run_id, quality, lift_tests)
    result.out_dir = str(out)
    if refresh_of is not None:  # the ROI before and after, in the diagnostics, the report and refresh.json
        from ltae.refresh import comparison

        result.diagnostics["refresh"] = {k: v for k, v in refresh_of.items() if k != "roi"} | {
            "comparison": comparison(refresh_of["roi"], result.roi).to_dict("records")}
        art.atomic_write_json(out / "refresh.json", result.diagnostics["refresh"])
        result.extra_files = [*result.extra_files, "refresh.json"]
    return _finish(result, cfg, out, progress, store_path, timings, t_all, data_hash, keys)


def _model_steps(ds, cfg: RunConfig, out: Path, progress, timings: dict, data_hash: str, run_id: str,
                 quality: dict, lift_tests: pd.DataFrame | None = None) -> tuple[RunResult, dict]:
    """Steps 2-6 for one market: short-term model, long-term model, ROI, checklist, budget."""
    # 2. short-term model
    progress("short_term", "start")
    mmm = ShortTermMMM.from_dataset(ds, cfg.channel_groups, cfg.mmm_priors, lift_tests=lift_tests)
    mmm.initial_values = cfg.sampling.initial_values
    st_key = cfg.step_key("short_term", data_hash, lift_tests=lift_tests_hash(lift_tests))
    resumed_st, timings["short_term_fit_s"] = _fit_or_resume(
        mmm, "short_term", out, st_key, cfg, progress, cfg.sampling.sampler, data_hash=data_hash,
        expect={"channel": len(ds.channels), "control": len(ds.control_names)})
    t = time.perf_counter()
    short = short_term_result(mmm, ds, cfg.credible_interval)
    timings["short_term_post_s"] = time.perf_counter() - t
    lift_diag, no_tests_post = _lift_tests_step(mmm, ds, cfg, out, data_hash, progress, timings)
    progress("short_term", "done")

    # 3. long-term model on base-sales draws
    progress("long_term", "start")
    base_draws = pick_base_draws(mmm, cfg.replicates, cfg.sampling.seed, cfg.bvar_net_of_controls)
    bvar = build_bvar(ds, base_draws, cfg)
    lt_key = cfg.step_key("bvar", data_hash, upstream=st_key)
    resumed_lt, timings["long_term_fit_s"] = _fit_or_resume(
        bvar, "long_term", out, lt_key, cfg, progress, cfg.sampling.bvar_sampler, upstream=st_key,
        data_hash=data_hash, expect={"exog": len(ds.channels)})
    t = time.perf_counter()
    irf = bvar.calculate_irf(periods=cfg.horizon, credible_interval=cfg.credible_interval)
    long = long_term_result(bvar, cfg, irf)
    long.status = long_term_status(len(ds.brand_names), cfg.bvar_priors.direct_spend_effect,
                                   long.n_unstable / max(long.n_draws, 1))
    if long.status != LT_ESTIMATED:
        progress("long_term", f"note: long-term ROI {long.status}; the total is the short-term ROI")
    # the impulse-response draws, so scenarios (ltae scenario, the dashboard) need no refit
    art.write_netcdf(out / "posteriors" / "irf.nc", irf_dataset(irf, status=long.status))
    timings["long_term_post_s"] = time.perf_counter() - t
    progress("long_term", "done")

    # 4. ROI (short + long draw by draw)
    progress("roi", "start")
    st, lt = align_draws(short.roi_draws, long.roi_draws, seed=cfg.sampling.seed)
    spend_tot = ds.spend.values.sum(0)
    roi = roi_table(list(ds.spend.columns), spend_tot, st, lt, cfg.credible_interval, long.status,
                    short_term_prior=mmm.prior_roi_draws(seed=cfg.sampling.seed))
    roi = kpi_columns(roi, ds.kpi)  # a KPI that is not money: incremental KPI per unit of spend, and CPIK
    total = total_draws(st, lt, roi)
    lt_used = total - st  # the long-term draws that enter the total (0 where the model cannot support it)
    progress("roi", "done")

    # 5. checklist (+ optional refits)
    progress("checklist", "start")
    sens = prior_sensitivity(ds, cfg, short.roi_draws, lift_tests) if cfg.prior_sensitivity else None
    if cfg.holdout_weeks:
        short.holdout = holdout_check(ds, cfg, cfg.holdout_weeks, lift_tests)
    backtest = None
    if cfg.backtest_folds:
        t = time.perf_counter()
        backtest = backtest_check(ds, cfg, lift_tests, progress)
        timings["backtest_s"] = time.perf_counter() - t
    checks = checklist(short, long, roi, sens, cfg.credible_interval,
                       lift_tests=lift_diag["tests"] if lift_diag else None, backtest=backtest)
    progress("checklist", "done")

    # 6. budget
    progress("budget", "start")
    resp = ResponseModel.from_mmm(mmm, lt_roi=lt_used, seed=cfg.sampling.seed)
    budget = optimize_budget(resp, cfg.budget, list(ds.spend.columns), tuple(cfg.budget_bounds),
                             cfg.risk_quantile, include_long_term=long.status == LT_ESTIMATED,
                             credible_interval=cfg.credible_interval)
    budget.attrs["long_term"] = long.status
    if "short_term_evidence" in roi:
        budget["short_term_evidence"] = roi["short_term_evidence"].to_numpy()
    progress("budget", "done")

    diagnostics = {
        "short_term": {k: short.convergence[k] for k in ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences",
                                                          "divergence_rate")} | {"sampler": mmm.fit_info.get("sampler"),
                                                                                 "resumed": resumed_st},
        "long_term": {k: long.convergence[k] for k in ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences",
                                                        "divergence_rate")} | {
            "unstable_draws": long.n_unstable, "irf_draws": long.n_draws, "replicates": long.replicates,
            "resumed": resumed_lt, "status": long.status},
        "fit": short.fit_metrics,
        "holdout": short.holdout,
        "backtest": backtest,
        "lift_tests": lift_diag,
        "prior_sensitivity": sens,
        "checklist": checks,
        "budget": dict(budget.attrs),
        "kpi": ds.kpi.to_dict(),  # what the target measures (revenue, or a non-revenue KPI such as conversions)
    }
    result = RunResult(run_id=run_id, config=cfg.model_dump(mode="json"), dataset_summary=ds.summary(),
                       quality=quality, short=short, long=long, roi=roi, total_roi_draws=total,
                       checklist=checks, budget=budget, timings=timings, diagnostics=diagnostics, out_dir=str(out))
    draws_df = pd.DataFrame(total, columns=[f"total_{c}" for c in ds.spend.columns])
    result.draws = draws_df.join(pd.DataFrame(st, columns=[f"short_{c}" for c in ds.spend.columns])).join(
        pd.DataFrame(lt_used, columns=[f"long_{c}" for c in ds.spend.columns]))
    result.extra_files = ["posteriors/irf.nc"]
    keys = {"data": data_hash, "short_term": st_key, "long_term": lt_key}
    if lift_diag:
        result.extra_files.append("lift_tests.csv")
        if lift_diag.get("roi_without_tests"):
            result.extra_files.append(f"posteriors/{NO_TESTS_STEP}.nc")
    if no_tests_post is not None:
        keys["short_term_without_lift_tests"] = no_tests_post
    return result, keys


def _finish(result: RunResult, cfg: RunConfig, out: Path, progress, store_path, timings: dict, t_all: float,
            data_hash: str, keys: dict) -> RunResult:
    """Step 7 on: figures, report and tables, the store's record, then the complete manifest."""
    progress("figures", "start")
    t = time.perf_counter()
    from ltae.report import make_figures, write_report

    result.figures = make_figures(result, out)
    timings["figures_s"] = time.perf_counter() - t
    progress("figures", "done")
    progress("report", "start")
    art.atomic_write_csv(out / "roi.csv", result.markets["roi"] if result.markets else result.roi)
    art.atomic_write_csv(out / "budget.csv", result.budget)
    art.atomic_write_json(out / "diagnostics.json", result.diagnostics)
    art.atomic_write_csv(out / "roi_draws.csv", result.draws)
    timings["total_s"] = time.perf_counter() - t_all
    write_report(result, result.figures, out / "report.html")
    progress("report", "done")

    progress("store", "start")
    from ltae.store.results import record_run

    record_run(store_path or default_store(), result)
    progress("store", "done")
    # the folder is marked complete only now, after every artefact and the store's record
    art.atomic_write_json(out / "manifest.json", manifest(result, cfg, data_hash, keys))
    return result


def default_store(out: Path | None = None) -> Path:
    """The results store every command uses (``out`` is ignored: kept for old callers); see
    :func:`ltae.store.results.default_store`."""
    from ltae.store.results import default_store as _default

    return _default()


def manifest(result: RunResult, cfg: RunConfig, data_hash: str, keys: dict | None = None) -> dict:
    """The complete run's manifest: settings, versions, step keys and every artefact's sha256."""
    from importlib.metadata import PackageNotFoundError, version

    vers = {}
    for pkg in ("ltae", "pymc", "pytensor", "pymc-marketing", "nutpie", "numpyro", "jax", "arviz", "numpy",
                "pandas", "scipy", "statsmodels"):
        try:
            vers[pkg] = version(pkg)
        except PackageNotFoundError:
            vers[pkg] = None
    files = sorted(["report.html", "roi.csv", "budget.csv", "diagnostics.json", "prepared_data.csv",
                    "prepared_data.roles.json", "quality.json", "roi_draws.csv", "posteriors/short_term.nc",
                    "posteriors/long_term.nc", *result.extra_files, *result.figures.values()])
    out = Path(result.out_dir)
    return {"status": "complete", "run_id": result.run_id, "created": dt.datetime.now(dt.UTC).isoformat(),
            "config": cfg.model_dump(mode="json"),
            "data_hash": data_hash, "dataset": result.dataset_summary, "seed": cfg.sampling.seed,
            "versions": vers, "python": platform.python_version(), "timings": result.timings,
            "keys": keys or {}, "files": files, "artifacts": {f: art.sha256_file(out / f) for f in files}}


def load_saved_run(run_dir: str | Path):
    """Rebuild the response model of a finished run from its files (no refit). Raises
    :class:`ltae.store.runs.RunFolderError` for a missing, incomplete or mixed folder."""
    saved = run_dir if isinstance(run_dir, saved_runs.SavedRun) else saved_runs.open_run(run_dir)
    cfg, ds = saved.config, saved.dataset
    from ltae.data.panel import PanelDataset

    if isinstance(ds, PanelDataset):  # a multi-market run: the national budget across channels
        from ltae.analysis.optimize import MarketResponse
        from ltae.models.sampling import stacked
        from ltae.pipeline_geo import geo_model

        geo = geo_model(ds, cfg)
        geo.idata = saved.posterior("short_term")
        lt = stacked(saved.posterior("long_term"), "long_term_roi")  # (S, M, C)
        info = saved.fit_info("long_term").get("markets", {})
        used = np.array([info.get(m, {}).get("status", LT_ESTIMATED) == LT_ESTIMATED for m in geo.markets])
        return MarketResponse.from_geo(geo, lt_roi=lt * used[None, :, None], seed=cfg.sampling.seed), list(ds.channels)
    mmm = ShortTermMMM.from_dataset(ds, cfg.channel_groups, cfg.mmm_priors)
    mmm.idata = saved.posterior("short_term")
    lt = saved.roi_draws()
    lt_draws = lt[[f"long_{c}" for c in ds.spend.columns]].values
    return ResponseModel.from_mmm(mmm, lt_roi=lt_draws, seed=cfg.sampling.seed), list(ds.spend.columns)
