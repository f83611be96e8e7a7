import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ltae.data.synthetic import geometric_adstock_np
from ltae.models.transforms import geometric_adstock_from_stack, hill, lag_stack


def test_adstock_matches_pymc_marketing():
    # pymc-marketing is not a dependency of ltae: the dev and bench extras install it
    transformers = pytest.importorskip("pymc_marketing.mmm.transformers",
                                       reason="pymc-marketing not installed (pip install 'ltae[bench]')")
    geometric_adstock = transformers.geometric_adstock
    from pytensor.xtensor import as_xtensor

    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 1.0, size=(30, 3))
    x[5:9, 1] = 0.0
    alpha = np.array([0.2, 0.5, 0.8])
    ours = geometric_adstock_from_stack(lag_stack(x, 8), alpha, 8, True)
    ref = geometric_adstock(as_xtensor(x, dims=("date", "channel")), as_xtensor(alpha, dims=("channel",)),
                            l_max=8, dim="date", normalize=True)
    ref = ref.transpose("date", "channel").values.eval()
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours[:, 2], geometric_adstock_np(x[:, 2], 0.8, 8), rtol=1e-12)


def test_hill_value_and_safe_gradient_at_zero():
    x = np.array([0.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(hill(x[1:], 0.7, 1.2), x[1:] ** 0.7 / (1.2**0.7 + x[1:] ** 0.7), rtol=1e-12)
    assert hill(np.array([0.0]), 0.5, 1.0)[0] < 1e-5
    xs, k, lam = pt.dvector("x"), pt.dscalar("k"), pt.dscalar("lam")
    y = hill(xs, k, lam, xp=pt).sum()
    grads = pytensor.function([xs, k, lam], pt.grad(y, [xs, k, lam]))(x, 0.5, 1.0)
    assert all(np.all(np.isfinite(g)) for g in grads)
    # the naive form has a non-finite gradient at zero (adstocked) spend for k < 1
    naive = (xs**k / (lam**k + xs**k)).sum()
    g_naive = pytensor.function([xs, k, lam], pt.grad(naive, xs))(x, 0.5, 1.0)
    assert not np.all(np.isfinite(g_naive))


def test_prefix_kalman_likelihood_equals_scan_filter():
    """The loop-free local-level likelihood equals the textbook Kalman filter, value and gradient."""
    from ltae.models.mmm import local_level_loglik

    rng = np.random.default_rng(0)
    for T in (1, 2, 7, 100):
        e = pt.as_tensor(1.0 + 0.1 * rng.normal(size=T))
        s, q = pt.dscalar(), pt.dscalar()
        outs = []
        for method in ("prefix", "scan"):
            ll = local_level_loglik(e, s, q, 1.0, 1.0, n=T, method=method)
            outs.append(pytensor.function([s, q], [ll, *pt.grad(ll, [s, q])]))
        for sv, qv in ((0.05, 0.01), (0.008, 0.02), (0.3, 1e-4)):
            np.testing.assert_allclose(outs[0](sv, qv), outs[1](sv, qv), rtol=1e-9, atol=1e-6)


def _dense_marginal(m, alpha, kappa, lam, sd_g, sigma, sigma_level):
    """Brute force: sales (scaled) ~ N(m0 + X m, X V X' + level covariance + sigma^2 I)."""
    from ltae.models.transforms import geometric_adstock_from_stack, hill

    p = m.priors
    d = m._design()
    T = len(d.y)
    sat = hill(geometric_adstock_from_stack(d.stack, alpha, p.l_max, p.normalize_adstock), kappa, lam)
    XL, offset = m._linear_blocks(sat, sd_g[m.group_index], d)
    t = np.arange(T)
    level_cov = p.intercept_sd**2 + sigma_level**2 * np.minimum(t[:, None], t[None, :])
    cov = XL @ XL.T + level_cov + sigma**2 * np.eye(T)
    return d, XL, offset, cov


def test_marginal_likelihood_of_linear_effects_is_exact():
    """The model's likelihood, with the level and every linear effect integrated out, equals the
    dense multivariate normal marginal; the exact conditional draws have the GLS posterior mean."""
    import pytensor
    from scipy import stats

    from ltae.data.synthetic import generate_synthetic_data
    from ltae.models.mmm import MMMPriors, ShortTermMMM

    data = generate_synthetic_data(n_weeks=40, seed=2, channels=["Google", "Events"])
    ctrl = data.competitor_activity.drop(columns="Date")
    m = ShortTermMMM(data.sales.revenue.values, data.spend_wide.values, ctrl.values, data.params.channels,
                     list(ctrl.columns), priors=MMMPriors(noise_polar=False))
    model = m.build_model()
    point = {"adstock_alpha": np.array([0.3, 0.6]), "hill_kappa": np.array([0.7, 2.0]),
             "hill_lambda": np.array([0.8, 1.5]), "group_sigma": np.array([0.05, 0.2]), "sigma": 0.08,
             "sigma_level": 0.03}
    pot = model["y_loglik"]
    f = pytensor.function([model[k] for k in point], pot, on_unused_input="ignore")
    ours = f(*point.values())
    d, XL, offset, cov = _dense_marginal(m, point["adstock_alpha"], point["hill_kappa"], point["hill_lambda"],
                                         point["group_sigma"], point["sigma"], point["sigma_level"])
    ref = stats.multivariate_normal(1.0 + offset, cov).logpdf(d.y)
    assert abs(ours - ref) < 1e-8 * abs(ref) + 1e-8
    # conditional draws of eta (the standardised linear effects) given these parameters
    import xarray as xr

    S = 4000
    post = xr.Dataset({k: (("chain", "draw") + (("channel",) if np.ndim(v) and k != "group_sigma" else
                                                (("group",) if np.ndim(v) else ())),
                           np.broadcast_to(v, (1, S) + np.shape(v)).copy()) for k, v in point.items()},
                      coords={"chain": [0], "draw": np.arange(S), "channel": m.channels, "group": m.group_names})
    m.idata = xr.DataTree.from_dict({"posterior": post})
    lin = m._draw_linear(seed=0)
    # GLS posterior of eta: prior N(0, I), y - 1 - offset = XL eta + N(0, level + noise covariance)
    R = cov - XL @ XL.T
    prec = np.eye(XL.shape[1]) + XL.T @ np.linalg.solve(R, XL)
    eta_mean = np.linalg.solve(prec, XL.T @ np.linalg.solve(R, d.y - 1.0 - offset))
    G, C = len(m.group_names), len(m.channels)
    p = m.priors
    rel_mean = p.roi_mu_mean + p.roi_mu_sd * eta_mean[:G][m.group_index] + \
        point["group_sigma"][m.group_index] * eta_mean[G:G + C]
    rel = lin["roi"][0][0] / d.roi_ref  # (draws, channel)
    assert np.all(np.abs(rel.mean(0) - rel_mean) < 5 * rel.std(0) / np.sqrt(S))
    gam = lin["gamma_control"][0][0] / p.control_sd
    eta_c = eta_mean[G + C:G + C + ctrl.shape[1]]
    assert np.all(np.abs(gam.mean(0) - eta_c) < 5 * gam.std(0) / np.sqrt(S))
    # and the spread is the exact conditional one
    eta_sd = np.sqrt(np.diag(np.linalg.inv(prec)))[G + C:G + C + ctrl.shape[1]]
    np.testing.assert_allclose(gam.std(0), eta_sd, rtol=0.08)


def test_polar_noise_scales_have_the_half_normal_prior():
    """The polar parameterisation of (sigma, sigma_level) keeps the prior: independent half-normals
    with scales noise_sd and level_sd (prior draws of the model's own expressions)."""
    import pymc as pm
    import pytensor.tensor as pt

    from ltae.models.mmm import MMMPriors, ShortTermMMM

    m = ShortTermMMM(np.ones(60), np.ones((60, 1)), priors=MMMPriors(noise_sd=0.3, level_sd=0.05))
    with pm.Model():
        sigma, sigma_level = m._noise_scales(pm, pt)
        a, b = pm.draw([sigma, sigma_level], draws=100_000, random_seed=1)
    hn = np.abs(np.random.default_rng(0).standard_normal(100_000))
    q = [0.1, 0.5, 0.9]
    np.testing.assert_allclose(np.quantile(a, q), 0.3 * np.quantile(hn, q), rtol=0.03)
    np.testing.assert_allclose(np.quantile(b, q), 0.05 * np.quantile(hn, q), rtol=0.03)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.02
