"""Calibration with experiments (lift tests): the file format, its reader, and how each test compares
with the fitted short-term model.

A lift test changed one channel's spend over some weeks and measured the extra sales. The file is a
CSV with one row per test:

=================  ==================================================================================
column             meaning
=================  ==================================================================================
``channel``        the channel whose spend was changed (a spend column of the data)
``start``, ``end`` first and last week of the spend change (dates of the data's weeks, inclusive)
``spend_change``   the change of the channel's spend over those weeks in total (currency of spend);
                   negative for a hold-out (spend cut); the changed spend must stay >= 0 in every
                   week
``spread``         optional: how the change is spread over the weeks: ``even`` (default: the same
                   amount every week) or ``proportional`` (in proportion to the data's spend in each
                   week: a hold-out cutting a share of the planned spend; a go-dark is
                   ``spend_change`` = minus the channel's spend over the weeks)
``lift``           the extra sales measured (currency of sales) over the weeks ``start`` ..
                   ``measured_until``; negative when spend was cut
``lift_se``        the standard error of ``lift`` (currency of sales, > 0)
``measured_until`` optional: the last week of the measurement (default ``end``; later to count the
                   carry-over after the change)
``name``           optional: a label for the report
=================  ==================================================================================

Each test enters the short-term model as an exact Gaussian observation of the channel's response
curve over the test window (``ShortTermMMM(lift_tests=...)``). After the fit
:func:`lift_test_check` compares each measured lift with what the model predicts: with the tests in
the likelihood (the posterior leans toward each test, so this alone is lenient), and from the same
model fitted without any test (what the sales data alone say; the pipeline fits it unless
``lift_tests_refit = false``). A test "disagrees" when the measured lift is 2 or more standard
deviations (its standard error and the prediction's, combined) from either prediction.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ltae.data.names import name_key
from ltae.data.validate import (
    DataValidationError,
    Table,
    _listing,
    find_column,
    fmt_date,
    fmt_value,
    normalize_headers,
    to_float,
    weekday_name,
)
from ltae.models.mmm import spread_change

REQUIRED = ("channel", "start", "end", "spend_change", "lift", "lift_se")
OPTIONAL = ("measured_until", "spread", "name")
COLUMNS = ("name", "channel", "start", "end", "measured_until", "spend_change", "spread", "lift", "lift_se")
SPREADS = ("even", "proportional")
AGREE_Z = 2.0  # |measured - predicted| / sd below which a test agrees with the model


def _fail(table: Table, problem: str, column: str | None = None, label=None, hint: str | None = None):
    table.fail(problem, column=column, label=label, context_cols=("channel",), hint=hint)


def _table(source, name: str | None) -> Table:
    from ltae.data.load import _frame_table, read_csv_table

    if isinstance(source, pd.DataFrame):
        return _frame_table(source, name or "lift tests")
    path = Path(source)
    if path.is_dir():
        raise DataValidationError("is a folder, not a lift-test CSV file", file=str(path))
    return read_csv_table(path, name or path.name)


def _parse_dates(table: Table, cols: dict[str, str], weeks: pd.DatetimeIndex) -> dict[str, pd.Series]:
    """The date columns, read in the one format (of the data loader's) that reads every cell and puts the
    most dates on the data's weeks (this settles DD/MM against MM/DD)."""
    from ltae.data.validate import _DATE_FORMATS, is_missing_text

    raw = {k: table.df[c] for k, c in cols.items()}
    text = {k: v.astype(object).where(v.notna(), "").astype(str).str.strip() for k, v in raw.items()}
    for k, s in text.items():
        empty = is_missing_text(s)
        if k == "measured_until":
            continue
        if empty.any():
            _fail(table, "the date is empty", cols[k], empty[empty].index[0], "every test needs a start and an end")
    best, best_hits = None, -1
    for fmt, _human in _DATE_FORMATS:
        parsed = {}
        for k, s in text.items():
            if pd.api.types.is_datetime64_any_dtype(raw[k]):
                parsed[k] = pd.to_datetime(raw[k])
                continue
            try:
                parsed[k] = pd.to_datetime(s.where(~is_missing_text(s), None), format=fmt, errors="coerce")
            except (ValueError, TypeError):
                parsed = None
                break
        if parsed is None:
            continue
        ok = all(parsed[k].notna().eq(~is_missing_text(text[k])).all() for k in parsed)
        if not ok:
            continue
        hits = sum(int(parsed[k].isin(weeks).sum()) for k in parsed)
        if hits > best_hits:
            best, best_hits = parsed, hits
    if best is None:  # no one format reads every date: name the first cell ISO dates cannot read
        for k, s in text.items():
            bad = pd.to_datetime(s.where(~is_missing_text(s), None), format="ISO8601", errors="coerce").isna() \
                & ~is_missing_text(s)
            if bad.any():
                label = bad[bad].index[0]
                _fail(table, f"cannot read date {fmt_value(s.at[label])}", cols[k], label,
                      "write dates as YYYY-MM-DD (e.g. 2021-01-04), the dates of the data's weeks")
        raise DataValidationError("the dates are in mixed formats", file=table.name,
                                  hint="write every date as YYYY-MM-DD")
    return {k: v.dt.tz_localize(None) if getattr(v.dt, "tz", None) is not None else v for k, v in best.items()}


def _check_week(table: Table, column: str, label, date: pd.Timestamp, weeks: pd.DatetimeIndex) -> None:
    if date in weeks:
        return
    first, last = weeks[0], weeks[-1]
    if date < first or date > last:
        _fail(table, f"{fmt_date(date)} is outside the data's weeks ({fmt_date(first)} to {fmt_date(last)})",
              column, label, "a lift test must lie inside the modelled weeks")
    nearest = weeks[int(np.argmin(np.abs((weeks - date).days)))]
    if date.weekday() != first.weekday():
        _fail(table, f"{fmt_date(date)} is a {weekday_name(date)}, but the data's weeks are dated on "
              f"{weekday_name(first)}s", column, label, f"use the date of the week, e.g. {fmt_date(nearest)}")
    _fail(table, f"{fmt_date(date)} is not one of the data's weeks", column, label,
          f"use the date of a week of the data, e.g. {fmt_date(nearest)}")


def read_lift_tests(source, dataset, name: str | None = None) -> pd.DataFrame:
    """Read and check lift tests (a CSV path or a DataFrame with the columns of the module docstring)
    against ``dataset`` (an :class:`~ltae.data.dataset.MMMDataset`).

    Returns one row per test with the columns ``name, channel, start, end, measured_until,
    spend_change, lift, lift_se`` (channel spelled as in the data, dates as Timestamps of the data's
    weeks, numbers as floats). Raises :class:`~ltae.data.validate.DataValidationError` naming the file,
    column and row (line of the CSV) of the first problem: a missing column, an unknown channel, a date
    that is not one of the data's weeks (or not on its weekday), ``start`` after ``end``,
    ``measured_until`` before ``end``, a number that is missing or not finite, a standard error that is
    not positive, a zero change, or a change that makes a week's spend negative."""
    from ltae.data.panel import PanelDataset

    if isinstance(dataset, PanelDataset):
        raise DataValidationError("lift tests calibrate the model of one market's (or national) data; this run has "
                                  f"{len(dataset)} markets", file=str(source) if not isinstance(source, pd.DataFrame)
                                  else name or "lift tests", hint="run without --lift-tests, or on the national data")
    table = _table(source, name)
    normalize_headers(table)
    cols = {}
    for c in REQUIRED + OPTIONAL:
        hit = find_column(table.df.columns, c)
        if hit is not None:
            cols[c] = hit
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise DataValidationError(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(repr(c) for c in missing)}",
            file=table.name, column=missing[0], row=table.header_row, row_kind=table.row_kind,
            hint=f"a lift-test file has the columns {', '.join(REQUIRED)} (and optionally measured_until, name); "
                 f"found: {_listing(table.df.columns)}")
    df = table.df
    weeks = pd.DatetimeIndex(dataset.dates)
    channels = list(dataset.channels)
    keys = {name_key(c): c for c in channels}
    chan = []
    for label, v in df[cols["channel"]].items():
        v = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
        hit = v if v in channels else keys.get(name_key(v))
        if hit is None:
            _fail(table, f"{fmt_value(v)} is not a channel of the data" if v else "the channel is empty",
                  cols["channel"], label, f"channels: {_listing(channels)}")
        chan.append(hit)
    nums = {}
    for c, what in (("spend_change", "spend change"), ("lift", "lift"), ("lift_se", "standard error")):
        vals, bad = to_float(df[cols[c]])
        for label in df.index:
            v = vals.at[label]
            if bad.at[label]:
                _fail(table, f"{what} {fmt_value(df.at[label, cols[c]])} is not a number", cols[c], label,
                      "use plain numbers (e.g. -45000.5)")
            if not np.isfinite(v):
                _fail(table, f"the {what} is {'missing' if np.isnan(v) else fmt_value(float(v))}", cols[c], label,
                      f"every test needs a finite {what}")
        nums[c] = vals
    date_cols = {k: cols[k] for k in ("start", "end", "measured_until") if k in cols}
    dates = _parse_dates(table, date_cols, weeks)
    out = []
    for k, label in enumerate(df.index):
        start, end = dates["start"].at[label], dates["end"].at[label]
        until = dates["measured_until"].at[label] if "measured_until" in dates else pd.NaT
        for key, d in (("start", start), ("end", end), ("measured_until", until)):
            if not pd.isna(d):
                _check_week(table, cols[key], label, pd.Timestamp(d), weeks)
        if start > end:
            _fail(table, f"start {fmt_date(start)} is after end {fmt_date(end)}", cols["start"], label)
        until = end if pd.isna(until) else until
        if until < end:
            _fail(table, f"measured_until {fmt_date(until)} is before end {fmt_date(end)}",
                  cols["measured_until"], label, "the measurement ends on or after the last week of the change")
        se = float(nums["lift_se"].at[label])
        if se <= 0:
            _fail(table, f"the standard error is {fmt_value(se)}", cols["lift_se"], label,
                  "a standard error must be > 0")
        change = float(nums["spend_change"].at[label])
        if change == 0:
            _fail(table, "the spend change is 0: a test with no change says nothing about the channel",
                  cols["spend_change"], label)
        spread = "even"
        if "spread" in cols:
            raw = df.at[label, cols["spread"]]
            raw = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw).strip().lower()
            if raw not in ("", "nan", *SPREADS):
                _fail(table, f"spread {fmt_value(raw)} is not one of {', '.join(SPREADS)}", cols["spread"], label,
                      "leave it empty for even")
            spread = raw if raw in SPREADS else "even"
        in_test = (weeks >= start) & (weeks <= end)
        x = dataset.spend[chan[k]].to_numpy(dtype=float)[in_test]
        n_w = int(in_test.sum())
        if spread == "proportional" and not x.sum() > 0:
            _fail(table, "spread is proportional but the channel has no spend in these weeks", cols["spread"], label,
                  "use even to spread the change over weeks without spend")
        changed = x + spread_change(x, change, spread)
        neg = changed < -1e-9 * np.maximum(1.0, np.abs(x))
        if neg.any():
            j = int(np.flatnonzero(neg)[0])
            how = (f"spread evenly ({change / n_w:,.2f} a week)" if spread == "even"
                   else f"in proportion to the spend (more than the {x.sum():,.2f} spent)")
            _fail(table, f"a change of {change:,.2f} over {n_w} weeks {how} makes the spend negative in the week of "
                  f"{fmt_date(weeks[in_test][j])} (the data's spend there is {x[j]:,.2f})", cols["spend_change"],
                  label, (f"spread evenly, a cut can be at most {x.min() * n_w:,.2f} (the smallest week's spend "
                          "times the weeks); a cut of a share of each week's spend is spread = proportional")
                  if spread == "even" else f"a cut can be at most {x.sum():,.2f}")
        nm = df.at[label, cols["name"]] if "name" in cols else None
        nm = str(nm).strip() if nm is not None and str(nm).strip() and str(nm).strip().lower() != "nan" else (
            f"{chan[k]} {fmt_date(start)}..{fmt_date(end)}")
        out.append({"name": nm, "channel": chan[k], "start": pd.Timestamp(start), "end": pd.Timestamp(end),
                    "measured_until": pd.Timestamp(until), "spend_change": change, "spread": spread,
                    "lift": float(nums["lift"].at[label]), "lift_se": se})
    return pd.DataFrame(out, columns=list(COLUMNS))


