"""Exact-coefficient ("collapsed") posterior sampler for the BVAR, with the spec's priors unchanged.

Model (per replicate, standardised data): Y = Z G + E, rows of E ~ N(0, Sigma), with Z = [1, lags,
spend, deterministic terms] (T x K) and G (K x n). Priors: vec(G) ~ N(0, V0) with V0 diagonal (the
spec's A_l ~ N(0, l), B ~ N(0, 1), c ~ N(0, 10), or the Minnesota variances), and
Sigma = diag(s) Omega diag(s) with Omega ~ LKJ(eta) and s_i ~ HalfNormal(sigma_sd).

Given Sigma the coefficients are conjugate: with P = V0^-1 + Sigma^-1 (x) Z'Z and
b = vec(Z' Y Sigma^-1), vec(G) | Sigma, Y ~ N(P^-1 b, P^-1), and they integrate out in closed form:

    log p(Y | Sigma) = -1/2 [ T log|Sigma| + log|P| + tr(Sigma^-1 Y'Y) - b' P^-1 b ] + const.

So only Sigma (n(n+1)/2 numbers) needs MCMC. It is sampled by independence Metropolis-Hastings with
an inverse-Wishart proposal centred on the residual covariance and a little wider than the
posterior (fewer degrees of freedom), whose draws are all made and scored at once, vectorised. Each
kept Sigma is paired with an exact draw of G | Sigma. This is the same posterior NUTS targets (a test
compares them); it needs no compilation, and its draws are nearly independent.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 2048


def _prior_log_density(sig: np.ndarray, eta: float, sigma_sd: float) -> np.ndarray:
    """log p(Sigma) up to a constant for Sigma = diag(s) Omega diag(s), s ~ HN(sigma_sd),
    Omega ~ LKJ(eta). Jacobian of (s, Omega) -> Sigma: 2^n prod s_i^n."""
    n = sig.shape[-1]
    s = np.sqrt(np.diagonal(sig, axis1=-2, axis2=-1))
    out = -0.5 * np.sum(s**2, axis=-1) / sigma_sd**2 - n * np.sum(np.log(s), axis=-1)
    if n > 1 and eta != 1.0:
        omega = sig / (s[..., :, None] * s[..., None, :])
        out = out + (eta - 1.0) * np.linalg.slogdet(omega)[1]
    return out


def _iw_log_density(sig: np.ndarray, psi: np.ndarray, df: float) -> np.ndarray:
    """Inverse-Wishart log density up to a constant."""
    n = sig.shape[-1]
    inv = np.linalg.inv(sig)
    return -0.5 * (df + n + 1) * np.linalg.slogdet(sig)[1] - 0.5 * np.einsum("ij,...ji->...", psi, inv)


def _conditional(sig: np.ndarray, ZZ, ZY, YY, T: int, v0_inv: np.ndarray, prior_b: np.ndarray | None = None,
                 free: np.ndarray | None = None):
    """For a batch of Sigma (N, n, n): log p(Y | Sigma) (N,), the Cholesky factor L of P and
    u = L^-1 b (the posterior of the free coefficients given Sigma is N(L^-T u, (L L^T)^-1)).
    ``prior_b`` = V0^-1 m0 (prior mean m0); ``free`` selects the coefficients that are not fixed at 0
    (a zero restriction removes the coefficient from the Gaussian exactly)."""
    N, n, _ = sig.shape
    K = ZZ.shape[0]
    inv = np.linalg.inv(sig)
    P = (inv[:, :, None, :, None] * ZZ[None, None, :, None, :]).reshape(N, n * K, n * K)
    P = P + np.diag(v0_inv)[None]
    b = np.einsum("kj,nji->nik", ZY, inv).reshape(N, n * K)  # vec by equation: [i*K + k]
    if prior_b is not None:
        b = b + prior_b[None]
    if free is not None:
        P = P[:, free][:, :, free]
        b = b[:, free]
    L = np.linalg.cholesky(P)
    u = np.linalg.solve(L, b[..., None])[..., 0]
    logdet_p = 2.0 * np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    loglik = -0.5 * (T * np.linalg.slogdet(sig)[1] + logdet_p + np.einsum("nij,ji->n", inv, YY)
                     - np.sum(u**2, axis=-1))
    return loglik, L, u


def sample_collapsed(Y: np.ndarray, Z, v0: np.ndarray, *, eta: float, sigma_sd: float,
                     draws: int, tune: int, chains: int, seed: int, df_shrink: float = 0.8,
                     m0: np.ndarray | None = None, free: np.ndarray | None = None) -> dict:
    """Posterior draws for one replicate. Y (T, n), Z (T, K) or a list of such designs (a discrete
    parameter of the design, e.g. the brand carry-over of spend, with a uniform prior over the list:
    sampled jointly with Sigma), v0 (n*K,) prior variances and m0 (n*K,) prior means (default 0),
    ordered [equation i, regressor k] -> i*K + k; ``free`` (n*K,) bool marks the coefficients that are
    estimated (the others are fixed at 0 exactly). Returns G (chains, draws, K, n), Sigma (chains,
    draws, n, n), the design index of each draw and acceptance statistics."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    Zs = [np.asarray(Z, dtype=float)] if isinstance(Z, np.ndarray) else [np.asarray(z, dtype=float) for z in Z]
    T, n = Y.shape
    K = Zs[0].shape[1]
    YY = Y.T @ Y
    v0_inv = 1.0 / v0
    m0 = np.zeros(n * K) if m0 is None else np.asarray(m0, dtype=float)
    free = np.ones(n * K, dtype=bool) if free is None else np.asarray(free, dtype=bool)
    m0 = np.where(free, m0, 0.0)
    prior_b = v0_inv * m0 if np.any(m0) else None
    sel = None if free.all() else free
    dof_post = max(T - K, n + 4)
    df = max(n + 3.0, df_shrink * dof_post)
    total = tune + draws
    n_prop = chains * total
    grid = np.zeros(n_prop, dtype=int) if len(Zs) == 1 else rng.integers(len(Zs), size=n_prop)
    prop = np.empty((n_prop, n, n))
    logw = np.empty(n_prop)
    nf = int(free.sum())
    Ls = np.empty((n_prop, nf, nf))
    us = np.empty((n_prop, nf))
    for g, Zg in enumerate(Zs):
        ZZ, ZY = Zg.T @ Zg, Zg.T @ Y
        # proposal centre: equation-wise ridge estimate with the prior, restricted columns dropped;
        # its residual covariance
        G0 = np.zeros((K, n))
        for i in range(n):
            f = free[i * K:(i + 1) * K]
            A = ZZ[np.ix_(f, f)] + np.diag(v0_inv[i * K:(i + 1) * K][f])
            G0[f, i] = np.linalg.solve(A, ZY[f, i] + (v0_inv * m0)[i * K:(i + 1) * K][f])
        R = Y - Zg @ G0
        psi = (R.T @ R) * (df - n - 1) / (dof_post - n - 1)  # same mean as IW(S, T - K), wider
        rows = np.flatnonzero(grid == g)
        if not len(rows):
            continue
        draw = stats.invwishart.rvs(df=df, scale=psi, size=len(rows), random_state=rng)
        prop[rows] = np.asarray(draw, dtype=float).reshape(len(rows), n, n)
        # the proposal's normalising constant differs between designs: (df / 2) log|psi|
        log_norm = 0.5 * df * np.linalg.slogdet(psi)[1]
        for a in range(0, len(rows), _CHUNK):
            r = rows[a:a + _CHUNK]
            ll, Ls[r], us[r] = _conditional(prop[r], ZZ, ZY, YY, T, v0_inv, prior_b, sel)
            logw[r] = ll + _prior_log_density(prop[r], eta, sigma_sd) - _iw_log_density(prop[r], psi, df) - log_norm
    logw = logw.reshape(chains, total)
    idx = np.arange(n_prop).reshape(chains, total)
    log_unif = np.log(rng.uniform(size=(chains, total)))
    keep = np.empty((chains, total), dtype=int)
    accepted = np.zeros((chains, total), dtype=bool)
    for c in range(chains):
        cur = idx[c, 0]
        cur_w = logw[c, 0]
        for t in range(total):
            if t > 0 and log_unif[c, t] < logw[c, t] - cur_w:
                cur, cur_w = idx[c, t], logw[c, t]
                accepted[c, t] = True
            keep[c, t] = cur
    keep = keep[:, tune:].reshape(-1)
    # exact coefficient draws given each kept Sigma (and design): G = L^-T (u + z)
    z = rng.standard_normal((len(keep), nf))
    L = Ls[keep]
    g = np.zeros((len(keep), n * K))
    g[:, free] = np.linalg.solve(np.swapaxes(L, -1, -2), (us[keep] + z)[..., None])[..., 0]
    G = g.reshape(chains, draws, n, K).transpose(0, 1, 3, 2)  # (chains, draws, K, n)
    return {"G": G, "Sigma": prop[keep].reshape(chains, draws, n, n), "design": grid[keep].reshape(chains, draws),
            "accepted": accepted[:, tune:], "acceptance_rate": float(accepted[:, tune:].mean()),
            "proposal_df": float(df)}
