"""Rolling-origin backtests: fold layout, scoring on known numbers, the checklist's out-of-sample rows, a run
with a backtest, and the same numbers serially and on a Dask LocalCluster."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ltae.analysis.backtest import (
    coverage_consistent,
    fold_origins,
    run_backtest,
    score_fold,
    summarize_folds,
)
from ltae.data.synthetic import generate_synthetic_data, save_to_csv
from ltae.pipeline import checklist

SAMPLING = {"draws": 60, "tune": 60, "chains": 2, "seed": 3, "target_accept": 0.9, "sampler": "nutpie"}


def test_fold_origins_expand_backwards_by_four_weeks():
    assert fold_origins(80, 3) == [76, 72, 68]
    assert fold_origins(80, 2, horizon=6) == [74, 68]


def test_scoring_on_known_numbers():
    draws = np.tile(np.array([100.0, 200.0, 300.0, 400.0]), (1000, 1)) + np.linspace(-10, 10, 1000)[:, None]
    f = score_fold([110.0, 200.0, 240.0, 400.0], draws, 0.9)
    assert f["mean"] == pytest.approx([100, 200, 300, 400])
    assert f["ape"] == pytest.approx([100 * 10 / 110, 0.0, 100 * 60 / 240, 0.0])
    assert f["covered"] == [False, True, False, True]  # the 90% interval is about +-9
    g = score_fold([100.0, 150.0, 300.0, 0.0], draws, 0.9)
    assert g["covered"] == [True, False, True, False] and np.isnan(g["ape"][3])  # no APE of a zero week
    s = summarize_folds([f, g], 4, 0.9)
    assert s["mape_1_week"] == pytest.approx((100 * 10 / 110 + 0) / 2)
    assert s["mape_4_weeks"] == pytest.approx(0.0)  # the zero week is left out, not infinite
    assert s["coverage_1_week"] == 0.5 and s["coverage_4_weeks"] == 0.5 and s["coverage_all"] == 0.5
    assert s["n_forecasts"] == 8 and s["n_covered"] == 4 and s["folds"] == 2
    assert s["coverage_by_step"] == [0.5, 0.5, 0.5, 0.5]


def _checks(backtest, ci=0.95):
    good = {"max_rhat": 1.001, "min_ess_bulk": 2000.0, "divergence_rate": 0.0}
    short = SimpleNamespace(convergence=good, fit_info={"sampler": "nutpie"},
                            fit_metrics={"one_step_mape": 5.0, "one_step_r2": 0.95, "one_step_coverage": 0.95})
    long = SimpleNamespace(convergence=good, n_unstable=0, n_draws=1000, status="estimated")
    roi = pd.DataFrame({"channel": ["a"], "total_roi_mean": [2.0]})
    return checklist(short, long, roi, None, ci, backtest=backtest)


@pytest.mark.parametrize("covered, n, status", [(20, 20, "pass"), (19, 20, "pass"), (16, 20, "warn"),
                                                (13, 20, "fail"), (190, 200, "pass"), (200, 200, "fail"),
                                                (176, 200, "warn")])
def test_out_of_sample_rows_replace_the_in_sample_ones(covered, n, status):
    """Few forecasts cannot tell 95% from 100%: coverage passes when the count is consistent with the
    level (binomial test) or inside the in-sample band."""
    bt = {"overall": {"folds": n // 4, "n_forecasts": n, "horizon": 4, "mape_1_week": 16.0,
                      "coverage_all": covered / n, "n_covered": covered}}
    rows = _checks(bt)
    mape, cov = rows[3], rows[5]
    assert mape["check"].startswith("MAPE (out of sample: 1 week ahead") and mape["value"] == 16.0
    assert mape["status"] == "fail"
    assert cov["check"].startswith("95% interval coverage (out of sample: 1-4 weeks ahead")
    assert cov["value"] == pytest.approx(100 * covered / n) and cov["status"] == status
    assert _checks(None)[3]["check"] == "MAPE (one week ahead)"  # in sample without a backtest


def test_coverage_consistency_is_a_binomial_test():
    assert coverage_consistent(19, 20, 0.95) == pytest.approx(1.0)
    assert coverage_consistent(10, 20, 0.95) < 1e-6
    assert coverage_consistent(90, 100, 0.9) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bt_data")
    data = generate_synthetic_data(n_weeks=80, seed=4)  # conftest's small_run data: shared compiled models
    save_to_csv(data, d)
    return d, data


def test_a_run_with_a_backtest(data_dir, tmp_path):
    from ltae import pipeline

    d, data = data_dir
    cfg = {"sampling": {k: SAMPLING[k] for k in ("draws", "tune", "chains", "seed")}, "replicates": 1,
           "backtest_folds": 2, "credible_interval": 0.9, "scheduler": "serial"}
    res = pipeline.run(d, tmp_path / "run", cfg, store_path=tmp_path / "store.duckdb")
    diag = json.loads((tmp_path / "run" / "diagnostics.json").read_text())
    bt = diag["backtest"]
    assert [f["train_weeks"] for f in bt["folds"]] == [76, 72]
    sales = data.sales.revenue.to_numpy()
    for f in bt["folds"]:
        n = f["train_weeks"]
        assert f["origin"] == str(data.sales.Date[n - 1].date())
        assert f["dates"] == [str(x.date()) for x in data.sales.Date[n:n + 4]]
        np.testing.assert_allclose(f["actual"], sales[n:n + 4], rtol=1e-9)
        lo, hi = np.array(f["lower"]), np.array(f["upper"])
        assert (lo < np.array(f["mean"])).all() and (np.array(f["mean"]) < hi).all()
        assert f["covered"] == ((sales[n:n + 4] >= lo) & (sales[n:n + 4] <= hi)).tolist()
    o = bt["overall"]
    assert o["credible_interval"] == 0.9 and o["n_forecasts"] == 8
    assert o["coverage_all"] == np.mean([c for f in bt["folds"] for c in f["covered"]])
    assert o["mape_all"] < 15  # honest but not absurd forecasts of generated data
    checks = {c["check"]: c for c in res.checklist}
    assert "MAPE (out of sample: 1 week ahead, backtest of 2 folds)" in checks
    assert any(k.startswith("90% interval coverage (out of sample") for k in checks)
    assert "Backtest (out of sample)" in (tmp_path / "run" / "report.html").read_text()
    assert "backtest_s" in res.timings


@pytest.mark.slow
def test_local_cluster_gives_the_serial_backtest(data_dir):
    """The folds are independent fits with the run's seed: the same numbers serially and on Dask."""
    pytest.importorskip("dask.distributed")
    from ltae.data import load_dataset
    from ltae.models.mmm import MMMPriors

    ds = load_dataset(data_dir[0])
    kw = {"priors": MMMPriors(), "sampling": SAMPLING, "credible_interval": 0.9}
    serial = run_backtest(ds, 2, scheduler="serial", **kw)
    dask = run_backtest(ds, 2, scheduler=None, **kw)  # a LocalCluster
    assert serial == dask