def lift_tests_frame(tests: pd.DataFrame) -> pd.DataFrame:
    """The tests as the run folder's ``lift_tests.csv`` holds them (dates as YYYY-MM-DD)."""
    out = tests.loc[:, list(COLUMNS)].copy()
    for c in ("start", "end", "measured_until"):
        out[c] = pd.to_datetime(out[c]).dt.strftime("%Y-%m-%d")
    return out


def lift_tests_hash(tests: pd.DataFrame | None) -> str | None:
    """A hash of the tests' content (None without tests): part of the short-term step key, so a
    changed test refits and an unchanged one (even re-saved with other quoting) resumes."""
    if tests is None or not len(tests):
        return None
    rows = lift_tests_frame(tests).to_dict(orient="records")
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def lift_tests_within(tests: pd.DataFrame | None, dates) -> pd.DataFrame | None:
    """The tests measured entirely inside ``dates`` (a fit on fewer weeks: holdout, backtest folds)."""
    if tests is None or not len(tests):
        return None
    dates = pd.DatetimeIndex(dates)
    keep = (pd.to_datetime(tests["start"]) >= dates[0]) & (pd.to_datetime(tests["measured_until"]) <= dates[-1])
    kept = tests[keep.to_numpy()].reset_index(drop=True)
    return kept if len(kept) else None


