"""The ltae dashboard (Streamlit): ``ltae dashboard`` or ``streamlit run dashboard.py -- --runs DIR``.

Pages (functions below, picked in the sidebar or with ``?page=``):

* **Overview**: warnings first, then ROI (short / long / total with intervals), the validation
  checklist, contributions over time and impulse responses;
* **Budget**: total-budget slider, per-channel bounds, long-term toggle and risk level -> the optimal
  allocation from ``ltae.analysis.optimize.optimize_budget`` (the numbers of ``ltae optimize``);
* **Scenarios**: up to three spend plans (built, edited or uploaded) against a reference, side by
  side, from ``ltae.analysis.scenarios.run_scenario`` (the numbers of ``ltae scenario``); CSV download.

Runs come from a folder (``--runs`` or ``LTAE_RUNS_DIR``, searched two levels deep) and from the
DuckDB results store (``--store``, ``LTAE_STORE`` or ltae_runs.duckdb in the runs folder); ``?run=PATH``
opens one directly. With ``LTAE_DASHBOARD_TOKEN`` set the page asks for that token (or ``?token=``)
before showing anything; ``ltae dashboard`` refuses a non-loopback ``--host`` without it.
Loaded runs and results are cached (``st.cache_resource``): a run is read once per process.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sys
import tempfile
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from ltae.analysis.optimize import optimize_budget
from ltae.analysis.scenarios import (
    DATE,
    LoadedRun,
    default_plan,
    load_run,
    run_scenario,
)
from ltae.data.validate import DataValidationError

PAGES = ("Overview", "Budget", "Scenarios")
RISK_LEVELS = {"expected return (mean)": None, "cautious (25th percentile)": 0.25,
               "prudent (10th percentile)": 0.10}
PLAN_LABELS = ("Plan A", "Plan B", "Plan C")
SCENARIO_DRAWS = 1000
PLAN_COLORS = ("#1f77b4", "#d62728", "#2ca02c")
TERM_COLORS = {"short term": "#4c72b0", "long term": "#dd8452", "total": "#55a868"}


# ------------------------------------------------------------------------------------------------
# options, access, runs
# ------------------------------------------------------------------------------------------------


def options() -> argparse.Namespace:
    """Script arguments after ``--`` of ``streamlit run``, with environment defaults."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", default=os.environ.get("LTAE_RUNS_DIR", "."))
    parser.add_argument("--store", default=os.environ.get("LTAE_STORE"))
    parser.add_argument("--run", default=os.environ.get("LTAE_RUN"))
    argv = sys.argv[1:] if Path(sys.argv[0]).name == Path(__file__).name else []
    ns, _ = parser.parse_known_args(argv)
    return ns


def token_ok() -> bool:
    """True when no token is configured or the right one was given (query ``token`` or the form)."""
    token = os.environ.get("LTAE_DASHBOARD_TOKEN", "").strip()
    if not token or st.session_state.get("_ltae_auth"):
        return True
    given = st.query_params.get("token") or st.text_input("Access token", type="password")
    if given and hmac.compare_digest(str(given).encode(), token.encode()):
        st.session_state["_ltae_auth"] = True
        return True
    if given:
        st.error("Wrong token.")
    else:
        st.info("This dashboard needs the access token (LTAE_DASHBOARD_TOKEN).")
    return False


@st.cache_data(ttl=30, show_spinner=False)
def discover_runs(root: str, store: str | None) -> dict[str, str]:
    """{label: run folder} for finished runs under ``root`` (two levels) and in the store."""
    found: dict[str, float] = {}
    base = Path(root)
    cands = [base] + ([p for p in base.glob("*") if p.is_dir()] + [p for p in base.glob("*/*") if p.is_dir()]
                      if base.is_dir() else [])
    for p in cands:
        if (p / "manifest.json").is_file():
            found[str(p.resolve())] = (p / "manifest.json").stat().st_mtime
    store_path = Path(store) if store else base / "ltae_runs.duckdb"
    if store_path.is_file():
        try:
            from ltae.store.results import list_runs

            for d in list_runs(store_path)["out_dir"]:
                p = Path(str(d))
                if (p / "manifest.json").is_file():
                    found[str(p.resolve())] = (p / "manifest.json").stat().st_mtime
        except Exception:  # a store another version wrote: the folder scan still works
            pass
    ordered = sorted(found, key=lambda k: -found[k])
    labels = {}
    for path in ordered:
        labels[_label(Path(path), base)] = path
    return labels


