"""One self-contained HTML report per run: inline CSS, figures embedded as base64 data URIs, no
scripts and no external links, so the file can be mailed or archived on its own.

Every string that comes from the user or the data (channel names, file paths, settings) is
HTML-escaped. Missing or partial inputs (no budget, empty diagnostics, unknown quality keys) give a
short note instead of an error.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ltae.results import RunResult
from ltae.store.artifacts import atomic_write_text

FIGURE_INFO: dict[str, tuple[str, str]] = {
    "roi_comparison": (
        "Short-term, long-term and total ROI",
        "For each channel, three bars: short-term ROI (sales generated within the adstock window, from the "
        "marketing mix model), long-term ROI (lasting lift in base sales over the horizon, from the BVAR) and "
        "their sum. ROI is currency of sales per currency unit of spend; whiskers are credible intervals. Bars "
        "above the dashed line at 1.0 pay back their spend; a whisker that crosses 0 means the effect is not "
        "distinguishable from zero."),
    "long_term_roi": (
        "Long-term ROI by channel",
        "The lasting effect of spend on base sales, summed over the impulse-response horizon, per currency unit "
        "of spend. Whiskers show the credible interval; intervals that cross 0 indicate no reliable long-term "
        "effect."),
    "irf": (
        "Impulse responses: how base sales react to spend",
        "Each panel shows the change in weekly base sales (currency) in the weeks after one extra 1,000 "
        "currency units of spend in that channel: the line is the posterior mean and the shaded band the "
        "credible interval. The area under the curve is the long-term return. Where brand metrics are "
        "modelled, the bottom row shows their response (points per 1,000 of spend), one line per channel."),
    "contributions": (
        "Sales decomposition over time",
        "Stacked posterior means: grey is base sales (what would have been sold without media in the "
        "window), coloured layers are each channel's short-term contribution. The black line is actual "
        "sales; the gap between it and the top of the stack is model error."),
    "ppc": (
        "Model fit (posterior predictive check)",
        "Actual weekly sales (dots) against the model's fitted mean and its predictive band. A good model "
        "follows the turning points and keeps about the nominal share of weeks (e.g. 95%) inside the band; "
        "MAPE, R² and coverage are in the title."),
    "budget": (
        "Budget reallocation",
        "Current spend (grey) and the spend that maximises expected total return (short + long term) for the "
        "same total budget within the allowed bounds. Labels give the suggested change in percent."),
    "adstock": (
        "Adstock (carry-over)",
        "Share of a week's media effect that falls in the same week (lag 0) and in each later week, from the "
        "posterior decay rate α. Slow decay (long tails, large half-life) means the channel keeps working "
        "after the spend has stopped."),
    "saturation": (
        "Saturation (response curves)",
        "Short-term contribution over the modelled window if the channel's spend were scaled by the factor "
        "on the horizontal axis (1× = what was actually spent, marked by the dot). A curve that flattens "
        "at 1× means extra spend brings little extra sales; a steep curve suggests room to grow."),
}

_CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#ffffff; --soft:#f6f8fa; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; line-height: 1.5; font-size: 15px; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.75em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin: 40px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05em; margin: 22px 0 6px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.summary { background: var(--soft); border-left: 4px solid #4c72b0; padding: 12px 18px; border-radius: 4px; }
.summary p { margin: 6px 0; }
nav { margin: 8px 0 0; font-size: 0.92em; }
nav a { color: #0969da; text-decoration: none; margin-right: 14px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 0.92em; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 600; border-top: 2px solid var(--line); }
tr.warn td { background: #fff8e1; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; font-size: 0.85em; font-weight: 600;
         color: #fff; white-space: nowrap; }
.badge-pass { background: #1a7f37; }
.badge-warn { background: #bf8700; }
.badge-fail { background: #cf222e; }
.badge-not-run, .badge-other { background: #6e7781; }
.bad { color: #cf222e; font-weight: 600; }
.good { color: #1a7f37; }
figure { margin: 18px 0 30px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 0.92em; margin-top: 6px; max-width: 980px; }
figcaption b { color: var(--fg); }
.note { color: var(--muted); font-style: italic; }
.scroll { overflow-x: auto; }
footer { color: var(--muted); font-size: 0.85em; margin-top: 48px; }
@media print { h2 { page-break-after: avoid; } figure { page-break-inside: avoid; } }
"""


# ---- formatting ------------------------------------------------------------------------------------
def esc(x: Any) -> str:
    """HTML-escaped text (None as empty)."""
    return html.escape("" if x is None else str(x), quote=True)


def _float(x: Any) -> float | None:
    if x is None or isinstance(x, bool | str):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f


def fmt_money(x: Any) -> str:
    """A currency amount with thousands separators (– when missing)."""
    f = _float(x)
    if f is None or math.isnan(f):
        return "–"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    return f"{f:,.0f}"


def fmt_roi(x: Any) -> str:
    """An ROI with two decimals (– when missing)."""
    f = _float(x)
    if f is None or not math.isfinite(f):
        return "–"
    return f"{f:.2f}"


def fmt_interval(mean: Any, lower: Any, upper: Any, fmt=fmt_roi) -> str:
    """``mean [lower, upper]`` formatted with ``fmt``."""
    m = fmt(mean)
    if m == "–":
        return m
    return f"{m} [{fmt(lower)}, {fmt(upper)}]"