def predicted_lift_draws(mmm, tests: pd.DataFrame) -> np.ndarray:
    """(S, n) posterior draws of the lift each test should have measured according to a fitted
    :class:`~ltae.models.mmm.ShortTermMMM` (with or without the tests in its likelihood), currency of
    sales: the channel's contribution with the test's changed spend minus with the data's spend, summed
    over ``start``..``measured_until`` (carry-over of the change into those weeks included). The same
    quantity the tests' likelihood rows describe (ROI effect x lift per unit of ROI)."""
    dates = pd.DatetimeIndex(mmm.dates)
    base = mmm.media_contributions()
    out = np.empty((base.shape[0], len(tests)))
    for i, r in enumerate(tests.itertuples()):
        c = list(mmm.channels).index(r.channel)
        test = (dates >= pd.Timestamp(r.start)) & (dates <= pd.Timestamp(r.end))
        window = (dates >= pd.Timestamp(r.start)) & (dates <= pd.Timestamp(r.measured_until))
        spend = np.array(mmm.spend, dtype=float)
        spend[test, c] += spread_change(spend[test, c], float(r.spend_change), getattr(r, "spread", None))
        changed = mmm.media_contributions(spend=np.maximum(spend, 0.0))
        out[:, i] = (changed[:, window, c] - base[:, window, c]).sum(axis=1)
    return out