def _label(path: Path, base: Path) -> str:
    try:
        rel = path.relative_to(base.resolve())
        return str(rel) if str(rel) != "." else path.name
    except ValueError:
        return str(path)


@st.cache_resource(max_entries=8, show_spinner="Loading the run ...")
def get_run(path: str, stamp: float) -> LoadedRun:
    """A loaded run (cached per folder and manifest time); the response model is built once."""
    run = load_run(path)
    _ = run.response  # build the optimiser's response model now, inside the cache
    return run


def open_run(path: str) -> LoadedRun:
    man = Path(path) / "manifest.json"
    stamp = man.stat().st_mtime if man.is_file() else 0.0
    return get_run(str(Path(path).resolve()), stamp)


# ------------------------------------------------------------------------------------------------
# formatting
# ------------------------------------------------------------------------------------------------


def money(x) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:,.0f}"


def interval(m, lo, hi, fmt=money) -> str:
    if any(v is None or not np.isfinite(v) for v in (m, lo, hi)):
        return "-"
    return f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]"


def ratio(x) -> str:
    return f"{x:.2f}"


def _cell(x):
    """A table cell shown as text: st.table renders Markdown, so '> 1000' would be a quote and '-' a
    list bullet; escape what Markdown reads at the start of a cell."""
    if not isinstance(x, str):
        return x
    if x[:1] in (">", "#") or x in ("-", "+", "*") or x[:2] in ("- ", "+ ", "* "):
        return "\\" + x
    return x


def table(df: pd.DataFrame) -> None:
    """st.table of formatted text, Markdown-safe."""
    st.table(df.map(_cell))


def show_warnings(run: LoadedRun) -> None:
    """Checklist items that did not pass, before any number."""
    bad = [c for c in run.checklist if c.get("status") in ("warn", "fail")]
    if not bad:
        return
    lines = []
    for c in bad:
        v = c.get("value")
        val = "" if v is None else f" = {v:.3g}"
        lines.append(f"- **{c['status'].upper()}** {c['check']}{val} (wanted {c['threshold']}): {c['action']}")
    box = st.error if any(c.get("status") == "fail" for c in bad) else st.warning
    box("This run has warnings; read them before the numbers.\n\n" + "\n".join(lines))


# ------------------------------------------------------------------------------------------------
# pages
# ------------------------------------------------------------------------------------------------


@st.cache_resource(max_entries=8, show_spinner=False)
def contributions_frame(path: str, stamp: float) -> pd.DataFrame:
    run = get_run(path, stamp)
    contrib = run.mmm.media_contributions().mean(0)
    base = run.mmm.base_sales_draws().mean(0)
    frames = [pd.DataFrame({DATE: run.dataset.dates, "component": "base sales", "value": base})]
    for i, ch in enumerate(run.channels):
        frames.append(pd.DataFrame({DATE: run.dataset.dates, "component": ch, "value": contrib[:, i]}))
    return pd.concat(frames, ignore_index=True)


