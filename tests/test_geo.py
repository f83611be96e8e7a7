"""The multi-market MMM: exact marginal likelihood (block-arrowhead algebra against the dense
Gaussian), exact conditional draws of the linear effects, and recovery of known ROIs."""

from __future__ import annotations

import numpy as np
import pytest

from ltae.data.synthetic_geo import generate_geo
from ltae.models.geo import GeoMMM
from ltae.models.transforms import geometric_adstock_from_stack, hill


def _small_geo(M=3, T=30, channels=("Google", "Events"), seed=2):
    d = generate_geo(n_markets=M, n_weeks=T, channels=list(channels), seed=seed)
    pn = d.panel()
    return d, GeoMMM(pn["sales"], pn["spend"], pn["controls"][:, :, :1], d.markets, list(channels), ["comp"])


def _dense(m: GeoMMM, point: dict):
    """(y vector, mean vector, covariance, X (MT x q), index of the national block) built directly."""
    p = m.priors
    M, T, C = m.spend.shape
    alpha, kappa, lam = point["adstock_alpha"], point["hill_kappa"], point["hill_lambda"]
    stack = m._stack()
    sat = np.stack([hill(geometric_adstock_from_stack(stack[k], alpha, p.l_max, p.normalize_adstock), kappa, lam)
                    for k in range(M)])
    Zs, Zm, off = m._blocks(sat, point["group_sigma"][m.group_index], point["market_sigma"])
    qs, qm = Zs.shape[-1], Zm.shape[-1]
    X = np.zeros((M * T, qs + M * qm))
    cov = np.zeros((M * T, M * T))
    t = np.arange(T)
    r, phi = np.sqrt(point["noise_radius2"]), point["noise_angle"]
    sigma, sigma_level = p.noise_sd * r * np.cos(phi), p.level_sd * r * np.sin(phi)
    for k in range(M):
        rows = slice(k * T, (k + 1) * T)
        X[rows, :qs] = Zs[k]
        X[rows, qs + k * qm:qs + (k + 1) * qm] = Zm[k]
        cov[rows, rows] = (p.intercept_sd**2 + sigma_level[k] ** 2 * np.minimum(t[:, None], t[None, :])
                           + sigma[k] ** 2 * np.eye(T))
    y = (m.sales / m.y_scale[:, None]).reshape(-1)
    return y, 1.0 + off.reshape(-1), cov, X, qs


POINT = {"adstock_alpha": np.array([0.3, 0.6]), "hill_kappa": np.array([0.9, 2.0]),
         "hill_lambda": np.array([0.8, 1.4]), "group_sigma": np.array([0.05, 0.2]),
         "market_sigma": np.array([0.08, 0.15]), "noise_radius2": np.array([1.5, 0.7, 2.2]),
         "noise_angle": np.array([0.4, 1.1, 0.8])}


def test_geo_marginal_likelihood_is_the_dense_gaussian():
    import pytensor
    from scipy import stats

    _, m = _small_geo()
    model = m.build_model()
    f = pytensor.function([model[k] for k in POINT], model["y_loglik"], on_unused_input="ignore", mode="FAST_COMPILE")
    ours = f(*POINT.values())
    y, mean, cov, X, _ = _dense(m, POINT)
    ref = stats.multivariate_normal(mean, cov + X @ X.T).logpdf(y)
    assert abs(ours - ref) < 1e-8 * abs(ref) + 1e-8