def _summary(draws: np.ndarray, ci: float) -> dict:
    q = (1 - ci) / 2
    lo, hi = np.quantile(draws, [q, 1 - q])
    return {"mean": float(draws.mean()), "sd": float(draws.std()), "lower": float(lo), "upper": float(hi)}


def lift_test_check(mmm, without=None, credible_interval: float = 0.95) -> list[dict] | None:
    """Each lift test of a fitted :class:`~ltae.models.mmm.ShortTermMMM` (``mmm.lift_tests``) against
    the model (None without tests): one dict per test with the test's own fields and, in currency of
    sales:

    * ``predicted_mean``, ``predicted_sd``, ``predicted_lower``, ``predicted_upper``: the posterior of
      the lift the model expects from the test's spend change, with the tests in the likelihood (it
      leans toward them: a lenient check), and ``z`` = |lift - predicted_mean| / sqrt(lift_se² +
      predicted_sd²);
    * with ``without`` (the same model fitted without any lift test): ``without_tests_mean``,
      ``without_tests_sd``, ``without_tests_lower``, ``without_tests_upper`` and ``without_tests_z``,
      what the sales data alone predict for the test (the honest check); else these are None;
    * ``measured_roi``: lift / spend_change, the test's own incremental return per unit of spend;
    * ``agrees``: every z below 2."""
    tests = mmm.lift_tests
    if tests is None or not len(tests):
        return None
    with_t = predicted_lift_draws(mmm, tests)
    alone = predicted_lift_draws(without, tests) if without is not None else None
    out = []
    for i, r in enumerate(tests.itertuples()):
        se = float(r.lift_se)
        rec = {"name": str(getattr(r, "name", "") or r.channel), "channel": r.channel, "start": fmt_date(r.start),
               "end": fmt_date(r.end), "measured_until": fmt_date(r.measured_until),
               "spend_change": float(r.spend_change), "spread": str(getattr(r, "spread", "even")),
               "lift": float(r.lift), "lift_se": se, "measured_roi": float(r.lift / r.spend_change)}
        zs = []
        for key, draws in (("predicted", with_t), ("without_tests", alone)):
            if draws is None:
                rec.update({f"{key}_{k}": None for k in ("mean", "sd", "lower", "upper")})
                rec["z" if key == "predicted" else f"{key}_z"] = None
                continue
            sm = _summary(draws[:, i], credible_interval)
            rec.update({f"{key}_{k}": v for k, v in sm.items()})
            z = abs(float(r.lift) - sm["mean"]) / float(np.hypot(se, sm["sd"]))
            rec["z" if key == "predicted" else f"{key}_z"] = z
            zs.append(z)
        rec["agrees"] = bool(all(z < AGREE_Z for z in zs))
        out.append(rec)
    return out


