"""The local-level Kalman filter of the short-term model as one pytensor Op (value and gradient).

For the columns of ``E`` (T, Q), the local level model e[t] = level[t] + N(0, s2),
level[t] = level[t-1] + N(0, q), level[0] ~ N(m0[j], p0) gives one-step-ahead innovations
v[t] = e[t] - a[t] with variance F[t]; ``KalmanGram`` returns

* ``G = W' W`` (Q, Q), the Gram matrix of the whitened innovations W[t] = v[t] / sqrt(F[t]), and
* ``S = sum_t log F[t]``,

which is all the integrated-out likelihood needs (``ShortTermMMM._marginal_likelihood``: the first
column is the sales, the others the linear effects' columns). The filter is the textbook recursion
(P[t+1] = P[t] (1 - K[t]) + q, a[t+1] = a[t] + K[t] v[t], K = P / F), written as one loop over
weeks, and its gradient is the same loop run backwards (reverse-mode adjoint, hand-derived below and
checked against pytensor's automatic gradient of the graph version ``local_level_whiten`` and finite
differences in the tests). As a graph of pytensor operations the filter (a parallel prefix of
``log2 T`` levels) and its gradient cost about 60 us per gradient at T = 208, Q = 15; as one loop
they cost a few microseconds, and the compiled model has far fewer operations to compile.

Backends: numba (nutpie, PyMC's sampler; registered on import), JAX (nutpie_jax, numpyro, blackjax;
registered by :func:`register_jax`, which ``ltae.models.sampling`` calls before any JAX compile) and
a numpy ``perform`` (pytensor's Python linker).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op


def _check_m0(m0, q: int) -> None:
    if len(m0) != q:
        raise ValueError(f"KalmanGram: m0 has {len(m0)} entries but E has {q} columns")


class KalmanGram(Op):
    """(E (T, Q), s2, q) -> (W'W (Q, Q), sum log F); see the module docstring."""

    __props__ = ("m0", "p0")

    def __init__(self, m0, p0: float):
        self.m0 = tuple(float(v) for v in np.asarray(m0, dtype="float64").ravel())
        self.p0 = float(p0)

    def make_node(self, E, s2, q):
        E = pt.as_tensor_variable(E).astype("float64")
        s2 = pt.as_tensor_variable(s2).astype("float64")
        q = pt.as_tensor_variable(q).astype("float64")
        if E.ndim != 2 or s2.ndim != 0 or q.ndim != 0:
            raise TypeError("KalmanGram takes a matrix and two scalars")
        n_col = E.type.shape[1]
        if n_col is not None:
            _check_m0(self.m0, n_col)
        G = pt.tensor(dtype="float64", shape=(n_col, n_col))
        return Apply(self, [E, s2, q], [G, pt.scalar(dtype="float64")])

    def perform(self, node, inputs, outputs):
        E, s2, q = inputs
        G, S = gram_numpy(E, float(s2), float(q), np.asarray(self.m0), self.p0)
        outputs[0][0] = G
        outputs[1][0] = np.asarray(S, dtype="float64")

    def infer_shape(self, fgraph, node, shapes):
        q = shapes[0][1]
        return [(q, q), ()]

    def pullback(self, inputs, outputs, output_grads):
        E, s2, q = inputs
        gG, gS = output_grads
        if isinstance(gG.type, DisconnectedType):
            gG = pt.zeros((E.shape[1], E.shape[1]), dtype="float64")
        if isinstance(gS.type, DisconnectedType):
            gS = pt.as_tensor_variable(np.float64(0.0))
        gE, gs2, gq = KalmanGramGrad(self.m0, self.p0)(E, s2, q, gG, gS)
        return [gE, gs2, gq]

    L_op = pullback  # the name in pytensor versions before ``pullback``


class KalmanGramGrad(Op):
    """Vector-Jacobian product of :class:`KalmanGram`: (E, s2, q, dG, dS) -> (dE, ds2, dq)."""

    __props__ = ("m0", "p0")

    def __init__(self, m0, p0: float):
        self.m0 = tuple(float(v) for v in m0)
        self.p0 = float(p0)

    def make_node(self, E, s2, q, gG, gS):
        E = pt.as_tensor_variable(E).astype("float64")
        s2, q = (pt.as_tensor_variable(v).astype("float64") for v in (s2, q))
        gG = pt.as_tensor_variable(gG).astype("float64")
        gS = pt.as_tensor_variable(gS).astype("float64")
        return Apply(self, [E, s2, q, gG, gS], [E.type(), pt.scalar(dtype="float64"), pt.scalar(dtype="float64")])

    def perform(self, node, inputs, outputs):
        E, s2, q, gG, gS = inputs
        gE, gs2, gq = gram_grad_numpy(E, float(s2), float(q), np.asarray(self.m0), self.p0, gG, float(gS))
        outputs[0][0] = gE
        outputs[1][0] = np.asarray(gs2, dtype="float64")
        outputs[2][0] = np.asarray(gq, dtype="float64")

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0], (), ()]


