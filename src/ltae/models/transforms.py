"""Media transforms: geometric adstock and a Hill saturation that is safe at zero spend.

Adstock follows pymc-marketing's ``geometric_adstock`` convention (weights alpha**l for l < l_max,
optionally normalised to sum to 1, carry-over from the past only). Because spend is data, the
lagged copies of spend are built once (``lag_stack``) and adstock becomes a weighted sum over the
lag axis: one small tensor contraction per gradient instead of a convolution. The equivalence with
pymc-marketing's implementation is checked in the tests.

Hill: x**k / (lam**k + x**k) == sigmoid(k * (log x - log lam)). Written this way, with x floored at
a tiny positive number, the value is 0 to machine precision at x = 0 and the gradient is finite for
every k > 0 (x**k has an infinite/NaN gradient at 0 when k < 1).
"""

from __future__ import annotations

import numpy as np

_LOG_FLOOR = 1e-12


def lag_stack(x: np.ndarray, l_max: int) -> np.ndarray:
    """(T, C) -> (T, C, l_max) with [t, c, l] = x[t - l, c] (0 before the start)."""
    x = np.asarray(x, dtype=float)
    out = np.zeros(x.shape + (l_max,), dtype=float)
    for lag in range(min(l_max, x.shape[0])):  # a series shorter than l_max has fewer lags
        out[lag:, ..., lag] = x[: x.shape[0] - lag]
    return out


def adstock_weights(alpha, l_max: int, normalize: bool = True, xp=np):
    """Geometric weights with shape alpha.shape + (l_max,)."""
    lags = xp.arange(l_max) if xp is np else xp.arange(l_max, dtype="float64")
    w = alpha[..., None] ** lags
    if normalize:
        w = w / w.sum(axis=-1, keepdims=True)
    return w


def geometric_adstock_from_stack(stack, alpha, l_max: int, normalize: bool = True, xp=np):
    """Adstock given the precomputed lag stack (T, C, L) and alpha (C,) -> (T, C).

    ``xp`` is numpy or ``pytensor.tensor``; alpha may carry leading sample dims in numpy."""
    w = adstock_weights(alpha, l_max, normalize, xp=xp)
    if xp is np:
        # alpha (..., C) -> w (..., C, L); result (..., T, C)
        return np.einsum("tcl,...cl->...tc", stack, w)
    return (stack * w[None, :, :]).sum(axis=-1)


def hill(x, kappa, lam, xp=np):
    """Hill saturation in [0, 1), safe (finite value and gradient) at x = 0."""
    if xp is np:
        logx = np.log(np.maximum(x, _LOG_FLOOR))
        z = kappa * (logx - np.log(lam))
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    import pytensor.tensor as pt

    logx = pt.log(pt.maximum(x, _LOG_FLOOR))
    return pt.sigmoid(kappa * (logx - pt.log(lam)))
