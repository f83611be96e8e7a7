"""Step 1: the short-term unobserved-components MMM.

    sales[t] = level[t] + sum_c beta_c * Hill(Adstock(spend_c))[t] + controls[t] . gamma
               + Fourier seasonality[t] + eps[t]

Defaults (:class:`MMMPriors`; Gamma(a, b) is shape, rate; where they differ from the spec's, the
spec's values are one setting away, see docs/method.md):

* level: local level (Gaussian random walk), integrated out exactly by a Kalman filter inside the
  likelihood (levels are smoothed after, draw by draw); level[0] ~ N(1, intercept_sd) in units of
  mean sales; the likelihood is one compiled operation with its gradient written out
  (``ltae.models.kalman.MMMLoglik``);
* the linear effects (channel ROIs with their group means, controls, seasonality) are integrated out
  too (``marginalize_linear``, default): NUTS samples only adstock, Hill, the group spreads and the
  two noise scales (16 parameters for 4 channels in 2 groups), and the linear effects are drawn exactly given each
  draw. Same posterior, no hierarchical funnel: min bulk ESS 1268 vs 453, 0 vs 92 divergences
  (seed 1, 4x1000);
* adstock: geometric, ``l_max`` weeks, normalised, alpha_c ~ Beta(3, 3) (pymc-marketing convention);
* Hill: kappa_c ~ Gamma(6, 4) (mean 1.5), lambda_c ~ Gamma(5, 5 / median positive spend of c) on the
  channel's own currency scale (the spec: Gamma(1.5, 0.3) and Gamma(2, 2 / median)); safe at zero
  spend (see ``transforms.hill``);
* channel effects on the ROI scale (``effect_scale="roi"``, default): ROI_c = r0 * rel_c with
  r0 = total sales / total spend, rel_c ~ N(mu_group, sigma_group) non-centred,
  mu_g ~ N(0.1, 0.2), sigma_g ~ HalfNormal(0.1); beta_c follows from ROI_c. Unit-free and the same
  for small and large channels. The spec's beta_c ~ N(mu_g, sigma_g), mu_g ~ N(0, 1),
  sigma_g ~ HalfNormal(1) is ``effect_scale="beta"``;
* controls standardised, gamma_j ~ N(0, 1); Fourier K = 2, period 52, coefficients ~ N(0, 1);
* noise: sigma ~ HalfNormal(0.1), sigma_level ~ HalfNormal(0.05) (shares of mean sales), sampled in
  polar coordinates (``noise_polar``, the same prior; ``noise_angle_ab`` puts a Beta prior on the angle).

Scaling is internal: sales are divided by their mean, spend of each channel by its median positive
spend (so lambda's prior Gamma(5, 5 / median) becomes Gamma(5, 5)). Every output is converted back:
contributions and base sales in the currency of sales, ROI in currency per currency unit of spend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from ltae.models import sampling
from ltae.models.posterior import FittedPosterior
from ltae.models.transforms import adstock_weights, geometric_adstock_from_stack, hill, lag_stack

_DIGITAL = re.compile(
    r"google|search|sem|seo|linkedin|facebook|meta|instagram|tiktok|youtube|social|display|digital|"
    r"online|email|programmatic|twitter|snap|pinterest|content|affiliate|web|app|video",
    re.IGNORECASE,
)


class MMMPriors(BaseModel):
    """Priors and structure of the short-term model (Gamma(a, b) is shape, rate).

    The defaults are ltae's, not the spec's where evidence said otherwise (see the module
    docstring): Hill kappa ~ Gamma(6, 4) and lambda ~ Gamma(5, 5 / median spend) (the spec's:
    ``kappa_shape=1.5, kappa_rate=0.3, lambda_shape=2``), and a hierarchical prior on the ROI scale
    (``effect_scale="roi"``; the spec's prior on beta: ``effect_scale="beta"``, which uses
    ``group_mu_sd`` and ``group_sigma_sd``). ``marginalize_linear`` and ``noise_polar`` change how
    the posterior is sampled, not the model."""

    model_config = ConfigDict(extra="forbid")

    l_max: int = Field(8, ge=1, le=52)
    normalize_adstock: bool = True
    alpha_beta_a: float = 3.0
    alpha_beta_b: float = 3.0
    # Hill priors: the ROI of an always-on channel is identified only through the curve's shape
    # (the level absorbs its mean effect), so priors that favour flat, strongly saturated curves
    # inflate ROI. Gamma(6, 4) on kappa (mean 1.5, 90% in 0.65-2.6) and Gamma(5, 5/median spend) on
    # lambda (90% in 0.4-1.8 x median) instead of Gamma(3, 2) / the spec's Gamma(2, 2/median): median
    # relative error of short-term ROI on held-out seeds 200-209 0.26 -> 0.21, coverage 0.95 both.
    # The spec's values: kappa_shape=1.5, kappa_rate=0.3, lambda_shape=2.
    kappa_shape: float = 6.0
    kappa_rate: float = 4.0
    lambda_shape: float = 5.0  # rate = shape / median spend  (mean = median spend)
    group_mu_sd: float = 1.0
    group_sigma_sd: float = 1.0
    control_sd: float = 1.0
    fourier_order: int = Field(2, ge=0)
    period: float = 52.0
    season_sd: float = 1.0
    intercept_sd: float = 1.0
    level_sd: float = 0.05  # HalfNormal scale of weekly level innovations (share of mean sales)
    noise_sd: float = 0.1  # HalfNormal scale of observation noise (share of mean sales)
    centered_beta: bool = False  # non-centred: 4 vs 96 divergences on the 208x4 benchmark data
    # "roi": hierarchical prior on ROI (default, see docs/method.md); "beta": the spec's prior on beta.
    # The ROI prior is on ROI relative to r0 = total sales / total spend (the return if all sales
    # came from media), so it is unit-free: spend in thousands gives ROI x 1000, exactly.
    effect_scale: Literal["roi", "beta"] = "roi"
    roi_mu_mean: float = 0.1  # group mean of ROI / r0: media drive ~10% of sales, a priori
    roi_mu_sd: float = 0.2
    roi_sigma_sd: float = 0.1
    shared_sigma: bool = False  # one between-channel scale for all groups instead of one per group
    roi_sigma_fixed: float | None = None  # a known within-group spread instead of a learned one
    # integrate the linear effects (channel ROIs, group means, controls, seasonality) out of the
    # likelihood exactly, as the level is; NUTS samples only the nonlinear and scale parameters and the
    # linear effects are drawn exactly afterwards (effect_scale="roi" only)
    marginalize_linear: bool = True
    # sample (sigma, sigma_level) in polar coordinates (same prior): min ESS 1764 vs 762 (seed 1, 4x1000)
    noise_polar: bool = True
    # add last week's brand metrics (awareness, consideration, ...) as controls (``from_dataset``)
    brand_lag_controls: bool = False
    # per-channel priors of the response curves (a refresh sets them from the previous posterior,
    # see ltae.refresh): (a, b) of each channel's Beta on adstock retention, (shape, rate) of its
    # Gammas on the Hill shape and on the half-saturation point (in units of the channel's median spend);
    # None: the scalar priors above for every channel
    alpha_ab: list[tuple[float, float]] | None = None
    kappa_sr: list[tuple[float, float]] | None = None
    lambda_sr: list[tuple[float, float]] | None = None
    # multi-market models (ltae.models.geo): HalfNormal scale of each channel's between-market spread
    # of ROI / r0 (partial pooling of market ROIs towards the national ROI)
    market_roi_sd: float = 0.1
    # Beta(a, b) prior on the noise angle / (pi/2) (``noise_polar``; see polar_noise_scales): how the weekly
    # variation splits into observation noise and level moves. None: each model's default, (1, 1) with
    # one market (the independent half-normal scales; no chain trapped in 40+ recovery fits) and (2, 2)
    # in the multi-market model, where a chain trapped at zero observation noise (step size 1e-14) on
    # 1 of 10 ten-market recovery data sets with (1, 1) and none with (2, 2) (docs/benchmarks.md)
    noise_angle_ab: tuple[PositiveFloat, PositiveFloat] | None = None

    def scaled(self, factor: float) -> MMMPriors:
        """Priors with every scale parameter multiplied by ``factor`` (prior sensitivity)."""
        upd = {k: getattr(self, k) * factor for k in
               ("group_mu_sd", "group_sigma_sd", "control_sd", "season_sd", "level_sd", "noise_sd",
                "roi_mu_sd", "roi_sigma_sd")}
        return self.model_copy(update=upd)


def polar_noise_scales(pm, pt, priors: MMMPriors, angle_ab: tuple[float, float], dims=None):
    """(sigma, sigma_level) = (noise_sd r cos phi, level_sd r sin phi) with r^2 ~ Exponential(1/2) and
    phi / (pi/2) ~ Beta(angle_ab); with (1, 1) (phi uniform) that is exactly sigma ~ HalfNormal(noise_sd)
    and sigma_level ~ HalfNormal(level_sd), independent. The data pin down the total weekly variation
    (r) much better than its split into level moves and noise (phi), so these coordinates sample
    better. A Beta with a, b > 1 has zero density where the observation noise (phi = pi/2) or the level
    noise (phi = 0) is exactly 0. ``dims``: one pair per market. Not Deterministics (a second compiled
    function, ~20 s of numba): :func:`noise_scales_from_polar` adds them after sampling."""
    r = pt.sqrt(pm.Exponential("noise_radius2", 0.5, dims=dims))
    phi = pm.Uniform("noise_angle", 0.0, np.pi / 2, dims=dims)
    a, b = angle_ab
    if (a, b) != (1.0, 1.0):  # the Beta's log density on phi / (pi/2), up to a constant
        share = phi / (np.pi / 2)
        pm.Potential("noise_angle_prior", ((a - 1) * pt.log(share) + (b - 1) * pt.log1p(-share)).sum())
    return priors.noise_sd * r * pt.cos(phi), priors.level_sd * r * pt.sin(phi)


def noise_scales_from_polar(post, priors: MMMPriors) -> tuple[np.ndarray, np.ndarray]:
    """(sigma, sigma_level) draws from the posterior's polar draws (:func:`polar_noise_scales`)."""
    r, phi = np.sqrt(post["noise_radius2"].values), post["noise_angle"].values
    return priors.noise_sd * r * np.cos(phi), priors.level_sd * r * np.sin(phi)