def page_overview(run: LoadedRun, path: str, stamp: float) -> None:
    roi = run.roi
    ci = f"{run.config.credible_interval:.0%}"
    st.subheader(f"ROI per channel (currency of sales per currency unit of spend; mean [{ci} interval])")
    roi_tab = pd.DataFrame({
        "channel": roi["channel"], "spend": roi["spend"].map(money),
        "short term": [interval(*r, fmt=ratio) for r in roi[["short_term_roi_mean", "short_term_roi_lower",
                                                              "short_term_roi_upper"]].to_numpy()],
        "long term": [interval(*r, fmt=ratio) for r in roi[["long_term_roi_mean", "long_term_roi_lower",
                                                            "long_term_roi_upper"]].to_numpy()],
        "total": [interval(*r, fmt=ratio) for r in roi[["total_roi_mean", "total_roi_lower",
                                                        "total_roi_upper"]].to_numpy()],
    })
    table(roi_tab.set_index("channel"))
    rows = []
    for term, key in (("short term", "short_term_roi"), ("long term", "long_term_roi"), ("total", "total_roi")):
        for r in roi.itertuples():
            rows.append({"channel": r.channel, "term": term, "mean": getattr(r, f"{key}_mean"),
                         "lower": getattr(r, f"{key}_lower"), "upper": getattr(r, f"{key}_upper")})
    long = pd.DataFrame(rows)
    color = alt.Color("term:N", scale=alt.Scale(domain=list(TERM_COLORS), range=list(TERM_COLORS.values())))
    enc = {"x": alt.X("channel:N", title=None), "xOffset": alt.XOffset("term:N", sort=list(TERM_COLORS))}
    bars = alt.Chart(long).mark_bar().encode(y=alt.Y("mean:Q", title="ROI"), color=color, **enc,
                                             tooltip=["channel", "term", alt.Tooltip("mean:Q", format=".2f"),
                                                      alt.Tooltip("lower:Q", format=".2f"),
                                                      alt.Tooltip("upper:Q", format=".2f")])
    err = alt.Chart(long).mark_rule(color="#333333").encode(y="lower:Q", y2="upper:Q", **enc)
    st.altair_chart(bars + err, width="stretch")

    st.subheader("Validation checklist")
    icon = {"pass": "pass", "warn": "WARN", "fail": "FAIL"}
    checks = pd.DataFrame([{"status": icon.get(c.get("status"), c.get("status")), "check": c.get("check"),
                            "value": "-" if c.get("value") is None else f"{c['value']:.3g}",
                            "threshold": c.get("threshold"), "action": c.get("action")} for c in run.checklist])
    if len(checks):
        table(checks.set_index("check"))

    st.subheader("Contributions over time (posterior means, currency of sales per week)")
    contrib = contributions_frame(path, stamp)
    area = alt.Chart(contrib).mark_area(opacity=0.85).encode(
        x=alt.X(f"{DATE}:T", title=None), y=alt.Y("value:Q", stack="zero", title=run.target_name),
        color=alt.Color("component:N", sort=["base sales", *run.channels]),
        order=alt.Order("order:Q"), tooltip=[DATE, "component", alt.Tooltip("value:Q", format=",.0f")],
    ).transform_calculate(order="datum.component == 'base sales' ? 0 : 1")
    actual = alt.Chart(pd.DataFrame({DATE: run.dataset.dates, "sales": run.dataset.target.values})).mark_line(
        color="black", strokeWidth=1.2).encode(x=f"{DATE}:T", y="sales:Q")
    st.altair_chart(area + actual, width="stretch")

    st.subheader("Impulse responses (response per currency unit of spend in week 0)")
    if run.irf is None:
        st.info("This run has no saved impulse responses (posteriors/irf.nc): re-run `ltae run` with the same "
                "--out to add them (it resumes from the saved posteriors).")
        return
    responses = [str(r) for r in run.irf["response"].values]
    resp = st.selectbox("Response", responses, index=0)
    rows = []
    for ch in run.channels:
        sel = {"response": resp, "channel": ch}
        for h, (m, lo, hi) in enumerate(zip(run.irf["mean"].sel(sel).values, run.irf["lower"].sel(sel).values,
                                            run.irf["upper"].sel(sel).values, strict=True)):
            rows.append({"week": h, "channel": ch, "mean": m, "lower": lo, "upper": hi})
    irf = pd.DataFrame(rows)
    band = alt.Chart(irf).mark_area(opacity=0.15).encode(x="week:Q", y="lower:Q", y2="upper:Q", color="channel:N")
    line = alt.Chart(irf).mark_line().encode(x=alt.X("week:Q", title="weeks after the spend"),
                                             y=alt.Y("mean:Q", title=resp), color="channel:N")
    st.altair_chart(band + line, width="stretch")


