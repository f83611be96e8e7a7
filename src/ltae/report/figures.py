"""Static PNG figures for the run report (matplotlib, Agg backend, no pyplot state).

:func:`make_figures` writes every figure into ``<out_dir>/figures/`` atomically (temporary file in
the same folder, then rename) and returns ``{name: path relative to out_dir}``. Each channel keeps
one colour in every figure. A figure that cannot be drawn (degenerate input) is skipped with a
warning instead of failing the whole report.
"""

from __future__ import annotations

import contextlib
import math
import os
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import dates as mdates  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from ltae.results import RunResult  # noqa: E402
from ltae.store.artifacts import atomic_path  # noqa: E402

DPI = 110
FIG_DIR = "figures"
ORDER = ("irf", "long_term_roi", "roi_comparison", "contributions", "ppc", "budget", "adstock", "saturation")

_RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 13,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
}

# fonts with wide Unicode coverage, used as fallbacks (non-Latin channel names) only where installed
_FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans", "WenQuanYi Zen Hei", "Droid Sans Fallback",
                   "Arial Unicode MS")


def _font_family() -> list[str]:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(f for f in _FALLBACK_FONTS if f in installed)]


# short / long / total ROI colours (not channel colours)
TERM_COLORS = {"short": "#4c72b0", "long": "#dd8452", "total": "#55a868"}
BASE_COLOR = "#c9c9c9"
ACTUAL_COLOR = "#222222"


# ---- helpers --------------------------------------------------------------------------------------
def channel_colors(channels) -> dict[str, tuple]:
    """One fixed colour per channel (tab10 up to 10 channels, tab20 beyond, cycling after 20)."""
    from matplotlib import colormaps

    chans = list(channels)
    cmap = colormaps["tab10" if len(chans) <= 10 else "tab20"]
    n = cmap.N
    return {c: cmap(i % n) for i, c in enumerate(chans)}


def _txt(s) -> str:
    """Plain text for matplotlib: escape '$' so names never switch to mathtext."""
    return str(s).replace("$", r"\$")


def _short(s, n: int = 28) -> str:
    s = str(s)
    return s if len(s) <= n else s[: n - 1] + "…"


def _fmt_num(x: float, _pos=None) -> str:
    """Axis tick label: 1,234 / 12.3k / 4.5M, with sign."""
    if x is None or not np.isfinite(x):
        return ""
    a = abs(x)
    if a >= 1e9:
        return f"{x / 1e9:,.1f}B"
    if a >= 1e6:
        return f"{x / 1e6:,.1f}M"
    if a >= 1e4:
        return f"{x / 1e3:,.0f}k"
    if a >= 100:
        return f"{x:,.0f}"
    if a >= 1 or a == 0:
        return f"{x:,.1f}".rstrip("0").rstrip(".") if a < 10 else f"{x:,.0f}"
    return f"{x:.2g}"


CURRENCY_FMT = FuncFormatter(_fmt_num)


def _money(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:,.0f}"


def _ci_label(result: RunResult) -> str:
    ci = (result.config or {}).get("credible_interval", 0.95) if isinstance(result.config, dict) else 0.95
    try:
        return f"{float(ci):.0%}"
    except (TypeError, ValueError):
        return "95%"


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols if n <= 12 else 5)
    return math.ceil(n / cols), cols


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(min(width, 20.0), min(height, 26.0)), dpi=DPI, layout="constrained")


def _suptitle(fig: Figure, text: str) -> None:
    width_in = fig.get_figwidth()
    fig.suptitle(textwrap.fill(text, max(40, int(width_in * 9.5))))


def _save(fig: Figure, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        # zlib level 1: a fifth of the encoding time for files about 10% larger
        fig.savefig(tmp, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})