def test_geo_conditional_draws_have_the_gls_posterior():
    import xarray as xr

    _, m = _small_geo()
    S = 4000
    dims = {"adstock_alpha": ("channel",), "hill_kappa": ("channel",), "hill_lambda": ("channel",),
            "group_sigma": ("group",), "market_sigma": ("channel",), "noise_radius2": ("market",),
            "noise_angle": ("market",)}
    p = m.priors
    pt_ = dict(POINT)
    r, phi = np.sqrt(pt_["noise_radius2"]), pt_["noise_angle"]
    pt_["sigma"], pt_["sigma_level"] = p.noise_sd * r * np.cos(phi), p.level_sd * r * np.sin(phi)
    dims |= {"sigma": ("market",), "sigma_level": ("market",)}
    post = xr.Dataset({k: (("chain", "draw") + dims[k], np.broadcast_to(v, (1, S) + v.shape).copy())
                       for k, v in pt_.items()},
                      coords={"chain": [0], "draw": np.arange(S), "channel": m.channels, "group": m.group_names,
                              "market": m.markets})
    m.idata = xr.DataTree.from_dict({"posterior": post})
    lin = m._draw_linear(seed=0)
    y, mean, cov, X, qs = _dense(m, POINT)
    prec = np.eye(X.shape[1]) + X.T @ np.linalg.solve(cov, X)
    eta = np.linalg.solve(prec, X.T @ np.linalg.solve(cov, y - mean))
    eta_sd = np.sqrt(np.diag(np.linalg.inv(prec)))
    G, C = len(m.group_names), len(m.channels)
    qm = X.shape[1] // m.n_markets if False else (X.shape[1] - qs) // m.n_markets
    # market ROI / r0 = mu + mu_sd u_g + sigma_g z_c + tau_c z_mc: linear in eta, so its GLS mean and sd
    gi = m.group_index
    A = np.zeros((m.n_markets * C, X.shape[1]))
    for k in range(m.n_markets):
        for c in range(C):
            row = k * C + c
            A[row, gi[c]] = p.roi_mu_sd
            A[row, G + c] = POINT["group_sigma"][gi[c]]
            A[row, qs + k * qm + c] = POINT["market_sigma"][c]
    rel_mean = p.roi_mu_mean + A @ eta
    rel_sd = np.sqrt(np.einsum("ij,jk,ik->i", A, np.linalg.inv(prec), A))
    rel = (lin["roi_market"][0][0] / m.roi_ref).reshape(S, -1)
    assert np.all(np.abs(rel.mean(0) - rel_mean) < 5 * rel_sd / np.sqrt(S))
    np.testing.assert_allclose(rel.std(0), rel_sd, rtol=0.08)
    gam = lin["gamma_control"][0][0][..., 0] / p.control_sd  # (S, M)
    idx = [qs + k * qm + C for k in range(m.n_markets)]
    np.testing.assert_allclose(gam.mean(0), eta[idx], atol=5 * eta_sd[idx].max() / np.sqrt(S))
    assert eta_sd.shape == (X.shape[1],)


@pytest.mark.slow
def test_geo_model_recovers_national_and_market_roi():
    d, _ = _small_geo(M=4, T=104, channels=("Content", "Events", "Google", "LinkedIn"), seed=3)
    pn = d.panel()
    m = GeoMMM(pn["sales"], pn["spend"], pn["controls"], d.markets, d.truth["channels_order"])
    m.fit(draws=300, tune=300, chains=2, seed=1)
    nat = m.national_roi_draws()
    truth = np.array([d.truth["national"][c]["short_term_roi"] for c in d.truth["channels_order"]])
    lo, hi = np.quantile(nat, [0.025, 0.975], axis=0)
    assert np.mean((lo <= truth) & (truth <= hi)) >= 0.75
    assert np.allclose(m.media_contributions().sum(2) / pn["spend"].sum(1)[None], m.roi_draws(), rtol=1e-6)


def test_noise_angle_prior_keeps_off_the_edges():
    """The multi-market model's noise angle / (pi/2) has a Beta(2, 2) prior by default (zero density
    where a market's observation or level noise is exactly 0, where a chain got trapped); the
    one-market model keeps the uniform angle (independent half-normal scales) by default; either takes
    ``noise_angle_ab``, and (1, 1) adds no term."""
    import pytensor
    from scipy import stats

    from ltae.data.synthetic import generate_synthetic_data
    from ltae.models.mmm import MMMPriors, ShortTermMMM

    d, m = _small_geo()
    model = m.build_model()
    f = pytensor.function([model["noise_angle"]], model["noise_angle_prior"], mode="FAST_COMPILE")
    pts = [np.array([0.4, 1.1, 0.8]), np.array([0.05, 1.55, 0.7])]
    ours = [f(p) for p in pts]
    ref = [stats.beta(2, 2).logpdf(p / (np.pi / 2)).sum() for p in pts]
    assert abs((ours[0] - ours[1]) - (ref[0] - ref[1])) < 1e-9
    assert ours[1] < ours[0] - 3  # near the edges: far less prior density
    pn = d.panel()
    flat = GeoMMM(pn["sales"], pn["spend"], pn["controls"][:, :, :1], d.markets, ["Google", "Events"], ["comp"],
                  priors=MMMPriors(noise_angle_ab=(1.0, 1.0))).build_model()
    assert "noise_angle_prior" not in flat.named_vars
    one = generate_synthetic_data(n_weeks=30, seed=0)

    def one_market(priors):
        return ShortTermMMM(one.sales.revenue.values, one.spend_wide.values, None, one.params.channels,
                            priors=priors).build_model()

    assert "noise_angle_prior" not in one_market(None).named_vars
    beta = one_market(MMMPriors(noise_angle_ab=(3.0, 1.5)))
    g = pytensor.function([beta["noise_angle"]], beta["noise_angle_prior"], mode="FAST_COMPILE")
    diff = g(np.array(0.3)) - g(np.array(1.2))
    assert abs(diff - (stats.beta(3, 1.5).logpdf(0.3 / (np.pi / 2)) - stats.beta(3, 1.5).logpdf(1.2 / (np.pi / 2)))) < 1e-9