def lift_test_checklist_row(records: list[dict] | None) -> dict:
    """The checklist's "Lift tests" row: pass when every test agrees with the model, warn naming those
    that do not ("not run" without tests)."""
    threshold = f"|measured − predicted| < {AGREE_Z:g} sd for every test"
    if not records:
        return {"check": "Lift tests", "value": None, "threshold": threshold, "status": "not run",
                "action": "Add experiments (--lift-tests FILE) to calibrate the short-term ROIs."}
    bad = [r for r in records if not r["agrees"]]
    if not bad:
        return {"check": "Lift tests", "value": 0, "threshold": threshold, "status": "pass",
                "action": "None needed: the model agrees with "
                          + ("the lift test." if len(records) == 1 else f"all {len(records)} lift tests.")}
    parts = []
    for r in bad:
        alone = (f"the data alone predict {r['without_tests_mean']:,.0f} ± {r['without_tests_sd']:,.0f}, "
                 if r.get("without_tests_mean") is not None else "")
        parts.append(f"{r['name']} (measured {r['lift']:,.0f} ± {r['lift_se']:,.0f}; {alone}the model with the "
                     f"tests {r['predicted_mean']:,.0f} ± {r['predicted_sd']:,.0f})")
    return {"check": "Lift tests", "value": len(bad), "threshold": threshold, "status": "warn",
            "action": "The data and the experiment disagree: " + "; ".join(parts) + ". Check the test's design "
                      "(dates, spend change, what was measured) and the channel's data; the short-term ROI "
                      "leans toward the test in proportion to its standard error."}