def fmt_value(x: Any) -> str:
    """Human format for any scalar found in a generic table."""
    if x is None:
        return "–"
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    f = _float(x)
    if f is not None:
        if math.isnan(f):
            return "–"
        if math.isinf(f):
            return "∞" if f > 0 else "−∞"
        a = abs(f)
        if a >= 1000:
            return f"{f:,.0f}"
        if a == 0:
            return "0"
        if a < 0.01:
            return f"{f:.2g}"
        decimals = 1 if a >= 100 else (2 if a >= 10 else 3)
        return f"{f:.{decimals}f}".rstrip("0").rstrip(".")
    if isinstance(x, list | tuple | set):
        return ", ".join(fmt_value(v) for v in x) if x else "–"
    if isinstance(x, Mapping):
        return "; ".join(f"{k}: {fmt_value(v)}" for k, v in x.items()) or "–"
    if isinstance(x, dt.datetime | dt.date | pd.Timestamp):
        return x.isoformat()
    return str(x)


def _td(x: Any, num: bool | None = None, raw: bool = False) -> str:
    """A table cell; numbers right-aligned. ``raw`` marks already-escaped HTML."""
    if num is None:
        num = _float(x) is not None
    text = x if raw else esc(fmt_value(x) if not isinstance(x, str) else x)
    return f'<td class="num">{text}</td>' if num else f"<td>{text}</td>"


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], num_cols: Iterable[int] = (),
           row_classes: Iterable[str] | None = None) -> str:
    """``rows`` are lists of ready-made ``<td>`` strings; ``headers`` are plain text."""
    num_cols = set(num_cols)
    head = "".join(f'<th class="num">{esc(h)}</th>' if i in num_cols else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    classes = list(row_classes) if row_classes is not None else None
    body = []
    for k, r in enumerate(rows):
        cls = f' class="{classes[k]}"' if classes and classes[k] else ""
        body.append(f"<tr{cls}>{''.join(r)}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _kv_table(d: Mapping, key_header: str = "item", value_header: str = "value") -> str:
    rows = [[_td(str(k), num=False), _td(v)] for k, v in d.items()]
    return _table([key_header, value_header], rows) if rows else '<p class="note">Nothing recorded.</p>'


def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _records_table(records: list[Mapping]) -> str:
    cols: list[str] = []
    for r in records:
        for k in r:
            if k not in cols:
                cols.append(k)
    rows = [[_td(r.get(c)) for c in cols] for r in records]
    num_cols = [i for i, c in enumerate(cols)
                if any(_float(r.get(c)) is not None for r in records)]
    return _table(cols, rows, num_cols)


def _generic(obj: Any, title: str = "") -> str:
    """Render a dict / list / DataFrame of unknown layout as tables."""
    if hasattr(obj, "to_dict") and not isinstance(obj, pd.DataFrame | Mapping):
        obj = obj.to_dict()
    if isinstance(obj, pd.DataFrame):
        obj = obj.to_dict(orient="records")
    parts = []
    if isinstance(obj, Mapping):
        scalars = {k: v for k, v in obj.items()
                   if not isinstance(v, Mapping | list | tuple | pd.DataFrame)
                   or (isinstance(v, list | tuple) and len(v) <= 30
                       and not any(isinstance(e, Mapping | list | tuple) for e in v))}
        if scalars:
            parts.append(_kv_table(scalars))
        for k, v in obj.items():
            if k in scalars:
                continue
            parts.append(f"<h3>{esc(str(k).replace('_', ' '))}</h3>")
            parts.append(_generic(v))
    elif isinstance(obj, list | tuple):
        if not obj:
            parts.append('<p class="note">None.</p>')
        elif all(isinstance(e, Mapping) for e in obj):
            parts.append(_records_table(list(obj)))
        else:
            parts.append("<ul>" + "".join(f"<li>{esc(fmt_value(e))}</li>" for e in obj) + "</ul>")
    elif obj is None:
        parts.append('<p class="note">Not available.</p>')
    else:
        parts.append(f"<p>{esc(fmt_value(obj))}</p>")
    body = "".join(parts)
    return (f"<h3>{esc(title)}</h3>" + body) if title else body


# ---- sections --------------------------------------------------------------------------------------
def _ci(result: RunResult) -> str:
    try:
        return f"{float((result.config or {}).get('credible_interval', 0.95)):.0%}"
    except (TypeError, ValueError, AttributeError):
        return "95%"


def _run_date(run_id: str) -> str | None:
    try:
        t = dt.datetime.strptime(str(run_id)[:16], "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _names(xs: Iterable[str]) -> str:
    xs = [f"<b>{esc(x)}</b>" for x in xs]
    if len(xs) <= 1:
        return "".join(xs)
    return ", ".join(xs[:-1]) + " and " + xs[-1]


def _status_class(s: Any) -> str:
    s = str(s).strip().lower()
    return {"pass": "pass", "warn": "warn", "fail": "fail", "not run": "not-run"}.get(s, "other")


def _badge(s: Any) -> str:
    return f'<span class="badge badge-{_status_class(s)}">{esc(s)}</span>'


def executive_summary(result: RunResult) -> str:
    """A few sentences generated from the ROI table, the checklist and the budget (HTML)."""
    ci = _ci(result)
    roi = result.roi if result.roi is not None else pd.DataFrame()
    out: list[str] = []
    if len(roi) and "total_roi_mean" in roi:
        r = roi.copy()
        r["channel"] = r["channel"].astype(str)
        valid = r[np.isfinite(pd.to_numeric(r["total_roi_mean"], errors="coerce"))]
        if len(valid):
            best = valid.loc[valid["total_roi_mean"].astype(float).idxmax()]
            s = (f"Across {len(r)} channel{'s' if len(r) != 1 else ''}, the highest total return (short + long "
                 f"term) comes from <b>{esc(best['channel'])}</b>: {fmt_roi(best['total_roi_mean'])} "
                 f"[{fmt_roi(best['total_roi_lower'])}, {fmt_roi(best['total_roi_upper'])}] in sales per "
                 f"currency unit of spend")
            if "long_term_roi_mean" in best:
                s += f", of which {fmt_roi(best['long_term_roi_mean'])} is long-term"
            out.append(s + ".")
            if len(valid) > 1:
                worst = valid.loc[valid["total_roi_mean"].astype(float).idxmin()]
                out.append(f"The lowest is <b>{esc(worst['channel'])}</b> at {fmt_roi(worst['total_roi_mean'])}.")
            if {"spend", "long_term_roi_mean"} <= set(valid.columns):
                sp = valid["spend"].astype(float)
                tot = float((sp * valid["total_roi_mean"].astype(float)).sum())
                lt = float((sp * valid["long_term_roi_mean"].astype(float)).sum())
                if tot > 0 and np.isfinite(lt):
                    out.append(f"Long-term effects account for about {lt / tot:.0%} of the total media return "
                               "(spend-weighted).")
            zero = valid[(valid["total_roi_lower"].astype(float) <= 0)
                         & (valid["total_roi_upper"].astype(float) >= 0)]["channel"].tolist()
            if zero:
                out.append(f"The {ci} interval of total ROI includes 0 for {_names(zero)}: "
                           f"{'its' if len(zero) == 1 else 'their'} effect cannot be distinguished from zero.")
            else:
                out.append(f"Every channel's {ci} interval of total ROI excludes 0.")
            if {"long_term_roi_lower", "long_term_roi_upper"} <= set(valid.columns):
                lz = valid[(valid["long_term_roi_lower"].astype(float) <= 0)
                           & (valid["long_term_roi_upper"].astype(float) >= 0)]["channel"].tolist()
                if lz and len(lz) == len(valid):
                    out.append(f"For {'this channel' if len(lz) == 1 else 'every channel'} the {ci} interval of "
                               "long-term ROI includes 0: the long-term effect is uncertain.")
                elif lz:
                    out.append(f"The long-term ROI interval includes 0 for {_names(lz)}.")
            below = valid[valid["total_roi_upper"].astype(float) < 1]["channel"].tolist()
            if below:
                out.append(f"{_names(below)} {'is' if len(below) == 1 else 'are'} below break-even "
                           f"(whole {ci} interval under 1.0).")
        missing = sorted(set(r["channel"]) - set(valid["channel"]))
        if missing:
            out.append(f"No total ROI could be estimated for {_names(missing)}.")
    else:
        out.append("No ROI estimates are available for this run.")

    out = [" ".join(out)] if out else []  # the ROI findings form one paragraph
    out = honesty_notes(result) + out  # what limits the numbers comes before them

    checks = result.checklist or []
    if checks:
        by: dict[str, list[str]] = {}
        for c in checks:
            by.setdefault(_status_class(c.get("status")), []).append(str(c.get("check", "?")))
        run = [c for c in checks if _status_class(c.get("status")) != "not-run"]
        if not by.get("fail") and not by.get("warn") and run:
            s = f'<span class="good">All {len(run)} validation checks that were run passed.</span>'
        else:
            bits = []
            if by.get("fail"):
                bits.append(f"{len(by['fail'])} failed ({_names(by['fail'])})")
            if by.get("warn"):
                bits.append(f"{len(by['warn'])} gave a warning ({_names(by['warn'])})")
            s = (f'<span class="bad">Validation: {"; ".join(bits) or "no check was run"}</span> — read the '
                 "checklist before acting on these numbers.")
        if by.get("not-run"):
            s += f" Not run: {_names(by['not-run'])}."
        out.append(s)

    b = result.budget
    if b is not None and len(b) and "change_pct" in b:
        bb = b.assign(channel=b["channel"].astype(str))
        chg = pd.to_numeric(bb["change_pct"], errors="coerce")
        up = bb.loc[chg.idxmax()] if chg.notna().any() else None
        down = bb.loc[chg.idxmin()] if chg.notna().any() else None
        if up is not None and float(up["change_pct"]) > 0.5:
            s = (f"For the same budget, the optimiser moves spend towards <b>{esc(up['channel'])}</b> "
                 f"({float(up['change_pct']):+.0f}%)")
            if down is not None and float(down["change_pct"]) < -0.5:
                s += f" and away from <b>{esc(down['channel'])}</b> ({float(down['change_pct']):+.0f}%)"
            attrs = getattr(b, "attrs", {}) or {}
            if _float(attrs.get("uplift_mean")) is not None:
                s += (f", for an expected extra return of {fmt_money(attrs['uplift_mean'])} "
                      f"[{fmt_money(attrs.get('uplift_lower'))}, {fmt_money(attrs.get('uplift_upper'))}]")
            out.append(s + ".")
        else:
            out.append("The budget optimiser suggests keeping the current split.")
    return "".join(f"<p>{s}</p>" for s in out)


def honesty_notes(result: RunResult) -> list[str]:
    """Warnings that limit the ROI numbers (HTML paragraphs' text): a long-term ROI the model could not
    support, and channels whose short-term ROI the data moved little from its prior."""
    roi = result.roi if result.roi is not None else pd.DataFrame()
    notes = []
    if "long_term_status" in roi:
        bad = roi[roi["long_term_status"].astype(str) != "estimated"]
        if len(bad):
            status = str(bad["long_term_status"].iloc[0])
            notes.append(f'<span class="bad">Long-term ROI {esc(status)}</span>: the total ROI of '
                         f"{_names(bad['channel'].astype(str).tolist())} is the short-term ROI only.")
    if "short_term_evidence" in roi:
        weak = roi[roi["short_term_evidence"].astype(str) == "weak"]["channel"].astype(str).tolist()
        if weak:
            notes.append(f'<span class="bad">The data said little</span> about the short-term ROI of '
                         f"{_names(weak)}: the posterior is nearly as wide as the prior, so "
                         f"{'its' if len(weak) == 1 else 'their'} ROI mostly restates the prior's assumption. "
                         "Do not move budget on it before an experiment or more varied spend informs it.")
    return notes


def headline_table(result: RunResult) -> str:
    """The ROI table of the report (best total ROI first)."""
    roi = result.roi
    if roi is None or not len(roi):
        return '<p class="note">No ROI table.</p>'
    r = roi.copy()
    if "total_roi_mean" in r:
        r = r.sort_values("total_roi_mean", ascending=False, na_position="last")
    rows = []
    for _, x in r.iterrows():
        row = [_td(str(x["channel"]), num=False), _td(fmt_money(x.get("spend")), num=True)]
        lt_status = str(x.get("long_term_status", "estimated"))
        for term in ("total", "short_term", "long_term"):
            cell = fmt_interval(x.get(f"{term}_roi_mean"), x.get(f"{term}_roi_lower"), x.get(f"{term}_roi_upper"))
            if term == "long_term" and lt_status != "estimated":
                cell = (cell + " " if _float(x.get("long_term_roi_mean")) is not None else "") + f"({lt_status})"
            if term == "total" and lt_status != "estimated":
                cell += " (short term only)"
            if term == "short_term" and str(x.get("short_term_evidence", "ok")) == "weak":
                cell += " (weak: data said little)"
            m, lo = _float(x.get(f"{term}_roi_mean")), _float(x.get(f"{term}_roi_lower"))
            cls = ' class="num bad"' if term == "total" and m is not None and m < 1 else ' class="num"'
            if term == "total" and lo is not None and lo > 1:
                cls = ' class="num good"'
            row.append(f"<td{cls}>{esc(cell)}</td>")
        rows.append(row)
    ci = _ci(result)
    return _table(["Channel", "Spend (currency)", f"Total ROI mean [{ci}]", f"Short-term ROI [{ci}]",
                   f"Long-term ROI [{ci}]"], rows, num_cols=[1, 2, 3, 4])


def checklist_table(result: RunResult) -> str:
    """The validation checklist as an HTML table."""
    checks = result.checklist or []
    if not checks:
        return '<p class="note">No checklist recorded.</p>'
    rows = [[_td(str(c.get("check", "")), num=False), _td(c.get("value")), _td(c.get("threshold"), num=False),
             f"<td>{_badge(c.get('status', ''))}</td>", _td(str(c.get("action") or ""), num=False)]
            for c in checks]
    return _table(["Check", "Value", "Threshold", "Status", "Suggested action"], rows, num_cols=[1])


def budget_section(result: RunResult) -> str:
    """The budget allocation table of the report."""
    b = result.budget
    if b is None or not len(b):
        return '<p class="note">No budget optimisation was run for this report.</p>'
    ci = _ci(result)
    rows = []
    for _, x in b.iterrows():
        chg = _float(x.get("change_pct"))
        rows.append([_td(str(x["channel"]), num=False), _td(fmt_money(x.get("current_spend")), num=True),
                     _td(fmt_money(x.get("optimal_spend")), num=True),
                     _td("–" if chg is None or not math.isfinite(chg) else f"{chg:+.1f}%", num=True),
                     _td(fmt_interval(x.get("expected_return_mean"), x.get("expected_return_lower"),
                                      x.get("expected_return_upper"), fmt_money), num=True)])
    tot = [_td("Total", num=False)]
    for col in ("current_spend", "optimal_spend"):
        tot.append(_td(fmt_money(pd.to_numeric(b[col], errors="coerce").sum()) if col in b else "–", num=True))
    tot.append(_td("", num=True))
    tot.append(_td(fmt_money(pd.to_numeric(b["expected_return_mean"], errors="coerce").sum())
                   if "expected_return_mean" in b else "–", num=True))
    rows.append(tot)
    table = _table(["Channel", "Current spend", "Optimal spend", "Change",
                    f"Expected return at optimum [{ci}]"], rows, num_cols=[1, 2, 3, 4],
                   row_classes=[""] * (len(rows) - 1) + ["total"])
    attrs = {k: v for k, v in (getattr(b, "attrs", {}) or {}).items()}
    extra = ""
    if attrs:
        extra = "<h3>Optimiser</h3>" + _kv_table({str(k).replace("_", " "): v for k, v in attrs.items()})
    return ('<p>Spend is over the modelled window, in currency. Expected return includes the short-term '
            'contribution and the long-term effect.</p>' + table + extra)


_MODEL_KEYS = ("max_rhat", "min_ess_bulk", "divergences")


def _model_diags(result: RunResult) -> dict[str, dict]:
    diags = result.diagnostics if isinstance(result.diagnostics, Mapping) else {}
    models = {str(k): dict(v) for k, v in diags.items()
              if isinstance(v, Mapping) and any(key in v for key in _MODEL_KEYS)}
    for name, conv in (("short_term", result.short.convergence), ("long_term", result.long.convergence)):
        if name not in models and isinstance(conv, Mapping) and any(key in conv for key in _MODEL_KEYS):
            models[name] = dict(conv)
    return models


_FIT_LABELS = {"mape": ("MAPE", "%"), "r2": ("R²", ""), "coverage": ("{ci} interval coverage", "share"),
               "n": ("weeks", ""), "one_step_mape": ("one-step-ahead MAPE", "%"),
               "one_step_r2": ("one-step-ahead R²", ""),
               "one_step_coverage": ("one-step-ahead {ci} coverage", "share")}


def _fit_rows(fm: Mapping, ci: str) -> dict[str, str]:
    out = {}
    for k, v in fm.items():
        label, unit = _FIT_LABELS.get(k, (str(k).replace("_", " "), ""))
        f = _float(v)
        if unit == "share" and f is not None and math.isfinite(f):
            text = f"{f:.1%}"
        elif unit == "%" and f is not None and math.isfinite(f):
            text = f"{f:.2f}%"
        else:
            text = fmt_value(v)
        out[label.format(ci=ci)] = text
    return out


def diagnostics_section(result: RunResult) -> str:
    """Convergence, fit and timing diagnostics of both models."""
    models = _model_diags(result)
    fit_infos = {"short": result.short.fit_info or {}, "long": result.long.fit_info or {}}
    timings = result.timings or {}
    rows = []
    for name, d in models.items():
        fi = fit_infos["long" if ("long" in name or "bvar" in name) else "short"]
        sampler = d.get("sampler") or fi.get("sampler")
        wall = next((d[k] for k in ("wall_s", "wall_time_s", "wall_time") if _float(d.get(k)) is not None), None)
        if wall is None:
            wall = next((fi[k] for k in ("wall_s", "wall_time_s") if _float(fi.get(k)) is not None), None)
        if wall is None:
            wall = timings.get(f"{name}_fit_s")
        rhat, ess = _float(d.get("max_rhat")), _float(d.get("min_ess_bulk"))
        bad_r = rhat is not None and math.isfinite(rhat) and rhat >= 1.01
        bad_e = ess is not None and math.isfinite(ess) and ess < 400
        rhat_txt = "–" if rhat is None or math.isnan(rhat) else f"{rhat:.3f}"
        if d.get("resumed"):
            sampler = f"{sampler or '–'} (resumed)"
        rows.append([_td(name.replace("_", " "), num=False),
                     f'<td class="num{" bad" if bad_r else ""}">{esc(rhat_txt)}</td>',
                     f'<td class="num{" bad" if bad_e else ""}">{esc(fmt_money(ess))}</td>',
                     _td(d.get("divergences")), _td(sampler or "–", num=False),
                     _td("–" if _float(wall) is None else f"{float(wall):,.1f} s", num=True)])
    parts = []
    if rows:
        parts.append(_table(["Model", "Max R-hat", "Min bulk ESS", "Divergences", "Sampler", "Wall time"], rows,
                            num_cols=[1, 2, 3, 5]))
        parts.append('<p class="note">R-hat should be below 1.01 and bulk ESS above 400 (1,000 preferred); '
                     "divergences should be (close to) zero.</p>")
        for name, d in models.items():
            other = {k: v for k, v in d.items() if k not in (*_MODEL_KEYS, "sampler", "parameters")
                     and not isinstance(v, Mapping | list)}
            if other:
                parts.append(f"<h3>{esc(name.replace('_', ' '))}: details</h3>" + _kv_table(other))
    else:
        parts.append('<p class="note">No convergence diagnostics recorded.</p>')
    diags = result.diagnostics if isinstance(result.diagnostics, Mapping) else {}
    fm = diags.get("fit") if isinstance(diags.get("fit"), Mapping) else result.short.fit_metrics
    if fm:
        parts.append("<h3>In-sample fit</h3>" + _kv_table(_fit_rows(fm, _ci(result)), "metric"))
    for k, v in diags.items():
        if k in models or k in ("fit", "checklist", "budget", "lift_tests", "backtest") or v in (None, {}, []):
            continue
        parts.append(_generic(v, str(k).replace("_", " ")))
    if result.short.holdout and "holdout" not in diags:
        parts.append(_generic(result.short.holdout, "holdout"))
    if timings:
        parts.append("<h3>Timings (seconds)</h3>" + _kv_table(timings, "step", "seconds"))
    return "".join(parts)


def lift_tests_section(result: RunResult) -> str:
    """The experiments (lift tests): each measured lift against the model's prediction, with the tests in
    the likelihood and from the sales data alone, and the short-term ROI with and without the tests."""
    diags = result.diagnostics if isinstance(result.diagnostics, Mapping) else {}
    lt = diags.get("lift_tests")
    if not isinstance(lt, Mapping) or not lt.get("tests"):
        return ""
    ci = _ci(result)
    alone = lt.get("roi_without_tests")
    rows, classes = [], []
    for r in lt["tests"]:
        pred = fmt_interval(r.get("predicted_mean"), r.get("predicted_lower"), r.get("predicted_upper"), fmt_money)
        wo = (fmt_interval(r.get("without_tests_mean"), r.get("without_tests_lower"), r.get("without_tests_upper"),
                           fmt_money) if r.get("without_tests_mean") is not None else "not fitted")
        rows.append([_td(str(r.get("name")), num=False), _td(str(r.get("channel")), num=False),
                     _td(f"{r.get('start')} to {r.get('end')}" + (f" (measured to {r.get('measured_until')})"
                         if r.get("measured_until") != r.get("end") else ""), num=False),
                     _td(fmt_money(r.get("spend_change")), num=True),
                     _td(f"{fmt_money(r.get('lift'))} ± {fmt_money(r.get('lift_se'))}", num=True),
                     _td(wo, num=True), _td(pred, num=True),
                     f"<td>{_badge('pass' if r.get('agrees') else 'warn')}</td>"])
        classes.append("" if r.get("agrees") else "warn")
    parts = ["<p>Each experiment changed one channel's spend and measured the extra sales (currency; negative for "
             "a cut). It enters the short-term model's likelihood as an observation of the channel's response "
             "curve, weighted by its standard error. <b>Data alone</b> is what the same model fitted without any "
             "test predicts for the experiment (the honest comparison); <b>with the tests</b> the posterior "
             "already leans toward them. A test is flagged when the measurement is 2 or more standard deviations "
             f"from either prediction. Intervals are {ci}.</p>",
             _table(["Test", "Channel", "Weeks", "Spend change", "Measured lift ± se", f"Data alone [{ci}]",
                     f"With the tests [{ci}]", "Agrees"], rows, num_cols=[3, 4, 5, 6], row_classes=classes)]
    with_t = lt.get("roi_with_tests") or {}
    if with_t:
        head = ["Channel", f"Short-term ROI with the tests [{ci}]"]
        if alone:
            head.append(f"Without the tests [{ci}]")
        rr = []
        for ch, v in with_t.items():
            row = [_td(str(ch), num=False), _td(fmt_interval(v.get("mean"), v.get("lower"), v.get("upper")), num=True)]
            if alone:
                a = alone.get(ch, {})
                row.append(_td(fmt_interval(a.get("mean"), a.get("lower"), a.get("upper")), num=True))
            rr.append(row)
        parts.append("<h3>Short-term ROI with and without the experiments</h3>"
                     + _table(head, rr, num_cols=list(range(1, len(head)))))
    return "".join(parts)


def backtest_section(result: RunResult) -> str:
    """The rolling-origin backtest: out-of-sample MAPE and interval coverage, overall and per fold."""
    diags = result.diagnostics if isinstance(result.diagnostics, Mapping) else {}
    bt = diags.get("backtest")
    if not isinstance(bt, Mapping) or not bt.get("folds"):
        return ""
    o = bt.get("overall", {})
    ci = _ci(result)
    h = int(o.get("horizon", 4))

    def pct(x, share=False):
        f = _float(x)
        return "–" if f is None or not math.isfinite(f) else (f"{f:.0%}" if share else f"{f:.1f}%")

    summary = _table(["", "1 week ahead", f"{h} weeks ahead", f"1-{h} weeks ahead (pooled)"], [
        [_td("MAPE", num=False), _td(pct(o.get("mape_1_week")), num=True),
         _td(pct(o.get(f"mape_{h}_weeks")), num=True), _td(pct(o.get("mape_all")), num=True)],
        [_td(f"{ci} interval coverage", num=False), _td(pct(o.get("coverage_1_week"), True), num=True),
         _td(pct(o.get(f"coverage_{h}_weeks"), True), num=True), _td(pct(o.get("coverage_all"), True), num=True)],
    ], num_cols=[1, 2, 3])
    rows = []
    for f in bt["folds"]:
        ape, cov = f.get("ape") or [], f.get("covered") or []
        rows.append([_td(f.get("fold")), _td(f.get("train_weeks")), _td(str(f.get("origin")), num=False),
                     _td(pct(ape[0] if ape else None), num=True), _td(pct(ape[-1] if ape else None), num=True),
                     _td(f"{sum(bool(c) for c in cov)}/{len(cov)}", num=True), _td(f.get("max_rhat"))])
    return (f"<p>{o.get('folds')} refits of the short-term model on expanding windows: fold k fits the first N − "
            f"{h}k weeks and forecasts the next {h} weeks with the spend and controls that happened. The errors "
            "are out of sample: no forecast week was in its fold's fit.</p>" + summary
            + "<h3>Per fold (latest first)</h3>"
            + _table(["Fold", "Weeks fitted", "Last fitted week", "APE 1 week", f"APE {h} weeks",
                      f"Inside the {ci} interval", "Max R-hat"], rows, num_cols=[0, 1, 3, 4, 5, 6]))


def data_section(result: RunResult) -> str:
    """Dataset summary and quality report."""
    parts = []
    ds = result.dataset_summary if result.dataset_summary is not None else {}
    parts.append("<h3>Dataset</h3>" + (_generic(ds) if ds else '<p class="note">No dataset summary.</p>'))
    q = result.quality
    if q is not None and hasattr(q, "to_dict") and not isinstance(q, Mapping):
        q = q.to_dict()
    if q:
        q = dict(q)
        parts.append("<h3>Data quality</h3>")
        head = {k: q.pop(k) for k in ("n_weeks", "start", "end", "vif_threshold", "adf_alpha") if k in q}
        if head:
            parts.append(_kv_table(head))
        titles = {"vif": "Collinearity (variance inflation factor)", "adf": "Stationarity (augmented Dickey-Fuller)",
                  "summary": "Series summary", "warnings": "Warnings"}
        for key in ("vif", "adf", "summary", "warnings"):
            if key in q:
                parts.append(_generic(q.pop(key), titles[key]))
        if q:
            parts.append(_generic(q))
    else:
        parts.append('<h3>Data quality</h3><p class="note">No data-quality report.</p>')
    return "".join(parts)


def settings_section(result: RunResult) -> str:
    """Every setting of the run as a table."""
    cfg = result.config
    if hasattr(cfg, "model_dump"):
        cfg = cfg.model_dump(mode="json")
    if not isinstance(cfg, Mapping) or not cfg:
        return '<p class="note">No settings recorded.</p>'
    return _kv_table(_flatten(cfg), "setting")


def _resolve_figure(rel: str, path: Path, result: RunResult) -> Path | None:
    p = Path(rel)
    if p.is_absolute():
        return p if p.is_file() else None
    for root in (path.parent, Path(result.out_dir) if result.out_dir else None, Path.cwd()):
        if root is not None and (root / p).is_file():
            return root / p
    return None


def figures_section(result: RunResult, figures: Mapping[str, str], path: Path) -> str:
    """The figures, embedded as PNG, with their captions."""
    if not figures:
        return '<p class="note">No figures.</p>'
    order = [n for n in FIGURE_INFO if n in figures] + [n for n in figures if n not in FIGURE_INFO]
    parts = []
    for name in order:
        title, caption = FIGURE_INFO.get(name, (name.replace("_", " ").capitalize(), ""))
        f = _resolve_figure(str(figures[name]), path, result)
        if f is None:
            parts.append(f'<figure id="fig-{esc(name)}"><p class="note">{esc(title)}: figure not available '
                         f"({esc(figures[name])}).</p></figure>")
            continue
        b64 = base64.b64encode(f.read_bytes()).decode("ascii")
        mime = "image/svg+xml" if f.suffix.lower() == ".svg" else "image/png"
        parts.append(f'<figure id="fig-{esc(name)}"><img src="data:{mime};base64,{b64}" alt="{esc(title)}">'
                     f"<figcaption><b>{esc(title)}.</b> {esc(caption)}</figcaption></figure>")
    return "".join(parts)


def roi_intro(result: RunResult) -> str:
    """What the ROI numbers measure: currency per currency for a revenue KPI; incremental KPI per unit
    of spend (and its inverse, the cost per incremental KPI, in roi.csv) for any other KPI."""
    kpi = (result.diagnostics or {}).get("kpi") if isinstance(result.diagnostics, Mapping) else None
    tail = ("Intervals are credible intervals from the posterior; total = short term + long term, draw by "
            "draw.</p>")
    if kpi and kpi.get("type") == "non_revenue":
        u = esc(kpi.get("unit") or kpi.get("name") or "KPI")
        return (f'<p class="bad">The target ({u}) is not money, so these are not returns in currency: each number '
                f"is incremental {u} per currency unit of spend, and roi.csv also gives the cost per incremental "
                f"{u} (CPIK = 1 / that number). Give --revenue-per-kpi to report ROI in currency.</p><p>" + tail)
    return ("<p>ROI is currency of sales per currency unit of spend: above 1.0 a channel pays back its spend. "
            + tail)


def markets_section(result: RunResult, figures: Mapping[str, str], path: Path) -> str:
    """Multi-market runs: the market x channel total-ROI heatmap and every market's ROI table behind a
    market selector (the national table is the headline above)."""
    mk = result.markets or {}
    roi = mk.get("roi")
    if roi is None or not len(roi):
        return ""
    ci = _ci(result)
    markets = [str(m) for m in dict.fromkeys(roi["market"].astype(str))]
    fig = ""
    rel = figures.get("market_roi")
    if rel:
        one = figures_section(result, {"market_roi": rel}, path)
        fig = one
    fit = mk.get("fit")
    opts = "".join(f'<option value="m{i}">{esc(m)}</option>' for i, m in enumerate(markets))
    tables = []
    for i, m in enumerate(markets):
        part = roi[roi["market"].astype(str) == m]
        rows = [[_td(str(x["channel"]), num=False), _td(fmt_money(x.get("spend")), num=True)]
                + [_td(fmt_interval(x.get(f"{t}_roi_mean"), x.get(f"{t}_roi_lower"), x.get(f"{t}_roi_upper")), num=True)
                   for t in ("total", "short_term", "long_term")] + [_td(str(x.get("long_term_status", "")), num=False)]
                for _, x in part.iterrows()]
        extra = ""
        if fit is not None and m in set(fit["market"].astype(str)):
            f = fit[fit["market"].astype(str) == m].iloc[0]
            extra = (f'<p class="note">One-week-ahead fit: MAPE {fmt_value(f["one_step_mape"])}%, '
                     f'R² {fmt_value(f["one_step_r2"])}, {ci} interval coverage {fmt_value(100 * f["one_step_coverage"])}%.</p>')
        tables.append(f'<div class="market" id="m{i}"{"" if i == 0 else " hidden"}>'
                      + _table(["Channel", "Spend", f"Total ROI [{ci}]", f"Short-term ROI [{ci}]",
                                f"Long-term ROI [{ci}]", "Long-term status"], rows, num_cols=[1, 2, 3, 4]) + extra
                      + "</div>")
    script = ("<script>document.getElementById('market-select').addEventListener('change',function(e){"
              "document.querySelectorAll('div.market').forEach(function(d){d.hidden=(d.id!==e.target.value);});});"
              "</script>")
    return (f"<p>{len(markets) - 1} markets in one hierarchical model: channel ROIs are pooled across markets "
            f"(a national ROI per channel and market deviations); {esc(markets[-1])} is the national figure "
            "(contribution summed over markets / spend summed over markets).</p>" + fig
            + f'<p><label for="market-select">Market: </label><select id="market-select">{opts}</select></p>'
            + "".join(tables) + script)


def refresh_section(result: RunResult) -> str:
    """A refreshed run: what it updated and each channel's ROI before and after."""
    r = (result.diagnostics or {}).get("refresh") if isinstance(result.diagnostics, Mapping) else None
    if not r:
        return ""
    comp = pd.DataFrame(r.get("comparison") or [])
    rows = [[_td(str(x["channel"]), num=False), _td(str(x["term"]).replace("_", " "), num=False),
             _td(fmt_interval(x["previous_mean"], x["previous_lower"], x["previous_upper"]), num=True),
             _td(fmt_interval(x["new_mean"], x["new_lower"], x["new_upper"]), num=True),
             _td("–" if x.get("move_in_widths") is None else f"{x['move_in_widths']:.2f}", num=True)]
            for _, x in comp.iterrows()]
    ch = r.get("history_changes") or []
    hist = (f'<p class="bad">{len(ch)} value(s) of the previous weeks changed in the new data and were accepted '
            "(see refresh.json).</p>" if ch else "<p>The previous weeks are unchanged in the new data.</p>")
    ci = _ci(result)
    return (f"<p>This run refreshes run <code>{esc(r.get('previous_run'))}</code> with {esc(r.get('new_weeks'))} new "
            f"week(s) ({esc(r.get('previous_weeks'))} before). Its response-curve priors are the previous posterior, "
            f"widened {esc(r.get('widen'))} times in standard deviation; the sampler started from the previous "
            "posterior means.</p>" + hist
            + _table(["Channel", "Term", f"Before [{ci}]", f"After [{ci}]", "Move / previous width"], rows,
                     num_cols=[2, 3, 4]))


def render_report(result: RunResult, figures: Mapping[str, str], path: str | os.PathLike = "report.html") -> str:
    """The report as an HTML string (figure paths are resolved relative to ``path``'s folder)."""
    path = Path(path)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    run_date = _run_date(result.run_id) or generated
    ds = result.dataset_summary if isinstance(result.dataset_summary, Mapping) else {}
    period = ""
    if ds.get("start") and ds.get("end"):
        period = f" · data {esc(ds['start'])} to {esc(ds['end'])}"
        if ds.get("n_weeks"):
            period += f" ({esc(fmt_value(ds['n_weeks']))} weeks)"
    sections = [
        ("summary", "Executive summary", f'<div class="summary">{executive_summary(result)}</div>'),
        ("roi", "Return on investment", roi_intro(result) + headline_table(result)),
        *((("markets", "Markets", markets_section(result, figures, path)),) if result.markets else ()),
        *((("refresh", "Refresh", refresh_section(result)),)
          if isinstance(result.diagnostics, Mapping) and result.diagnostics.get("refresh") else ()),
        ("checklist", "Validation checklist", checklist_table(result)),
        *((("experiments", "Experiments (lift tests)", x),) if (x := lift_tests_section(result)) else ()),
        *((("backtest", "Backtest (out of sample)", x),) if (x := backtest_section(result)) else ()),
        ("figures", "Figures", figures_section(result, {k: v for k, v in figures.items() if k != "market_roi"},
                                               path)),
        ("budget", "Budget", budget_section(result)),
        ("diagnostics", "Diagnostics", diagnostics_section(result)),
        ("data", "Data", data_section(result)),
        ("settings", "Settings", settings_section(result)),
    ]
    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{esc(title)}</h2>{content}</section>' for sid, title, content in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Marketing mix report – {esc(result.run_id)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>Marketing mix report: short- and long-term ad effectiveness</h1>
<p class="meta">Run <code>{esc(result.run_id)}</code> · {esc(run_date)}{period}</p>
<nav>{nav}</nav>
{body}
<footer>Generated by ltae on {esc(generated)}. All amounts in the data's currency.</footer>
</main>
</body>
</html>
"""


def write_report(result: RunResult, figures: Mapping[str, str], path: str | os.PathLike) -> Path:
    """Write the self-contained HTML report to ``path`` atomically and return the path."""
    path = Path(path)
    return atomic_write_text(path, render_report(result, figures, path))