@st.cache_resource(max_entries=64, show_spinner=False)
def allocation(path: str, stamp: float, budget: float, bounds: tuple, risk: float | None,
               include_long_term: bool) -> pd.DataFrame:
    run = get_run(path, stamp)
    return optimize_budget(run.response, budget, run.channels, dict(zip(run.channels, bounds, strict=True)), risk,
                           include_long_term=include_long_term, credible_interval=run.config.credible_interval)


def _step(total: float) -> float:
    return float(10 ** np.floor(np.log10(max(total, 1.0) / 200.0))) if total > 200 else 1.0


def page_budget(run: LoadedRun, path: str, stamp: float) -> None:
    resp = run.response
    cur = resp.current
    total = float(cur.sum())
    st.subheader("Budget allocation")
    st.caption(f"Budgets are totals over the modelled window ({run.dataset.n_weeks} weeks, "
               f"{run.dataset.dates[0]:%Y-%m-%d} to {run.last_date:%Y-%m-%d}); each channel keeps its weekly "
               f"pattern, scaled. Current total: {money(total)}.")
    left, right = st.columns([1, 2])
    with left:
        include_lt = st.toggle("Include long-term (brand) return", value=True)
        risk_label = st.radio("Risk level", list(RISK_LEVELS), index=0)
        st.markdown("**Per-channel bounds** (multiples of current spend)")
        bounds_df = st.data_editor(
            pd.DataFrame({"channel": run.channels, "min": 0.5, "max": 1.5}), hide_index=True,
            disabled=["channel"], key=f"bounds-{run.run_id}",
            column_config={"min": st.column_config.NumberColumn(min_value=0.0, step=0.05, format="%.2f"),
                           "max": st.column_config.NumberColumn(min_value=0.0, step=0.05, format="%.2f")})
    bad = [r.channel for r in bounds_df.itertuples()
           if not (np.isfinite(r.min) and np.isfinite(r.max) and 0 <= r.min <= r.max)]
    if bad:
        st.error(f"Bounds of {', '.join(map(str, bad))}: min and max must be numbers with 0 <= min <= max.")
        return
    lo = float((bounds_df["min"].to_numpy(float) * cur).sum())
    hi = float((bounds_df["max"].to_numpy(float) * cur).sum())
    step = _step(total)
    lo_s, hi_s = np.ceil(lo / step) * step, np.floor(hi / step) * step
    if hi_s <= lo_s:
        st.error("The bounds leave no room to choose a budget: widen them.")
        return
    with right:
        budget = st.slider("Total budget (currency of spend, over the window)", min_value=float(lo_s),
                           max_value=float(hi_s), value=float(min(max(round(total / step) * step, lo_s), hi_s)),
                           step=float(step), format="%.0f", key=f"budget-{run.run_id}")
        risk = RISK_LEVELS[risk_label]
        bounds = tuple((float(a), float(b)) for a, b in bounds_df[["min", "max"]].to_numpy(float))
        try:
            df = allocation(path, stamp, float(budget), bounds, risk, bool(include_lt))
        except ValueError as e:
            st.error(str(e))
            return
        a = df.attrs
        c1, c2, c3 = st.columns(3)
        c1.metric("Expected return, current split", money(a["total_return_current"]))
        c2.metric("Expected return, optimal split", money(a["total_return_optimal"]))
        c3.metric("Change", money(a["uplift_mean"]), help=f"{a['credible_interval']:.0%} interval [{money(a['uplift_lower'])}, "
                                                           f"{money(a['uplift_upper'])}]")
        if not a.get("success", True):
            st.warning(f"The optimiser did not converge: {a.get('message')}")
        st.markdown(f"**Optimal allocation** for a budget of {money(a['budget'])} "
                    f"({'short + long term' if include_lt else 'short term only'}, {risk_label}); "
                    f"expected change {interval(a['uplift_mean'], a['uplift_lower'], a['uplift_upper'])}")
        shown = pd.DataFrame({
            "channel": df["channel"], "current spend": df["current_spend"].map(money),
            "optimal spend": df["optimal_spend"].map(money), "change": df["change_pct"].map(lambda v: f"{v:+.1f}%"),
            "return, current": df["expected_return_current"].map(money),
            f"return, optimal [{a['credible_interval']:.0%}]": [interval(*r) for r in df[["expected_return_mean", "expected_return_lower",
                                                                 "expected_return_upper"]].to_numpy()],
        })
        table(shown.set_index("channel"))
        bars = pd.concat([pd.DataFrame({"channel": df["channel"], "split": "current", "spend": df["current_spend"]}),
                          pd.DataFrame({"channel": df["channel"], "split": "optimal", "spend": df["optimal_spend"]})])
        st.altair_chart(alt.Chart(bars).mark_bar().encode(
            x=alt.X("channel:N", title=None), xOffset="split:N", y=alt.Y("spend:Q", title="spend"),
            color=alt.Color("split:N", scale=alt.Scale(range=["#9e9e9e", "#1f77b4"])),
            tooltip=["channel", "split", alt.Tooltip("spend:Q", format=",.0f")]), width="stretch")
        uniform = len({b for b in bounds}) == 1
        if uniform:
            cmd = (f"ltae optimize --run {path} --budget {float(budget):.0f} --bounds {bounds[0][0]:g},{bounds[0][1]:g}"
                   + (f" --risk-quantile {risk:g}" if risk is not None else "")
                   + ("" if include_lt else " --short-term-only"))
            st.caption("The same numbers from the command line:")
            st.code(cmd, language="bash", wrap_lines=True)


