"""The Kalman filter operation (ltae.models.kalman): value and gradient against the graph version
(a parallel prefix differentiated by pytensor), the textbook scan, and finite differences, on every
backend it runs on (numba, pytensor's Python linker, JAX)."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ltae.models.kalman import KalmanGram, gram_grad_numpy, gram_numpy, kalman_gram
from ltae.models.mmm import local_level_loglik, local_level_whiten


def _objectives(T, Q, p0=0.7):
    """Graph inputs and two objectives with the same value: one through the operation, one through
    the prefix graph; the objective mixes every output (all of G and S) with random weights."""
    E = pt.matrix("E", shape=(T, Q))
    s, sl = pt.dscalar("s"), pt.dscalar("sl")
    R = pt.matrix("R", shape=(Q, Q))
    m0 = np.linspace(1.0, -0.5, Q)
    G, S = kalman_gram(E, s**2, sl**2, m0, p0)
    W, S_ref = local_level_whiten(E, s, sl, m0, p0, T)
    return (E, s, sl, R), (G * R).sum() + 0.7 * S, ((W.T @ W) * R).sum() + 0.7 * S_ref


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
@pytest.mark.parametrize("T,Q", [(1, 1), (2, 3), (7, 2), (60, 6)])
def test_operation_matches_the_prefix_graph_value_and_gradient(mode, T, Q):
    inputs, obj, obj_ref = _objectives(T, Q)
    E, s, sl, _ = inputs
    f = pytensor.function(list(inputs), [obj, *pt.grad(obj, [E, s, sl])], mode=mode)
    f_ref = pytensor.function(list(inputs), [obj_ref, *pt.grad(obj_ref, [E, s, sl])], mode="FAST_COMPILE")
    rng = np.random.default_rng(T * 10 + Q)
    for sv, qv in ((0.1, 0.05), (0.008, 0.02), (0.3, 1e-3)):
        args = [1.0 + rng.normal(size=(T, Q)), sv, qv, rng.normal(size=(Q, Q))]
        for got, want in zip(f(*args), f_ref(*args), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * (1 + np.max(np.abs(want))))


def test_gradient_matches_finite_differences():
    """The hand-written adjoint against central differences (pytensor's verify_grad), every input."""
    rng = np.random.default_rng(3)
    m0 = [0.5, 0.0, -1.0]

    def fn(E, s2, q):
        G, S = KalmanGram(m0, 0.4)(E, s2, q)
        return (G * np.arange(1.0, 10.0).reshape(3, 3)).sum() + 2.0 * S

    pytensor.gradient.verify_grad(fn, [rng.normal(size=(9, 3)), np.array(0.05), np.array(0.02)], rng=rng,
                                  mode="FAST_COMPILE", abs_tol=1e-4, rel_tol=1e-4)


def test_numpy_twins_agree_with_the_sequential_filter():
    """gram_numpy equals the Gram matrix of ltae's numpy whitening (the draws of the linear effects
    use it), and the numpy adjoint equals the numba one."""
    from ltae.models.mmm import local_level_whiten_np

    rng = np.random.default_rng(5)
    E = rng.normal(size=(30, 4))
    m0 = np.array([1.0, 0.0, 0.0, 0.0])
    G, S = gram_numpy(E, 0.04, 0.01, m0, 1.0)
    W = local_level_whiten_np(E[None], np.array([0.2]), np.array([0.1]), m0, 1.0)[0]
    np.testing.assert_allclose(G, W.T @ W, rtol=1e-12)
    Ev, s2, q, gG, gS = (pt.matrix(), pt.dscalar(), pt.dscalar(), pt.matrix(), pt.dscalar())
    from ltae.models.kalman import KalmanGramGrad

    f = pytensor.function([Ev, s2, q, gG, gS], KalmanGramGrad(m0, 1.0)(Ev, s2, q, gG, gS), mode="NUMBA")
    g = rng.normal(size=(4, 4))
    for got, want in zip(f(E, 0.04, 0.01, g, 0.3), gram_grad_numpy(E, 0.04, 0.01, m0, 1.0, g, 0.3), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_log_likelihood_equals_the_textbook_scan():
    rng = np.random.default_rng(0)
    for T in (1, 5, 50):
        e = pt.as_tensor(1.0 + 0.1 * rng.normal(size=T))
        s, q = pt.dscalar(), pt.dscalar()
        outs = []
        for method in ("kalman", "scan"):
            ll = local_level_loglik(e, s, q, 1.0, 1.0, n=T, method=method)
            outs.append(pytensor.function([s, q], [ll, *pt.grad(ll, [s, q])]))
        for sv, qv in ((0.05, 0.01), (0.3, 1e-4)):
            np.testing.assert_allclose(outs[0](sv, qv), outs[1](sv, qv), rtol=1e-9, atol=1e-9)


def test_jax_implementation_value_and_gradient():
    """nutpie_jax, numpyro and blackjax compile the operation with JAX (and differentiate it there)."""
    pytest.importorskip("jax")
    from ltae.models import sampling

    sampling._setup_jax()  # float64 and the JAX registration
    inputs, obj, _ = _objectives(12, 3)
    E, s, sl, _ = inputs
    outs = [obj, *pt.grad(obj, [E, s, sl])]
    f_jax = pytensor.function(list(inputs), outs, mode="JAX")
    f_np = pytensor.function(list(inputs), outs, mode="FAST_COMPILE")
    rng = np.random.default_rng(1)
    args = [1.0 + rng.normal(size=(12, 3)), 0.1, 0.05, rng.normal(size=(3, 3))]
    for got, want in zip(f_jax(*args), f_np(*args), strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-10)


def test_m0_must_match_the_columns():
    with pytest.raises(ValueError, match="m0 has 2 entries but E has 3 columns"):
        kalman_gram(pt.matrix(shape=(5, 3)), 0.1, 0.1, [1.0, 0.0], 1.0)