def default_channel_groups(channels) -> dict[str, list[str]]:
    """``{"digital": [...], "offline": [...]}`` by channel name (search, social, content... are digital); a
    group with no channel is left out."""
    digital = [c for c in channels if _DIGITAL.search(str(c))]
    offline = [c for c in channels if c not in digital]
    groups = {}
    if digital:
        groups["digital"] = digital
    if offline:
        groups["offline"] = offline
    return groups


def local_level_loglik(e, sigma, sigma_level, m0: float, p0: float, n: int | None = None,
                       method: str = "kalman"):
    """Log-likelihood of e[t] = level[t] + N(0, sigma^2), level[t] = level[t-1] + N(0, sigma_level^2),
    level[0] ~ N(m0, p0), with the level integrated out exactly (scalar Kalman filter).

    ``method="kalman"`` (default) is the filter as one compiled operation with a hand-written
    gradient (:mod:`ltae.models.kalman`). ``method="prefix"`` has no loop: the predicted variances follow a constant Riccati
    (Moebius) map, which has a closed form, and the predicted means follow a linear recurrence
    a[t+1] = (1 - K[t]) a[t] + K[t] e[t], evaluated by a parallel prefix (Hillis-Steele) over
    ceil(log2 T) levels of element-wise operations. With numba at T = 208 the log density and its
    gradient take 24-28 us per call against 129-153 us for a ``scan`` (compiling takes longer: 11 s
    against 6 s on an empty cache). ``method="scan"`` is the textbook filter (for tests)."""
    import pytensor
    import pytensor.tensor as pt

    s2 = sigma**2
    q = sigma_level**2
    if method == "scan":
        def step(e_t, a, P, s2, q):
            F = P + s2
            v = e_t - a
            K = P / F
            ll = -0.5 * (pt.log(2 * np.pi * F) + v**2 / F)
            return a + K * v, P * (1 - K) + q, ll

        a0 = pt.as_tensor(np.float64(m0))
        P0 = pt.as_tensor(np.float64(p0))
        (_, _, ll), _ = pytensor.scan(step, sequences=[e], outputs_info=[a0, P0, None],
                                      non_sequences=[s2, q], strict=True)
        return ll.sum()
    n = n if n is not None else e.type.shape[0]
    if n is None:
        raise ValueError("local_level_loglik needs the series length n")
    if method == "kalman":
        from ltae.models.kalman import kalman_loglik

        return kalman_loglik(e[:, None], s2, q, [m0], p0)
    w, sum_log_f = local_level_whiten(e[:, None], sigma, sigma_level, np.array([m0]), p0, n)
    return -0.5 * (n * np.log(2 * np.pi) + sum_log_f + pt.sum(w**2))


def local_level_whiten(E, sigma, sigma_level, m0, p0: float, n: int):
    """Kalman innovations of the columns of E (T, q), each scaled to unit variance, for the local
    level model of ``local_level_loglik``; column j starts from level mean m0[j] (m0 a numpy vector).
    Closed-form Riccati variances and a parallel prefix for the means (see ``local_level_loglik``).
    Linear in each column, so whitened(X @ L) = whitened(X) @ L for the zero-mean columns.
    Returns (whitened (T, q), sum_t log F[t])."""
    import pytensor.tensor as pt

    s2 = sigma**2
    q = sigma_level**2
    root = pt.sqrt(q**2 + 4 * q * s2)
    p_hi, p_lo = (q + root) / 2, (q - root) / 2
    k = (s2 + q - p_hi) / (s2 + q - p_lo)
    u0 = (p0 - p_hi) / (p0 - p_lo)
    u = u0 * k ** pt.arange(n, dtype="float64")
    P = (p_hi - p_lo * u) / (1 - u)
    F = P + s2
    K = P / F
    m0 = np.asarray(m0, dtype="float64")
    c, d = 1 - K, K[:, None] * E
    shift = 1
    while shift < n:
        c_prev = pt.concatenate([pt.ones(shift), c[:-shift]])
        d_prev = pt.concatenate([pt.zeros((shift, d.shape[1])), d[:-shift]], axis=0)
        c, d = c * c_prev, c[:, None] * d_prev + d
        shift *= 2
    a_next = c[:, None] * m0[None, :] + d
    a = pt.concatenate([pt.as_tensor(m0[None, :]), a_next[:-1]], axis=0)
    return (E - a) / pt.sqrt(F)[:, None], pt.sum(pt.log(F))


