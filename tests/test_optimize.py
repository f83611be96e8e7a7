"""The budget optimiser on response models with a known best split.

The response models are built directly (no fit): no carry-over (adstock alpha 0) and a Hill curve
whose half-saturation point is far above the spend, so each channel's return is its ROI (beta)
times its spend to 1e-6. The best split of a linear model is a corner of the bounds, which can be
written down.
"""

from __future__ import annotations

import numpy as np
import pytest

from ltae.analysis.optimize import ResponseModel, optimize_budget

T = 10
WEEKLY = 100.0  # every channel spends 100 a week: current spend 1,000 per channel over the window
LAM = 1e9  # far above the spend: Hill(x) = x / (x + LAM) = x / LAM to 1e-7


def linear_model(roi_draws, lt_roi=None) -> ResponseModel:
    """Return of channel c in draw s = roi_draws[s, c] x its spend (+ lt_roi[s, c] x its spend)."""
    roi_draws = np.asarray(roi_draws, float)
    S, C = roi_draws.shape
    ones = np.ones((S, C))
    return ResponseModel(np.full((T, C), WEEKLY), spend_scale=np.ones(C), y_scale=LAM, l_max=4, normalize=True,
                         alpha=0 * ones, kappa=ones, lam=LAM * ones, beta=roi_draws, lt_roi=lt_roi,
                         max_draws=10_000)


def test_linear_model_returns_roi_times_spend():
    m = linear_model([[3.0, 1.0, 2.0]])
    np.testing.assert_allclose(m.total_return(np.array([1.0, 0.5, 1.5]))[0], [3000.0, 500.0, 3000.0], rtol=1e-6)


def test_global_bounds_known_split():
    """ROIs 3, 1, 2 and bounds 0.5-1.5 x current: the best channel gets 1.5x, the worst 0.5x and the
    middle one the rest of the budget."""
    m = linear_model([[3.0, 1.0, 2.0]])
    df = optimize_budget(m, 3000.0, ["a", "b", "c"], (0.5, 1.5))
    np.testing.assert_allclose(df.optimal_spend, [1500.0, 500.0, 1000.0], rtol=1e-4)
    np.testing.assert_allclose(df.expected_return_mean, [4500.0, 500.0, 2000.0], rtol=1e-4)
    assert df.attrs["uplift_mean"] == pytest.approx(7000.0 - 6000.0, rel=1e-3)
    # narrower bounds hold every channel inside them, and the split changes accordingly
    df = optimize_budget(m, 3000.0, ["a", "b", "c"], (0.8, 1.2))
    np.testing.assert_allclose(df.optimal_spend, [1200.0, 800.0, 1000.0], rtol=1e-4)


def test_per_channel_bounds_known_split():
    """Bounds per channel: 'a' may move by 10% only; channels without bounds keep 0.5-1.5."""
    m = linear_model([[3.0, 1.0, 2.0]])
    df = optimize_budget(m, 3000.0, ["a", "b", "c"], {"a": (0.9, 1.1)})
    np.testing.assert_allclose(df.optimal_spend, [1100.0, 500.0, 1400.0], rtol=1e-4)
    # a channel held at its current spend stays there
    df = optimize_budget(m, 3000.0, ["a", "b", "c"], {"a": (1.0, 1.0), "b": (0.0, 2.0), "c": (0.0, 2.0)})
    np.testing.assert_allclose(df.optimal_spend, [1000.0, 0.0, 2000.0], rtol=1e-4, atol=0.5)


def test_budget_outside_the_bounds_is_an_error():
    m = linear_model([[3.0, 1.0]])
    with pytest.raises(ValueError, match="outside what the bounds allow"):
        optimize_budget(m, 5000.0, ["a", "b"], (0.5, 1.5))  # at most 3,000
    with pytest.raises(ValueError, match="outside what the bounds allow"):
        optimize_budget(m, 500.0, ["a", "b"], {"a": (0.5, 1.5), "b": (0.5, 1.5)})  # at least 1,000