def _date_axis(ax) -> None:
    loc = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def _arr(x, ndim: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if ndim == 2 and a.ndim == 1:
        a = a[:, None]
    return a


def _hide_unused(axes: np.ndarray, used: int) -> None:
    for ax in axes.ravel()[used:]:
        ax.set_visible(False)


# ---- figures --------------------------------------------------------------------------------------
def fig_irf(result: RunResult, colors: dict) -> Figure:
    """Impulse responses of every endogenous series to 1,000 units of spend per channel, with intervals."""
    lt = result.long
    mean, lo, hi = (_arr(a) * 1000.0 for a in (lt.irf_mean, lt.irf_lower, lt.irf_upper))
    if mean.ndim == 2:  # (H, C): base sales only
        mean, lo, hi = mean[:, None, :], lo[:, None, :], hi[:, None, :]
    H, n_endog, C = mean.shape
    chans = list(lt.channels)[:C] + [f"channel {i}" for i in range(len(lt.channels), C)]
    names = list(lt.endog_names)[:n_endog] + [f"series {i}" for i in range(len(lt.endog_names), n_endog)]
    cum = _arr(lt.cumulative_mean) if lt.cumulative_mean is not None else None
    h = np.arange(H)
    ci = _ci_label(result)

    rows_c, cols = _grid(C)
    n_brand = n_endog - 1
    rows_b = math.ceil(n_brand / cols) if n_brand else 0
    fig = _new_figure(max(3.7 * cols + 0.6, 6.5), 2.7 * (rows_c + rows_b) + 1.0 + (0.4 if n_brand else 0))
    gs = fig.add_gridspec(rows_c + rows_b, cols)
    for i, ch in enumerate(chans):
        ax = fig.add_subplot(gs[i // cols, i % cols])
        col = colors.get(ch, "C0")
        ax.fill_between(h, lo[:, 0, i], hi[:, 0, i], color=col, alpha=0.25, linewidth=0)
        ax.plot(h, mean[:, 0, i], color=col, linewidth=2)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        title = _txt(_short(ch))
        if cum is not None and cum.ndim == 3 and cum.shape[2] > i:
            title += f"\ncumulative: {_fmt_num(cum[-1, 0, i] * 1000)} per 1,000"
        ax.set_title(title)
        ax.yaxis.set_major_formatter(CURRENCY_FMT)
        if i % cols == 0:
            ax.set_ylabel("Δ base sales (currency)")
        if i // cols == rows_c - 1 or i + cols >= C:
            ax.set_xlabel("weeks after spend")
    for j, name in enumerate(names[1:]):
        ax = fig.add_subplot(gs[rows_c + j // cols, j % cols])
        for i, ch in enumerate(chans):
            col = colors.get(ch, "C0")
            if C <= 4:
                ax.fill_between(h, lo[:, j + 1, i], hi[:, j + 1, i], color=col, alpha=0.15, linewidth=0)
            ax.plot(h, mean[:, j + 1, i], color=col, linewidth=1.8)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{_txt(_short(name))} (points)")
        if j % cols == 0:
            ax.set_ylabel("Δ brand metric (points)")
        ax.set_xlabel("weeks after spend")
    if n_brand:
        handles = [Line2D([], [], color=colors.get(ch, "C0"), linewidth=2, label=_txt(_short(ch, 22)))
                   for ch in chans]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(C, 6), frameon=False)
    _suptitle(fig, f"Weekly response to 1,000 currency units of extra spend in each channel (mean, {ci} band)")
    return fig


def _roi_cols(result: RunResult, term: str):
    r = result.roi
    return (r[f"{term}_roi_mean"].to_numpy(float), r[f"{term}_roi_lower"].to_numpy(float),
            r[f"{term}_roi_upper"].to_numpy(float))


def _whiskers(mean, lo, hi) -> np.ndarray:
    err = np.vstack([mean - lo, hi - mean])
    return np.where(np.isfinite(err), np.clip(err, 0, None), 0.0)


def fig_long_term_roi(result: RunResult, colors: dict) -> Figure:
    """Long-term ROI by channel with intervals."""
    chans = [str(c) for c in result.roi["channel"]]
    m, lo, hi = _roi_cols(result, "long_term")
    C = len(chans)
    fig = _new_figure(8.0, 1.2 + 0.45 * C)
    ax = fig.add_subplot()
    y = np.arange(C)
    ax.barh(y, np.nan_to_num(m), xerr=_whiskers(m, lo, hi), color=[colors.get(c, "C0") for c in chans],
            alpha=0.85, capsize=4, error_kw={"elinewidth": 1.2, "ecolor": "#333333"})
    ax.set_yticks(y, [_txt(_short(c)) for c in chans])
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.grid(axis="y", visible=False)
    span = np.nanmax(np.abs(np.r_[lo, hi, m, 0.0]))
    for yi, (mi, hi_i) in enumerate(zip(m, hi, strict=True)):
        if np.isfinite(mi):
            x = hi_i if np.isfinite(hi_i) else mi
            ax.text(max(x, 0) + 0.02 * (span or 1), yi, f"{mi:.2f}", va="center", fontsize=9)
    ax.set_xlabel("long-term ROI (currency of sales per currency unit of spend)")
    ax.set_title(f"Long-term ROI by channel (mean, {_ci_label(result)} interval)")
    ax.margins(x=0.12)
    return fig


def _grouped_bars(fig: Figure, labels: list[str], series: list[dict], value_label: str, ref: float | None = None,
                  money: bool = False):
    """Grouped bars, vertical for up to 8 groups, horizontal beyond (long channel lists stay readable).

    Each series: {"values", "label", "color" (one or per group), optional "err" (2, n)}."""
    n, k = len(labels), len(series)
    horizontal = n > 8
    w = 0.8 / k
    pos = np.arange(n)
    ax = fig.add_subplot()
    for j, s in enumerate(series):
        off = pos + (j - (k - 1) / 2) * w
        vals = np.nan_to_num(np.asarray(s["values"], float))
        err_kw = {"elinewidth": 1.0, "ecolor": "#333333", "capsize": 3 if n <= 10 else 1.5}
        if horizontal:
            ax.barh(off, vals, w, xerr=s.get("err"), color=s["color"], label=s["label"], error_kw=err_kw)
        else:
            ax.bar(off, vals, w, yerr=s.get("err"), color=s["color"], label=s["label"], error_kw=err_kw)
    ticks = [_txt(_short(c, 24)) for c in labels]
    line = ax.axvline if horizontal else ax.axhline
    line(0.0, color="black", linewidth=0.8)
    if ref is not None:
        line(ref, color="#b22222", linestyle="--", linewidth=1.2, label=f"break-even ({ref:g})")
    fmt = CURRENCY_FMT if money else FuncFormatter(lambda v, _p: f"{v:g}")
    if horizontal:
        ax.set_yticks(pos, ticks)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.xaxis.set_major_formatter(fmt)
        ax.set_xlabel(value_label)
    else:
        rot = 0 if n <= 5 else 30
        ax.set_xticks(pos, ticks, rotation=rot, ha="right" if rot else "center")
        ax.grid(axis="x", visible=False)
        ax.yaxis.set_major_formatter(fmt)
        ax.set_ylabel(value_label)
    return ax, pos, w, horizontal


def _bar_size(n: int) -> tuple[float, float]:
    return (max(7.5, 1.0 * n + 2.5), 5.2) if n <= 8 else (9.5, 1.5 + 0.42 * n)


def fig_roi_comparison(result: RunResult, colors: dict) -> Figure:
    """Short-term, long-term and total ROI by channel with intervals."""
    chans = [str(c) for c in result.roi["channel"]]
    fig = _new_figure(*_bar_size(len(chans)))
    series = []
    for term, label in (("short_term", "short term"), ("long_term", "long term"), ("total", "total")):
        m, lo, hi = _roi_cols(result, term)
        series.append({"values": m, "err": _whiskers(m, lo, hi), "label": label,
                       "color": TERM_COLORS[term.split("_")[0]]})
    ax, *_ = _grouped_bars(fig, chans, series, "ROI (currency of sales per currency unit of spend)", ref=1.0)
    ax.set_title(f"Short-term, long-term and total ROI by channel (mean, {_ci_label(result)} interval)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=4, frameon=False)
    return fig


def fig_contributions(result: RunResult, colors: dict) -> Figure:
    """Base sales and each channel's contribution over time (posterior means)."""
    st = result.short
    dates = np.asarray(st.dates)
    contrib = _arr(st.contributions_mean, 2)
    base = _arr(st.base_sales_mean)
    chans = list(st.channels)
    fig = _new_figure(12.0, 5.5)
    ax = fig.add_subplot()
    layers = [base] + [contrib[:, i] for i in range(contrib.shape[1])]
    labels = ["base sales"] + [_txt(_short(c, 22)) for c in chans]
    cols = [BASE_COLOR] + [colors.get(c, "C0") for c in chans]
    ax.stackplot(dates, *layers, labels=labels, colors=cols, alpha=0.85, linewidth=0)
    ax.plot(dates, _arr(st.sales), color=ACTUAL_COLOR, linewidth=1.4, label="actual sales")
    ax.yaxis.set_major_formatter(CURRENCY_FMT)
    ax.set_ylabel("sales (currency per week)")
    _date_axis(ax)
    ax.margins(x=0)
    ax.set_title("Sales decomposition: base sales + media contributions (posterior means, stacked)")
    handles, labs = ax.get_legend_handles_labels()  # stack layers first, then the actual line
    order = [len(handles) - 1, *range(len(handles) - 2, -1, -1)]  # actual, then top layer down to base
    fig.legend([handles[k] for k in order], [labs[k] for k in order], loc="outside right upper",
               frameon=False, ncol=1 if len(chans) <= 14 else 2)
    return fig


def fig_ppc(result: RunResult, colors: dict) -> Figure:
    """Observed sales against the fitted sales and predictive band, with the fit metrics."""
    st = result.short
    dates = np.asarray(st.dates)
    fm = st.fit_metrics or {}

    def g(key, fmt):
        v = fm.get(key)
        try:
            return fmt.format(float(v))
        except (TypeError, ValueError):
            return "n/a"

    ci = _ci_label(result)
    fig = _new_figure(12.0, 5.0)
    ax = fig.add_subplot()
    ax.fill_between(dates, _arr(st.fitted_lower), _arr(st.fitted_upper), color=TERM_COLORS["short"], alpha=0.25,
                    linewidth=0, label=f"{ci} predictive band")
    ax.plot(dates, _arr(st.fitted_mean), color=TERM_COLORS["short"], linewidth=1.8, label="fitted (mean)")
    ax.plot(dates, _arr(st.sales), color=ACTUAL_COLOR, linewidth=0.8, marker="o", markersize=3, label="actual")
    ax.yaxis.set_major_formatter(CURRENCY_FMT)
    ax.set_ylabel("sales (currency per week)")
    _date_axis(ax)
    ax.margins(x=0.01)
    ax.set_title(f"Posterior predictive check — MAPE {g('mape', '{:.1f}%')}, R² {g('r2', '{:.2f}')}, "
                 f"{ci} coverage {g('coverage', '{:.0%}')}")
    ax.legend(loc="upper left", frameon=False, ncol=3)
    return fig


def fig_budget(result: RunResult, colors: dict) -> Figure | None:
    """Current against optimal spend per channel (None without a budget table)."""
    b = result.budget
    if b is None or len(b) == 0:
        return None
    chans = [str(c) for c in b["channel"]]
    cur = b["current_spend"].to_numpy(float)
    opt = b["optimal_spend"].to_numpy(float)
    chg = b["change_pct"].to_numpy(float) if "change_pct" in b else (opt / cur - 1) * 100
    fig = _new_figure(*_bar_size(len(chans)))
    ccols = [colors.get(c, "C0") for c in chans]
    ax, pos, w, horizontal = _grouped_bars(
        fig, chans, [{"values": cur, "label": "current", "color": "#9aa5b1"},
                     {"values": opt, "label": "optimal", "color": ccols}],
        "spend over the modelled window (currency)", money=True)
    top = float(np.nanmax(np.r_[cur, opt, 0.0])) or 1.0
    for i, (o, c, p) in enumerate(zip(opt, cur, chg, strict=True)):
        if not np.isfinite(p):
            continue
        p = round(p) + 0.0  # no "-0%"
        color = "#1a7f37" if p > 0 else ("#b22222" if p < 0 else "#333333")
        at = np.nanmax([o, c, 0.0]) + 0.015 * top
        if horizontal:
            ax.text(at, pos[i], f"{p:+.0f}%", va="center", ha="left", fontsize=9, color=color, fontweight="bold")
        else:
            ax.text(pos[i], at, f"{p:+.0f}%", ha="center", va="bottom", fontsize=9, color=color,
                    fontweight="bold")
    (ax.set_xlim if horizontal else ax.set_ylim)(0, top * 1.15)
    ax.set_title(f"Budget: current vs optimal spend per channel (total {_money(np.nansum(opt))})")
    fig.legend(handles=[Patch(color="#9aa5b1", label="current spend"),
                        Patch(color=ccols[0], label="optimal spend (channel colour)")],
               loc="outside lower center", ncol=2, frameon=False)
    return fig


def adstock_weights(alpha_draws: np.ndarray, l_max: int) -> np.ndarray:
    """(S, C) decay rates -> (S, l_max, C) normalised weights alpha**l / sum_l alpha**l."""
    a = np.clip(_arr(alpha_draws, 2), 0.0, 1.0)
    lags = np.arange(max(int(l_max), 1), dtype=float)
    w = a[:, None, :] ** lags[None, :, None]
    return w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)


def fig_adstock(result: RunResult, colors: dict) -> Figure:
    """Adstock (carry-over) weights per lag and channel with intervals."""
    st = result.short
    if st.adstock_alpha_draws is None or np.size(st.adstock_alpha_draws) == 0:
        return None
    w = adstock_weights(st.adstock_alpha_draws, st.l_max)
    _, L, C = w.shape
    q = (1 - float((result.config or {}).get("credible_interval", 0.95))) / 2
    mean, lo, hi = w.mean(0), np.quantile(w, q, axis=0), np.quantile(w, 1 - q, axis=0)
    alpha_mean = _arr(st.adstock_alpha_draws, 2).mean(0)
    chans = list(st.channels)[:C] + [f"channel {i}" for i in range(len(st.channels), C)]
    rows, cols = _grid(C)
    fig = _new_figure(max(3.4 * cols + 0.6, 6.0), 2.5 * rows + 0.9)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False))
    lags = np.arange(L)
    for i, ch in enumerate(chans):
        ax = axes.ravel()[i]
        col = colors.get(ch, "C0")
        ax.fill_between(lags, lo[:, i], hi[:, i], color=col, alpha=0.25, linewidth=0, step=None)
        ax.plot(lags, mean[:, i], color=col, linewidth=2, marker="o", markersize=3.5)
        a = alpha_mean[i]
        half = math.log(0.5) / math.log(a) if 0 < a < 1 else float("nan")
        sub = f"α = {a:.2f}" + (f", half-life {half:.1f} wk" if np.isfinite(half) else "")
        ax.set_title(f"{_txt(_short(ch))}\n{sub}")
        if i % cols == 0:
            ax.set_ylabel("share of effect")
        if i + cols >= C:
            ax.set_xlabel("lag (weeks)")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(-0.5, L - 0.5)
        if L <= 13:
            ax.set_xticks(lags)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _hide_unused(axes, C)
    _suptitle(fig, f"Adstock (carry-over) weights per lag (posterior mean, {_ci_label(result)} band)")
    return fig


def fig_saturation(result: RunResult, colors: dict) -> Figure:
    """Short-term response curves (window contribution against spend) per channel with intervals."""
    rc = result.short.response_curves or {}
    if not all(k in rc for k in ("multipliers", "mean", "lower", "upper")):
        return None
    ms = _arr(rc["multipliers"])
    mean, lo, hi = (_arr(rc[k], 2) for k in ("mean", "lower", "upper"))
    C = mean.shape[1]
    st = result.short
    chans = list(st.channels)[:C] + [f"channel {i}" for i in range(len(st.channels), C)]
    spend = _arr(st.spend, 2).sum(0) if st.spend is not None else np.full(C, np.nan)
    rows, cols = _grid(C)
    fig = _new_figure(max(3.6 * cols + 0.6, 6.0), 2.7 * rows + 0.9)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False))
    order = np.argsort(ms)
    ms, mean, lo, hi = ms[order], mean[order], lo[order], hi[order]
    for i, ch in enumerate(chans):
        ax = axes.ravel()[i]
        col = colors.get(ch, "C0")
        ax.fill_between(ms, lo[:, i], hi[:, i], color=col, alpha=0.25, linewidth=0)
        ax.plot(ms, mean[:, i], color=col, linewidth=2)
        ax.axvline(1.0, color="#555555", linestyle=":", linewidth=1)
        y1 = np.interp(1.0, ms, mean[:, i]) if ms.min() <= 1.0 <= ms.max() else np.nan
        if np.isfinite(y1):
            ax.plot([1.0], [y1], "o", color="black", markersize=5, zorder=5)
        sub = f"current spend {_money(spend[i])}" if i < len(spend) and np.isfinite(spend[i]) else ""
        ax.set_title(f"{_txt(_short(ch))}\n{sub}".strip())
        ax.yaxis.set_major_formatter(CURRENCY_FMT)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}×"))
        if i % cols == 0:
            ax.set_ylabel("contribution (currency)")
        if i + cols >= C:
            ax.set_xlabel("spend multiplier (1× = current)")
    _hide_unused(axes, C)
    _suptitle(fig, "Saturation: short-term contribution over the window vs spend multiplier "
                   f"(mean, {_ci_label(result)} band; dot = current spend)")
    return fig


