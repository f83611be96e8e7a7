"""The scenario figure: predicted sales paths of up to a few plans against their reference, and
each plan's incremental return per channel split into short and long term (matplotlib, Agg)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import matplotlib
import numpy as np

from ltae.report.figures import (
    _RC,
    ACTUAL_COLOR,
    BASE_COLOR,
    CURRENCY_FMT,
    TERM_COLORS,
    _date_axis,
    _font_family,
    _new_figure,
    _save,
    _short,
    _txt,
)

PLAN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b")


def fig_scenario(results, names=None):
    """``results``: one ``ScenarioResult`` or a list of them (same run and reference)."""
    results = list(results) if isinstance(results, list | tuple) else [results]
    names = list(names) if names is not None else [r.plan_name for r in results]
    first = results[0]
    k = len(results)
    chans = [*first.channels, "all"]
    width = max(11.0, 1.3 * len(chans) * k + 3.0)
    fig = _new_figure(width, 9.0)
    gs = fig.add_gridspec(2, k, height_ratios=[1.15, 1.0])
    ax = fig.add_subplot(gs[0, :])
    ci = f"{first.credible_interval:.0%}"
    if first.history is not None and len(first.history):
        h = first.history.iloc[-26:]
        ax.plot(h.index, h.values, color=ACTUAL_COLOR, linewidth=1.3, label="actual sales")
    q = (1 - first.credible_interval) / 2
    ref = first.sales_reference
    ax.fill_between(first.dates, *np.quantile(ref, [q, 1 - q], axis=0), color=BASE_COLOR, alpha=0.6, linewidth=0,
                    label=f"{_txt(_short(first.reference_name, 30))} ({ci} interval)")
    ax.plot(first.dates, ref.mean(0), color="#555555", linestyle="--", linewidth=1.3)
    for j, (r, n) in enumerate(zip(results, names, strict=True)):
        col = PLAN_COLORS[j % len(PLAN_COLORS)]
        ax.fill_between(r.dates, *np.quantile(r.sales_plan, [q, 1 - q], axis=0), color=col, alpha=0.15,
                        linewidth=0)
        ax.plot(r.dates, r.sales_plan.mean(0), color=col, linewidth=1.8, label=_txt(_short(n, 30)))
    ax.axvline(first.data_end, color="#888888", linewidth=0.9, linestyle=":")
    planned = first.dates[first.phase == "plan"]
    if len(planned) and k == 1:
        half = np.timedelta64(3, "D")
        ax.axvspan(planned[0] - half, planned[-1] + half, color="#f2e6a7", alpha=0.35, linewidth=0,
                   label="planned weeks")
    ax.yaxis.set_major_formatter(CURRENCY_FMT)
    ax.set_ylabel(f"{_txt(first.target)} per week (currency of sales)")
    _date_axis(ax)
    ax.set_title(f"Predicted weekly sales: mean and {ci} predictive interval (data end dotted)")
    ax.legend(loc="upper left", frameon=False, fontsize=8, ncol=2)
    for j, (r, n) in enumerate(zip(results, names, strict=True)):
        bx = fig.add_subplot(gs[1, j])
        tab = r.returns()
        pos = np.arange(len(tab))
        w = 0.27
        for o, (term, label) in enumerate((("short_term", "short term"), ("long_term", "long term"),
                                           ("total", "total"))):
            m = tab[f"{term}_mean"].to_numpy(float)
            err = np.vstack([m - tab[f"{term}_lower"].to_numpy(float), tab[f"{term}_upper"].to_numpy(float) - m])
            bx.bar(pos + (o - 1) * w, m, w, yerr=np.clip(err, 0, None), color=TERM_COLORS[term.split("_")[0]],
                   label=label, error_kw={"elinewidth": 1.0, "ecolor": "#333333", "capsize": 2})
        bx.axhline(0, color="black", linewidth=0.8)
        rot = 0 if len(chans) <= 5 and k == 1 else 30
        bx.set_xticks(pos, [_txt(_short(c, 18)) for c in chans], rotation=rot, ha="right" if rot else "center")
        bx.grid(axis="x", visible=False)
        bx.yaxis.set_major_formatter(CURRENCY_FMT)
        bx.set_title(f"{_txt(_short(n, 30))}: incremental return vs {_txt(_short(r.reference_name, 24))}",
                     fontsize=10)
        if j == 0:
            bx.set_ylabel("currency of sales (window total)")
            bx.legend(loc="best", frameon=False, fontsize=8)
    return fig


def write_scenario_figure(results, path: str | os.PathLike, names=None) -> Path:
    """Draw :func:`fig_scenario` and write it as PNG atomically."""
    with matplotlib.rc_context({**_RC, "font.family": _font_family()}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph.*missing.*")
        fig = fig_scenario(results, names)
        _save(fig, Path(path))
    return Path(path)