@st.cache_resource(max_entries=64, show_spinner="Computing the scenario ...")
def scenario(path: str, stamp: float, plan_key: str, _plan, ref_key: str | None, _reference, name: str,
             ref_name: str | None):
    run = get_run(path, stamp)
    return run_scenario(run, _plan, _reference, max_draws=SCENARIO_DRAWS, plan_name=name, reference_name=ref_name)


@st.cache_resource(show_spinner=False)
def upload_dir() -> Path:
    """This server's private folder for uploaded plans (mode 0700; they are read from files so that
    messages name the file's lines)."""
    return Path(tempfile.mkdtemp(prefix="ltae-dashboard-uploads-"))


def _frame_key(df: pd.DataFrame) -> str:
    return hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()


def _upload(uploaded, folder: Path) -> tuple[str, Path]:
    path = folder / f"{hashlib.sha256(uploaded.getvalue()).hexdigest()[:16]}.csv"
    path.write_bytes(uploaded.getvalue())
    return hashlib.sha256(uploaded.getvalue()).hexdigest(), path


def _default_pct(plan: int, channel: int) -> float:
    """Starting points to edit: plan A +20% everywhere, plan B +50% in the first channel, plan C -20%."""
    if plan == 0:
        return 120.0
    if plan == 1:
        return 150.0 if channel == 0 else 100.0
    return 80.0


def plan_input(run: LoadedRun, i: int, tmp: Path):
    """One plan's inputs; returns (key, plan, name) or None."""
    label = PLAN_LABELS[i]
    mode = st.radio("Plan source", ["Build and edit", "Upload CSV"], horizontal=True, key=f"mode-{i}")
    if mode == "Upload CSV":
        f = st.file_uploader("Plan CSV: Date plus one column per channel, or Date,Channel,Spend", type=["csv"],
                             key=f"upload-{i}")
        if f is None:
            return None
        key, path = _upload(f, tmp)
        return key, path, f"{label} ({f.name})"
    c1, c2 = st.columns(2)
    weeks = c1.number_input("Weeks", min_value=1, max_value=104, value=13, step=1, key=f"weeks-{i}")
    gap = c2.number_input("Weeks between the data and the plan", min_value=0, max_value=52, value=0, step=1,
                          key=f"gap-{i}")
    st.caption("Spend per channel, as % of its recent average (last 13 weeks); edit single weeks in the table.")
    cols = st.columns(min(len(run.channels), 4))
    pct = []
    for j, ch in enumerate(run.channels):
        pct.append(cols[j % len(cols)].number_input(f"{ch} %", min_value=0.0, max_value=1000.0,
                                                    value=_default_pct(i, j), step=10.0,
                                                    key=f"pct-{i}-{j}"))
    base = default_plan(run, int(weeks))
    base[DATE] = base[DATE] + pd.Timedelta(weeks=int(gap))
    for j, ch in enumerate(run.channels):
        base[ch] = base[ch] * pct[j] / 100.0
    ed_key, sig = f"editor-{i}", _frame_key(base)
    if st.session_state.get(f"{ed_key}-built-from") != sig:  # new inputs above: start from the new table
        st.session_state.pop(ed_key, None)
        st.session_state[f"{ed_key}-built-from"] = sig
    edited = st.data_editor(base, hide_index=True, num_rows="dynamic", key=ed_key,
                            column_config={DATE: st.column_config.DateColumn(DATE, format="YYYY-MM-DD"),
                                           **{ch: st.column_config.NumberColumn(ch, format="%.0f", min_value=0.0)
                                              for ch in run.channels}})
    edited = pd.DataFrame(edited)
    return _frame_key(edited), edited, label


