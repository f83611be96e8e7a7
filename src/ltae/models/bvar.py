"""Step 2: Bayesian VAR on base sales and brand metrics with spend as exogenous input.

    Y[t] = c + sum_l A_l Y[t-l] + B X[t] + D W[t] + e[t],   e[t] ~ MVN(0, Sigma)

Y = [base sales, brand metrics...], X = spend per channel, W = optional deterministic terms
(Fourier seasonality, controls). Everything is standardised inside; priors are the spec's:
A_l ~ N(0, var = l) (lag 1 variance 1, lag 2 variance 2), B ~ N(0, 1), c ~ N(0, 10),
Sigma = LKJ(eta = 2) with HalfNormal(1) scales. A Minnesota-style prior is one setting away.

Impulse responses: a one-week impulse of ``shock_size`` currency units of spend in one channel;
Y*[0] = B e, Y*[h] = sum_l A_l Y*[h-l]; responses converted back to original units (currency for
base sales). Long-term ROI = sum over ``horizon`` weeks of the base-sales response per unit of spend.

Sampling: by default the coefficients are integrated out exactly and only Sigma is sampled
(``bvar_collapsed.py``: no compilation, nearly independent draws, the same posterior); the NUTS and
ADVI backends sample the full PyMC model built by ``build_model``.

Step-1 uncertainty: the model can be fitted on R posterior draws of base sales at once ("replicates":
R independent copies of the VAR in one sampler run) and the draws pooled, so long-term intervals
carry the uncertainty of the short-term decomposition.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ltae.models import sampling

DEFAULT_BVAR_SAMPLER = "collapsed"
BVAR_SAMPLERS: tuple[str, ...] = ("collapsed", *sampling.SAMPLERS)


class BVARPriors(BaseModel):
    """Priors of the long-term BVAR on standardised data (the spec's): lag-l coefficients ~ N(0,
    lag_variance[l]) (default variance l), exogenous ~ N(0, exog_sd), intercept ~ N(0, intercept_sd),
    Sigma ~ LKJ(eta) with HalfNormal(sigma_sd) scales; optional Minnesota prior."""
    model_config = ConfigDict(extra="forbid")

    lags: int = 2
    lag_variance: list[float] | None = None  # default: variance l for lag l (spec: 1.0, 2.0)
    exog_sd: float = 1.0
    intercept_sd: float = 10.0
    deterministic_sd: float = 1.0
    lkj_eta: float = 2.0
    sigma_sd: float = 1.0
    minnesota: bool = False
    minnesota_lambda: float = 0.5  # overall tightness
    minnesota_theta: float = 0.5  # cross-variable relative tightness
    # prior mean of each series' own first lag (standardised data); 0 is the spec's, a Minnesota prior
    # centred on persistence uses e.g. 0.9
    own_lag_mean: float = 0.0
    # spend may move the first endogenous series (base sales) directly (the spec's Y*[0] = B e);
    # False: spend reaches base sales only through the brand metrics (the funnel), B[0, :] = 0 exactly
    direct_spend_effect: bool = True
    # "var": every series on every lagged series (the spec); "chain": a mediation chain in the order
    # of the series after base sales (spend -> first brand metric -> next ... -> last -> base sales):
    # each series on its own lags and the lags of the one before it, spend on the first brand metric only
    structure: Literal["var", "chain"] = "var"
    # spend of the q weeks before also enters (a distributed lag, VARX(p, q)): brand effects that
    # build from carried-over spend; 0 is the spec's (this week's spend only)
    spend_lags: int = Field(0, ge=0, le=8)
    # brand carry-over of spend: the spend series entering the VAR is geometrically carried over,
    # x~[t] = d x~[t-1] + (1 - d) x[t], with one retention d shared by the channels. A list of values
    # is a grid with a uniform prior, sampled jointly with the error covariance by the collapsed
    # sampler (exactly); [0.0] is the spec's model (this week's spend only)
    carryover: list[float] = Field(default_factory=lambda: [0.0], min_length=1)

    @model_validator(mode="after")
    def _lag_variance(self) -> BVARPriors:
        v = self.lag_variance
        if v is not None and len(v) != self.lags:
            raise ValueError(f"lag_variance needs one value per lag: {self.lags} values, got {len(v)}")
        if v is not None and not all(x > 0 for x in v):
            raise ValueError("lag_variance values must be positive")
        return self

    def lag_sds(self) -> np.ndarray:
        """Prior standard deviation of the coefficients of each lag (from ``lag_variance``; default
        variance l for lag l)."""
        v = self.lag_variance or [float(lag) for lag in range(1, self.lags + 1)]
        if len(v) != self.lags:
            raise ValueError(f"lag_variance needs {self.lags} values, got {len(v)}")
        return np.sqrt(np.asarray(v, dtype=float))

    def scaled(self, factor: float) -> BVARPriors:
        """Priors with every scale multiplied by ``factor`` (prior sensitivity)."""
        upd = {"exog_sd": self.exog_sd * factor, "sigma_sd": self.sigma_sd * factor,
               "lag_variance": list(self.lag_sds() ** 2 * factor**2)}
        return self.model_copy(update=upd)


def _lagged(Y: np.ndarray, p: int) -> np.ndarray:
    """(T, n) -> (T - p, p, n) with [t, l] = Y[t + p - 1 - l]."""
    T = Y.shape[0]
    return np.stack([Y[p - 1 - lag: T - 1 - lag] for lag in range(p)], axis=1)


def companion_max_root(A: np.ndarray) -> np.ndarray:
    """A (..., p, n, n) -> max |eigenvalue| of the companion matrix (...,)."""
    *batch, p, n, _ = A.shape
    comp = np.zeros(tuple(batch) + (n * p, n * p))
    for lag in range(p):
        comp[..., :n, lag * n:(lag + 1) * n] = A[..., lag, :, :]
    if p > 1:
        comp[..., n:, : n * (p - 1)] = np.eye(n * (p - 1))
    return np.abs(np.linalg.eigvals(comp)).max(axis=-1)


def irf_std(A: np.ndarray, B: np.ndarray, periods: int, B_lags: np.ndarray | None = None,
            path: np.ndarray | None = None) -> np.ndarray:
    """Standardised impulse responses. A (S, p, n, n), B (S, n, m), B_lags (S, n, m, q) (the effect of
    the regressor j weeks before, j = 1..q), path (S, periods, m): the regressor's response to a
    one-week impulse of spend (default: 1 in week 0, then 0; with brand carry-over a decaying path)
    -> (S, periods, n, m)."""
    S, p, n, _ = A.shape
    m = B.shape[-1]
    q = 0 if B_lags is None else B_lags.shape[-1]
    if path is None:
        path = np.zeros((S, periods, m))
        path[:, 0] = 1.0
    out = np.zeros((S, periods, n, m))
    for h in range(periods):
        acc = B * path[:, h, None, :]
        for j in range(1, min(q, h) + 1):
            acc = acc + B_lags[..., j - 1] * path[:, h - j, None, :]
        for lag in range(1, min(p, h) + 1):
            acc = acc + A[:, lag - 1] @ out[:, h - lag]
        out[:, h] = acc
    return out


def _masked(pm, name, dist, mask, kw, dims):
    """A coefficient array with entries where ``mask`` is False fixed at 0 (plain when all free)."""
    if np.all(mask):
        return dist(name, **kw, dims=dims)
    return pm.Deterministic(name, dist(f"{name}_free", **kw, dims=dims) * mask, dims=dims)


class BVAR:
    """VARX(p) with Bayesian priors. ``endog`` may be (T, n) or a list of R such arrays that differ
    only in the first column (base-sales draws from step 1): they are fitted as R replicates."""

    def __init__(self, endog, exog, lags: int = 2, endog_names=None, exog_names=None, deterministic=None,
                 deterministic_names=None, priors: BVARPriors | None = None):
        reps = endog if isinstance(endog, list | tuple) else [endog]
        reps = [np.asarray(r, dtype=float) for r in reps]
        reps = [r[:, None] if r.ndim == 1 else r for r in reps]
        self.replicates = reps
        self.endog = reps[0]
        exog = np.asarray(exog, dtype=float)
        self.exog = exog[:, None] if exog.ndim == 1 else exog
        T, n = self.endog.shape
        self.priors = (priors or BVARPriors()).model_copy(update={"lags": lags})
        self.lags = lags
        if T <= lags + 2:
            raise ValueError(f"BVAR needs more than {lags + 2} weeks, got {T}")
        self.endog_names = list(endog_names) if endog_names is not None else [f"y{i}" for i in range(n)]
        self.exog_names = list(exog_names) if exog_names is not None else [f"x{j}" for j in range(self.exog.shape[1])]
        W = np.zeros((T, 0)) if deterministic is None else np.asarray(deterministic, dtype=float)
        self.deterministic = W[:, None] if W.ndim == 1 else W
        self.deterministic_names = list(deterministic_names or [f"w{k}" for k in range(self.deterministic.shape[1])])
        # standardisation: one scaling for all replicates (that of their average)
        avg = np.mean(np.stack(reps), axis=0)
        self.y_mean, self.y_sd = avg.mean(0), np.where(avg.std(0) > 0, avg.std(0), 1.0)
        self.x_mean = self.exog.mean(0)
        self.x_sd = np.where(self.exog.std(0) > 0, self.exog.std(0), 1.0)
        self.w_mean = self.deterministic.mean(0)
        self.w_sd = np.where(self.deterministic.std(0) > 0, self.deterministic.std(0), 1.0)
        self.model = None
        self.idata = None
        self.fit_info: dict = {}

    @property
    def n_replicates(self) -> int:
        """Number of base-sales replicates the model is fitted on."""
        return len(self.replicates)

    def build_model(self):
        """Build the PyMC model (used by the NUTS/ADVI samplers; the collapsed sampler needs none)."""
        import pymc as pm
        import pytensor.tensor as pt

        pr = self.priors
        p = self.lags
        T, n = self.endog.shape
        k = self.deterministic.shape[1]
        X = self._exog_design()[p:]
        m, q = self.exog.shape[1], pr.spend_lags
        W = ((self.deterministic - self.w_mean) / self.w_sd)[p:]
        coords = {"lag": np.arange(1, p + 1), "eq": self.endog_names, "var": self.endog_names,
                  "exog": self.exog_names, "det": self.deterministic_names, "time": np.arange(T - p),
                  "spend_lag": np.arange(1, q + 1)}
        sd = self.lag_prior_sd()
        a_mu = np.zeros((p, n, n))
        a_mu[0] = np.eye(n) * pr.own_lag_mean
        a_mask, b_mask = self.structure_masks()
        with pm.Model(coords=coords) as model:
            for r, Yr in enumerate(self.replicates):
                sfx = f"_r{r}" if self.n_replicates > 1 else ""
                Ys = (Yr - self.y_mean) / self.y_sd
                lagged = _lagged(Ys, p)  # (T-p, p, n)
                # restricted coefficients (structure / no direct spend effect) are fixed at 0
                A = _masked(pm, f"A{sfx}", pm.Normal, a_mask[None], dict(mu=a_mu, sigma=sd), ("lag", "eq", "var"))
                B = _masked(pm, f"B{sfx}", pm.Normal, b_mask, dict(mu=0.0, sigma=pr.exog_sd), ("eq", "exog"))
                c = pm.Normal(f"c{sfx}", 0.0, pr.intercept_sd, dims="eq")
                lagged_d = pm.Data(f"lagged{sfx}", lagged)
                Xd = pm.Data(f"exog_std{sfx}", X)
                mu = c + pt.einsum("tlj,lij->ti", lagged_d, A) + pt.dot(Xd[:, :m], B.T)
                if q:
                    BL = _masked(pm, f"B_lags{sfx}", pm.Normal, b_mask[:, :, None],
                                 dict(mu=0.0, sigma=pr.exog_sd), ("eq", "exog", "spend_lag"))
                    # columns of Xd after the first m: spend 1..q weeks before, lag-major
                    mu = mu + pt.dot(Xd[:, m:], BL.transpose(2, 1, 0).reshape((q * m, n)))
                if k:
                    D = pm.Normal(f"D{sfx}", 0.0, pr.deterministic_sd, dims=("eq", "det"))
                    mu = mu + pt.dot(pm.Data(f"det_std{sfx}", W), D.T)
                if n > 1:
                    chol, _, _ = pm.LKJCholeskyCov(f"chol{sfx}", n=n, eta=pr.lkj_eta,
                                                   sd_dist=pm.HalfNormal.dist(pr.sigma_sd, shape=n),
                                                   compute_corr=True)
                    pm.MvNormal(f"y{sfx}", mu=mu, chol=chol, observed=pm.Data(f"y_std{sfx}", Ys[p:]),
                                 dims=("time", "eq"))
                else:
                    s = pm.HalfNormal(f"sigma{sfx}", pr.sigma_sd)
                    pm.Normal(f"y{sfx}", mu[:, 0], s, observed=pm.Data(f"y_std{sfx}", Ys[p:, 0]))
        self.model = model
        return model

    # ---- the collapsed sampler (default): coefficients integrated out, see bvar_collapsed.py -------
    def design(self, Yr: np.ndarray, g: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Standardised (Y, Z) of one replicate; Z = [1, lag 1 vars, ..., lag p vars, exog, det]
        (exog with carry-over grid value g)."""
        p = self.lags
        Ys = (Yr - self.y_mean) / self.y_sd
        T = Ys.shape[0]
        lagged = _lagged(Ys, p).reshape(T - p, -1)  # [t, l*n + j]
        X = self._exog_design(g)[p:]
        W = ((self.deterministic - self.w_mean) / self.w_sd)[p:]
        return Ys[p:], np.column_stack([np.ones(T - p), lagged, X, W])

    def carried(self, d: float) -> tuple[np.ndarray, np.ndarray]:
        """Standardised spend carried over with retention d, rescaled to unit sd: (X~ (T, m), the sd
        it was divided by (m,)). Before the data start spend is at its average."""
        X = (self.exog - self.x_mean) / self.x_sd
        if d == 0:
            return X, np.ones(X.shape[1])
        out = np.empty_like(X)
        prev = np.zeros(X.shape[1])
        for t in range(len(X)):
            prev = d * prev + (1 - d) * X[t]
            out[t] = prev
        sd = out.std(0)
        sd = np.where(sd > 0, sd, 1.0)
        return out / sd, sd

    def _exog_design(self, g: int = 0) -> np.ndarray:
        """Spend regressors (T, m * (q + 1)) for carry-over grid value g: this week's (carried-over)
        spend, then 1..q weeks before (lag-major); weeks before the data start count as average."""
        X = self.carried(self.priors.carryover[g])[0]
        cols = [X]
        for j in range(1, self.priors.spend_lags + 1):
            cols.append(np.vstack([np.zeros((j, X.shape[1])), X[:-j]]))
        return np.column_stack(cols)

    def lag_prior_sd(self) -> np.ndarray:
        """Prior sd of A[lag, eq, var], (p, n, n): the spec's sqrt(lag) or the Minnesota prior."""
        pr, p, n = self.priors, self.lags, self.endog.shape[1]
        if pr.minnesota:
            own = np.eye(n)[None]
            return pr.minnesota_lambda / np.arange(1, p + 1)[:, None, None] * (own + (1 - own) * pr.minnesota_theta)
        return np.broadcast_to(pr.lag_sds()[:, None, None], (p, n, n))

    def prior_means(self) -> np.ndarray:
        """Prior means of vec(G) (same order as ``prior_variances``): ``own_lag_mean`` on each
        series' own first lag, 0 elsewhere."""
        n = self.endog.shape[1]
        K = self.n_regressors
        m = np.zeros((n, K))
        m[np.arange(n), 1 + np.arange(n)] = self.priors.own_lag_mean  # lag 1 of series i is column 1 + i
        return m.reshape(-1)

    def structure_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """(A mask (n, n): [eq, var] lagged var enters eq; B mask (n, m): spend enters eq)."""
        n, m = self.endog.shape[1], self.exog.shape[1]
        a = np.ones((n, n), dtype=bool)
        b = np.ones((n, m), dtype=bool)
        if self.priors.structure == "chain" and n > 1:
            a[:] = False
            a[np.arange(n), np.arange(n)] = True  # own lags
            for i in range(2, n):
                a[i, i - 1] = True  # brand metric i moved by the one before it
            a[0, n - 1] = True  # base sales moved by the last brand metric
            b[:] = False
            b[1] = True  # spend moves the first brand metric
        if not self.priors.direct_spend_effect:
            b[0] = False
        return a, b

    def free_mask(self) -> np.ndarray:
        """(n*K,) True where a coefficient is estimated; False where it is fixed at 0 (the direct
        effect of spend on base sales when ``direct_spend_effect`` is off; the links a ``chain``
        structure leaves out)."""
        p, n = self.lags, self.endog.shape[1]
        m = self.exog.shape[1]
        a, b = self.structure_masks()
        free = np.ones((n, self.n_regressors), dtype=bool)
        for lag in range(p):
            free[:, 1 + lag * n:1 + (lag + 1) * n] = a
        free[:, 1 + p * n:1 + p * n + m * (1 + self.priors.spend_lags)] = np.tile(b, 1 + self.priors.spend_lags)
        return free.reshape(-1)

    @property
    def n_regressors(self) -> int:
        """K = intercept + lags x series + spend channels x (1 + spend lags) + deterministic terms."""
        m = self.exog.shape[1] * (1 + self.priors.spend_lags)
        return 1 + self.lags * self.endog.shape[1] + m + self.deterministic.shape[1]

    def prior_variances(self) -> np.ndarray:
        """Prior variances of vec(G), ordered [equation i, regressor k] -> i*K + k."""
        pr, p, n = self.priors, self.lags, self.endog.shape[1]
        sd = self.lag_prior_sd()
        m, k = self.exog.shape[1] * (1 + pr.spend_lags), self.deterministic.shape[1]
        rows = []
        for i in range(n):
            lag_var = np.concatenate([sd[lag, i, :] ** 2 for lag in range(p)])
            rows.append(np.concatenate([[pr.intercept_sd**2], lag_var, np.full(m, pr.exog_sd**2),
                                        np.full(k, pr.deterministic_sd**2)]))
        return np.concatenate(rows)

    def _fit_collapsed(self, draws: int, tune: int, chains: int, seed: int):
        import xarray as xr

        from ltae.models.bvar_collapsed import sample_collapsed

        p, n, q = self.lags, self.endog.shape[1], self.priors.spend_lags
        m, k = self.exog.shape[1], self.deterministic.shape[1]
        mq = m * (1 + q)
        v0 = self.prior_variances()
        data, stats, acc = {}, {}, []
        dims = {"chain": np.arange(chains), "draw": np.arange(draws)}
        for r, Yr in enumerate(self.replicates):
            sfx = f"_r{r}" if self.n_replicates > 1 else ""
            Y, Z = self.design(Yr)
            if len(self.priors.carryover) > 1:
                Z = [self.design(Yr, g)[1] for g in range(len(self.priors.carryover))]
            res = sample_collapsed(Y, Z, v0, eta=self.priors.lkj_eta, sigma_sd=self.priors.sigma_sd,
                                   draws=draws, tune=tune, chains=chains, seed=seed + 7919 * r,
                                   m0=self.prior_means(), free=self.free_mask())
            G = res["G"]  # (chain, draw, K, n)
            A = G[:, :, 1:1 + p * n, :].reshape(chains, draws, p, n, n).transpose(0, 1, 2, 4, 3)
            data[f"A{sfx}"] = (("chain", "draw", "lag", "eq", "var"), A)
            data[f"B{sfx}"] = (("chain", "draw", "eq", "exog"), np.swapaxes(G[:, :, 1 + p * n:1 + p * n + m, :], 2, 3))
            if q:  # rows (lag-major: lag j, channel c) -> (eq, exog, spend_lag)
                bl = G[:, :, 1 + p * n + m:1 + p * n + mq, :].reshape(chains, draws, q, m, n)
                data[f"B_lags{sfx}"] = (("chain", "draw", "eq", "exog", "spend_lag"), bl.transpose(0, 1, 4, 3, 2))
            data[f"c{sfx}"] = (("chain", "draw", "eq"), G[:, :, 0, :])
            if len(self.priors.carryover) > 1:
                data[f"carryover{sfx}"] = (("chain", "draw"), np.asarray(self.priors.carryover)[res["design"]])
            if k:
                data[f"D{sfx}"] = (("chain", "draw", "eq", "det"), np.swapaxes(G[:, :, 1 + p * n + mq:, :], 2, 3))
            sig = res["Sigma"]
            sds = np.sqrt(np.diagonal(sig, axis1=-2, axis2=-1))
            if n > 1:
                data[f"chol_stds{sfx}"] = (("chain", "draw", "eq"), sds)
                data[f"chol_corr{sfx}"] = (("chain", "draw", "eq", "var"),
                                           sig / (sds[..., :, None] * sds[..., None, :]))
            else:
                data[f"sigma{sfx}"] = (("chain", "draw"), sds[..., 0])
            stats[f"accepted{sfx}"] = (("chain", "draw"), res["accepted"])
            acc.append(res["acceptance_rate"])
        coords = {**dims, "lag": np.arange(1, p + 1), "eq": self.endog_names, "var": self.endog_names,
                  "exog": self.exog_names, "det": self.deterministic_names, "spend_lag": np.arange(1, q + 1)}
        post = xr.Dataset(data, coords=coords)
        ss = xr.Dataset(stats, coords=dims)
        return xr.DataTree.from_dict({"posterior": post, "sample_stats": ss}), float(np.mean(acc))

    def fit(self, draws=1000, tune=1000, chains=4, target_accept=0.9, cores=None, sampler=None, seed=42,
            progressbar=False, **kw):
        """Sample the posterior. ``sampler="collapsed"`` (default) integrates the coefficients out
        exactly and samples only the error covariance (no compilation); the NUTS/ADVI backends of
        ``ltae.models.sampling`` sample the full model built by ``build_model``."""
        import time

        sampler = sampler or DEFAULT_BVAR_SAMPLER
        if sampler not in BVAR_SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(BVAR_SAMPLERS)}")
        if sampler == "collapsed":
            t0 = time.perf_counter()
            self.idata, acc = self._fit_collapsed(draws, tune, chains, seed)
            self.fit_info = {"sampler": sampler, "draws": draws, "tune": tune, "chains": chains, "seed": seed,
                             "replicates": self.n_replicates, "acceptance_rate": acc,
                             "wall_s": time.perf_counter() - t0}
            return self
        if len(self.priors.carryover) > 1:
            raise ValueError("a grid of carry-over values needs the collapsed sampler (bvar_sampler = "
                             "\"collapsed\"); give one value for a NUTS/ADVI backend")
        if self.model is None:
            self.build_model()
        settings = sampling.SamplerSettings(
            sampler=sampler, draws=draws, tune=tune, chains=chains,
            target_accept=target_accept, cores=cores, seed=seed, progressbar=progressbar, **kw)
        res = sampling.sample(self.model, settings)
        self.idata = res.idata
        self.fit_info = {"sampler": res.sampler, "draws": draws, "tune": tune, "chains": chains, "seed": seed,
                         "replicates": self.n_replicates, **res.timings}
        return self

    # ------------------------------------------------------------------------------------------
    def _pooled(self, name):
        if self.idata is None:
            raise RuntimeError("fit the model first")
        if self.n_replicates == 1:
            return sampling.stacked(self.idata, name)
        return np.concatenate([sampling.stacked(self.idata, f"{name}_r{r}") for r in range(self.n_replicates)])

    def coefficient_draws(self) -> dict:
        """Pooled draws: A (S, p, n, n) and B (S, n, m) on the standardised scale."""
        out = {"A": self._pooled("A"), "B": self._pooled("B")}
        if self.priors.spend_lags:
            out["B_lags"] = self._pooled("B_lags")
        grid = self.priors.carryover
        out["carryover"] = self._pooled("carryover") if len(grid) > 1 else np.full(len(out["A"]), grid[0])
        return out

    def impulse_path(self, carryover: np.ndarray, periods: int) -> np.ndarray:
        """(S, periods, m): the standardised spend regressor after a one-week impulse of one standard
        deviation of spend, for each draw's carry-over d: (1 - d) d^h / sd(X~_d)."""
        grid = list(self.priors.carryover)
        scale = np.stack([self.carried(d)[1] for d in grid])  # (G, m)
        gi = np.array([grid.index(d) for d in carryover]) if len(grid) > 1 else np.zeros(len(carryover), int)
        h = np.arange(periods)
        d = np.asarray(carryover, dtype=float)[:, None]
        w = np.where(d > 0, (1 - d) * d ** h[None, :], (h[None, :] == 0).astype(float))
        return w[:, :, None] / scale[gi][:, None, :]

    def calculate_irf(self, periods: int = 24, shock_size: float = 1.0, credible_interval: float = 0.95,
                      n_samples: int | None = None, seed: int = 0) -> dict:
        """Responses of every endogenous series (original units) to a one-week impulse of
        ``shock_size`` currency units of spend in each channel. Returns draws, mean, bands,
        cumulative responses and the count of unstable draws (excluded)."""
        co = self.coefficient_draws()
        A, B, BL, d = co["A"], co["B"], co.get("B_lags"), co["carryover"]
        S = len(A)
        if n_samples is not None and n_samples < S:
            idx = np.sort(np.random.default_rng(seed).choice(S, n_samples, replace=False))
            A, B, d = A[idx], B[idx], d[idx]
            BL = None if BL is None else BL[idx]
        roots = companion_max_root(A)
        stable = roots < 1.0
        path = self.impulse_path(d[stable], periods)
        resp = irf_std(A[stable], B[stable], periods, None if BL is None else BL[stable], path)  # std Y per std X
        scale = self.y_sd[None, None, :, None] / self.x_sd[None, None, None, :] * shock_size
        resp = resp * scale
        q = (1 - credible_interval) / 2
        cum = np.cumsum(resp, axis=1)
        return {
            "draws": resp, "mean": resp.mean(0), "lower": np.quantile(resp, q, axis=0),
            "upper": np.quantile(resp, 1 - q, axis=0), "cumulative_draws": cum,
            "cumulative_mean": cum.mean(0), "cumulative_lower": np.quantile(cum, q, axis=0),
            "cumulative_upper": np.quantile(cum, 1 - q, axis=0), "periods": periods, "shock_size": shock_size,
            "endog_names": self.endog_names, "exog_names": self.exog_names, "n_draws": int(S if n_samples is None
                                                                                          else len(roots)),
            "n_unstable": int((~stable).sum()), "max_root_median": float(np.median(roots)),
            "credible_interval": credible_interval,
        }

    def long_term_roi_draws(self, irf: dict, sales_var_name: str | None = None, horizon: int | None = None):
        """(S, C) long-term ROI draws: the response of ``sales_var_name`` (default: the first endogenous
        series, base sales) summed over ``horizon`` weeks, per unit of spend."""
        j = self.endog_names.index(sales_var_name) if sales_var_name else 0
        h = horizon or irf["periods"]
        return irf["draws"][:, :h, j, :].sum(axis=1) / irf["shock_size"]

    def calculate_long_term_roi(self, irf: dict, sales_var_name: str | None = None, horizon: int | None = None,
                                credible_interval: float = 0.95) -> dict:
        """Long-term ROI per channel: cumulative base-sales response (currency) over the horizon per
        unit of spend, as draws with mean and interval."""
        from ltae.models.diagnostics import summarize_draws

        d = self.long_term_roi_draws(irf, sales_var_name, horizon)
        out = {}
        for i, ch in enumerate(self.exog_names):
            s = summarize_draws(d[:, i], credible_interval)
            s["draws"] = d[:, i]
            out[ch] = s
        return out

    def summary(self) -> dict:
        """Convergence summary (max R-hat, min ESS, divergences) over the coefficients and covariance."""
        from ltae.models.diagnostics import convergence_summary

        post = sampling.posterior_dataset(self.idata)
        pat = re.compile(r"^(A|B|c|D|sigma)(_r\d+)?$|^chol(_r\d+)?_(stds|corr)(_r\d+)?$")
        names = [v for v in post.data_vars if pat.match(v)]
        out = convergence_summary(self.idata, var_names=names)
        # correlation diagonals are constant 1: their R-hat is undefined, drop NaNs already handled
        return out

    def irf_frame(self, irf: dict) -> pd.DataFrame:
        """The impulse responses of :meth:`calculate_irf` as a long table: horizon, response, channel,
        mean, lower, upper, cumulative_mean."""
        rows = []
        for h in range(irf["periods"]):
            for i, y in enumerate(irf["endog_names"]):
                for j, x in enumerate(irf["exog_names"]):
                    rows.append({"horizon": h, "response": y, "channel": x, "mean": irf["mean"][h, i, j],
                                 "lower": irf["lower"][h, i, j], "upper": irf["upper"][h, i, j],
                                 "cumulative_mean": irf["cumulative_mean"][h, i, j]})
        return pd.DataFrame(rows)


class BVAR_Optimized(BVAR):  # noqa: N801 - the spec's public name
    """The spec's constructor ``BVAR_Optimized(endog, exog, lags, endog_names, exog_names)``."""

    def __init__(self, endog, exog, lags: int = 2, endog_names=None, exog_names=None, **kw):
        if isinstance(endog, pd.DataFrame):
            endog_names = endog_names or list(endog.columns)
            endog = endog.values
        if isinstance(exog, pd.DataFrame):
            exog_names = exog_names or list(exog.columns)
            exog = exog.values
        super().__init__(endog, exog, lags, endog_names, exog_names, **kw)
