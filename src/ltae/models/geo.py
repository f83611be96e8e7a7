"""Step 1 across markets: a hierarchical multi-market MMM (partial pooling of channel ROIs).

For market m = 1..M, week t and channel c (``ltae.models.mmm`` is the one-market special case):

    sales[m, t] = level[m, t] + sum_c beta[m, c] * Hill(Adstock(spend[m, ., c]))[t]
                  + controls[m, t] . gamma[m] + Fourier[t] . season[m] + eps[m, t]

* a local level per market (its own noise and level scales), integrated out by a Kalman filter per
  market, as in the one-market model;
* adstock retention alpha_c, Hill shape kappa_c and half-saturation lambda_c are shared by the
  markets; lambda_c is relative to each market's own median spend of the channel, so a small market
  saturates at its own scale;
* channel ROIs are partially pooled: ROI[m, c] = r0 * rel[m, c] with r0 = national sales / national
  spend and rel[m, c] = rel_c + tau_c * z[m, c]: a national ROI per channel (rel_c with the
  one-market model's hierarchical prior over channel groups) and market deviations of spread tau_c ~
  HalfNormal(``market_roi_sd``); controls and seasonality per market;
* every linear effect (national and market ROIs, group means, controls, seasonality) is integrated
  out exactly. The precision matrix of those effects is block-arrowhead (market blocks coupled only
  through the national effects), so the marginal likelihood costs M small Cholesky factorisations
  and one of the national block: linear in the number of markets. NUTS samples alpha, kappa, lambda,
  the group and market spreads and two noise scales per market; the linear effects are drawn exactly
  after sampling.

National ROI of a channel = its contribution summed over markets / its spend summed over markets,
draw by draw (a spend-weighted average of the market ROIs).
"""

from __future__ import annotations

import numpy as np

from ltae.models import sampling
from ltae.models.mmm import (
    MMMPriors,
    _fourier,
    default_channel_groups,
    kalman_smoother_np,
    noise_scales_from_polar,
    polar_noise_scales,
)
from ltae.models.posterior import FittedPosterior
from ltae.models.transforms import geometric_adstock_from_stack, hill, lag_stack


def whiten_markets(E, sigma, sigma_level, m0: np.ndarray, p0: float, n: int):
    """Kalman innovations, scaled to unit variance, of the columns of E (M, T, q) for M independent
    local-level models (scales sigma, sigma_level of shape (M,)); column j starts from level m0[j].
    Closed-form Riccati variances and a parallel prefix for the means, as
    :func:`ltae.models.mmm.local_level_whiten`, batched over markets. Returns (whitened (M, T, q),
    sum_t log F (M,))."""
    import pytensor.tensor as pt

    s2 = (sigma**2)[:, None]
    q = (sigma_level**2)[:, None]
    root = pt.sqrt(q**2 + 4 * q * s2)
    p_hi, p_lo = (q + root) / 2, (q - root) / 2
    k = (s2 + q - p_hi) / (s2 + q - p_lo)
    u0 = (p0 - p_hi) / (p0 - p_lo)
    u = u0 * k ** pt.arange(n, dtype="float64")[None, :]
    P = (p_hi - p_lo * u) / (1 - u)  # (M, T)
    F = P + s2
    K = P / F
    c, d = 1 - K, K[:, :, None] * E
    M = E.shape[0]
    shift = 1
    while shift < n:
        c_prev = pt.concatenate([pt.ones((M, shift)), c[:, :-shift]], axis=1)
        d_prev = pt.concatenate([pt.zeros((M, shift, d.shape[2])), d[:, :-shift]], axis=1)
        c, d = c * c_prev, c[:, :, None] * d_prev + d
        shift *= 2
    m0 = np.asarray(m0, dtype="float64")
    a_next = c[:, :, None] * m0[None, None, :] + d
    a = pt.concatenate([pt.broadcast_to(pt.as_tensor(m0[None, None, :]), (M, 1, m0.shape[0])), a_next[:, :-1]],
                       axis=1)
    return (E - a) / pt.sqrt(F)[:, :, None], pt.sum(pt.log(F), axis=1)