def test_lower_risk_quantile_picks_the_safer_split():
    """'safe' returns 1.0 per unit in every draw; 'risky' returns 0.2 in half the draws and 2.2 in
    the other half (mean 1.2). The mean prefers 'risky', the 10% quantile (0.2 for 'risky') 'safe'."""
    S = 200
    draws = np.column_stack([np.ones(S), np.where(np.arange(S) % 2 == 0, 0.2, 2.2)])
    m = linear_model(draws)
    mean_opt = optimize_budget(m, 2000.0, ["safe", "risky"], (0.5, 1.5))
    risk_opt = optimize_budget(m, 2000.0, ["safe", "risky"], (0.5, 1.5), risk_quantile=0.1)
    np.testing.assert_allclose(mean_opt.optimal_spend, [500.0, 1500.0], rtol=1e-4)
    np.testing.assert_allclose(risk_opt.optimal_spend, [1500.0, 500.0], rtol=1e-4)
    assert risk_opt.attrs["risk_quantile"] == 0.1 and mean_opt.attrs["risk_quantile"] is None

    def total(df):
        return m.total_return(df.optimal_spend.to_numpy() / m.current).sum(1)

    # the cautious split gives up expected return for a better bad case
    assert total(risk_opt).mean() < total(mean_opt).mean()
    assert np.quantile(total(risk_opt), 0.1) > np.quantile(total(mean_opt), 0.1)


def test_long_term_toggle():
    """'fast' returns 2 per unit right away and nothing later; 'brand' 1 now and 3 over the long-term
    horizon. Short term only, 'fast' wins; counting the long term, 'brand' does."""
    m = linear_model([[2.0, 1.0]], lt_roi=np.array([[0.0, 3.0]]))
    both = optimize_budget(m, 2000.0, ["fast", "brand"], (0.5, 1.5), include_long_term=True)
    short = optimize_budget(m, 2000.0, ["fast", "brand"], (0.5, 1.5), include_long_term=False)
    np.testing.assert_allclose(both.optimal_spend, [500.0, 1500.0], rtol=1e-4)
    np.testing.assert_allclose(short.optimal_spend, [1500.0, 500.0], rtol=1e-4)
    np.testing.assert_allclose(both.expected_return_mean, [1000.0, 1500.0 * (1.0 + 3.0)], rtol=1e-4)
    np.testing.assert_allclose(short.expected_return_mean, [3000.0, 500.0], rtol=1e-4)
    assert both.attrs["include_long_term"] and not short.attrs["include_long_term"]


def test_interval_level_follows_the_argument():
    """expected_return_lower/upper and the uplift bounds are the equal-tailed credible_interval."""
    S = 1000
    rng = np.random.default_rng(0)
    draws = np.column_stack([rng.normal(2.0, 0.5, S), rng.normal(1.0, 0.2, S)])
    m = linear_model(draws)
    wide = optimize_budget(m, 2000.0, ["a", "b"], credible_interval=0.95)
    narrow = optimize_budget(m, 2000.0, ["a", "b"], credible_interval=0.5)
    np.testing.assert_allclose(wide.optimal_spend, narrow.optimal_spend)
    r = m.total_return(narrow.optimal_spend.to_numpy() / m.current)
    np.testing.assert_allclose(narrow.expected_return_lower, np.quantile(r, 0.25, axis=0))
    np.testing.assert_allclose(wide.expected_return_upper, np.quantile(r, 0.975, axis=0))
    assert (narrow.expected_return_upper - narrow.expected_return_lower
            < wide.expected_return_upper - wide.expected_return_lower).all()
    assert narrow.attrs["credible_interval"] == 0.5
    tot = r.sum(axis=1)
    assert narrow.attrs["total_return_optimal_lower"] == pytest.approx(np.quantile(tot, 0.25))
    assert narrow.attrs["total_return_optimal_upper"] == pytest.approx(np.quantile(tot, 0.75))
    curves = m.curves(credible_interval=0.5)
    mid = m.short_term(np.ones(2))
    k = int(np.argmin(np.abs(curves["multipliers"] - 1.0)))
    np.testing.assert_allclose(curves["lower"][k], np.quantile(mid, 0.25, axis=0))