# ---- numpy (reference, pytensor's Python linker) ---------------------------------------------------
def _filter_numpy(E, s2, q, m0, p0):
    """Innovations V (T, Q), predicted variances P and F (T,) of the filter."""
    T, Q = E.shape
    _check_m0(m0, Q)
    a = np.array(m0, dtype="float64")
    V = np.empty((T, Q))
    Pv, Fv = np.empty(T), np.empty(T)
    P = float(p0)
    for t in range(T):
        F = P + s2
        K = P / F
        V[t] = E[t] - a
        a = a + K * V[t]
        Pv[t], Fv[t] = P, F
        P = P * (1.0 - K) + q
    return V, Pv, Fv


def gram_numpy(E, s2, q, m0, p0):
    """(W'W, sum log F) in numpy."""
    V, _, F = _filter_numpy(np.asarray(E, dtype="float64"), s2, q, m0, p0)
    W = V / np.sqrt(F)[:, None]
    return W.T @ W, float(np.sum(np.log(F)))


def gram_grad_numpy(E, s2, q, m0, p0, gG, gS):
    """The adjoint of :func:`gram_numpy` (see ``_gram_grad_kernel`` for the derivation)."""
    E = np.asarray(E, dtype="float64")
    V, Pv, Fv = _filter_numpy(E, s2, q, m0, p0)
    T, Q = E.shape
    c = 1.0 / np.sqrt(Fv)
    W = V * c[:, None]
    WB = W @ (gG + gG.T)  # adjoint of W[t]
    gE = np.empty_like(E)
    abar = np.zeros(Q)
    pbar_next = s2bar = qbar = 0.0
    for t in range(T - 1, -1, -1):
        P, F, K = Pv[t], Fv[t], Pv[t] / Fv[t]
        vbar = WB[t] * c[t] + K * abar
        cbar = float(WB[t] @ V[t])
        kbar = float(abar @ V[t]) - pbar_next * P
        gE[t] = vbar
        abar = abar - vbar
        qbar += pbar_next
        fbar = gS / F - 0.5 * cbar * c[t] / F - kbar * P / (F * F)
        pbar_next = pbar_next * (1.0 - K) + kbar / F + fbar
        s2bar += fbar
    return gE, s2bar, qbar