def fig_market_roi(result: RunResult, colors: dict) -> Figure | None:
    """Multi-market runs: a market x channel heatmap of total ROI (posterior mean), national last
    (None for a one-market run)."""
    roi = (result.markets or {}).get("roi")
    if roi is None or not len(roi):
        return None
    tab = roi.pivot(index="market", columns="channel", values="total_roi_mean")
    order = list(dict.fromkeys(roi["market"]))
    tab = tab.loc[order, list(dict.fromkeys(roi["channel"]))]
    M, C = tab.shape
    fig = _new_figure(min(2.0 + 1.3 * C, 14), min(1.6 + 0.38 * M, 16))
    ax = fig.add_subplot(1, 1, 1)
    vals = tab.to_numpy(float)
    im = ax.imshow(vals, aspect="auto", cmap="viridis")
    ax.set_xticks(range(C), [_txt(_short(c, 18)) for c in tab.columns], rotation=30, ha="right")
    ax.set_yticks(range(M), [_txt(_short(m, 18)) for m in tab.index])
    ax.grid(False)
    if M * C <= 400:
        mid = np.nanmean(vals)
        for i in range(M):
            for j in range(C):
                if np.isfinite(vals[i, j]):
                    ax.text(j, i, f"{vals[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if vals[i, j] < mid else "black")
    ax.axhline(M - 1.5, color="white", linewidth=2)  # the national row below the markets
    fig.colorbar(im, ax=ax, label="total ROI (sales per unit of spend)")
    _suptitle(fig, "Total ROI by market and channel (posterior mean; last row: national)")
    return fig


FIGURES: dict[str, Callable[[RunResult, dict], Figure | None]] = {
    "market_roi": fig_market_roi,
    "irf": fig_irf,
    "long_term_roi": fig_long_term_roi,
    "roi_comparison": fig_roi_comparison,
    "contributions": fig_contributions,
    "ppc": fig_ppc,
    "budget": fig_budget,
    "adstock": fig_adstock,
    "saturation": fig_saturation,
}


@contextlib.contextmanager
def no_lazy_jax():
    """Hide a not-yet-loaded lazy ``jax`` module from matplotlib while drawing.

    arviz (imported with nutpie) registers ``jax`` in ``sys.modules`` as a lazy module; matplotlib's
    unit handling looks for JAX arrays with ``sys.modules.get("jax").Array`` on every new axes,
    which imports all of JAX (1-1.5 s) in a process that never uses it. The lazy module is put back
    afterwards unless something imported the real JAX meanwhile."""
    import sys

    lazy = sys.modules.get("jax")
    if lazy is None or type(lazy).__name__ != "_LazyModule":
        yield
        return
    del sys.modules["jax"]
    try:
        yield
    finally:
        if "jax" not in sys.modules:
            sys.modules["jax"] = lazy


def make_figures(result: RunResult, out_dir: str | os.PathLike) -> dict[str, str]:
    """Write the report figures as PNGs under ``out_dir/figures``; returns {name: relative path}.

    ``budget`` is omitted when ``result.budget`` is None. A figure that raises is skipped with a
    ``RuntimeWarning`` (the report is still written)."""
    out = Path(out_dir)
    (out / FIG_DIR).mkdir(parents=True, exist_ok=True)
    channels = list(result.roi["channel"]) if result.roi is not None and "channel" in result.roi else []
    for c in list(result.short.channels) + list(result.long.channels):
        if c not in channels:
            channels.append(c)
    colors = channel_colors(channels)
    written: dict[str, str] = {}
    with matplotlib.rc_context({**_RC, "font.family": _font_family()}), warnings.catch_warnings(), no_lazy_jax():
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph.*missing.*")
        for name, func in FIGURES.items():
            try:
                fig = func(result, colors)
                if fig is None:
                    continue
                rel = f"{FIG_DIR}/{name}.png"
                _save(fig, out / rel)
                written[name] = rel
            except Exception as exc:  # one bad figure must not lose the report
                warnings.warn(f"figure {name!r} skipped: {type(exc).__name__}: {exc}", RuntimeWarning,
                              stacklevel=2)
    return written
