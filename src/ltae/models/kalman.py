"""The short-term model's integrated likelihood as pytensor Ops, with hand-written gradients.

:class:`MMMLoglik` is the whole likelihood of the short-term model from its nonlinear parameters
(adstock, Hill, the linear-effect columns, then :class:`KalmanLoglik`); ``ShortTermMMM`` uses it by
default. :class:`KalmanLoglik` is the Kalman filter and Gaussian integral on given columns:

Model: for ``E`` (T, 1 + k) with y = E[:, 0] and regressors X = E[:, 1:] - m0[1:],

    y[t] = level[t] + X[t] . eta + N(0, s2),   level[t] = level[t-1] + N(0, q),
    level[0] ~ N(m0[0], p0),   eta ~ N(0, I_k)

(the short-term model passes m0 = (1, 0, ..., 0)). :class:`KalmanLoglik` returns log p(y) with the
level and eta integrated out:

* the Kalman filter whitens every column: W[t] = (E[t] - a[t]) / sqrt(F[t]) with the textbook
  recursion (F = P + s2, K = P / F, a[t+1] = a[t] + K (E[t] - a[t]), P[t+1] = P (1 - K) + q); it is
  linear in each column, so whitening y - X eta gives y~ - Z eta with [y~, Z] = W;
* with G = W'W, b = Z'y~ = G[1:, 0] and P = I + Z'Z = I + G[1:, 1:] = L L',
  log p(y) = -1/2 [T log 2 pi + sum_t log F[t] + y~'y~ - |L^-1 b|^2] - sum_j log L[j, j].

With k = 0 it is the local-level log-likelihood of ``y`` alone. The gradient is the same computation
run backwards (reverse mode, derived in ``value_and_grad_kernel``), checked against pytensor's
automatic gradient of the graph version (``local_level_whiten`` + Cholesky) and finite differences
in the tests. As a graph of pytensor operations (a parallel prefix over log2 T levels and a Gram
product) the whitening and its gradient cost about 70 us at T = 208, k = 14; as one loop, Cholesky
included, about 17-21 us (CPU time, measured under load); and there are no LAPACK pointer lookups
to compile in object mode at the first call (0.5-1 s a process).

Backends: numba (nutpie, PyMC's sampler; registered on import), JAX (nutpie_jax, numpyro, blackjax;
registered by :func:`register_jax`, which ``ltae.models.sampling`` calls before any JAX compile) and
numpy (``perform``: pytensor's Python linker).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

_LOG_2PI = math.log(2 * math.pi)
# a hash of this file's source: part of the numba cache key of the kernel below
_SOURCE_VERSION = int.from_bytes(hashlib.sha256(Path(__file__).read_bytes()).digest()[:6], "big")


def _check_m0(m0, n_col: int) -> None:
    if len(m0) != n_col:
        raise ValueError(f"KalmanLoglik: m0 has {len(m0)} entries but E has {n_col} columns")


class KalmanLoglik(Op):
    """(E (T, 1 + k), s2, q) -> (log p(y), its gradient with respect to E, s2 and q).

    The gradient is computed with the value, in the same pass (the sampler always needs both), and
    the operation's pullback multiplies it by the incoming gradient; use :func:`kalman_loglik` for
    the log density alone. Second derivatives are not implemented."""

    __props__ = ("m0", "p0")

    def __init__(self, m0, p0: float):
        self.m0 = tuple(float(v) for v in np.asarray(m0, dtype="float64").ravel())
        self.p0 = float(p0)

    def make_node(self, E, s2, q):
        """Build the graph node (checks the inputs' ranks)."""
        E = pt.as_tensor_variable(E).astype("float64")
        s2 = pt.as_tensor_variable(s2).astype("float64")
        q = pt.as_tensor_variable(q).astype("float64")
        if E.ndim != 2 or s2.ndim != 0 or q.ndim != 0:
            raise TypeError("KalmanLoglik takes a matrix and two scalars")
        if E.type.shape[1] is not None:
            _check_m0(self.m0, E.type.shape[1])
        scalar = pt.scalar(dtype="float64")
        return Apply(self, [E, s2, q], [scalar, E.type(), scalar.type(), scalar.type()])

    def perform(self, node, inputs, outputs):
        """Compute the value and gradient with numpy."""
        E, s2, q = inputs
        res = value_and_grad_numpy(E, float(s2), float(q), np.asarray(self.m0), self.p0)
        for out, value in zip(outputs, res, strict=True):
            out[0] = np.asarray(value, dtype="float64")

    def infer_shape(self, fgraph, node, shapes):
        """Output shapes: a scalar and the parameters' shapes."""
        return [(), shapes[0], (), ()]

    def pullback(self, inputs, outputs, output_grads):
        """Incoming gradient times the gradient computed in :meth:`perform`."""
        g = output_grads[0]
        if any(not isinstance(og.type, DisconnectedType) for og in output_grads[1:]):
            raise NotImplementedError("KalmanLoglik has no second derivatives")
        if isinstance(g.type, DisconnectedType):
            return [pt.zeros_like(inputs[0]), pt.zeros_like(inputs[1]), pt.zeros_like(inputs[2])]
        return [g * outputs[1], g * outputs[2], g * outputs[3]]

    def L_op(self, inputs, outputs, output_grads):
        """The name of :meth:`pullback` in pytensor versions before it."""
        return self.pullback(inputs, outputs, output_grads)


class MMMLoglik(Op):
    """The short-term model's integrated log-likelihood from its nonlinear parameters, with gradient.

    Inputs: adstock ``alpha``, Hill ``kappa`` and ``lam``, the within-group ROI spread of each
    channel ``sd`` (all (C,)), the noise and level variances ``s2`` and ``q``; and the data: the lag
    stack of scaled spend (T, C, L), ``roi_weight`` (C,), standardised controls (T, J), Fourier
    terms (T, F) and scaled sales (T,). It builds, exactly as ``ShortTermMMM._linear_blocks``:

        w[c, l] = alpha[c]^l (/ sum_l alpha[c]^l if ``normalize``), ad[t, c] = sum_l stack[t, c, l] w[c, l],
        sat = sigmoid(kappa (log max(ad, floor) - log lam)), xr = sat * roi_weight / (sum_t sat + 1e-12),
        E = [y - roi_mu_mean sum_c xr, roi_mu_sd (xr summed by group), xr * sd, controls * control_sd,
             fourier * season_sd]

    and returns :class:`KalmanLoglik`'s log p(E[:, 0]) (level and linear effects integrated out;
    m0 = (1, 0, ...), p0) with its gradient with respect to (alpha, kappa, lam, sd, s2, q), computed
    in the same pass. The compiled log density has 27 nodes instead of 74, so a new machine compiles
    about half as much (33 against 66 s of CPU, measured under load); the value and gradient cost
    about the same as the graph version built around :class:`KalmanLoglik` (about 40 us at 208 x 4,
    against 124 us before either operation)."""

    __props__ = ("group_index", "n_groups", "l_max", "normalize", "roi_mu_mean", "roi_mu_sd", "control_sd",
                 "season_sd", "p0", "log_floor")

    def __init__(self, group_index, n_groups: int, l_max: int, normalize: bool, roi_mu_mean: float,
                 roi_mu_sd: float, control_sd: float, season_sd: float, p0: float, log_floor: float = 1e-12):
        self.group_index = tuple(int(g) for g in group_index)
        self.n_groups, self.l_max, self.normalize = int(n_groups), int(l_max), bool(normalize)
        self.roi_mu_mean, self.roi_mu_sd = float(roi_mu_mean), float(roi_mu_sd)
        self.control_sd, self.season_sd, self.p0 = float(control_sd), float(season_sd), float(p0)
        self.log_floor = float(log_floor)

    def make_node(self, alpha, kappa, lam, sd, s2, q, stack, roi_weight, controls, fourier, y):
        """Build the graph node (checks the inputs' ranks)."""
        params = [pt.as_tensor_variable(v).astype("float64") for v in (alpha, kappa, lam, sd, s2, q)]
        data = [pt.as_tensor_variable(v).astype("float64") for v in (stack, roi_weight, controls, fourier, y)]
        if [v.ndim for v in params] != [1, 1, 1, 1, 0, 0] or [v.ndim for v in data] != [3, 1, 2, 2, 1]:
            raise TypeError("MMMLoglik: alpha, kappa, lam, sd (C,), s2, q scalars, stack (T, C, L), "
                            "roi_weight (C,), controls (T, J), fourier (T, F), y (T,)")
        outs = [pt.scalar(dtype="float64")] + [v.type() for v in params]
        return Apply(self, params + data, outs)

    def perform(self, node, inputs, outputs):
        """Compute the value and gradient with numpy."""
        res = mmm_value_and_grad_numpy(self, *inputs)
        for out, value in zip(outputs, res, strict=True):
            out[0] = np.asarray(value, dtype="float64")

    def infer_shape(self, fgraph, node, shapes):
        """Output shapes: a scalar and the parameters' shapes."""
        return [(), *shapes[:6]]

    def connection_pattern(self, node):
        """The data inputs carry no gradient."""
        return [[True] * 7 for _ in range(6)] + [[False] * 7 for _ in range(5)]

    def pullback(self, inputs, outputs, output_grads):
        """Incoming gradient times the gradient computed in :meth:`perform`."""
        from pytensor.gradient import disconnected_type

        g = output_grads[0]
        if any(not isinstance(og.type, DisconnectedType) for og in output_grads[1:]):
            raise NotImplementedError("MMMLoglik has no second derivatives")
        data_grads = [disconnected_type() for _ in range(5)]
        if isinstance(g.type, DisconnectedType):
            return [pt.zeros_like(v) for v in inputs[:6]] + data_grads
        return [g * o for o in outputs[1:]] + data_grads

    def L_op(self, inputs, outputs, output_grads):
        """The name of :meth:`pullback` in pytensor versions before it."""
        return self.pullback(inputs, outputs, output_grads)


def _mmm_columns_numpy(op, alpha, kappa, lam, sd, stack, roi_weight, controls, fourier, y):
    """E and the intermediates of :class:`MMMLoglik` (numpy, one parameter set)."""
    L = stack.shape[2]
    u = np.asarray(alpha, dtype="float64")[:, None] ** np.arange(L)
    U = u.sum(axis=1)
    w = u / U[:, None] if op.normalize else u
    ad = np.einsum("tcl,cl->tc", stack, w)
    x = np.maximum(ad, op.log_floor)
    z = kappa * (np.log(x) - np.log(lam))
    sat = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow warnings
    S = sat.sum(axis=0) + 1e-12
    wt = roi_weight / S
    xr = sat * wt
    gi = np.asarray(op.group_index)
    onehot = np.eye(op.n_groups)[gi]
    E = np.concatenate([(y - op.roi_mu_mean * xr.sum(axis=1))[:, None], op.roi_mu_sd * xr @ onehot, xr * sd,
                        controls * op.control_sd, fourier * op.season_sd], axis=1)
    return E, dict(u=u, U=U, w=w, ad=ad, x=x, sat=sat, S=S, wt=wt, xr=xr, onehot=onehot)


def mmm_value_and_grad_numpy(op, alpha, kappa, lam, sd, s2, q, stack, roi_weight, controls, fourier, y):
    """(log-likelihood, d/dalpha, d/dkappa, d/dlam, d/dsd, d/ds2, d/dq) in numpy."""
    E, k = _mmm_columns_numpy(op, alpha, kappa, lam, sd, stack, roi_weight, controls, fourier, y)
    m0 = np.zeros(E.shape[1])
    m0[0] = 1.0
    value, gE, gs2, gq = value_and_grad_numpy(E, float(s2), float(q), m0, op.p0)
    G, C = op.n_groups, len(alpha)
    gxr = -op.roi_mu_mean * gE[:, [0]] + op.roi_mu_sd * gE[:, 1:1 + G] @ k["onehot"].T + sd * gE[:, 1 + G:1 + G + C]
    gsd = (k["xr"] * gE[:, 1 + G:1 + G + C]).sum(axis=0)
    A = (gxr * k["sat"]).sum(axis=0)
    gsat = k["wt"] * gxr - A * k["wt"] / k["S"]
    gz = gsat * k["sat"] * (1.0 - k["sat"])
    logdiff = np.log(k["x"]) - np.log(lam)
    gkappa = (gz * logdiff).sum(axis=0)
    glam = (gz * (-kappa / lam)).sum(axis=0)
    gad = np.where(k["ad"] > op.log_floor, gz * kappa / k["x"], 0.0)
    gw = np.einsum("tc,tcl->cl", gad, stack)
    gu = (gw - (gw * k["w"]).sum(axis=1, keepdims=True)) / k["U"][:, None] if op.normalize else gw
    lags = np.arange(stack.shape[2])
    dpow = np.where(lags > 0, lags * np.asarray(alpha)[:, None] ** np.maximum(lags - 1, 0), 0.0)
    galpha = (gu * dpow).sum(axis=1)
    return value, galpha, gkappa, glam, gsd, gs2, gq


# ---- numpy (pytensor's Python linker; reference in the tests) -----------------------------------
def _whiten_numpy(E, s2, q, m0, p0):
    """Whitened columns W (T, Q), innovations V, predicted variances P and F (T,)."""
    E = np.asarray(E, dtype="float64")
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
    return V / np.sqrt(Fv)[:, None], V, Pv, Fv


def loglik_numpy(E, s2, q, m0, p0) -> float:
    """The log density (numpy)."""
    W, _, _, F = _whiten_numpy(E, s2, q, m0, p0)
    G = W.T @ W
    out = -0.5 * (len(W) * _LOG_2PI + np.sum(np.log(F)) + G[0, 0])
    if len(G) > 1:
        L = np.linalg.cholesky(np.eye(len(G) - 1) + G[1:, 1:])
        w = np.linalg.solve(L, G[1:, 0])
        out += 0.5 * (w @ w) - np.sum(np.log(np.diag(L)))
    return float(out)


def value_and_grad_numpy(E, s2, q, m0, p0):
    """(log density, d/dE, d/ds2, d/dq) in numpy; the derivation is in ``value_and_grad_kernel``."""
    W, V, Pv, Fv = _whiten_numpy(E, s2, q, m0, p0)
    T, Q = W.shape
    G = W.T @ W
    H = np.zeros((Q, Q))  # Gbar + Gbar'
    H[0, 0] = -1.0
    if Q > 1:
        Pinv = np.linalg.inv(np.eye(Q - 1) + G[1:, 1:])
        u = Pinv @ G[1:, 0]
        H[1:, 0] = H[0, 1:] = u
        H[1:, 1:] = -(np.outer(u, u) + Pinv)
    WB = W @ H  # adjoint of W[t]
    c = 1.0 / np.sqrt(Fv)
    gE = np.empty_like(W)
    abar = np.zeros(Q)
    pbar = s2bar = qbar = 0.0
    for t in range(T - 1, -1, -1):
        P, F = Pv[t], Fv[t]
        K = P / F
        vbar = WB[t] * c[t] + K * abar
        cbar = float(WB[t] @ V[t])
        kbar = float(abar @ V[t]) - pbar * P
        gE[t] = vbar
        abar = abar - vbar
        qbar += pbar
        fbar = -0.5 / F - 0.5 * cbar * c[t] / F - kbar * P / (F * F)
        pbar = pbar * (1.0 - K) + kbar / F + fbar
        s2bar += fbar
    return loglik_numpy(E, s2, q, m0, p0), gE, s2bar, qbar


# ---- numba -------------------------------------------------------------------------------------------
def _register_numba() -> None:
    from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key

    @numba_njit
    def value_and_grad_kernel(E, s2, q, m0, p0):
        T, Q = E.shape
        k = Q - 1
        # forward: the filter (F = P + s2, K = P / F, c = F^-1/2, v = e - a, w = c v,
        # a <- a + K v, P <- P (1 - K) + q), S = sum log F and G = W'W
        a = m0.copy()
        W = np.empty((T, Q))
        Pv = np.empty(T)
        Fv = np.empty(T)
        S = 0.0
        P = p0
        for t in range(T):
            F = P + s2
            K = P / F
            c = 1.0 / np.sqrt(F)
            for j in range(Q):
                v = E[t, j] - a[j]
                W[t, j] = v * c
                a[j] += K * v
            Pv[t] = P
            Fv[t] = F
            S += np.log(F)
            P = P * (1.0 - K) + q
        G = W.T @ W  # BLAS
        # L L' = I + Z'Z (Z = W[:, 1:]), x = L^-1 Z'y~ (y~ = W[:, 0])
        L = np.zeros((k, k))
        for j in range(k):
            d = 1.0 + G[j + 1, j + 1]
            for m in range(j):
                d -= L[j, m] * L[j, m]
            d = np.sqrt(d) if d > 0.0 else np.nan
            L[j, j] = d
            for i in range(j + 1, k):
                s = G[i + 1, j + 1]
                for m in range(j):
                    s -= L[i, m] * L[j, m]
                L[i, j] = s / d
        x = np.empty(k)
        for i in range(k):
            s = G[i + 1, 0]
            for m in range(i):
                s -= L[i, m] * x[m]
            x[i] = s / L[i, i]
        value = T * _LOG_2PI + S + G[0, 0]
        for j in range(k):
            value -= x[j] * x[j]
        value *= -0.5
        for j in range(k):
            value -= np.log(L[j, j])
        # backward. d value / dG: G[0, 0] -> -1/2, b = G[1:, 0] -> u = P^-1 b, G[1:, 1:] ->
        # -(u u' + P^-1) / 2 (P = I + Z'Z), so with H = Gbar + Gbar' the adjoint of w[t] is
        # wbar = H w[t]; d value / dS = -1/2.
        # Then the filter backwards over t, with abar the adjoint of a[t+1] and pbar that of P[t+1]:
        # vbar = c wbar + K abar, cbar = wbar . v, Kbar = abar . v - pbar P,
        # Fbar = -1 / (2F) - cbar c / (2F) - Kbar P / F^2; then dE[t] = vbar, abar <- abar - vbar,
        # dq += pbar, pbar <- pbar (1 - K) + Kbar / F + Fbar, ds2 += Fbar.
        Linv = np.zeros((k, k))
        for j in range(k):
            for i in range(j, k):
                s = 1.0 if i == j else 0.0
                for m in range(j, i):
                    s -= L[i, m] * Linv[m, j]
                Linv[i, j] = s / L[i, i]
        Pinv = np.zeros((k, k))
        for i in range(k):
            for j in range(i + 1):
                s = 0.0
                for m in range(i, k):
                    s += Linv[m, i] * Linv[m, j]
                Pinv[i, j] = s
                Pinv[j, i] = s
        u = np.zeros(k)
        for i in range(k - 1, -1, -1):  # u = L'^-1 x
            s = x[i]
            for m in range(i + 1, k):
                s -= L[m, i] * u[m]
            u[i] = s / L[i, i]
        H = np.zeros((Q, Q))  # Gbar + Gbar'
        H[0, 0] = -1.0
        for i in range(k):
            H[i + 1, 0] = u[i]
            H[0, i + 1] = u[i]
            for j in range(k):
                H[i + 1, j + 1] = -(u[i] * u[j] + Pinv[i, j])
        WB = W @ H  # the adjoints of the w[t] (BLAS)
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
            rF = np.sqrt(F)
            cbar = 0.0
            kbar = 0.0
            for j in range(Q):
                v = W[t, j] * rF
                vb = WB[t, j] * c + K * abar[j]
                cbar += WB[t, j] * v
                kbar += abar[j] * v
                gE[t, j] = vb
                abar[j] -= vb
            kbar -= pbar * P
            qbar += pbar
            fbar = -0.5 / F - 0.5 * cbar * c / F - kbar * P / (F * F)
            pbar = pbar * (1.0 - K) + kbar / F + fbar
            s2bar += fbar
        return value, gE, s2bar, qbar

    @register_funcify_default_op_cache_key(KalmanLoglik)
    def numba_funcify_kalman_loglik(op, node=None, **kwargs):
        m0 = np.asarray(op.m0, dtype="float64")
        p0 = op.p0

        @numba_njit
        def kalman_loglik(E, s2, q):
            value, gE, gs2, gq = value_and_grad_kernel(np.ascontiguousarray(E), s2.item(), q.item(), m0, p0)
            return np.asarray(value), gE, np.asarray(gs2), np.asarray(gq)

        # pytensor keys its disk cache of this code by the class name and props only: the version
        # (a hash of this file) keeps an edited kernel from loading the code of an older one
        return kalman_loglik, _SOURCE_VERSION

    @numba_njit
    def mmm_kernel(alpha, kappa, lam, sd, s2, q, stack, rw, controls, fourier, y, gi, G, normalize, mu_mean,
                   mu_sd, control_sd, season_sd, m0, p0, floor):
        T, C, L = stack.shape
        J = controls.shape[1]
        F = fourier.shape[1]
        Q = 1 + G + C + J + F
        # forward: adstock weights, adstock, Hill, the columns E (see MMMLoglik)
        w = np.empty((C, L))
        U = np.empty(C)
        for c in range(C):
            p = 1.0
            tot = 0.0
            for lag in range(L):
                w[c, lag] = p
                tot += p
                p *= alpha[c]
            U[c] = tot
            if normalize:
                for lag in range(L):
                    w[c, lag] /= tot
        ad = np.empty((T, C))
        sat = np.empty((T, C))
        logdiff = np.empty((T, C))
        S = np.full(C, 1e-12)
        for t in range(T):
            for c in range(C):
                a = 0.0
                for lag in range(L):
                    a += stack[t, c, lag] * w[c, lag]
                ad[t, c] = a
                d = np.log(max(a, floor)) - np.log(lam[c])
                logdiff[t, c] = d
                v = 1.0 / (1.0 + np.exp(-kappa[c] * d))
                sat[t, c] = v
                S[c] += v
        wt = np.empty(C)
        for c in range(C):
            wt[c] = rw[c] / S[c]
        E = np.zeros((T, Q))
        for t in range(T):
            tot = 0.0
            for c in range(C):
                xr = sat[t, c] * wt[c]
                tot += xr
                E[t, 1 + gi[c]] += mu_sd * xr
                E[t, 1 + G + c] = xr * sd[c]
            E[t, 0] = y[t] - mu_mean * tot
            for j in range(J):
                E[t, 1 + G + C + j] = controls[t, j] * control_sd
            for k in range(F):
                E[t, 1 + G + C + J + k] = fourier[t, k] * season_sd
        value, gE, gs2, gq = value_and_grad_kernel(E, s2, q, m0, p0)
        # backward: xr -> sat (through the sum over weeks) -> z -> kappa, lam, adstock -> weights -> alpha
        gxr = np.empty((T, C))
        gsd = np.zeros(C)
        A = np.zeros(C)
        for t in range(T):
            for c in range(C):
                gx = -mu_mean * gE[t, 0] + mu_sd * gE[t, 1 + gi[c]] + sd[c] * gE[t, 1 + G + c]
                gxr[t, c] = gx
                gsd[c] += sat[t, c] * wt[c] * gE[t, 1 + G + c]
                A[c] += gx * sat[t, c]
        gkappa = np.zeros(C)
        glam = np.zeros(C)
        gw = np.zeros((C, L))
        for t in range(T):
            for c in range(C):
                gsat = wt[c] * (gxr[t, c] - A[c] / S[c])
                gz = gsat * sat[t, c] * (1.0 - sat[t, c])
                gkappa[c] += gz * logdiff[t, c]
                glam[c] -= gz * kappa[c] / lam[c]
                if ad[t, c] > floor:
                    gad = gz * kappa[c] / ad[t, c]
                    for lag in range(L):
                        gw[c, lag] += gad * stack[t, c, lag]
        galpha = np.zeros(C)
        for c in range(C):
            dot = 0.0
            if normalize:
                for lag in range(L):
                    dot += gw[c, lag] * w[c, lag]
            p = 1.0  # alpha^(lag - 1)
            for lag in range(1, L):
                gu = (gw[c, lag] - dot) / U[c] if normalize else gw[c, lag]
                galpha[c] += gu * lag * p
                p *= alpha[c]
        return value, galpha, gkappa, glam, gsd, gs2, gq

    @register_funcify_default_op_cache_key(MMMLoglik)
    def numba_funcify_mmm_loglik(op, node=None, **kwargs):
        gi = np.asarray(op.group_index, dtype=np.int64)
        C = len(gi)
        m0 = np.zeros(1 + op.n_groups + C, dtype="float64")  # + J + F, set per call
        props = (op.n_groups, op.normalize, op.roi_mu_mean, op.roi_mu_sd, op.control_sd, op.season_sd, op.p0,
                 op.log_floor)
        G, normalize, mu_mean, mu_sd, control_sd, season_sd, p0, floor = props

        @numba_njit
        def mmm_loglik(alpha, kappa, lam, sd, s2, q, stack, rw, controls, fourier, y):
            m = np.zeros(len(m0) + controls.shape[1] + fourier.shape[1])
            m[0] = 1.0
            res = mmm_kernel(np.ascontiguousarray(alpha), np.ascontiguousarray(kappa), np.ascontiguousarray(lam),
                             np.ascontiguousarray(sd), s2.item(), q.item(), np.ascontiguousarray(stack),
                             np.ascontiguousarray(rw), np.ascontiguousarray(controls),
                             np.ascontiguousarray(fourier), np.ascontiguousarray(y), gi, G, normalize, mu_mean,
                             mu_sd, control_sd, season_sd, m, p0, floor)
            value, galpha, gkappa, glam, gsd, gs2, gq = res
            return np.asarray(value), galpha, gkappa, glam, gsd, np.asarray(gs2), np.asarray(gq)

        return mmm_loglik, _SOURCE_VERSION


_register_numba()


# ---- JAX ---------------------------------------------------------------------------------------------
_JAX_REGISTERED = False


def register_jax() -> None:
    """Register the JAX implementations (idempotent; imports JAX, so only called before JAX use)."""
    global _JAX_REGISTERED
    if _JAX_REGISTERED:
        return
    import jax
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify

    def loglik_jax(E, s2, q, m0, p0):
        # no sequential scan (on a GPU each of its T steps is a round of tiny kernels: the 208 x 4
        # model took 361 s on an H200 with one). The variance recursion P' = P s2 / (P + s2) + q is
        # the Moebius map of M = [[s2 + q, q s2], [1, s2]], so P_t = M^t applied to p0: the powers by a
        # parallel prefix of 2 x 2 products (all entries positive: no cancellation, also where
        # q << s2; each product rescaled, which leaves the map unchanged). The filtered means
        # a_{t+1} = (1 - K_t) a_t + K_t e_t: a parallel prefix of affine maps. Depth log T.
        T = E.shape[0]
        M = jnp.stack([jnp.stack([s2 + q, q * s2]), jnp.stack([jnp.ones_like(s2), s2])]) / (s2 + q)

        def then_mat(first, then):
            R = then @ first
            return R / jnp.max(jnp.abs(R), axis=(-2, -1), keepdims=True)

        Mt = jax.lax.associative_scan(then_mat, jnp.broadcast_to(M, (T - 1, 2, 2)))
        P = jnp.concatenate([jnp.reshape(jnp.asarray(p0, dtype=E.dtype), (1,)),
                             (Mt[:, 0, 0] * p0 + Mt[:, 0, 1]) / (Mt[:, 1, 0] * p0 + Mt[:, 1, 1])])
        F = P + s2
        K = P / F

        def compose(first, then):  # x -> c x + d, first then then
            (c1, d1), (c2, d2) = first, then
            return c1 * c2, c2[..., None] * d1 + d2

        c, d = jax.lax.associative_scan(compose, (1.0 - K, K[:, None] * E))
        m0 = jnp.asarray(m0, dtype=E.dtype)
        a = jnp.concatenate([m0[None, :], c[:-1, None] * m0[None, :] + d[:-1]], axis=0)
        W = (E - a) / jnp.sqrt(F)[:, None]
        logF = jnp.log(F)
        G = W.T @ W
        L = jnp.linalg.cholesky(jnp.eye(G.shape[0] - 1) + G[1:, 1:])
        w = jax.scipy.linalg.solve_triangular(L, G[1:, 0], lower=True)
        return (-0.5 * (E.shape[0] * _LOG_2PI + jnp.sum(logF) + G[0, 0] - w @ w)
                - jnp.sum(jnp.log(jnp.diag(L))))

    @jax_funcify.register(KalmanLoglik)
    def jax_funcify_kalman_loglik(op, **kwargs):
        m0, p0 = np.asarray(op.m0), op.p0

        def kalman_loglik(E, s2, q):
            value, (gE, gs2, gq) = jax.value_and_grad(loglik_jax, argnums=(0, 1, 2))(E, s2, q, m0, p0)
            return value, gE, gs2, gq

        return kalman_loglik

    @jax_funcify.register(MMMLoglik)
    def jax_funcify_mmm_loglik(op, **kwargs):
        gi = np.asarray(op.group_index)
        onehot = np.eye(op.n_groups)[gi]

        def loglik(alpha, kappa, lam, sd, s2, q, stack, rw, controls, fourier, y):
            L = stack.shape[2]
            u = alpha[:, None] ** jnp.arange(L, dtype=stack.dtype)
            w = u / u.sum(axis=1, keepdims=True) if op.normalize else u
            ad = jnp.einsum("tcl,cl->tc", stack, w)
            sat = jax.nn.sigmoid(kappa * (jnp.log(jnp.maximum(ad, op.log_floor)) - jnp.log(lam)))
            xr = sat * (rw / (sat.sum(axis=0) + 1e-12))
            E = jnp.concatenate([(y - op.roi_mu_mean * xr.sum(axis=1))[:, None], op.roi_mu_sd * xr @ onehot,
                                 xr * sd, controls * op.control_sd, fourier * op.season_sd], axis=1)
            m0 = np.zeros(E.shape[1])
            m0[0] = 1.0
            return loglik_jax(E, s2, q, m0, op.p0)

        def mmm_loglik(*inputs):
            value, grads = jax.value_and_grad(loglik, argnums=tuple(range(6)))(*inputs)
            return (value, *grads)

        return mmm_loglik

    _JAX_REGISTERED = True


def kalman_loglik(E, s2, q, m0, p0: float):
    """log p(first column of ``E``) with the level and the other columns' N(0, I) coefficients
    integrated out (a scalar; differentiable once); see the module docstring."""
    return KalmanLoglik(m0, p0)(E, s2, q)[0]