def page_scenarios(run: LoadedRun, path: str, stamp: float) -> None:
    st.subheader("Scenario planner")
    if run.irf is None:
        st.warning("This run has no saved impulse responses (posteriors/irf.nc), so its long-term response "
                   "cannot be projected: re-run `ltae run` with the same --out (it resumes from the saved "
                   "posteriors and adds the file).")
        return
    st.caption(f"Weekly spend for weeks after the data (last week {run.last_date:%Y-%m-%d}). Channels and weeks a "
               f"plan leaves out keep the reference's spend. Returns count carry-over and {run.horizon} weeks of "
               "long-term response after each week of spend; sales in currency of sales.")
    tmp = upload_dir()
    n = st.radio("Plans to compare", [1, 2, 3], index=1, horizontal=True, key="n-plans")
    ref_file = st.file_uploader("Reference plan (optional CSV; default: the recent average every week)",
                                type=["csv"], key="reference")
    ref_key, ref, ref_name = None, None, None
    if ref_file is not None:
        ref_key, ref = _upload(ref_file, tmp)
        ref_name = f"reference ({ref_file.name})"
    tabs = st.tabs(list(PLAN_LABELS[:n]))
    inputs = []
    for i, tab in enumerate(tabs):
        with tab:
            inputs.append(plan_input(run, i, tmp))
    results = []
    for i, item in enumerate(inputs):
        if item is None:
            continue
        key, plan, name = item
        try:
            results.append(scenario(path, stamp, key, plan, ref_key, ref, name, ref_name))
        except DataValidationError as e:
            st.error(f"{PLAN_LABELS[i]}: {e}")
    if not results:
        return
    ci = f"{results[0].credible_interval:.0%}"
    st.markdown(f"#### Incremental return vs {results[0].reference_name} (currency of sales, mean [{ci} interval])")
    rows = []
    for r in results:
        a = r.returns().set_index("channel").loc["all"]
        rows.append({"plan": r.plan_name, "planned weeks": int((r.phase == "plan").sum()),
                     "extra spend": money(a.extra_spend),
                     "short term": interval(a.short_term_mean, a.short_term_lower, a.short_term_upper),
                     "long term": interval(a.long_term_mean, a.long_term_lower, a.long_term_upper),
                     "total": interval(a.total_mean, a.total_lower, a.total_upper),
                     "return per extra unit": interval(a.roi_mean, a.roi_lower, a.roi_upper, fmt=ratio),
                     "P(total > 0)": "-" if not np.isfinite(a.prob_positive) else f"{a.prob_positive:.0%}"})
    table(pd.DataFrame(rows).set_index("plan"))

    q = (1 - results[0].credible_interval) / 2
    frames = []
    first = results[0]
    frames.append(pd.DataFrame({DATE: first.dates, "series": first.reference_name,
                                "mean": first.sales_reference.mean(0),
                                "lower": np.quantile(first.sales_reference, q, 0),
                                "upper": np.quantile(first.sales_reference, 1 - q, 0)}))
    for r in results:
        frames.append(pd.DataFrame({DATE: r.dates, "series": r.plan_name, "mean": r.sales_plan.mean(0),
                                    "lower": np.quantile(r.sales_plan, q, 0),
                                    "upper": np.quantile(r.sales_plan, 1 - q, 0)}))
    paths = pd.concat(frames, ignore_index=True)
    hist = first.history.iloc[-26:]
    actual = pd.DataFrame({DATE: hist.index, "series": "actual sales", "mean": hist.values})
    domain = ["actual sales", first.reference_name, *[r.plan_name for r in results]]
    palette = ["#222222", "#9e9e9e", *PLAN_COLORS[:len(results)]]
    color = alt.Color("series:N", title=None, scale=alt.Scale(domain=domain, range=palette))
    chart = (alt.Chart(paths).mark_area(opacity=0.12).encode(x=f"{DATE}:T", y="lower:Q", y2="upper:Q", color=color)
             + alt.Chart(pd.concat([actual, paths], ignore_index=True)).mark_line().encode(
                 x=alt.X(f"{DATE}:T", title=None),
                 y=alt.Y("mean:Q", title=f"{run.target_name} per week", scale=alt.Scale(zero=False)),
                 color=color, tooltip=[DATE, "series", alt.Tooltip("mean:Q", format=",.0f")]))
    st.markdown(f"#### Predicted weekly sales (mean and {ci} predictive interval)")
    st.altair_chart(chart, width="stretch")

    st.markdown("#### Incremental return per channel")
    cols = st.columns(len(results))
    for col, r in zip(cols, results, strict=True):
        with col:
            st.markdown(f"**{r.plan_name}**")
            t = r.returns()
            table(pd.DataFrame({
                "channel": t["channel"], "extra spend": t["extra_spend"].map(money),
                "short term": [interval(*x) for x in t[["short_term_mean", "short_term_lower",
                                                        "short_term_upper"]].to_numpy()],
                "long term": [interval(*x) for x in t[["long_term_mean", "long_term_lower",
                                                       "long_term_upper"]].to_numpy()],
                "total": [interval(*x) for x in t[["total_mean", "total_lower", "total_upper"]].to_numpy()],
            }).set_index("channel"))
    out = pd.concat([r.to_frame().assign(plan=r.plan_name) for r in results], ignore_index=True)
    out = out[["plan", *[c for c in out.columns if c != "plan"]]]
    st.download_button("Download scenario CSV", out.to_csv(index=False).encode(), file_name="scenario.csv",
                       mime="text/csv")


