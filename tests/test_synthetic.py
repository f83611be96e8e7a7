"""The generator's ground truth (src/ltae/data/synthetic.py)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from ltae.data import default_params, generate_synthetic_data
from ltae.data.synthetic import SyntheticParams

N = 104
CH = ("Content", "Events", "Google", "LinkedIn")


def _truth(params: SyntheticParams, seed=11, n=N):
    return generate_synthetic_data(n_weeks=n, seed=seed, params=params)


def test_same_seed_same_frames_different_seed_differs():
    a, b, c = generate_synthetic_data(N, seed=3), generate_synthetic_data(N, seed=3), generate_synthetic_data(N, seed=4)
    for name in ("sales", "marketing_spend", "brand_metrics", "competitor_activity", "macroeconomic_indicators",
                 "components"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.truth == b.truth
    assert not np.allclose(a.sales["revenue"], c.sales["revenue"])


@pytest.mark.parametrize("how", ["mean_spend", "zero_share"])
def test_channel_without_spend_has_no_contribution(how):
    p = default_params(CH, N)
    if how == "mean_spend":
        p.mean_spend[1] = 0.0
    else:
        p.zero_share[1] = 1.0
    data = _truth(p)
    assert (data.spend_wide["Events"] == 0).all()
    t = data.truth["channels"]["Events"]
    assert t["spend"] == 0 and t["contribution"] == 0 and t["short_term_roi"] == 0
    assert (data.components["media_Events"] == 0).all()
    assert t["contribution"] == data.components["media_Events"].sum()


def test_doubling_beta_doubles_short_term_roi():
    p = default_params(CH, N)
    p2 = copy.deepcopy(p)
    p2.beta[2] *= 2
    t1, t2 = _truth(p).truth["channels"], _truth(p2).truth["channels"]
    assert t2["Google"]["short_term_roi"] == pytest.approx(2 * t1["Google"]["short_term_roi"], rel=1e-12)
    for ch in ("Content", "Events", "LinkedIn"):
        assert t2[ch]["short_term_roi"] == pytest.approx(t1[ch]["short_term_roi"], rel=1e-12)
        assert t2[ch]["long_term_roi"] == pytest.approx(t1[ch]["long_term_roi"], rel=1e-12)


def test_no_funnel_to_sales_means_no_long_term_effect():
    p = default_params(CH, N)
    p.sales_from_consideration = 0.0
    data = _truth(p)
    for t in data.truth["channels"].values():
        assert t["long_term_roi"] == pytest.approx(0.0, abs=1e-12)
        assert t["total_roi"] == pytest.approx(t["short_term_roi"])


def _long_term_roi(p: SyntheticParams, horizon: int) -> np.ndarray:
    """Independent computation: impulse response of the funnel VAR in matrix form.

    state s_t = (awareness, consideration, base-sales level); s_t = A s_{t-1} + e_t;
    one unit of spend in channel i adds gain_i to awareness at t = 0."""
    a = np.array([
        [p.awareness_rho, 0.0, 0.0],
        [p.consideration_from_awareness, p.consideration_rho, 0.0],
        [0.0, p.sales_from_consideration, p.level_rho],
    ])
    out = []
    for gain in p.awareness_gain:
        s = np.array([gain, 0.0, 0.0])
        total = 0.0
        for _ in range(horizon):
            total += s[2]
            s = a @ s
        out.append(total)
    return np.array(out)


@pytest.mark.parametrize("horizon", [24, 52])
def test_long_term_truth_matches_funnel_recursion(horizon):
    p = default_params(CH, N, horizon=horizon, lt_roi=[3.0, 1.0, 0.5, 2.0])
    p.level_rho = 0.8  # change a funnel parameter after calibration: truth must follow
    data = generate_synthetic_data(N, seed=2, params=p, horizon=horizon)
    got = np.array([data.truth["channels"][c]["long_term_roi"] for c in CH])
    np.testing.assert_allclose(got, _long_term_roi(p, horizon), rtol=1e-9)


def test_default_calibration_hits_requested_long_term_roi():
    p = default_params(CH, N, lt_roi=[3.0, 1.0, 0.5, 2.0])
    got = [generate_synthetic_data(N, seed=1, params=p).truth["channels"][c]["long_term_roi"] for c in CH]
    np.testing.assert_allclose(got, [3.0, 1.0, 0.5, 2.0], rtol=1e-9)
    np.testing.assert_allclose(_long_term_roi(p, 24), [3.0, 1.0, 0.5, 2.0], rtol=1e-9)


def test_short_term_truth_is_contribution_over_spend():
    data = generate_synthetic_data(N, seed=9)
    for ch, t in data.truth["channels"].items():
        spend = data.spend_wide[ch].sum()
        contrib = data.components[f"media_{ch}"].sum()
        assert t["short_term_roi"] == pytest.approx(contrib / spend)
    comp = data.components
    media = comp[[c for c in comp.columns if c.startswith("media_")]].sum(axis=1)
    np.testing.assert_allclose(comp["sales"], comp["base_sales"] + media + comp["noise"])
