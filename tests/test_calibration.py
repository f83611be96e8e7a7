"""Lift tests (experiments) as exact likelihood terms of the short-term model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltae.data.synthetic import generate_synthetic_data
from ltae.models.mmm import MMMPriors, ShortTermMMM
from ltae.models.transforms import geometric_adstock_from_stack, hill


def _model(lift):
    data = generate_synthetic_data(n_weeks=40, seed=2, channels=["Google", "Events"])
    ctrl = data.competitor_activity.drop(columns="Date")
    dates = pd.to_datetime(data.sales.Date)
    return ShortTermMMM(data.sales.revenue.values, data.spend_wide.values, ctrl.values, data.params.channels,
                        list(ctrl.columns), priors=MMMPriors(noise_polar=False), dates=dates, lift_tests=lift), dates


def test_lift_tests_enter_the_marginal_likelihood_exactly():
    """With lift tests the likelihood is the dense Gaussian of [sales, lifts]: each lift = its ROI effect
    x the model's lift per unit of ROI + N(0, se^2), sharing the integrated-out ROI effects."""
    import pytensor
    from scipy import stats

    m0, dates = _model(None)
    lift = pd.DataFrame({"channel": ["Google", "Events"], "start": [dates[10], dates[20]], "end": [dates[15], dates[23]],
                         "measured_until": [dates[17], dates[23]], "spend_change": [-40_000.0, 30_000.0],
                         "lift": [-120_000.0, 40_000.0], "lift_se": [30_000.0, 20_000.0]})
    m, _ = _model(lift)
    model = m.build_model()
    point = {"adstock_alpha": np.array([0.3, 0.6]), "hill_kappa": np.array([0.7, 2.0]),
             "hill_lambda": np.array([0.8, 1.5]), "group_sigma": np.array([0.05, 0.2]), "sigma": 0.08,
             "sigma_level": 0.03}
    f = pytensor.function([model[k] for k in point], model["y_loglik"], on_unused_input="ignore",
                          mode="FAST_COMPILE")
    ours = f(*point.values())
    # dense reference
    p = m.priors
    d = m._design()
    T = len(d.y)
    sat = hill(geometric_adstock_from_stack(d.stack, point["adstock_alpha"], p.l_max, p.normalize_adstock),
               point["hill_kappa"], point["hill_lambda"])
    sd_g = point["group_sigma"][m.group_index]
    XL, offset = m._linear_blocks(sat, sd_g, d)
    t = np.arange(T)
    cov = (p.intercept_sd**2 + point["sigma_level"] ** 2 * np.minimum(t[:, None], t[None, :])
           + point["sigma"] ** 2 * np.eye(T))
    # the lifts, computed directly: contribution with the changed spend minus without, over the window
    rows, means = [], []
    for r in lift.itertuples():
        c = m.channels.index(r.channel)
        test = (dates >= r.start) & (dates <= r.end)
        window = (dates >= r.start) & (dates <= r.measured_until)
        x = m.spend[:, c].copy()
        x[test] += r.spend_change / test.sum()
        s2 = m.spend.copy()
        s2[:, c] = x
        from ltae.models.transforms import lag_stack

        st2 = lag_stack(s2 / m.spend_scale, p.l_max)
        sat2 = hill(geometric_adstock_from_stack(st2, point["adstock_alpha"], p.l_max, p.normalize_adstock),
                    point["hill_kappa"], point["hill_lambda"])
        # contribution per unit of rel_c is column c of XL's channel block / sd_g[c]; lift = difference
        unit = d.roi_weight[c] / sat[:, c].sum()
        a = unit * (sat2[window, c] - sat[window, c]).sum()
        G = len(m.group_names)
        row = np.zeros(XL.shape[1])
        row[m.group_index[c]] = a * p.roi_mu_sd
        row[G + c] = a * sd_g[c]
        rows.append(row)
        means.append(a * p.roi_mu_mean)
    X = np.vstack([XL, np.array(rows)])
    y = np.concatenate([d.y, lift.lift.to_numpy() / m.y_scale])
    mean = np.concatenate([1.0 + offset, means])
    full = np.zeros((T + 2, T + 2))
    full[:T, :T] = cov
    full[T:, T:] = np.diag((lift.lift_se.to_numpy() / m.y_scale) ** 2)
    ref = stats.multivariate_normal(mean, full + X @ X.T).logpdf(y)
    assert abs(ours - ref) < 1e-8 * abs(ref) + 1e-8
    # and the lift tests change it (they are really in the likelihood)
    f0 = pytensor.function([m0.build_model()[k] for k in point], m0.model["y_loglik"], on_unused_input="ignore",
                           mode="FAST_COMPILE")
    assert abs(f0(*point.values()) - ours) > 1.0