def local_level_whiten_np(E: np.ndarray, sigma: np.ndarray, sigma_level: np.ndarray, m0: np.ndarray,
                          p0: float) -> np.ndarray:
    """numpy twin of ``local_level_whiten`` vectorised over draws: E (S, T, q), sigma (S,)."""
    S, T, q = E.shape
    s2, ql = sigma**2, sigma_level**2
    a = np.broadcast_to(np.asarray(m0, float), (S, q)).copy()
    P = np.full(S, p0, dtype=float)
    out = np.empty_like(E)
    for t in range(T):
        F = P + s2
        v = E[:, t, :] - a
        out[:, t, :] = v / np.sqrt(F)[:, None]
        K = P / F
        a = a + K[:, None] * v
        P = P * (1 - K) + ql
    return out


def kalman_smoother_np(e: np.ndarray, sigma: np.ndarray, sigma_level: np.ndarray, m0: float, p0: float):
    """Vectorised over draws: e (S, T), sigma/sigma_level (S,). Returns filtered one-step-ahead
    predictions (a_pred, F_pred) and smoothed level mean/variance, each (S, T)."""
    S, T = e.shape
    s2, q = sigma**2, sigma_level**2
    a_pred, P_pred, a_filt, P_filt = (np.empty((S, T)) for _ in range(4))
    a = np.full(S, m0, dtype=float)
    P = np.full(S, p0, dtype=float)
    for t in range(T):
        a_pred[:, t], P_pred[:, t] = a, P
        F = P + s2
        K = P / F
        a = a + K * (e[:, t] - a)
        P = P * (1 - K)
        a_filt[:, t], P_filt[:, t] = a, P
        P = P + q
    a_s, P_s = a_filt.copy(), P_filt.copy()
    for t in range(T - 2, -1, -1):
        J = P_filt[:, t] / (P_filt[:, t] + q)
        a_s[:, t] = a_filt[:, t] + J * (a_s[:, t + 1] - a_filt[:, t])
        P_s[:, t] = P_filt[:, t] + J**2 * (P_s[:, t + 1] - (P_filt[:, t] + q))
    return {"a_pred": a_pred, "F_pred": P_pred + s2[:, None], "a_smooth": a_s, "P_smooth": P_s,
            "a_last": a_filt[:, -1], "P_last": P_filt[:, -1]}


def _fourier(t: np.ndarray, order: int, period: float) -> np.ndarray:
    cols = []
    for k in range(1, order + 1):
        cols += [np.sin(2 * np.pi * k * t / period), np.cos(2 * np.pi * k * t / period)]
    return np.column_stack(cols) if cols else np.zeros((len(t), 0))


def spread_change(spend: np.ndarray, change: float, spread: str | None = None) -> np.ndarray:
    """A lift test's change of spend week by week over its test weeks (``spend``: the data's spend in
    those weeks): ``"even"`` (default) the same amount every week; ``"proportional"`` in proportion to
    each week's spend (a hold-out that cuts a share of the planned spend; a go-dark is ``change`` =
    minus the weeks' spend)."""
    spend = np.asarray(spend, dtype=float)
    if spread == "proportional":
        total = spend.sum()
        return change * spend / total if total > 0 else np.full(len(spend), np.nan)
    return np.full(len(spend), change / max(len(spend), 1))


@dataclass
class _Design:
    """Everything the likelihood needs, already scaled."""

    y: np.ndarray  # (T,) scaled sales
    stack: np.ndarray  # (T, C, L) scaled lagged spend
    controls: np.ndarray  # (T, J) standardised
    fourier: np.ndarray  # (T, 2K)
    spend_share: np.ndarray  # (C,) window spend / y_scale
    roi_ref: float  # r0 = total sales / total spend

    @property
    def roi_weight(self) -> np.ndarray:
        """(C,) r0 x window spend / y_scale: scaled contribution per unit of ROI / r0."""
        return self.roi_ref * self.spend_share