def _whiten_np(E: np.ndarray, sigma: np.ndarray, sigma_level: np.ndarray, m0: np.ndarray, p0: float) -> np.ndarray:
    """numpy twin of :func:`whiten_markets` vectorised over draws: E (S, M, T, q), sigma (S, M)."""
    S, M, T, q = E.shape
    s2, ql = sigma**2, sigma_level**2
    a = np.broadcast_to(np.asarray(m0, float), (S, M, q)).copy()
    P = np.full((S, M), p0, dtype=float)
    out = np.empty_like(E)
    for t in range(T):
        F = P + s2
        v = E[:, :, t, :] - a
        out[:, :, t, :] = v / np.sqrt(F)[..., None]
        K = P / F
        a = a + K[..., None] * v
        P = P * (1 - K) + ql
    return out


class GeoMMM(FittedPosterior):
    """The multi-market short-term model. ``sales`` (M, T), ``spend`` (M, T, C), ``controls``
    (M, T, J) or None; ``markets``, ``channels``, ``control_names`` label the axes."""

    def __init__(self, sales, spend, controls=None, markets=None, channels=None, control_names=None,
                 channel_groups=None, priors: MMMPriors | None = None, dates=None):
        self.priors = priors or MMMPriors()
        self.sales = np.asarray(sales, dtype=float)
        self.spend = np.asarray(spend, dtype=float)
        M, T, C = self.spend.shape
        if self.sales.shape != (M, T):
            raise ValueError(f"sales must be (markets, weeks) = {(M, T)}, got {self.sales.shape}")
        self.controls = np.zeros((M, T, 0)) if controls is None else np.asarray(controls, dtype=float)
        self.markets = list(markets) if markets is not None else [f"market_{m}" for m in range(M)]
        self.channels = list(channels) if channels is not None else [f"channel_{c}" for c in range(C)]
        J = self.controls.shape[2]
        self.control_names = list(control_names) if control_names is not None else [f"control_{j}" for j in range(J)]
        self.dates = dates
        groups = channel_groups or default_channel_groups(self.channels)
        missing = [c for c in self.channels if not any(c in g for g in groups.values())]
        if missing:
            groups = {**groups, "other": missing}
        self.channel_groups = {g: list(v) for g, v in groups.items() if v}
        self.group_names = list(self.channel_groups)
        self.group_index = np.array([next(i for i, g in enumerate(self.group_names) if c in self.channel_groups[g])
                                     for c in self.channels])
        # ---- scaling: per market for sales, per market and channel for spend ---------------------
        self.y_scale = np.array([float(np.mean(np.abs(s))) or 1.0 for s in self.sales])
        med = np.ones((M, C))
        for m in range(M):
            for c in range(C):
                pos = self.spend[m, :, c][self.spend[m, :, c] > 0]
                med[m, c] = np.median(pos) if pos.size else 1.0
        self.spend_scale = med
        self.ctrl_mean = self.controls.mean(axis=1)
        sd = self.controls.std(axis=1)
        self.ctrl_sd = np.where(sd > 0, sd, 1.0)
        self.roi_ref = float(np.abs(self.sales).sum() / max(float(self.spend.sum()), 1e-12))
        self.model = None
        self.idata = None
        self.fit_info: dict = {}

    @property
    def n_markets(self) -> int:
        """Number of markets M."""
        return self.spend.shape[0]

    @property
    def n_weeks(self) -> int:
        """Number of weeks T (the same in every market)."""
        return self.spend.shape[1]

    # ---- design --------------------------------------------------------------------------------
    def _stack(self) -> np.ndarray:
        """(M, T, C, L) lagged spend, each market and channel on its own median scale."""
        return np.stack([lag_stack(self.spend[m] / self.spend_scale[m], self.priors.l_max)
                         for m in range(self.n_markets)])

    def _controls_std(self) -> np.ndarray:
        return (self.controls - self.ctrl_mean[:, None, :]) / self.ctrl_sd[:, None, :]

    def _fourier(self) -> np.ndarray:
        return _fourier(np.arange(self.n_weeks, dtype=float), self.priors.fourier_order, self.priors.period)

    def roi_weight(self) -> np.ndarray:
        """(M, C): r0 x window spend / y_scale (scaled contribution per unit of ROI / r0)."""
        return self.roi_ref * self.spend.sum(axis=1) / self.y_scale[:, None]

    def _q(self) -> tuple[int, int]:
        """(shared linear effects: groups + national channels, per-market effects: channels +
        controls + seasonality)."""
        C, J = len(self.channels), self.controls.shape[2]
        return len(self.group_names) + C, C + J + 2 * self.priors.fourier_order

    def _blocks(self, sat, sd_g, tau, xp=np, data: dict | None = None):
        """Scaled columns of the shared effects (..., M, T, qs), of the market effects
        (..., M, T, qm) and the prior-mean offset (..., M, T)."""
        p = self.priors
        G = len(self.group_names)
        data = data or {"roi_weight": self.roi_weight(), "controls": self._controls_std(),
                        "fourier": self._fourier()}
        onehot = np.eye(G)[self.group_index]  # (C, G)
        w = data["roi_weight"] / (sat.sum(axis=-2) + 1e-12)  # (..., M, C)
        xr = sat * w[..., None, :]  # contribution per unit of rel, (..., M, T, C)
        shared = xp.concatenate([xr @ (p.roi_mu_sd * onehot), xr * sd_g[..., None, None, :]], axis=-1)
        # numpy: leading draw axes; pytensor (the model): exactly (M, T, .)
        lead = xr.shape[:-1] if xp is np else (self.n_markets, self.n_weeks)
        parts = [xr * tau[..., None, None, :]]
        if self.controls.shape[2]:
            block = data["controls"] * p.control_sd  # (M, T, J)
            parts.append(xp.broadcast_to(block, tuple(lead) + (self.controls.shape[2],)))
        if p.fourier_order:
            block = data["fourier"] * p.season_sd  # (T, 2K)
            parts.append(xp.broadcast_to(block, tuple(lead) + (2 * p.fourier_order,)))
        market = xp.concatenate(parts, axis=-1)
        return shared, market, xr.sum(axis=-1) * p.roi_mu_mean

    # ---- the model -----------------------------------------------------------------------------
    def build_model(self):
        """The PyMC model: the nonlinear and scale parameters with the marginal likelihood of every
        market (linear effects and levels integrated out) as a potential."""
        import pymc as pm
        import pytensor.tensor as pt
        import pytensor.tensor.slinalg as sl

        p = self.priors
        M, T, C = self.spend.shape
        G = len(self.group_names)
        qs, qm = self._q()
        coords = {"market": self.markets, "channel": self.channels, "group": self.group_names}
        with pm.Model(coords=coords) as model:
            alpha = pm.Beta("adstock_alpha", p.alpha_beta_a, p.alpha_beta_b, dims="channel")
            kappa = pm.Gamma("hill_kappa", alpha=p.kappa_shape, beta=p.kappa_rate, dims="channel")
            lam = pm.Gamma("hill_lambda", alpha=p.lambda_shape, beta=p.lambda_shape, dims="channel")
            stack = pm.Data("spend_lags", self._stack())  # (M, T, C, L)
            from ltae.models.transforms import adstock_weights

            w = adstock_weights(alpha, p.l_max, p.normalize_adstock, xp=pt)  # (C, L)
            ad = (stack * w[None, None]).sum(axis=-1)
            sat = hill(ad, kappa, lam, xp=pt)  # (M, T, C)
            if p.roi_sigma_fixed is not None:
                sd_g = pt.as_tensor(np.full(G, p.roi_sigma_fixed))
            elif p.shared_sigma:
                sd_g = pm.HalfNormal("group_sigma", p.roi_sigma_sd) * pt.ones(G)
            else:
                sd_g = pm.HalfNormal("group_sigma", p.roi_sigma_sd, dims="group")
            tau = pm.HalfNormal("market_sigma", p.market_roi_sd, dims="channel")
            data = {"roi_weight": pm.Data("roi_weight", self.roi_weight()),
                    "controls": pm.Data("controls_std", self._controls_std()),
                    "fourier": pm.Data("fourier_terms", self._fourier())}
            Zs, Zm, offset = self._blocks(sat, sd_g[self.group_index], tau, xp=pt, data=data)
            y = pm.Data("sales_scaled", self.sales / self.y_scale[:, None])
            E = pt.concatenate([(y - offset)[:, :, None], Zs, Zm], axis=2)
            sigma, sigma_level = polar_noise_scales(pm, pt, p, p.noise_angle_ab or (2.0, 2.0), dims="market")
            m0 = np.zeros(1 + qs + qm)
            m0[0] = 1.0
            W, sum_log_f = whiten_markets(E, sigma, sigma_level, m0, p.intercept_sd**2, T)
            yt, Ws, Wm = W[:, :, 0], W[:, :, 1:1 + qs], W[:, :, 1 + qs:]
            WmT = Wm.transpose(0, 2, 1)
            Pmm = pt.eye(qm)[None] + WmT @ Wm
            Lm = sl.cholesky(Pmm, lower=True)  # (M, qm, qm)
            Vm = sl.solve_triangular(Lm, WmT @ Ws, lower=True)  # (M, qm, qs)
            cm = sl.solve_triangular(Lm, (WmT @ yt[:, :, None]), lower=True)  # (M, qm, 1)
            Sch = pt.eye(qs) + (Ws.transpose(0, 2, 1) @ Ws).sum(0) - (Vm.transpose(0, 2, 1) @ Vm).sum(0)
            bs = (Ws.transpose(0, 2, 1) @ yt[:, :, None]).sum(0) - (Vm.transpose(0, 2, 1) @ cm).sum(0)
            Ls = sl.cholesky(Sch, lower=True)
            cs = sl.solve_triangular(Ls, bs, lower=True)
            loglik = (-0.5 * (M * T * np.log(2 * np.pi) + sum_log_f.sum() + (yt**2).sum() - (cm**2).sum()
                              - (cs**2).sum())
                      - pt.log(pt.diagonal(Lm, axis1=1, axis2=2)).sum() - pt.log(pt.diag(Ls)).sum())
            pm.Potential("y_loglik", loglik)
        self.model = model
        return model

    def fit(self, draws=1000, tune=500, chains=4, target_accept=0.9, cores=None, sampler=None, seed=42,
            progressbar=False, **kw):
        """Sample with one of :data:`ltae.models.sampling.SAMPLERS`, then add the noise scales and the
        exact draws of the linear effects (market and national ROIs, controls, seasonality)."""
        import time

        self._sample(draws, tune, chains, target_accept, cores, sampler, seed, progressbar, **kw)
        p = self.priors
        post = sampling.posterior_dataset(self.idata)
        sigma, sigma_level = noise_scales_from_polar(post, p)
        new = {"sigma": (sigma, "market"), "sigma_level": (sigma_level, "market")}
        self.idata = sampling.with_posterior_vars(self.idata, new, self._coords())
        t0 = time.perf_counter()
        self.idata = sampling.with_posterior_vars(self.idata, self._draw_linear(seed), self._coords())
        self.fit_info["linear_draws_s"] = time.perf_counter() - t0
        return self

    def _coords(self) -> dict:
        return {"market": self.markets, "channel": self.channels, "group": self.group_names,
                "control": self.control_names, "fourier": np.arange(2 * self.priors.fourier_order)}

    # ---- posterior ---------------------------------------------------------------------------------
    def draws(self, name) -> np.ndarray:
        """Posterior draws of ``name`` with chains and draws stacked on the first axis."""
        self._require_fit()
        return sampling.stacked(self._idata, name)

    def _saturation(self, draws: slice = slice(None), markets=slice(None)) -> np.ndarray:
        """Hill(Adstock(spend)) per draw, (S, M, T, C) for the draws and markets asked for. Computed on
        demand, never kept whole (4000 draws x 20 markets x 156 weeks x 4 channels is 400 MB): callers
        go market by market or in chunks of draws."""
        alpha = self.draws("adstock_alpha")[draws]
        ad = np.einsum("mtcl,scl->smtc", self._stack()[markets],
                       _weights(alpha, self.priors.l_max, self.priors.normalize_adstock))
        return hill(ad, self.draws("hill_kappa")[draws][:, None, None, :],
                    self.draws("hill_lambda")[draws][:, None, None, :])

    def _saturation_sum(self) -> np.ndarray:
        """(S, M, C): Hill(Adstock(spend)) summed over the weeks (kept)."""
        return self._memo("sat_sum", lambda: np.stack(
            [self._saturation(markets=slice(m, m + 1))[:, 0].sum(axis=1) for m in range(self.n_markets)], axis=1))

    def _draw_linear(self, seed: int, chunk: int = 250) -> dict:
        """Exact draws of the integrated-out linear effects given each posterior draw (block-arrowhead
        precision: the national block from its Schur complement, then each market given it)."""
        p = self.priors
        post = sampling.posterior_dataset(self.idata)
        shape = (post.sizes["chain"], post.sizes["draw"])
        sigma, sigma_level = self.draws("sigma"), self.draws("sigma_level")
        S = len(sigma)
        G, C, J = len(self.group_names), len(self.channels), self.controls.shape[2]
        qs, qm = self._q()
        M = self.n_markets
        if p.roi_sigma_fixed is not None:
            sd = np.full((S, G), p.roi_sigma_fixed)
        else:
            sd = self.draws("group_sigma")
            sd = np.broadcast_to(sd[:, None], (S, G)) if sd.ndim == 1 else sd
        tau = self.draws("market_sigma")
        rng = np.random.default_rng(seed)
        eta_s, eta_m = np.empty((S, qs)), np.empty((S, M, qm))
        m0 = np.zeros(1 + qs + qm)
        m0[0] = 1.0
        y = self.sales / self.y_scale[:, None]
        for a in range(0, S, chunk):
            sl = slice(a, a + chunk)
            Zs, Zm, off = self._blocks(self._saturation(sl), sd[sl][:, self.group_index], tau[sl])
            E = np.concatenate([(y[None] - off)[..., None], Zs, Zm], axis=-1)
            Wt = _whiten_np(E, sigma[sl], sigma_level[sl], m0, p.intercept_sd**2)
            yt, Ws, Wm = Wt[..., 0], Wt[..., 1:1 + qs], Wt[..., 1 + qs:]
            WmT = np.swapaxes(Wm, -1, -2)
            Lm = np.linalg.cholesky(np.eye(qm) + WmT @ Wm)  # (s, M, qm, qm)
            Vm = np.linalg.solve(Lm, WmT @ Ws)
            cm = np.linalg.solve(Lm, WmT @ yt[..., None])
            WsT = np.swapaxes(Ws, -1, -2)
            VmT = np.swapaxes(Vm, -1, -2)
            Sch = np.eye(qs) + (WsT @ Ws).sum(1) - (VmT @ Vm).sum(1)
            bs = (WsT @ yt[..., None]).sum(1) - (VmT @ cm).sum(1)
            Ls = np.linalg.cholesky(Sch)
            cs = np.linalg.solve(Ls, bs)
            zs = rng.standard_normal(cs.shape)
            es = np.linalg.solve(np.swapaxes(Ls, -1, -2), cs + zs)  # (s, qs, 1)
            zm = rng.standard_normal(cm.shape)
            em = np.linalg.solve(np.swapaxes(Lm, -1, -2), cm - Vm @ es[:, None] + zm)  # (s, M, qm, 1)
            eta_s[sl], eta_m[sl] = es[..., 0], em[..., 0]
        u, z = eta_s[:, :G], eta_s[:, G:]
        gi = self.group_index
        rel_nat = p.roi_mu_mean + p.roi_mu_sd * u[:, gi] + sd[:, gi] * z  # (S, C)
        rel = rel_nat[:, None, :] + tau[:, None, :] * eta_m[:, :, :C]  # (S, M, C)
        out = {"roi_market": (rel * self.roi_ref, ("market", "channel")),
               "group_mu": (p.roi_mu_mean + p.roi_mu_sd * u, ("group",))}
        if J:
            out["gamma_control"] = (p.control_sd * eta_m[:, :, C:C + J], ("market", "control"))
        if p.fourier_order:
            out["season_coef"] = (p.season_sd * eta_m[:, :, C + J:], ("market", "fourier"))
        return {k: (v.reshape(shape + v.shape[1:]), dims) for k, (v, dims) in out.items()}

    def roi_draws(self) -> np.ndarray:
        """(S, M, C) short-term ROI per market: contribution over the window / spend."""
        return self.draws("roi_market")

    def national_roi_draws(self) -> np.ndarray:
        """(S, C): contribution summed over markets / spend summed over markets, draw by draw."""
        sp = self.spend.sum(axis=1)  # (M, C)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.roi_draws() * sp[None]).sum(1) / sp.sum(0)[None]

    def beta_draws(self) -> np.ndarray:
        """(S, M, C) coefficients on Hill(Adstock), scaled units (contribution = ROI x spend)."""
        def beta():
            w = self.roi_draws() * self.spend.sum(axis=1)[None] / self.y_scale[None, :, None]
            return w / (self._saturation_sum() + 1e-12)

        return self._memo("beta", beta)

    def market_contributions(self, market: int) -> np.ndarray:
        """(S, T, C) contributions of one market in currency."""
        m = market
        return (self._saturation(markets=slice(m, m + 1))[:, 0] * self.beta_draws()[:, m, None, :]
                * self.y_scale[m])

    def media_contributions(self) -> np.ndarray:
        """(S, M, T, C) contributions in currency (all markets at once: large; the pipeline goes market by
        market with :meth:`market_contributions`)."""
        return np.stack([self.market_contributions(m) for m in range(self.n_markets)], axis=1)

    def national_contributions(self) -> np.ndarray:
        """(S, T, C) contributions summed over the markets, in currency."""
        out = self.market_contributions(0)
        for m in range(1, self.n_markets):
            out += self.market_contributions(m)
        return out

    def _control_effect(self, market: int) -> np.ndarray:
        """(S, T) controls + seasonality of one market in currency."""
        m = market
        out = np.zeros((len(self.draws("sigma")), self.n_weeks))
        if self.controls.shape[2]:
            out += self.draws("gamma_control")[:, m] @ self._controls_std()[m].T
        if self.priors.fourier_order:
            out += self.draws("season_coef")[:, m] @ self._fourier().T
        return out * self.y_scale[m]

    def control_effect_draws(self) -> np.ndarray:
        """(S, M, T) controls + seasonality in currency."""
        out = np.zeros((len(self.draws("sigma")),) + self.sales.shape)
        if self.controls.shape[2]:
            out += np.einsum("smj,mtj->smt", self.draws("gamma_control"), self._controls_std())
        if self.priors.fourier_order:
            out += np.einsum("smk,tk->smt", self.draws("season_coef"), self._fourier())
        return out * self.y_scale[None, :, None]

    def _media_sum(self, market: int) -> np.ndarray:
        """(S, T) one market's media contributions summed over channels (kept: base sales, levels and
        forecasts reuse it)."""
        return self._memo(("media", market), lambda: self.market_contributions(market).sum(-1))

    def base_sales_draws(self) -> np.ndarray:
        """(S, M, T) sales without media."""
        return self.sales[None] - np.stack([self._media_sum(m) for m in range(self.n_markets)], axis=1)

    def level_states(self, market: int) -> dict:
        """Kalman filter/smoother of market ``market``'s level per draw (internal scale)."""
        def states():
            m = market
            reg = (self._media_sum(m) + self._control_effect(m)) / self.y_scale[m]
            e = self.sales[m][None] / self.y_scale[m] - reg
            return kalman_smoother_np(e, self.draws("sigma")[:, m], self.draws("sigma_level")[:, m], 1.0,
                                      self.priors.intercept_sd**2)

        return self._memo(("level", market), states)

    def one_step_ahead(self, market: int, seed: int = 0) -> np.ndarray:
        """(S, T) one-week-ahead predictive draws of market ``market``'s sales."""
        m = market
        reg = (self._media_sum(m) + self._control_effect(m)) / self.y_scale[m]
        st = self.level_states(m)
        rng = np.random.default_rng(seed)
        return (reg + st["a_pred"] + np.sqrt(st["F_pred"]) * rng.standard_normal(reg.shape)) * self.y_scale[m]

    def summary(self) -> dict:
        """Convergence (max R-hat, min bulk/tail ESS, divergences) of the sampled parameters and the
        market ROIs."""
        from ltae.models.diagnostics import convergence_summary

        names = ["adstock_alpha", "hill_kappa", "hill_lambda", "group_sigma", "market_sigma", "noise_radius2",
                 "noise_angle", "roi_market", "group_mu"]
        post = sampling.posterior_dataset(self.idata)
        return convergence_summary(self.idata, var_names=[n for n in names if n in post])


def _weights(alpha: np.ndarray, l_max: int, normalize: bool) -> np.ndarray:
    """(S, C) retention -> (S, C, L) adstock weights."""
    from ltae.models.transforms import adstock_weights

    return adstock_weights(alpha, l_max, normalize)


__all__ = ["GeoMMM", "whiten_markets", "geometric_adstock_from_stack"]