PAGE_FUNCS = {"Overview": page_overview, "Budget": page_budget, "Scenarios": page_scenarios}


def main() -> None:
    st.set_page_config(page_title="ltae dashboard", layout="wide")
    if not token_ok():
        return
    opts = options()
    runs = dict(discover_runs(str(Path(opts.runs).resolve()), opts.store))
    wanted = st.query_params.get("run") or opts.run
    if wanted:
        p = str(Path(wanted).resolve())
        if p not in runs.values():
            runs = {p: p, **runs}
    with st.sidebar:
        st.title("ltae")
        if not runs:
            st.info(f"No runs found under {Path(opts.runs).resolve()}: pass --runs, --store or ?run=.")
        labels = list(runs)
        index = next((k for k, v in enumerate(runs.values()) if wanted and v == str(Path(wanted).resolve())), 0)
        label = st.selectbox("Run", labels, index=index) if labels else None
        page_q = st.query_params.get("page")
        page = st.radio("Page", PAGES, index=PAGES.index(page_q) if page_q in PAGES else 0)
    if label is None:
        st.title("ltae dashboard")
        st.write("Run `ltae run --out DIR` first, then open it here.")
        return
    path = runs[label]
    try:
        run = open_run(path)
    except DataValidationError as e:
        st.error(str(e))
        return
    stamp = (Path(path) / "manifest.json").stat().st_mtime
    ds = run.dataset
    st.title(f"{page}: run {run.run_id}")
    st.caption(f"{path} · {ds.n_weeks} weeks {ds.dates[0]:%Y-%m-%d} to {ds.dates[-1]:%Y-%m-%d} · target "
               f"{run.target_name} · channels: {', '.join(run.channels)}")
    show_warnings(run)
    PAGE_FUNCS[page](run, path, stamp)


if __name__ == "__main__":
    main()