class ShortTermMMM(FittedPosterior):
    """The short-term model. Build with arrays or an ``MMMDataset`` (``from_dataset``)."""

    def __init__(
        self,
        sales,
        spend,
        controls=None,
        channels=None,
        control_names=None,
        channel_groups: dict[str, list[str]] | None = None,
        priors: MMMPriors | None = None,
        dates=None,
        lift_tests=None,
    ):
        self.priors = priors or MMMPriors()
        self.sales = np.asarray(sales, dtype=float).reshape(-1)
        spend = np.asarray(spend, dtype=float)
        if spend.ndim == 1:
            spend = spend[:, None]
        self.spend = spend
        T, C = spend.shape
        if len(self.sales) != T:
            raise ValueError(f"sales has {len(self.sales)} rows but spend has {T}")
        self.channels = list(channels) if channels is not None else [f"channel_{i}" for i in range(C)]
        if controls is None:
            controls = np.zeros((T, 0))
        controls = np.asarray(controls, dtype=float)
        if controls.ndim == 1:
            controls = controls[:, None]
        self.controls = controls
        self.control_names = list(control_names) if control_names is not None else [
            f"control_{j}" for j in range(controls.shape[1])]
        self.dates = pd.DatetimeIndex(dates) if dates is not None else pd.RangeIndex(T)
        groups = channel_groups or default_channel_groups(self.channels)
        unknown = [c for g in groups.values() for c in g if c not in self.channels]
        if unknown:
            raise ValueError(f"channel_groups name unknown channels: {unknown}")
        missing = [c for c in self.channels if not any(c in g for g in groups.values())]
        if missing:
            groups = {**groups, "other": missing}
        self.channel_groups = {g: list(v) for g, v in groups.items() if v}
        self.group_names = list(self.channel_groups)
        self.group_index = np.array(
            [next(i for i, g in enumerate(self.group_names) if c in self.channel_groups[g]) for c in self.channels]
        )
        # ---- internal scaling --------------------------------------------------------------
        self.y_scale = float(np.mean(np.abs(self.sales))) or 1.0
        med = np.array([np.median(s[s > 0]) if np.any(s > 0) else 1.0 for s in spend.T])
        self.spend_scale = med
        self.ctrl_mean = controls.mean(axis=0) if controls.shape[1] else np.zeros(0)
        sd = controls.std(axis=0) if controls.shape[1] else np.zeros(0)
        self.ctrl_sd = np.where(sd > 0, sd, 1.0)
        self.t0 = 0
        self.model = None
        self.idata = None
        self.fit_info: dict = {}
        self.lift_tests = None if lift_tests is None or not len(lift_tests) else pd.DataFrame(lift_tests).reset_index(
            drop=True)
        if self.lift_tests is not None and not (self.priors.effect_scale == "roi" and self.priors.marginalize_linear):
            raise ValueError("lift tests need the ROI-scale prior with the linear effects integrated out (the defaults)")

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_dataset(cls, ds, channel_groups=None, priors=None, lift_tests=None) -> ShortTermMMM:
        """The model of an :class:`~ltae.data.dataset.MMMDataset`: its target, spend and controls (plus
        last week's brand metrics with ``priors.brand_lag_controls``); ``lift_tests``: experiments as
        :func:`ltae.analysis.calibration.read_lift_tests` returns them (None: none)."""
        controls = ds.controls
        if priors is not None and priors.brand_lag_controls and ds.brand.shape[1]:
            # last week's brand metrics as controls: the brand-mediated part of base sales is then
            # not credited to the short-term media effect (the first week repeats its own value)
            lagged = ds.brand.shift(1).bfill().add_suffix("_lag1")
            controls = pd.concat([controls, lagged.set_index(controls.index)], axis=1)
        return cls(
            sales=ds.target.values, spend=ds.spend.values, controls=controls.values,
            channels=list(ds.spend.columns), control_names=list(controls.columns),
            channel_groups=channel_groups, priors=priors, dates=ds.dates, lift_tests=lift_tests,
        )

    @property
    def n_weeks(self) -> int:
        """Number of weeks."""
        return len(self.sales)

    def _design(self, spend=None, controls=None, t_offset: int = 0, n=None) -> _Design:
        spend = self.spend if spend is None else np.asarray(spend, dtype=float)
        controls = self.controls if controls is None else np.asarray(controls, dtype=float)
        n = len(spend) if n is None else n
        t = np.arange(t_offset, t_offset + n, dtype=float)
        return _Design(
            y=self.sales / self.y_scale,
            stack=lag_stack(spend / self.spend_scale, self.priors.l_max),
            controls=(controls - self.ctrl_mean) / self.ctrl_sd if controls.shape[1] else controls,
            fourier=_fourier(t, self.priors.fourier_order, self.priors.period),
            spend_share=spend.sum(axis=0) / self.y_scale,
            roi_ref=float(np.sum(np.abs(self.sales)) / max(float(self.spend.sum()), 1e-12)),
        )

    def _curve_priors(self) -> dict[str, np.ndarray]:
        """Per-channel parameters of the adstock and Hill priors, (C,) each."""
        p, C = self.priors, len(self.channels)

        def vec(pairs, default):
            arr = np.asarray(pairs if pairs is not None else [default] * C, dtype=float)
            if arr.shape != (C, 2):
                raise ValueError(f"per-channel priors need one pair per channel ({C}), got {arr.shape[0]}")
            return arr[:, 0], arr[:, 1]

        a, b = vec(p.alpha_ab, (p.alpha_beta_a, p.alpha_beta_b))
        ks, kr = vec(p.kappa_sr, (p.kappa_shape, p.kappa_rate))
        ls, lr = vec(p.lambda_sr, (p.lambda_shape, p.lambda_shape))
        return {"alpha_a": a, "alpha_b": b, "kappa_shape": ks, "kappa_rate": kr, "lambda_shape": ls,
                "lambda_rate": lr}

    def _coords(self) -> dict:
        return {"channel": self.channels, "group": self.group_names, "control": self.control_names,
                "fourier": np.arange(2 * self.priors.fourier_order)}

    def build_model(self):
        """Build the PyMC model (called by :meth:`fit` when needed); returns it."""
        import pymc as pm
        import pytensor.tensor as pt

        p = self.priors
        d = self._design()
        T, C = self.spend.shape
        coords = {"date": np.arange(T), "channel": self.channels, "group": self.group_names,
                  "control": self.control_names, "fourier": np.arange(d.fourier.shape[1]),
                  "step": np.arange(T - 1)}
        with pm.Model(coords=coords) as model:
            # the curve priors' parameters are shared inputs too: a refresh (other prior values) reuses the
            # compiled code
            pri = {k: pm.Data(f"prior_{k}", v) for k, v in self._curve_priors().items()}
            alpha = pm.Beta("adstock_alpha", pri["alpha_a"], pri["alpha_b"], dims="channel")
            kappa = pm.Gamma("hill_kappa", alpha=pri["kappa_shape"], beta=pri["kappa_rate"], dims="channel")
            lam = pm.Gamma("hill_lambda", alpha=pri["lambda_shape"], beta=pri["lambda_rate"], dims="channel")
            # data enter as shared inputs: the compiled graph depends only on shapes
            stack = pm.Data("spend_lags", d.stack)
            gi = self.group_index
            if p.effect_scale == "roi" and p.marginalize_linear:
                self._marginal_likelihood(pm, pt, (alpha, kappa, lam, stack), d, T)
                self._set_initial_values(model)
                self.model = model
                return model
            ad = geometric_adstock_from_stack(stack, alpha, p.l_max, p.normalize_adstock, xp=pt)
            sat = hill(ad, kappa, lam, xp=pt)  # (T, C)
            if p.effect_scale == "roi":
                # hierarchical prior on each channel's ROI (currency per currency unit): scale-free
                # across channels of any size; beta follows as roi * spend / sum(saturated spend)
                mu_g = pm.Normal("group_mu", p.roi_mu_mean, p.roi_mu_sd, dims="group")
                sd_g = self._group_sigma(pm, pt)
                if p.centered_beta:
                    rel = pm.Normal("roi_rel", mu_g[gi], sd_g[gi], dims="channel")
                else:
                    z = pm.Normal("roi_raw", 0.0, 1.0, dims="channel")
                    rel = mu_g[gi] + sd_g[gi] * z
                roi = pm.Deterministic("roi", rel * pm.Data("roi_ref", d.roi_ref), dims="channel")
                spend_share = pm.Data("spend_share", d.spend_share)  # window spend / y_scale
                # not stored as a Deterministic: that would compile the media graph twice (the
                # trace "expand" function); beta draws are recomputed in numpy (``draws("beta")``)
                beta = roi * spend_share / (sat.sum(axis=0) + 1e-12)
            else:  # the spec's beta ~ N(mu_group, sigma_group) on the scale of mean sales
                mu_g = pm.Normal("group_mu", 0.0, p.group_mu_sd, dims="group")
                sd_g = pm.HalfNormal("group_sigma", p.group_sigma_sd, dims="group")
                if p.centered_beta:
                    beta = pm.Normal("beta", mu_g[gi], sd_g[gi], dims="channel")
                else:
                    z_b = pm.Normal("beta_raw", 0.0, 1.0, dims="channel")
                    beta = pm.Deterministic("beta", mu_g[gi] + sd_g[gi] * z_b, dims="channel")
            media = (sat * beta).sum(axis=1)
            mu = media
            if C == 0:
                mu = pt.zeros(T)
            if d.controls.shape[1]:
                gamma = pm.Normal("gamma_control", 0.0, p.control_sd, dims="control")
                mu = mu + pt.dot(pm.Data("controls_std", d.controls), gamma)
            if d.fourier.shape[1]:
                season = pm.Normal("season_coef", 0.0, p.season_sd, dims="fourier")
                mu = mu + pt.dot(pm.Data("fourier_terms", d.fourier), season)
            sigma, sigma_level = self._noise_scales(pm, pt)
            # local level marginalised exactly with a Kalman filter: level0 ~ N(1, intercept_sd^2)
            loglik = local_level_loglik(pm.Data("sales_scaled", d.y) - mu, sigma, sigma_level, 1.0,
                                        p.intercept_sd**2, n=T)
            pm.Potential("y_loglik", loglik)
        self.model = model
        return model

    # ---- linear effects integrated out ----------------------------------------------------------
    # Given the nonlinear parameters, sales (scaled) = level + X_lin @ coef + noise with
    # coef = m + L @ eta, eta ~ N(0, I): eta = [u (groups), z (channels), controls, seasonality],
    # roi_rel = roi_mu_mean + roi_mu_sd * u[group] + sigma_group[group] * z (the hierarchical prior),
    # gamma = control_sd * eta_c, season = season_sd * eta_s. The level is whitened by the Kalman
    # filter, and eta integrates out in closed form: with Z = whitened(X_lin @ L), y~ = whitened(y -
    # X_lin @ m), P = I + Z'Z, log p(y) = -1/2 [sum log 2 pi F + y~'y~ - y~'Z P^-1 Z'y~ + log|P|].
    def _linear_blocks(self, sat, sd_g, d: _Design, xp=np, data: dict | None = None):
        """Scaled columns X_lin @ L (..., T, q) and the prior-mean offset X_lin @ m (..., T).
        ``data`` holds the model's shared inputs (``roi_weight``, ``controls``, ``fourier``) when
        building the graph, so that the compiled code does not depend on the data's values."""
        p = self.priors
        G = len(self.group_names)
        data = data or {"roi_weight": d.roi_weight, "controls": d.controls, "fourier": d.fourier}
        onehot = np.eye(G)[self.group_index]  # (C, G)
        w = data["roi_weight"] / (sat.sum(axis=-2) + 1e-12)  # (..., C)
        xr = sat * w[..., None, :]  # contribution per unit of roi_rel, (..., T, C)
        parts = [xr @ (p.roi_mu_sd * onehot), xr * sd_g[..., None, :]]
        lead = xr.shape[:-2]
        for name, sd in (("controls", p.control_sd), ("fourier", p.season_sd)):
            block = data[name]
            if getattr(d, name).shape[1]:
                parts.append(xp.broadcast_to(block * sd, lead + block.shape) if xp is np else block * sd)
        offset = xr.sum(axis=-1) * p.roi_mu_mean
        return (xp.concatenate(parts, axis=-1), offset)

    # ---- lift tests: Gaussian observations of the ROI effects ----------------------------------------
    # A lift test measures the extra sales over weeks W caused by a spend change in one channel. Given
    # adstock and Hill, the model's lift is linear in the channel's ROI: lift = rel_c * a with
    # a = roi_weight_c * [sum_W Hill(Adstock(spend + change)) - sum_W Hill(Adstock(spend))] / sum_t Hill(..),
    # and rel_c is linear in the standardised linear effects. So each test is one more Gaussian row
    # of the marginalised linear system (exact), with its standard error as noise.
    def _lift_design(self) -> dict | None:
        """Arrays of the lift tests, on the model's scale: channel index (n,), measurement window
        (n, T) 0/1, lagged perturbed spend (n, T, L), lift / y_scale (n,), se / y_scale (n,)."""
        if self.lift_tests is None:
            return None
        lt = self.lift_tests
        dates = pd.DatetimeIndex(self.dates)
        T, L = self.n_weeks, self.priors.l_max
        n = len(lt)
        cidx = np.array([self.channels.index(c) for c in lt["channel"]])
        window, stack = np.zeros((n, T)), np.zeros((n, T, L))
        for i, r in enumerate(lt.itertuples()):
            test = (dates >= pd.Timestamp(r.start)) & (dates <= pd.Timestamp(r.end))
            until = getattr(r, "measured_until", None)
            until = r.end if until is None or pd.isna(until) else until
            window[i] = (dates >= pd.Timestamp(r.start)) & (dates <= pd.Timestamp(until))
            x = self.spend[:, cidx[i]].copy()
            x[test] += spread_change(x[test], float(r.spend_change), getattr(r, "spread", None))
            stack[i] = lag_stack(np.maximum(x, 0.0)[:, None] / self.spend_scale[cidx[i]], L)[:, 0, :]
        return {"channel": cidx, "window": window, "stack": stack,
                "lift": lt["lift"].to_numpy(float) / self.y_scale, "se": lt["lift_se"].to_numpy(float) / self.y_scale}

    def _lift_rows(self, sat, alpha, kappa, lam, sd_g, lift: dict, xp=np):
        """The tests' rows of the linear system: (Z (..., n, q), y~ (..., n)) already divided by the
        standard errors; ``sat`` (..., T, C) and the parameters (..., C) as in :meth:`_linear_blocks`."""
        p = self.priors
        G, C = len(self.group_names), len(self.channels)
        c = lift["channel"]
        w = adstock_weights(alpha[..., c], p.l_max, p.normalize_adstock, xp=xp)  # (..., n, L)
        ad = (lift["stack"] * w[..., :, None, :]).sum(axis=-1)  # (..., n, T)
        base = xp.moveaxis(sat[..., :, c], -1, -2) if xp is np else sat[:, c].T  # (..., n, T)
        pert = hill(ad, kappa[..., c][..., None], lam[..., c][..., None], xp=xp)
        dsum = ((pert - base) * lift["window"]).sum(axis=-1)  # (..., n)
        a = lift["roi_weight"][c] * dsum / (base.sum(axis=-1) + 1e-12)  # lift per unit of rel_c
        onehot = np.eye(G)[self.group_index][c]  # (n, G)
        chan = np.eye(C)[c]  # (n, C)
        cols = [a[..., None] * (p.roi_mu_sd * onehot), a[..., None] * sd_g[..., c][..., None] * chan]
        rest = self._n_eta() - G - C
        if rest:
            cols.append(xp.zeros(tuple(a.shape) + (rest,)) if xp is np else xp.zeros((len(c), rest)))
        se = lift["se"]
        return xp.concatenate(cols, axis=-1) / se[..., :, None], (lift["lift"] - a * p.roi_mu_mean) / se

    def _set_initial_values(self, model) -> None:
        """Warm start: ``self.initial_values`` ({free variable: value}, e.g. a previous posterior's means)
        become the sampler's starting point (jittered by the sampler as usual)."""
        for name, value in (getattr(self, "initial_values", None) or {}).items():
            if name in model.named_vars and model[name] in model.free_RVs:
                model.set_initval(model[name], np.asarray(value, dtype=float))

    def _group_sigma(self, pm, pt):
        """Within-group spread of ROI / r0: learned per group (default), one shared scale
        (``shared_sigma``) or known (``roi_sigma_fixed``)."""
        p, G = self.priors, len(self.group_names)
        if p.roi_sigma_fixed is not None:
            return pt.as_tensor(np.full(G, p.roi_sigma_fixed))
        if p.shared_sigma:
            return pm.HalfNormal("group_sigma", p.roi_sigma_sd) * pt.ones(G)
        return pm.HalfNormal("group_sigma", p.roi_sigma_sd, dims="group")

    # The likelihood as one operation (``ltae.models.kalman.MMMLoglik``: adstock, Hill, the columns
    # above, the Kalman filter and the Gaussian integral, value and gradient in one pass); False
    # builds the same likelihood as a pytensor graph (the tests compare the two).
    _FUSED_LIKELIHOOD = True

    def _marginal_likelihood(self, pm, pt, media, d: _Design, T: int):
        from ltae.models.kalman import MMMLoglik, kalman_loglik
        from ltae.models.transforms import _LOG_FLOOR

        p = self.priors
        alpha, kappa, lam, stack = media
        sd_g = self._group_sigma(pm, pt)[self.group_index]  # (C,)
        data = {"roi_weight": pm.Data("roi_weight", d.roi_weight),
                "controls": pm.Data("controls_std", d.controls) if d.controls.shape[1] else d.controls,
                "fourier": pm.Data("fourier_terms", d.fourier) if d.fourier.shape[1] else d.fourier}
        y = pm.Data("sales_scaled", d.y)
        sigma, sigma_level = self._noise_scales(pm, pt)
        if self._FUSED_LIKELIHOOD and self.lift_tests is None:
            op = MMMLoglik(self.group_index, len(self.group_names), p.l_max, p.normalize_adstock, p.roi_mu_mean,
                           p.roi_mu_sd, p.control_sd, p.season_sd, p.intercept_sd**2, _LOG_FLOOR)
            pm.Potential("y_loglik", op(alpha, kappa, lam, sd_g, sigma**2, sigma_level**2, stack, data["roi_weight"],
                                        data["controls"], data["fourier"], y)[0])
            return
        sat = hill(geometric_adstock_from_stack(stack, alpha, p.l_max, p.normalize_adstock, xp=pt), kappa, lam,
                   xp=pt)
        XL, offset = self._linear_blocks(sat, sd_g, d, xp=pt, data=data)
        E = pt.concatenate([(y - offset)[:, None], XL], axis=1)
        m0 = np.zeros(1 + self._n_eta())
        m0[0] = 1.0
        lift = self._lift_design()
        if lift is None:
            # whitening, Gram matrix, Cholesky and the log density above as one operation with its
            # gradient written out (ltae.models.kalman): about 5x faster than the same as a pytensor graph
            pm.Potential("y_loglik", kalman_loglik(E, sigma**2, sigma_level**2, m0, p.intercept_sd**2))
            return
        # lift tests: their rows join the whitened sales rows (a pytensor graph; the fused operations
        # know only the sales rows)
        import pytensor.tensor.slinalg as sl

        Wt, sum_log_f = local_level_whiten(E, sigma, sigma_level, m0, p.intercept_sd**2, T)
        yt, Z = Wt[:, 0], Wt[:, 1:]
        lift = {k: (pm.Data(f"lift_{k}", v) if k != "channel" else v) for k, v in lift.items()}
        lift["roi_weight"] = data["roi_weight"]
        Zl, yl = self._lift_rows(sat, alpha, kappa, lam, sd_g, lift, xp=pt)
        Z, yt = pt.concatenate([Z, Zl], axis=0), pt.concatenate([yt, yl])
        sum_log_f = sum_log_f + pt.sum(pt.log(lift["se"] ** 2))
        n_obs = T + self.lift_tests.shape[0]
        prec = pt.eye(self._n_eta()) + Z.T @ Z
        Lp = sl.cholesky(prec, lower=True)
        w = sl.solve_triangular(Lp, Z.T @ yt, lower=True)
        loglik = -0.5 * (n_obs * np.log(2 * np.pi) + sum_log_f + yt @ yt - w @ w) - pt.sum(pt.log(pt.diag(Lp)))
        pm.Potential("y_loglik", loglik)

    def _noise_scales(self, pm, pt):
        """sigma ~ HalfNormal(noise_sd), sigma_level ~ HalfNormal(level_sd), independent, or, with
        ``noise_polar``, the same prior in polar coordinates (:func:`polar_noise_scales`)."""
        p = self.priors
        if not p.noise_polar:
            return pm.HalfNormal("sigma", p.noise_sd), pm.HalfNormal("sigma_level", p.level_sd)
        return polar_noise_scales(pm, pt, p, p.noise_angle_ab or (1.0, 1.0))

    def _noise_from_polar(self) -> dict:
        sigma, sigma_level = noise_scales_from_polar(sampling.posterior_dataset(self.idata), self.priors)
        return {"sigma": (sigma, None), "sigma_level": (sigma_level, None)}

    def _n_eta(self) -> int:
        return len(self.group_names) + len(self.channels) + self.controls.shape[1] + 2 * self.priors.fourier_order

    def _draw_linear(self, seed: int, chunk: int = 500) -> dict:
        """Exact draws of the integrated-out linear effects given each posterior draw."""
        p = self.priors
        d = self._design()
        post = sampling.posterior_dataset(self.idata)
        shape = (post.sizes["chain"], post.sizes["draw"])
        st = lambda v: sampling.stacked(self.idata, v)  # noqa: E731
        sigma, sigma_level = st("sigma"), st("sigma_level")
        sat_all = self._saturation()  # memoised: contributions and beta reuse it
        S, G, C, J = len(sigma), len(self.group_names), len(self.channels), self.controls.shape[1]
        if p.roi_sigma_fixed is not None:
            sd = np.full((S, G), p.roi_sigma_fixed)
        else:
            sd = st("group_sigma")
            sd = np.broadcast_to(sd[:, None], (S, G)) if sd.ndim == 1 else sd
        rng = np.random.default_rng(seed)
        q = self._n_eta()
        eta = np.empty((S, q))
        m0 = np.zeros(1 + q)
        m0[0] = 1.0
        lift = self._lift_design()
        if lift is not None:
            lift["roi_weight"] = d.roi_weight
            alpha, kappa, lam = st("adstock_alpha"), st("hill_kappa"), st("hill_lambda")
        for a in range(0, S, chunk):
            sl = slice(a, a + chunk)
            XL, offset = self._linear_blocks(sat_all[sl], sd[sl][:, self.group_index], d)
            E = np.concatenate([(d.y[None, :] - offset)[..., None], XL], axis=-1)
            Wt = local_level_whiten_np(E, sigma[sl], sigma_level[sl], m0, p.intercept_sd**2)
            yt, Z = Wt[..., 0], Wt[..., 1:]
            if lift is not None:
                Zl, yl = self._lift_rows(sat_all[sl], alpha[sl], kappa[sl], lam[sl], sd[sl][:, self.group_index], lift)
                Z, yt = np.concatenate([Z, Zl], axis=-2), np.concatenate([yt, yl], axis=-1)
            Lp = np.linalg.cholesky(np.eye(q) + np.swapaxes(Z, -1, -2) @ Z)
            w = np.linalg.solve(Lp, (np.swapaxes(Z, -1, -2) @ yt[..., None]))[..., 0]
            xi = rng.standard_normal(w.shape)
            eta[sl] = np.linalg.solve(np.swapaxes(Lp, -1, -2), (w + xi)[..., None])[..., 0]
        u, z = eta[:, :G], eta[:, G:G + C]
        rel = p.roi_mu_mean + p.roi_mu_sd * u[:, self.group_index] + sd[:, self.group_index] * z
        out = {"roi": (rel * d.roi_ref, "channel"), "group_mu": (p.roi_mu_mean + p.roi_mu_sd * u, "group")}
        if J:
            out["gamma_control"] = (p.control_sd * eta[:, G + C:G + C + J], "control")
        if p.fourier_order:
            out["season_coef"] = (p.season_sd * eta[:, G + C + J:], "fourier")
        return {k: (v.reshape(shape + v.shape[1:]), dim) for k, (v, dim) in out.items()}

    def fit(self, draws=1000, tune=500, chains=4, target_accept=0.9, cores=None, sampler=None,
            seed=42, progressbar=False, **kw):
        """Sample the posterior (``sampler``: see :mod:`ltae.models.sampling`; default nutpie) and keep it
        in :attr:`idata`; returns the model."""
        self._sample(draws, tune, chains, target_accept, cores, sampler, seed, progressbar, **kw)
        if self.priors.noise_polar:
            self._extend_posterior(self._noise_from_polar())
        if self.priors.effect_scale == "roi" and self.priors.marginalize_linear:
            import time

            t0 = time.perf_counter()
            self._extend_posterior(self._draw_linear(seed))
            self.fit_info["linear_draws_s"] = time.perf_counter() - t0
        return self

    # ---- posterior quantities (numpy, vectorised over draws) ---------------------------------
    def _extend_posterior(self, new: dict) -> None:
        """Add derived variables to the posterior. The memoised saturation stays: it depends only on
        the adstock and Hill draws, which do not change."""
        keep = {k: v for k, v in self._cache.items() if isinstance(k, tuple) and k[0] == "sat"}
        self.idata = sampling.with_posterior_vars(self.idata, new, self._coords())
        self._cache.update(keep)

    def _saturation(self, spend=None, thin: int = 1) -> np.ndarray:
        """Hill(Adstock(spend)) per draw, (S, T, C); memoised for the fitted spend."""
        if spend is None:
            return self._memo(("sat", thin), lambda: self._saturation(self.spend, thin))
        stack = lag_stack(np.asarray(spend, dtype=float) / self.spend_scale, self.priors.l_max)
        ad = geometric_adstock_from_stack(stack, self.draws("adstock_alpha")[::thin], self.priors.l_max,
                                          self.priors.normalize_adstock)
        return hill(ad, self.draws("hill_kappa")[::thin, None, :], self.draws("hill_lambda")[::thin, None, :])

    def draws(self, name):
        """(S, ...) posterior draws of a parameter, chains stacked (``beta`` is derived from the ROI
        draws)."""
        self._require_fit()
        if name == "beta" and self.priors.effect_scale == "roi":
            return self._memo("beta", self._beta_from_roi)
        return sampling.stacked(self.idata, name)

    def _beta_from_roi(self) -> np.ndarray:
        """beta = roi * (window spend / y_scale) / sum_t Hill(Adstock(spend)) for each draw."""
        spend_share = self.spend.sum(axis=0) / self.y_scale
        return self.draws("roi") * spend_share[None, :] / (self._saturation().sum(axis=1) + 1e-12)

    def media_contributions(self, spend=None, thin: int = 1) -> np.ndarray:
        """Posterior draws of each channel's contribution in currency: (S, T, C)."""
        if spend is None:
            return self._memo(("contrib", thin), lambda: self._saturation(None, thin)
                              * self.draws("beta")[::thin, None, :] * self.y_scale)
        return self._saturation(spend, thin) * self.draws("beta")[::thin, None, :] * self.y_scale

    def _regression_scaled(self, thin: int = 1) -> np.ndarray:
        """Media + controls + seasonality on the internal scale, (S, T)."""
        d = self._design()
        return (self.media_contributions(thin=thin).sum(-1) + self._other_effects(d, thin)) / self.y_scale

    def level_states(self, thin: int = 1) -> dict:
        """Kalman filter/smoother of the local level for each draw (internal scale)."""
        return self._memo(("level", thin), lambda: self._level_states(thin))

    def _level_states(self, thin: int) -> dict:
        e = self.sales[None, :] / self.y_scale - self._regression_scaled(thin)
        return kalman_smoother_np(e, self.draws("sigma")[::thin], self.draws("sigma_level")[::thin],
                                  1.0, self.priors.intercept_sd**2)

    def level_draws(self, thin: int = 1) -> np.ndarray:
        """Smoothed local level (posterior mean given each draw's parameters), currency, (S, T)."""
        return self.level_states(thin)["a_smooth"] * self.y_scale

    def _other_effects(self, design: _Design, thin: int = 1) -> np.ndarray:
        S = len(self.draws("sigma")[::thin])
        out = np.zeros((S, design.fourier.shape[0]))
        if design.controls.shape[1]:
            out += self.draws("gamma_control")[::thin] @ design.controls.T
        if design.fourier.shape[1]:
            out += self.draws("season_coef")[::thin] @ design.fourier.T
        return out * self.y_scale

    def predictive_mean(self, thin: int = 1) -> np.ndarray:
        """Posterior draws of the fitted sales (smoothed level + regression), currency, (S, T)."""
        reg = self._regression_scaled(thin)
        st = self.level_states(thin)
        return (reg + st["a_smooth"]) * self.y_scale

    def posterior_predictive(self, thin: int = 1, seed: int = 0) -> np.ndarray:
        """Replicated sales, (S, T): level uncertainty given parameters plus observation noise."""
        reg = self._regression_scaled(thin)
        st = self.level_states(thin)
        sd = np.sqrt(st["P_smooth"] + self.draws("sigma")[::thin, None] ** 2)
        rng = np.random.default_rng(seed)
        return (reg + st["a_smooth"] + sd * rng.standard_normal(reg.shape)) * self.y_scale

    def one_step_ahead(self, thin: int = 1, seed: int = 0) -> np.ndarray:
        """One-week-ahead predictive draws of sales (an honest in-sample check), (S, T)."""
        reg = self._regression_scaled(thin)
        st = self.level_states(thin)
        rng = np.random.default_rng(seed)
        return (reg + st["a_pred"] + np.sqrt(st["F_pred"]) * rng.standard_normal(reg.shape)) * self.y_scale

    def forecast(self, spend_future, controls_future=None, thin: int = 1, seed: int = 0) -> np.ndarray:
        """Predictive draws for the weeks after the fitted window, (S, H); spend history carries over."""
        spend_future = np.asarray(spend_future, dtype=float)
        H = len(spend_future)
        full = np.vstack([self.spend, spend_future])
        media = self.media_contributions(spend=full, thin=thin)[:, -H:, :].sum(-1)
        return media + self.base_forecast(H, controls_future, thin=thin, seed=seed)

    def base_forecast(self, weeks: int, controls_future=None, thin: int = 1, seed: int = 0,
                      noise: bool = True) -> np.ndarray:
        """Draws of sales without media for the ``weeks`` weeks after the fitted window, (S, weeks),
        currency: the filtered level at the last week carried forward (its variance growing by
        sigma_level^2 a week), seasonality continued, controls held at their last values unless given,
        plus observation noise (``noise=False``: the expected base sales given each draw)."""
        H = int(weeks)
        if controls_future is None:
            controls_future = np.tile(self.controls[-1:], (H, 1)) if self.controls.shape[1] else np.zeros((H, 0))
        d = self._design(spend=np.zeros((H, len(self.channels))), controls=np.asarray(controls_future, float),
                         t_offset=self.n_weeks, n=H)
        other = self._other_effects(d, thin) / self.y_scale
        st = self.level_states(thin)
        h = np.arange(1, H + 1)
        var = st["P_last"][:, None] + h[None, :] * self.draws("sigma_level")[::thin, None] ** 2
        if noise:
            var = var + self.draws("sigma")[::thin, None] ** 2
        rng = np.random.default_rng(seed)
        mean = other + st["a_last"][:, None]
        return (mean + np.sqrt(var) * rng.standard_normal(mean.shape)) * self.y_scale

    def base_sales_draws(self, thin: int = 1) -> np.ndarray:
        """Sales without marketing: observed sales minus all media contributions, (S, T)."""
        return self.sales[None, :] - self.media_contributions(thin=thin).sum(-1)

    def control_effect_draws(self, thin: int = 1) -> np.ndarray:
        """Controls + Fourier seasonality in currency, per draw, (S, T)."""
        return self._memo(("other", thin), lambda: self._other_effects(self._design(), thin))

    def get_base_sales(self) -> np.ndarray:
        """Posterior mean of base sales (currency), as the spec's API returns."""
        return self.base_sales_draws().mean(axis=0)

    def short_term_roi_draws(self) -> np.ndarray:
        """(S, C): contribution over the window (carry-over inside it included) / spend."""
        contrib = self.media_contributions().sum(axis=1)
        spend = self.spend.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(spend > 0, contrib / np.where(spend > 0, spend, 1.0), np.nan)

    def prior_roi_draws(self, n: int = 4000, seed: int = 0) -> np.ndarray:
        """(n, C) draws of short-term ROI under the prior alone (no data), to measure how far the
        data moved each channel's ROI (prior-posterior contraction and shift)."""
        p = self.priors
        rng = np.random.default_rng(seed)
        G, C = len(self.group_names), len(self.channels)
        gi = self.group_index
        d = self._design()
        if p.effect_scale == "roi":
            mu = rng.normal(p.roi_mu_mean, p.roi_mu_sd, (n, G))
            if p.roi_sigma_fixed is not None:
                sd = np.full((n, G), p.roi_sigma_fixed)
            elif p.shared_sigma:
                sd = np.repeat(np.abs(rng.normal(0.0, p.roi_sigma_sd, (n, 1))), G, axis=1)
            else:
                sd = np.abs(rng.normal(0.0, p.roi_sigma_sd, (n, G)))
            return (mu[:, gi] + sd[:, gi] * rng.standard_normal((n, C))) * d.roi_ref
        # the spec's prior on beta (share of mean sales): ROI follows through the prior's curves
        alpha = rng.beta(p.alpha_beta_a, p.alpha_beta_b, (n, C))
        kappa = rng.gamma(p.kappa_shape, 1.0 / p.kappa_rate, (n, C))
        lam = rng.gamma(p.lambda_shape, 1.0 / p.lambda_shape, (n, C))
        mu = rng.normal(0.0, p.group_mu_sd, (n, G))
        sd = np.abs(rng.normal(0.0, p.group_sigma_sd, (n, G)))
        beta = mu[:, gi] + sd[:, gi] * rng.standard_normal((n, C))
        ad = geometric_adstock_from_stack(d.stack, alpha, p.l_max, p.normalize_adstock)
        sat = hill(ad, kappa[:, None, :], lam[:, None, :]).sum(axis=1)
        spend = self.spend.sum(axis=0)
        return beta * sat * self.y_scale / np.where(spend > 0, spend, np.nan)

    def marginal_roi_draws(self, step: float = 0.01) -> np.ndarray:
        """(S, C): extra contribution per extra unit of spend for a +step*100% change of a channel."""
        base = self.media_contributions().sum(axis=1)
        out = np.empty_like(base)
        beta = self.draws("beta")
        alpha, kappa, lam = (self.draws(v) for v in ("adstock_alpha", "hill_kappa", "hill_lambda"))
        for c in range(len(self.channels)):
            # only channel c's curve changes: its own adstock and Hill, not every channel's
            stack = lag_stack(self.spend[:, [c]] * (1.0 + step) / self.spend_scale[c], self.priors.l_max)
            ad = geometric_adstock_from_stack(stack, alpha[:, [c]], self.priors.l_max, self.priors.normalize_adstock)
            sat = hill(ad, kappa[:, None, [c]], lam[:, None, [c]])[..., 0]
            up = (sat * beta[:, None, c] * self.y_scale).sum(axis=1)
            extra = self.spend[:, c].sum() * step
            out[:, c] = (up - base[:, c]) / extra if extra > 0 else np.nan
        return out

    # ---- spec API -----------------------------------------------------------------------------
    def calculate_short_term_roi(self, credible_interval: float = 0.95) -> dict:
        """The spec's per-channel short-term ROI: mean, median, interval, sd, P(> 0), marginal ROI at
        current spend, spend and the draws."""
        from ltae.models.diagnostics import summarize_draws

        draws = self.short_term_roi_draws()
        mroi = self.marginal_roi_draws()
        out = {}
        for i, ch in enumerate(self.channels):
            s = summarize_draws(draws[:, i], credible_interval)
            s["marginal_roi_mean"] = float(np.nanmean(mroi[:, i]))
            s["spend"] = float(self.spend[:, i].sum())
            s["draws"] = draws[:, i]
            out[ch] = s
        return out

    def summary(self) -> dict:
        """Convergence summary (max R-hat, min bulk/tail ESS, divergences) over the model's parameters."""
        from ltae.models.diagnostics import convergence_summary

        self._require_fit()
        return convergence_summary(self.idata, var_names=self.parameter_names())

    def parameter_names(self) -> list[str]:
        """Names of the parameters in the posterior that the convergence summary covers."""
        names = ["adstock_alpha", "hill_kappa", "hill_lambda", "roi", "beta", "group_mu", "group_sigma",
                 "sigma_level", "sigma", "noise_radius2", "noise_angle"]
        post = sampling.posterior_dataset(self.idata)
        return [n for n in names + ["gamma_control", "season_coef"] if n in post]


class UCM_MMM_Optimized(ShortTermMMM):  # noqa: N801 - the spec's public name
    """The spec's constructor: ``UCM_MMM_Optimized(sales_data, marketing_data, control_data,
    marketing_channels, control_names, adstock_max_lag, channel_groups)``."""

    def __init__(self, sales_data, marketing_data, control_data=None, marketing_channels=None,
                 control_names=None, adstock_max_lag: int = 8, channel_groups=None, priors=None, dates=None):
        priors = (priors or MMMPriors()).model_copy(update={"l_max": adstock_max_lag})
        if isinstance(sales_data, pd.Series | pd.DataFrame):
            sales_data = np.asarray(sales_data).reshape(-1)
        if isinstance(marketing_data, pd.DataFrame) and marketing_channels is None:
            marketing_channels = list(marketing_data.columns)
        if isinstance(control_data, pd.DataFrame) and control_names is None:
            control_names = list(control_data.columns)
        super().__init__(sales_data, marketing_data, control_data, marketing_channels, control_names,
                         channel_groups, priors, dates)

