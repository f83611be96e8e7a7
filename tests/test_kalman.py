"""The integrated-likelihood operation (ltae.models.kalman): value and gradient against the graph
version (parallel-prefix whitening + LAPACK Cholesky, differentiated by pytensor), the textbook
scan, the dense multivariate normal and finite differences, on every backend it runs on (numba,
pytensor's Python linker, JAX)."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

from ltae.models.kalman import KalmanLoglik, kalman_loglik, loglik_numpy, value_and_grad_numpy
from ltae.models.mmm import local_level_loglik, local_level_whiten


def _graph_loglik(E, s, sl, m0, p0, T):
    """The same log density as a pytensor graph (the model's formulation before the operation)."""
    import pytensor.tensor.slinalg as sla

    W, sum_log_f = local_level_whiten(E, s, sl, m0, p0, T)
    yt, Z = W[:, 0], W[:, 1:]
    L = sla.cholesky(pt.eye(len(m0) - 1) + Z.T @ Z, lower=True)
    w = sla.solve_triangular(L, Z.T @ yt, lower=True)
    return -0.5 * (T * np.log(2 * np.pi) + sum_log_f + yt @ yt - w @ w) - pt.sum(pt.log(pt.diag(L)))


def _functions(T, Q, mode, p0=0.7):
    E = pt.matrix("E", shape=(T, Q))
    s, sl = pt.dscalar("s"), pt.dscalar("sl")
    m0 = np.linspace(1.0, -0.5, Q)
    ll = kalman_loglik(E, s**2, sl**2, m0, p0)
    ref = _graph_loglik(E, s, sl, m0, p0, T)
    f = pytensor.function([E, s, sl], [ll, *pt.grad(ll, [E, s, sl])], mode=mode)
    f_ref = pytensor.function([E, s, sl], [ref, *pt.grad(ref, [E, s, sl])], mode="FAST_COMPILE")
    return f, f_ref, m0


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
@pytest.mark.parametrize("T,Q", [(1, 2), (2, 3), (7, 2), (60, 6)])
def test_operation_matches_the_graph_version_value_and_gradient(mode, T, Q):
    f, f_ref, _ = _functions(T, Q, mode)
    rng = np.random.default_rng(T * 10 + Q)
    for sv, qv in ((0.1, 0.05), (0.008, 0.02), (0.3, 1e-3)):
        args = [1.0 + rng.normal(size=(T, Q)), sv, qv]
        for got, want in zip(f(*args), f_ref(*args), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * (1 + np.max(np.abs(want))))


def test_equals_the_dense_multivariate_normal():
    """y = level + X eta + noise with eta ~ N(0, I) and X = E[:, 1:] - m0[1:]:
    y ~ N(m0[0], p0 11' + q min(s, t) + s2 I + X X')."""
    rng = np.random.default_rng(2)
    T, k = 25, 3
    m0 = np.array([1.0, 0.3, -0.2, 0.0])
    X = rng.normal(size=(T, k))
    y = 1.0 + rng.normal(size=T)
    E = np.column_stack([y, -X + m0[1:]])  # whitening y - (m0_j - E_j) eta is linear in eta
    s2, q, p0 = 0.04, 0.01, 0.5
    t = np.arange(T)
    cov = p0 + q * np.minimum(t[:, None], t[None, :]) + s2 * np.eye(T) + X @ X.T
    want = stats.multivariate_normal(np.full(T, m0[0]), cov).logpdf(y)
    np.testing.assert_allclose(loglik_numpy(E, s2, q, m0, p0), want, rtol=1e-10)
    Ev, s2v, qv = pt.matrix(), pt.dscalar(), pt.dscalar()
    f = pytensor.function([Ev, s2v, qv], kalman_loglik(Ev, s2v, qv, m0, p0), mode="NUMBA")
    np.testing.assert_allclose(f(E, s2, q), want, rtol=1e-10)


def test_gradient_matches_finite_differences():
    """The hand-written adjoint against central differences (pytensor's verify_grad), every input."""
    rng = np.random.default_rng(3)
    m0 = [0.5, 0.0, -1.0]
    pytensor.gradient.verify_grad(lambda E, s2, q: kalman_loglik(E, s2, q, m0, 0.4),
                                  [rng.normal(size=(9, 3)), np.array(0.05), np.array(0.02)], rng=rng,
                                  mode="FAST_COMPILE", abs_tol=1e-4, rel_tol=1e-4)


def test_numba_and_numpy_implementations_agree():
    """The operation's four outputs (value and gradient, computed in one pass) on both backends."""
    rng = np.random.default_rng(5)
    E = rng.normal(size=(30, 4))
    m0 = np.array([1.0, 0.0, 0.0, 0.0])
    Ev, s2, q = pt.matrix(), pt.dscalar(), pt.dscalar()
    f = pytensor.function([Ev, s2, q], KalmanLoglik(m0, 1.0)(Ev, s2, q), mode="NUMBA")
    for got, want in zip(f(E, 0.04, 0.01), value_and_grad_numpy(E, 0.04, 0.01, m0, 1.0), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_second_derivatives_are_refused():
    E, s2, q = pt.matrix(shape=(4, 2)), pt.dscalar(), pt.dscalar()
    g = pt.grad(kalman_loglik(E, s2, q, [1.0, 0.0], 1.0), s2)
    with pytest.raises(NotImplementedError, match="second derivatives"):
        pt.grad(g, s2)


def test_local_level_log_likelihood_through_the_operation():
    """local_level_loglik's default (the operation with no regressors) equals its graph version
    (which tests/test_transforms.py checks against the textbook scan filter)."""
    rng = np.random.default_rng(0)
    for T in (1, 5, 50):
        e = pt.as_tensor(1.0 + 0.1 * rng.normal(size=T))
        s, q = pt.dscalar(), pt.dscalar()
        outs = []
        for method in ("kalman", "prefix"):
            ll = local_level_loglik(e, s, q, 1.0, 1.0, n=T, method=method)
            outs.append(pytensor.function([s, q], [ll, *pt.grad(ll, [s, q])], mode="FAST_COMPILE"))
        for sv, qv in ((0.05, 0.01), (0.3, 1e-4)):
            # atol: with T = 1 the gradient in q is exactly 0; the closed form rounds to ~1e-8
            np.testing.assert_allclose(outs[0](sv, qv), outs[1](sv, qv), rtol=1e-9, atol=1e-7)


def test_jax_implementation_value_and_gradient():
    """nutpie_jax, numpyro and blackjax compile the operation with JAX (and differentiate it there)."""
    pytest.importorskip("jax")
    from ltae.models import sampling

    sampling._setup_jax()  # float64 and the JAX registration
    f_jax, f_ref, _ = _functions(12, 3, "JAX")
    args = [1.0 + np.random.default_rng(1).normal(size=(12, 3)), 0.1, 0.05]
    for got, want in zip(f_jax(*args), f_ref(*args), strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("T", [1, 2, 300])
def test_jax_parallel_prefix_matches_numba_at_extreme_noise_ratios(T):
    """The JAX version has no sequential scan (Moebius powers for the variances, affine prefixes
    for the means): equal to the numba filter in value and gradient also where the level noise is
    1e-12 of the observation noise, or 1e6 times it."""
    pytest.importorskip("jax")
    from ltae.models import sampling

    sampling._setup_jax()
    E = pt.matrix("E", shape=(T, 3))
    s, sl = pt.dscalar("s"), pt.dscalar("sl")
    ll = kalman_loglik(E, s**2, sl**2, np.array([1.0, 0.2, 0.0]), 0.7)
    outs = [ll, *pt.grad(ll, [E, s, sl])]
    f_jax, f_nb = (pytensor.function([E, s, sl], outs, mode=m) for m in ("JAX", "NUMBA"))
    rng = np.random.default_rng(T)
    for sv, slv in ((0.1, 1e-7), (1e-3, 1.0), (0.05, 0.02), (2.0, 1e-6)):
        args = [1.0 + 0.1 * rng.normal(size=(T, 3)), sv, slv]
        for got, want in zip(f_jax(*args), f_nb(*args), strict=True):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-7, atol=1e-7 * (1 + np.max(np.abs(want))))


def test_m0_must_match_the_columns():
    with pytest.raises(ValueError, match="m0 has 2 entries but E has 3 columns"):
        kalman_loglik(pt.matrix(shape=(5, 3)), 0.1, 0.1, [1.0, 0.0], 1.0)


def _mmm(T=40, priors=None, controls=True, seed=0):
    from ltae.data.synthetic import generate_synthetic_data
    from ltae.models.mmm import ShortTermMMM

    d = generate_synthetic_data(n_weeks=T, seed=seed)
    ctrl = d.competitor_activity.drop(columns="Date").join(d.macroeconomic_indicators.drop(columns="Date"))
    return ShortTermMMM(d.sales.revenue.values, d.spend_wide.values, ctrl.values if controls else None,
                        d.params.channels, list(ctrl.columns) if controls else None, priors=priors)


@pytest.mark.parametrize("case", ["default", "shared_sigma", "fixed_sigma", "no_controls", "plain_adstock"])
def test_fused_likelihood_equals_the_graph_version(case, monkeypatch):
    """The model's log density and gradient with the likelihood as one operation (MMMLoglik) equal
    those of the same likelihood built as a pytensor graph, at random points, numba and numpy."""
    from ltae.models.mmm import MMMPriors, ShortTermMMM

    priors = {"shared_sigma": MMMPriors(shared_sigma=True), "fixed_sigma": MMMPriors(roi_sigma_fixed=0.05),
              "plain_adstock": MMMPriors(normalize_adstock=False, fourier_order=0, l_max=3)}.get(case)
    models = {}
    for fused in (True, False):
        monkeypatch.setattr(ShortTermMMM, "_FUSED_LIKELIHOOD", fused)
        models[fused] = _mmm(priors=priors, controls=case != "no_controls").build_model()
    rng = np.random.default_rng(4)
    ref = models[False].compile_logp(mode="FAST_COMPILE"), models[False].compile_dlogp(mode="FAST_COMPILE")
    # numba for the default model (other props compile other code); numpy (perform) for every case
    for mode in ("NUMBA", "FAST_COMPILE") if case == "default" else ("FAST_COMPILE",):
        fused = models[True].compile_logp(mode=mode), models[True].compile_dlogp(mode=mode)
        ip = models[True].initial_point()
        for _ in range(3):
            point = {k: v + 0.3 * rng.normal(size=np.shape(v)) for k, v in ip.items()}
            (lp1, dl1), (lp0, dl0) = ((lp(point), dlp(point)) for lp, dlp in (fused, ref))
            np.testing.assert_allclose(lp1, lp0, rtol=1e-10)
            np.testing.assert_allclose(dl1, dl0, rtol=1e-7, atol=1e-9 * np.max(np.abs(dl0)))


def test_fused_likelihood_jax_matches_numba():
    pytest.importorskip("jax")
    from ltae.models import sampling

    sampling._setup_jax()
    model = _mmm(T=30).build_model()
    point = model.initial_point()
    got = (model.compile_logp(mode="JAX")(point), model.compile_dlogp(mode="JAX")(point))
    want = (model.compile_logp(mode="NUMBA")(point), model.compile_dlogp(mode="NUMBA")(point))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
    np.testing.assert_allclose(np.asarray(got[1]), want[1], rtol=1e-8, atol=1e-10)
