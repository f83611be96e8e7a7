"""Plain result objects passed between pipeline stages, the report and the store.

Everything here is numpy / pandas / plain Python so it serialises to JSON, CSV and netCDF.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class ShortTermResult:
    """Results of the short-term model: ROI draws, contributions, base sales, fit and convergence (currency
    of sales unless noted)."""
    channels: list[str]
    dates: pd.DatetimeIndex
    sales: np.ndarray  # (T,) observed target, currency
    spend: np.ndarray  # (T, C) currency
    roi_draws: np.ndarray  # (S, C) short-term ROI draws
    marginal_roi_draws: np.ndarray  # (S, C)
    contributions_mean: np.ndarray  # (T, C) currency
    contributions_lower: np.ndarray  # (T, C)
    contributions_upper: np.ndarray  # (T, C)
    base_sales_mean: np.ndarray  # (T,)
    base_sales_lower: np.ndarray
    base_sales_upper: np.ndarray
    fitted_mean: np.ndarray  # (T,) posterior mean of fitted sales
    fitted_lower: np.ndarray  # (T,) predictive band at the run's credible_interval
    fitted_upper: np.ndarray
    fit_metrics: dict  # mape, r2, coverage (in-sample), one_step coverage
    convergence: dict  # max_rhat, min_ess_bulk, divergences, ...
    adstock_alpha_draws: np.ndarray  # (S, C)
    l_max: int
    response_curves: dict  # {"multipliers": (K,), "mean": (K, C), "lower", "upper"} window contribution
    fit_info: dict = field(default_factory=dict)
    holdout: dict | None = None


@dataclass
class LongTermResult:
    """Results of the long-term model: impulse responses (per unit of spend), long-term ROI draws,
    stability and convergence."""
    endog_names: list[str]
    channels: list[str]
    horizon: int
    irf_mean: np.ndarray  # (H, n, C) response per unit of spend, original units
    irf_lower: np.ndarray
    irf_upper: np.ndarray
    cumulative_mean: np.ndarray  # (H, n, C)
    cumulative_lower: np.ndarray
    cumulative_upper: np.ndarray
    roi_draws: np.ndarray  # (S', C) long-term ROI draws (currency per currency unit)
    n_unstable: int
    n_draws: int
    convergence: dict
    replicates: int
    fit_info: dict = field(default_factory=dict)
    # whether the long-term ROI can be used (ltae.analysis.roi.long_term_status): "estimated", or why not
    status: str = "estimated"


@dataclass
class RunResult:
    """Everything a run produced (what :func:`ltae.pipeline.run` returns): both models' results, the ROI
    table and draws, checklist, budget, diagnostics, timings and the output folder."""
    run_id: str
    config: dict
    dataset_summary: dict
    quality: dict
    short: ShortTermResult
    long: LongTermResult
    roi: pd.DataFrame  # the roi.csv table
    total_roi_draws: np.ndarray  # (S, C)
    checklist: list[dict]  # {"check", "value", "threshold", "status", "action"}
    budget: pd.DataFrame | None  # the budget.csv table
    timings: dict
    diagnostics: dict
    out_dir: str = ""
    figures: dict = field(default_factory=dict)  # name -> relative path
    draws: pd.DataFrame | None = None  # the roi_draws.csv table
    extra_files: list = field(default_factory=list)  # further artefacts of the run (relative paths)
    markets: dict | None = None  # multi-market runs: per-market tables for the report
    registry: dict | None = None  # where the run was logged in MLflow (config key `mlflow`), see ltae.store.registry

    def roi_summary(self) -> pd.DataFrame:
        """A copy of the ROI table (roi.csv)."""
        return self.roi.copy()
