import numpy as np
import pytensor
import pytensor.tensor as pt

from ltae.data.synthetic import geometric_adstock_np
from ltae.models.transforms import geometric_adstock_from_stack, hill, lag_stack


def test_adstock_matches_pymc_marketing():
    from pymc_marketing.mmm.transformers import geometric_adstock
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
