"""What the numbers can and cannot claim: a long-term ROI the model cannot support is labelled and left
out of the total; channels whose short-term ROI the data moved little from its prior are flagged."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ltae import pipeline
from ltae.analysis.roi import (
    LT_ESTIMATED,
    LT_NO_BRAND,
    UNSTABLE_LIMIT,
    long_term_status,
    prior_posterior_shift,
    roi_table,
)
from ltae.config import RunConfig
from ltae.data.synthetic import generate_synthetic_data, save_to_csv

CFG = {"sampling": {"draws": 100, "tune": 100, "chains": 2, "seed": 5}, "replicates": 2}


def test_long_term_status_rules():
    assert long_term_status(2, False, 0.0) == LT_ESTIMATED
    assert long_term_status(0, False, 0.0) == LT_NO_BRAND  # no path from spend to base sales
    assert long_term_status(0, True, 0.0) == LT_ESTIMATED  # the spec's direct effect on base sales
    assert long_term_status(2, False, UNSTABLE_LIMIT - 0.01) == LT_ESTIMATED
    assert long_term_status(2, False, UNSTABLE_LIMIT).startswith("unreliable")


def test_roi_table_leaves_unsupported_long_term_out_of_the_total():
    rng = np.random.default_rng(0)
    st = rng.normal(2.0, 0.3, (4000, 2))
    lt = rng.normal(1.0, 0.5, (4000, 2))
    ok = roi_table(["a", "b"], [1.0, 1.0], st, lt)
    assert ok.total_includes_long_term.all()
    assert np.allclose(ok.total_roi_mean, st.mean(0) + lt.mean(0))
    bad = roi_table(["a", "b"], [1.0, 1.0], st, lt, long_term_status=[LT_ESTIMATED, "unreliable: x"])
    assert bad.total_includes_long_term.tolist() == [True, False]
    assert bad.total_roi_mean[1] == pytest.approx(st[:, 1].mean())  # short term only
    assert bad.long_term_roi_mean[1] == pytest.approx(lt[:, 1].mean())  # still reported, labelled
    none = roi_table(["a", "b"], [1.0, 1.0], st, lt, long_term_status=LT_NO_BRAND)
    assert none.long_term_roi_mean.isna().all() and (none.total_roi_mean == none.short_term_roi_mean).all()


def test_prior_posterior_shift_known_values():
    rng = np.random.default_rng(1)
    prior = rng.normal(0.0, 2.0, (200_000, 2))
    post = np.column_stack([rng.normal(1.0, 1.0, 200_000), rng.normal(0.0, 2.0, 200_000)])
    out = prior_posterior_shift(prior, post)
    assert out["contraction"] == pytest.approx([0.75, 0.0], abs=0.01)  # 1 - 1/4; nothing learnt
    assert out["shift"] == pytest.approx([0.5, 0.0], abs=0.01)


def test_prior_roi_draws_match_the_prior():
    """ROI = r0 * (mu_group + sigma_group * z): mean r0 * roi_mu_mean, sd r0 * sqrt(mu_sd^2 + sigma_sd^2)."""
    from ltae.models.mmm import ShortTermMMM

    d = generate_synthetic_data(n_weeks=60, seed=2)
    m = ShortTermMMM(d.sales.revenue.values, d.spend_wide.values, channels=d.params.channels)
    r0 = m._design().roi_ref
    draws = m.prior_roi_draws(n=200_000, seed=3)
    p = m.priors
    assert draws.mean(0) == pytest.approx(np.full(4, r0 * p.roi_mu_mean), rel=0.05)
    assert draws.std(0) == pytest.approx(np.full(4, r0 * np.hypot(p.roi_mu_sd, p.roi_sigma_sd)), rel=0.02)


def test_partial_bvar_config_keeps_the_pipeline_defaults():
    c = RunConfig.model_validate({"bvar_priors": {"lags": 3, "lag_variance": [1.0, 2.0, 3.0]}})
    assert c.bvar_priors.structure == "chain" and not c.bvar_priors.direct_spend_effect and c.bvar_priors.lags == 3
    spec = RunConfig.model_validate({"bvar_priors": {"structure": "var", "direct_spend_effect": True,
                                                     "carryover": [0.0]}})
    assert spec.bvar_priors.structure == "var" and spec.bvar_priors.direct_spend_effect


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    save_to_csv(generate_synthetic_data(n_weeks=80, seed=4), d)
    return d


def test_without_brand_metrics_the_total_is_the_short_term_roi(data_dir, tmp_path):
    from ltae.analysis.scenarios import default_plan, load_run, run_scenario

    out = tmp_path / "o"
    res = pipeline.run(data_dir, out, {**CFG, "data": {"brand": []}}, store_path=tmp_path / "s.duckdb")
    roi = pd.read_csv(out / "roi.csv")
    assert (roi.long_term_status == LT_NO_BRAND).all() and not roi.total_includes_long_term.any()
    assert roi.long_term_roi_mean.isna().all()
    assert np.allclose(roi.total_roi_mean, roi.short_term_roi_mean)
    draws = pd.read_csv(out / "roi_draws.csv")
    for c in roi.channel:
        assert np.allclose(draws[f"total_{c}"], draws[f"short_{c}"]) and (draws[f"long_{c}"] == 0).all()
    check = {c["check"]: c for c in res.checklist}["Long-term model"]
    assert check["status"] == "warn" and "brand metrics" in check["action"]
    assert res.budget.attrs["long_term"] == LT_NO_BRAND
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["long_term"]["status"] == LT_NO_BRAND
    irf = xr.open_dataset(out / "posteriors" / "irf.nc", engine="h5netcdf")
    assert irf.attrs["long_term_status"] == LT_NO_BRAND and float(abs(irf["base_sales"]).max()) == 0.0
    irf.close()
    run = load_run(out)
    sc = run_scenario(run, default_plan(run, 4)).returns()
    assert np.allclose(sc.filter(like="long").select_dtypes("number").to_numpy(dtype=float), 0.0)
    html = (out / "report.html").read_text()
    assert "not estimated: no brand metrics" in html and "short term only" in html


def test_a_channel_with_constant_spend_is_flagged(data_dir, tmp_path):
    """Constant spend leaves a channel's ROI unidentified (its effect is a constant, like the level):
    alone in its group, its posterior stays as wide as its prior and the run says so."""
    import shutil

    d = tmp_path / "data"
    shutil.copytree(data_dir, d)
    ms = pd.read_csv(d / "marketing_spend.csv")
    ms.loc[ms.Channel == "Content", "Spend"] = 15000.0
    ms.to_csv(d / "marketing_spend.csv", index=False)
    cfg = {**CFG, "channel_groups": {"brand": ["Content"], "performance": ["Events", "Google", "LinkedIn"]}}
    res = pipeline.run(d, tmp_path / "o", cfg, store_path=tmp_path / "s.duckdb")
    ev = res.roi.set_index("channel").short_term_evidence
    assert ev["Content"] == "weak" and (ev.drop("Content") == "ok").all()
    check = {c["check"]: c for c in res.checklist}["Data informativeness (short-term ROI)"]
    assert check["status"] == "warn" and "Content" in check["action"]
    assert "Content" in res.budget.loc[res.budget.short_term_evidence == "weak", "channel"].tolist()
