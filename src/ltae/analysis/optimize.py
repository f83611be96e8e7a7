"""Budget optimisation on the posterior: short-term response curves + long-term ROI.

A plan keeps each channel's weekly pattern and scales it: channel c gets m_c times its spend over
the modelled window. Expected return of a plan = short-term contribution over the window (posterior
response curves, saturation and carry-over included) + long-term ROI x spend. The optimiser
(scipy SLSQP) maximises the posterior mean of the total return (or a lower quantile, risk-aware)
subject to the total budget and per-channel bounds (default +-50% of current).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from ltae.models.transforms import _LOG_FLOOR, geometric_adstock_from_stack, lag_stack

_LOG_FLOOR_LOG = float(np.log(_LOG_FLOOR))
# scipy's SLSQP finite-difference step (``eps``): the gradient below takes the same differences
_FD_STEP = float(np.sqrt(np.finfo(np.float64).eps))


class ResponseModel:
    """Posterior response of window contribution to a spend multiplier per channel."""

    def __init__(self, spend: np.ndarray, spend_scale: np.ndarray, y_scale: float, l_max: int, normalize: bool,
                 alpha, kappa, lam, beta, lt_roi=None, max_draws: int = 400, seed: int = 0):
        S = len(alpha)
        idx = np.arange(S)
        if S > max_draws:
            idx = np.sort(np.random.default_rng(seed).choice(S, max_draws, replace=False))
        self.spend = np.asarray(spend, float)
        self.current = self.spend.sum(axis=0)
        stack = lag_stack(self.spend / spend_scale, l_max)
        # adstock is linear in spend: compute once, scale by the multiplier later
        ad = geometric_adstock_from_stack(stack, alpha[idx], l_max, normalize)  # (S, T, C)
        self.beta = beta[idx]
        # Hill(ad * m) = sigmoid(kappa (max(log ad + log m, F) - log lam)) = (1 + tanh(h)) / 2 with, since
        # kappa > 0, h = max(h0 + kappa log(m) / 2, hF), h0 = kappa (log ad - log lam) / 2 and
        # hF = kappa (F - log lam) / 2 computed once: a new multiplier costs an add, a max and a tanh
        # over (S, C, T), weeks last so that the sum over them is a contiguous reduction
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ad = np.log(np.ascontiguousarray(ad.transpose(0, 2, 1)))  # (S, C, T); -inf: no spend
            log_lam = np.log(lam[idx])[:, :, None]  # (S, C, 1)
        half_kappa = 0.5 * kappa[idx][:, :, None]
        self._h0 = half_kappa * (log_ad - log_lam)
        self._h_floor = half_kappa * (_LOG_FLOOR_LOG - log_lam)
        self._half_kappa = half_kappa[:, :, 0]
        self.y_scale = y_scale
        if lt_roi is None:
            self.lt = np.zeros((len(idx), self.spend.shape[1]))
        else:
            lt_roi = np.asarray(lt_roi, float)
            j = np.random.default_rng(seed + 1).choice(len(lt_roi), len(idx), replace=len(lt_roi) < len(idx))
            self.lt = lt_roi[j]

    @classmethod
    def from_mmm(cls, mmm, lt_roi=None, max_draws: int = 400, seed: int = 0) -> ResponseModel:
        """The response model of a fitted :class:`~ltae.models.mmm.ShortTermMMM`, with long-term ROI draws
        ``lt_roi`` (S', C) paired to its draws at random (``seed``); at most ``max_draws`` draws."""
        return cls(mmm.spend, mmm.spend_scale, mmm.y_scale, mmm.priors.l_max, mmm.priors.normalize_adstock,
                   mmm.draws("adstock_alpha"), mmm.draws("hill_kappa"), mmm.draws("hill_lambda"), mmm.draws("beta"),
                   lt_roi=lt_roi, max_draws=max_draws, seed=seed)

    def short_term(self, mult: np.ndarray) -> np.ndarray:
        """(S, C) window contribution for multipliers ``mult`` (C,): ``hill(ad * mult)`` (its log
        floor included) times beta, summed over the window."""
        with np.errstate(divide="ignore"):
            log_m = np.log(np.asarray(mult, float))
        h = self._h0 + (self._half_kappa * log_m[None, :])[:, :, None]  # (S, C, T); -inf where m is 0
        np.maximum(h, self._h_floor, out=h)
        np.tanh(h, out=h)
        sat_sum = 0.5 * (h.shape[2] + h.sum(axis=2))  # sum over the weeks of (1 + tanh(h)) / 2
        return sat_sum * self.beta * self.y_scale

    def total_return(self, mult: np.ndarray, include_long_term: bool = True) -> np.ndarray:
        """(S, C) return over the window for spend multipliers ``mult`` (C,): short-term contribution plus,
        when ``include_long_term``, long-term ROI x spend (currency of sales)."""
        ret = self.short_term(mult)
        if include_long_term:
            ret = ret + self.lt * (np.asarray(mult) * self.current)[None, :]
        return ret

    def curves(self, multipliers=None, credible_interval: float = 0.95) -> dict:
        """Short-term response curves: the window contribution of each channel when every channel's
        spend is scaled by each multiplier (default 0, 0.1, ..., 2), posterior mean and equal-tailed
        ``credible_interval`` bounds, each (K, C) in currency of sales."""
        ms = np.linspace(0.0, 2.0, 21) if multipliers is None else np.asarray(multipliers)
        C = len(self.current)
        q = (1.0 - credible_interval) / 2.0
        mean, lo, hi = (np.zeros((len(ms), C)) for _ in range(3))
        for k, m in enumerate(ms):
            r = self.short_term(np.full(C, m))
            mean[k], lo[k], hi[k] = r.mean(0), np.quantile(r, q, 0), np.quantile(r, 1.0 - q, 0)
        return {"multipliers": ms, "mean": mean, "lower": lo, "upper": hi, "credible_interval": credible_interval}


class MarketResponse:
    """The response of a multi-market model, decided per channel: a channel's multiplier scales its
    spend in every market, and returns add up over markets. Same interface as :class:`ResponseModel`
    (``current``, ``short_term``, ``total_return``, ``curves``), so :func:`optimize_budget` allocates
    the national budget across channels."""

    def __init__(self, inner: ResponseModel, channel_of_column: np.ndarray, n_channels: int):
        self.inner = inner
        self.col = np.asarray(channel_of_column, int)
        self.C = n_channels
        self.current = np.bincount(self.col, weights=inner.current, minlength=n_channels)

    def _to_channels(self, per_column: np.ndarray) -> np.ndarray:
        out = np.zeros(per_column.shape[:-1] + (self.C,))
        np.add.at(out, (..., self.col), per_column)
        return out

    def short_term(self, mult: np.ndarray) -> np.ndarray:
        """(S, C) window contribution summed over markets for channel multipliers ``mult`` (C,)."""
        return self._to_channels(self.inner.short_term(np.asarray(mult)[self.col]))

    def total_return(self, mult: np.ndarray, include_long_term: bool = True) -> np.ndarray:
        """(S, C) short-term contribution (+ long-term ROI x spend) summed over markets."""
        return self._to_channels(self.inner.total_return(np.asarray(mult)[self.col], include_long_term))

    def curves(self, multipliers=None, credible_interval: float = 0.95) -> dict:
        """National response curves per channel (see :meth:`ResponseModel.curves`)."""
        ms = np.linspace(0.0, 2.0, 21) if multipliers is None else np.asarray(multipliers)
        q = (1.0 - credible_interval) / 2.0
        mean, lo, hi = (np.zeros((len(ms), self.C)) for _ in range(3))
        for k, m in enumerate(ms):
            r = self.short_term(np.full(self.C, m))
            mean[k], lo[k], hi[k] = r.mean(0), np.quantile(r, q, 0), np.quantile(r, 1.0 - q, 0)
        return {"multipliers": ms, "mean": mean, "lower": lo, "upper": hi, "credible_interval": credible_interval}

    @classmethod
    def from_geo(cls, geo, lt_roi=None, max_draws: int = 400, seed: int = 0) -> MarketResponse:
        """From a fitted :class:`~ltae.models.geo.GeoMMM` and long-term ROI draws (S', M, C)."""
        M, T, C = geo.spend.shape
        flat = lambda a: a.reshape(a.shape[:-2] + (M * C,))  # noqa: E731 - (..., M, C) -> (..., M*C)
        spend = geo.spend.transpose(1, 0, 2).reshape(T, M * C)
        tile = lambda v: np.tile(v, (1, M))  # noqa: E731 - shared (S, C) -> (S, M*C)
        inner = ResponseModel(spend, flat(geo.spend_scale), np.repeat(geo.y_scale, C), geo.priors.l_max,
                              geo.priors.normalize_adstock, tile(geo.draws("adstock_alpha")),
                              tile(geo.draws("hill_kappa")), tile(geo.draws("hill_lambda")), flat(geo.beta_draws()),
                              lt_roi=None if lt_roi is None else flat(np.asarray(lt_roi)), max_draws=max_draws,
                              seed=seed)
        return cls(inner, np.tile(np.arange(C), M), C)


def optimize_budget(response: ResponseModel, budget: float | None = None, channels=None,
                    bounds: dict | tuple | None = None, risk_quantile: float | None = None,
                    include_long_term: bool = True, credible_interval: float = 0.95) -> pd.DataFrame:
    """Best split of ``budget`` (currency over the modelled window; default: current total).

    ``bounds``: (low, high) multipliers of current spend for every channel, or
    {channel: (low, high)} (channels left out: (0.5, 1.5)); default (0.5, 1.5).
    ``risk_quantile``: maximise that quantile of the total return instead of its mean.
    ``include_long_term``: count the long-term ROI x spend in the return (else short term only).
    ``credible_interval``: level of the ``expected_return_lower/upper`` and ``uplift_lower/upper``
    bounds (equal-tailed).

    Returns the budget.csv table, one row per channel: ``channel``, ``current_spend``,
    ``optimal_spend`` (currency of spend over the window), ``change_pct`` (%),
    ``expected_return_current``, ``expected_return_mean``, ``expected_return_lower``,
    ``expected_return_upper`` (currency of sales over the window, short-term contribution plus, if
    included, long-term return); ``attrs`` hold the totals (``budget``, ``total_return_current``,
    ``total_return_optimal``, ``uplift_mean/lower/upper``), ``success``, ``message``,
    ``credible_interval``, ``risk_quantile`` and ``include_long_term``. Raises ValueError when the
    bounds cannot reach the budget."""
    cur = response.current
    C = len(cur)
    channels = list(channels) if channels is not None else [f"channel_{i}" for i in range(C)]
    budget = float(cur.sum() if budget is None else budget)
    if budget <= 0:
        raise ValueError("budget must be positive")
    if bounds is None:
        bounds = (0.5, 1.5)
    if isinstance(bounds, dict):
        bl = [tuple(bounds.get(ch, (0.5, 1.5))) for ch in channels]
    else:
        bl = [tuple(bounds)] * C
    lo = np.array([b[0] for b in bl]) * cur
    hi = np.array([b[1] for b in bl]) * cur
    if budget < lo.sum() - 1e-6 or budget > hi.sum() + 1e-6:
        raise ValueError(f"budget {budget:,.0f} is outside what the bounds allow "
                         f"({lo.sum():,.0f} to {hi.sum():,.0f}); widen --bounds or change --budget")
    norm = max(budget, 1.0)
    hi_n = hi / norm
    last: dict = {}

    def per_channel(x):  # (S, C) return of each channel at x (the last one is kept: jac follows fun)
        key = x.tobytes()
        if last.get("key") != key:
            last.update(key=key, r=response.total_return(x * norm / cur, include_long_term))
        return last["r"]

    def value(total):  # posterior mean (or quantile) over draws, axis 0
        return np.quantile(total, risk_quantile, axis=0) if risk_quantile is not None else total.mean(axis=0)

    def objective(x):
        return -value(per_channel(x).sum(axis=1)) / norm

    def gradient(x):
        # forward differences of the objective with SLSQP's own step (backward at an upper bound).
        # Channels are separable (the media response is additive and each channel's long-term
        # return is its own), so one evaluation with every channel stepped gives each channel's
        # stepped return: C + 1 evaluations become 2.
        r0 = per_channel(x)
        base = r0.sum(axis=1)
        h = np.where(x + _FD_STEP > hi_n, -_FD_STEP, _FD_STEP)
        dx = (x + h) - x
        r1 = response.total_return((x + h) * norm / cur, include_long_term)
        stepped = base[:, None] - r0 + r1  # (S, C): the total with channel c stepped
        return -(value(stepped) - value(base)) / dx / norm

    x0 = np.clip(cur * budget / cur.sum(), lo, hi) / norm
    res = minimize(objective, x0, jac=gradient, method="SLSQP", bounds=list(zip(lo / norm, hi_n, strict=True)),
                   constraints=[{"type": "eq", "fun": lambda x: x.sum() - budget / norm,
                                 "jac": lambda x: np.ones_like(x)}],
                   options={"maxiter": 200, "ftol": 1e-10})
    opt = res.x * norm
    q = (1.0 - credible_interval) / 2.0
    r_cur = response.total_return(np.ones(C), include_long_term)
    r_opt = response.total_return(opt / cur, include_long_term)
    rows = []
    for i, ch in enumerate(channels):
        rows.append({
            "channel": ch, "current_spend": float(cur[i]), "optimal_spend": float(opt[i]),
            "change_pct": float((opt[i] / cur[i] - 1) * 100),
            "expected_return_current": float(r_cur[:, i].mean()),
            "expected_return_mean": float(r_opt[:, i].mean()),
            "expected_return_lower": float(np.quantile(r_opt[:, i], q)),
            "expected_return_upper": float(np.quantile(r_opt[:, i], 1.0 - q)),
        })
    df = pd.DataFrame(rows)
    tot_cur, tot_opt = r_cur.sum(1), r_opt.sum(1)
    df.attrs.update({"success": bool(res.success), "message": str(res.message), "budget": budget,
                     "total_return_current": float(tot_cur.mean()), "total_return_optimal": float(tot_opt.mean()),
                     "total_return_optimal_lower": float(np.quantile(tot_opt, q)),
                     "total_return_optimal_upper": float(np.quantile(tot_opt, 1.0 - q)),
                     "uplift_mean": float((tot_opt - tot_cur).mean()),
                     "uplift_lower": float(np.quantile(tot_opt - tot_cur, q)),
                     "uplift_upper": float(np.quantile(tot_opt - tot_cur, 1.0 - q)),
                     "credible_interval": float(credible_interval), "risk_quantile": risk_quantile,
                     "include_long_term": bool(include_long_term)})
    return df
