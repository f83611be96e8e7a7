"""Fast model tests: small draws, behaviour and units (recovery studies live in benchmarks/)."""

import numpy as np
import pytest

from ltae.data.synthetic import default_params, generate_synthetic_data
from ltae.models.mmm import ShortTermMMM, UCM_MMM_Optimized

FAST = {"draws": 150, "tune": 150, "chains": 2, "seed": 3}


@pytest.fixture(scope="module")
def data():
    p = default_params(n_weeks=104)
    p.beta[1] = 0.0  # Events: no true short-term effect
    return generate_synthetic_data(n_weeks=104, seed=11, params=p)


@pytest.fixture(scope="module")
def fitted(data):
    ctrl = data.competitor_activity.drop(columns="Date")
    m = ShortTermMMM(data.sales.revenue.values, data.spend_wide.values, ctrl.values, data.params.channels,
                     list(ctrl.columns))
    return m.fit(**FAST)


def test_shapes_and_outputs(fitted, data):
    T, C = data.spend_wide.shape
    S = FAST["draws"] * FAST["chains"]
    assert fitted.media_contributions().shape == (S, T, C)
    assert fitted.base_sales_draws().shape == (S, T)
    assert fitted.get_base_sales().shape == (T,)
    roi = fitted.calculate_short_term_roi()
    assert set(roi) == set(data.params.channels)
    for r in roi.values():
        assert r["lower"] <= r["mean"] <= r["upper"]
    s = fitted.summary()
    assert {"max_rhat", "min_ess_bulk", "divergences"} <= set(s)
    # the saturation kept across fit's posterior updates equals a fresh computation from the draws,
    # and the window contribution over spend is each draw's ROI
    np.testing.assert_allclose(fitted.media_contributions(), fitted.media_contributions(spend=fitted.spend),
                               rtol=1e-12)
    np.testing.assert_allclose(fitted.media_contributions().sum(1) / fitted.spend.sum(0), fitted.draws("roi"),
                               rtol=1e-8)


def test_base_sales_and_contributions_recover_the_truth(fitted, data):
    """Base sales (sales without media) and each channel's contribution against the generator's
    truth: the true base lies in the 95% band in most weeks and the posterior mean misses it by a
    small share of the media effect (taking sales as the base would miss it by 100%)."""
    true_media = data.components[[f"media_{c}" for c in data.params.channels]].to_numpy()
    true_base = data.sales.revenue.to_numpy() - true_media.sum(1)
    base = fitted.base_sales_draws()
    lo, hi = np.quantile(base, [0.025, 0.975], axis=0)
    assert np.mean((true_base >= lo) & (true_base <= hi)) >= 0.9
    assert np.abs(base.mean(0) - true_base).mean() < 0.15 * true_media.sum(1).mean()
    totals = fitted.media_contributions().sum(1)  # (S, C) contribution over the window
    lo, hi = np.quantile(totals, [0.025, 0.975], axis=0)
    truth = true_media.sum(0)
    assert np.all((truth >= lo) & (truth <= hi)), (truth, lo, hi)


def test_zero_effect_channel_interval_contains_zero(fitted):
    r = fitted.calculate_short_term_roi()["Events"]
    assert r["lower"] <= 0.0 <= r["upper"]
    truth_positive = fitted.calculate_short_term_roi()["Google"]
    assert truth_positive["lower"] > 0


def test_roi_units_scale_with_spend_currency(data, fitted):
    """Spend in thousands instead of units: the internal model is the same (up to rounding, which
    changes the MCMC path), so ROI must be 1000x larger up to Monte Carlo error."""
    ctrl = data.competitor_activity.drop(columns="Date")
    m2 = ShortTermMMM(data.sales.revenue.values, data.spend_wide.values / 1000.0, ctrl.values,
                      data.params.channels, list(ctrl.columns)).fit(**FAST)
    ratio = np.median(m2.short_term_roi_draws(), 0) / np.median(fitted.short_term_roi_draws(), 0)
    assert np.all((ratio > 700) & (ratio < 1400)), ratio


def test_spec_api(data):
    ctrl = data.competitor_activity.drop(columns="Date")
    m = UCM_MMM_Optimized(data.sales.revenue, data.spend_wide, ctrl, list(data.params.channels), list(ctrl.columns),
                          adstock_max_lag=6, channel_groups={"digital": ["Google", "LinkedIn", "Content"],
                                                             "offline": ["Events"]})
    assert m.priors.l_max == 6
    m.build_model()
    m.fit(draws=60, tune=60, chains=2, seed=1)
    roi = m.calculate_short_term_roi()
    assert np.isfinite(roi["Google"]["mean"])
    assert m.get_base_sales().shape == (104,)


def test_advi_backend(data):
    """ADVI returns draws split into pseudo-chains that the rest of the code reads like MCMC."""
    m = ShortTermMMM(data.sales.revenue.values, data.spend_wide.values, channels=data.params.channels)
    m.fit(draws=100, chains=2, sampler="advi", seed=1, advi_iterations=3000)
    assert m.short_term_roi_draws().shape == (200, 4)
    assert np.isfinite(m.get_base_sales()).all()


def test_brand_lag_controls_are_last_weeks_brand_metrics(data, tmp_path):
    from ltae.data.load import load_dataset
    from ltae.data.synthetic import save_to_csv
    from ltae.models.mmm import MMMPriors

    save_to_csv(data, tmp_path / "d")
    ds = load_dataset(tmp_path / "d")
    plain = ShortTermMMM.from_dataset(ds)
    lagged = ShortTermMMM.from_dataset(ds, priors=MMMPriors(brand_lag_controls=True))
    names = [f"{b}_lag1" for b in ds.brand.columns]
    assert lagged.control_names == plain.control_names + names
    np.testing.assert_allclose(lagged.controls[1:, -len(names):], ds.brand.values[:-1])
    np.testing.assert_allclose(lagged.controls[0, -len(names):], ds.brand.values[0])