# ---- numba -----------------------------------------------------------------------------------------
def _register_numba() -> None:
    import numba
    from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key

    @numba_njit
    def filter_kernel(E, s2, q, m0, p0):
        T, Q = E.shape
        a = m0.copy()
        V = np.empty((T, Q))
        Pv = np.empty(T)
        Fv = np.empty(T)
        P = p0
        for t in range(T):
            F = P + s2
            K = P / F
            for j in range(Q):
                v = E[t, j] - a[j]
                V[t, j] = v
                a[j] += K * v
            Pv[t] = P
            Fv[t] = F
            P = P * (1.0 - K) + q
        return V, Pv, Fv

    @numba_njit
    def gram_kernel(E, s2, q, m0, p0):
        V, _, Fv = filter_kernel(E, s2, q, m0, p0)
        T, Q = V.shape
        S = 0.0
        for t in range(T):
            c = 1.0 / np.sqrt(Fv[t])
            for j in range(Q):
                V[t, j] *= c
            S += np.log(Fv[t])
        return V.T @ V, S

    @numba_njit
    def gram_grad_kernel(E, s2, q, m0, p0, gG, gS):
        # Forward: F = P + s2, K = P / F, c = F^-1/2, v = e - a, w = c v, a' = a + K v,
        # P' = P (1 - K) + q, S = sum log F, G = sum_t w w'. Backwards over t, with abar the
        # adjoint of a[t+1] and pbar that of P[t+1]: vbar = c wbar + K abar (wbar = (dG + dG') w),
        # cbar = wbar . v, Kbar = abar . v - pbar P, Fbar = dS / F - cbar c / (2F) - Kbar P / F^2,
        # then abar <- abar - vbar, pbar <- pbar (1 - K) + Kbar / F + Fbar, ds2 += Fbar, dq += pbar.
        V, Pv, Fv = filter_kernel(E, s2, q, m0, p0)
        T, Q = V.shape
        H = gG + gG.T
        W = np.empty((T, Q))
        for t in range(T):
            c = 1.0 / np.sqrt(Fv[t])
            for j in range(Q):
                W[t, j] = V[t, j] * c
        WB = W @ H
        gE = np.empty((T, Q))
        abar = np.zeros(Q)
        pbar = 0.0
        s2bar = 0.0
        qbar = 0.0
        for t in range(T - 1, -1, -1):
            P = Pv[t]
            F = Fv[t]
            K = P / F
            c = 1.0 / np.sqrt(F)
            cbar = 0.0
            kbar = 0.0
            for j in range(Q):
                vb = WB[t, j] * c + K * abar[j]
                cbar += WB[t, j] * V[t, j]
                kbar += abar[j] * V[t, j]
                gE[t, j] = vb
                abar[j] -= vb
            kbar -= pbar * P
            qbar += pbar
            fbar = gS / F - 0.5 * cbar * c / F - kbar * P / (F * F)
            pbar = pbar * (1.0 - K) + kbar / F + fbar
            s2bar += fbar
        return gE, s2bar, qbar

    @register_funcify_default_op_cache_key(KalmanGram)
    def numba_funcify_kalman_gram(op, node=None, **kwargs):
        m0 = np.asarray(op.m0, dtype="float64")
        p0 = op.p0

        @numba_njit
        def kalman_gram(E, s2, q):
            G, S = gram_kernel(np.ascontiguousarray(E), s2.item(), q.item(), m0, p0)
            return G, np.asarray(S)

        return kalman_gram

    @register_funcify_default_op_cache_key(KalmanGramGrad)
    def numba_funcify_kalman_gram_grad(op, node=None, **kwargs):
        m0 = np.asarray(op.m0, dtype="float64")
        p0 = op.p0

        @numba_njit
        def kalman_gram_grad(E, s2, q, gG, gS):
            gE, gs2, gq = gram_grad_kernel(np.ascontiguousarray(E), s2.item(), q.item(), m0, p0,
                                           np.ascontiguousarray(gG), gS.item())
            return gE, np.asarray(gs2), np.asarray(gq)

        return kalman_gram_grad

    del numba  # imported for its side effect: numba must be importable here


_register_numba()


# ---- JAX -------------------------------------------------------------------------------------------
_JAX_REGISTERED = False


def register_jax() -> None:
    """Register the JAX implementations (idempotent; imports JAX, so only called before JAX use)."""
    global _JAX_REGISTERED
    if _JAX_REGISTERED:
        return
    import jax
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify

    def gram_jax(E, s2, q, m0, p0):
        def step(carry, e_t):
            a, P = carry
            F = P + s2
            K = P / F
            v = e_t - a
            return (a + K * v, P * (1.0 - K) + q), (v / jnp.sqrt(F), jnp.log(F))

        init = (jnp.asarray(m0, dtype=E.dtype), jnp.asarray(p0, dtype=E.dtype))
        _, (W, logF) = jax.lax.scan(step, init, E)
        return W.T @ W, jnp.sum(logF)

    @jax_funcify.register(KalmanGram)
    def jax_funcify_kalman_gram(op, **kwargs):
        m0, p0 = np.asarray(op.m0), op.p0

        def kalman_gram(E, s2, q):
            return gram_jax(E, s2, q, m0, p0)

        return kalman_gram

    @jax_funcify.register(KalmanGramGrad)
    def jax_funcify_kalman_gram_grad(op, **kwargs):
        m0, p0 = np.asarray(op.m0), op.p0

        def kalman_gram_grad(E, s2, q, gG, gS):
            _, vjp = jax.vjp(lambda E_, s2_, q_: gram_jax(E_, s2_, q_, m0, p0), E, s2, q)
            return vjp((gG, gS))

        return kalman_gram_grad

    _JAX_REGISTERED = True


def kalman_gram(E, s2, q, m0, p0: float):
    """``(W'W, sum log F)`` for the columns of ``E``; see the module docstring."""
    return KalmanGram(m0, p0)(E, s2, q)
