"""Forward scenarios: what a weekly spend plan for the coming weeks returns, short and long term.

A **spend plan** gives weekly spend per channel for weeks after the data end (a CSV file or a
DataFrame: ``Date`` plus one column per channel, or long ``Date, Channel, Spend``). What a plan does
not say takes the reference's spend: channels it leaves out, weeks before its first week (a plan may
start after a gap) and, for plans of different lengths, weeks after its end. The **reference** is
another plan, by default the *recent average*: each channel's mean weekly spend over the last
``recent_weeks`` (13) weeks of the data, every week.

For every posterior draw, each week's predicted sales are

* **short term**: the MMM's media response, Hill(Adstock(spend)) x beta per channel, computed on the
  spend history followed by the plan, so carry-over from the last weeks of data and into the weeks
  after the plan are counted;
* **long term**: the BVAR's impulse responses of base sales to one unit of spend (``posteriors/irf.nc``,
  saved by the pipeline) convolved with the plan's spend minus the recent average: the carried-forward
  base below already reflects spending as usual, so only the deviation from it moves the brand;
* **base sales**: the MMM's filtered level at the last week carried forward (a random walk: its
  variance grows by sigma_level^2 a week), Fourier seasonality continued, controls held at their last
  values, plus observation noise (``ShortTermMMM.base_forecast``). The same base draws serve every plan,
  so they cancel exactly in a plan's difference from the reference.

The **incremental return** of a plan is the sum over the scenario window of (plan - reference)
sales, split into short term and long term, per channel (the MMM is additive over channels and the
VAR is linear, so the split is exact) and overall. The window runs from the first week after the
data to ``max(horizon, l_max) - 1`` weeks after the last planned week, so every extra unit of spend
gets its full adstock carry-over and ``horizon`` weeks of long-term response (the definition of
long-term ROI). Spend after the plans is the recent average in both. Draws of the two models are
paired at random (they are separate posteriors, as in ``ltae.analysis.roi.align_draws``).

Units: sales, contributions and returns are in the currency of sales (the run's target); spend is in
the currency of spend; ROI is currency of sales per currency unit of spend.

Everything a run folder holds is read by :func:`load_run` (the one place that reads run files).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ltae.data.validate import (
    DATE,
    DataValidationError,
    Table,
    check_duplicates,
    check_finite,
    check_nonnegative,
    find_column,
    find_date_column,
    fmt_date,
    fmt_value,
    name_key,
    normalize_headers,
    numeric_column,
    parse_dates,
    weekday_name,
)

RECENT_WEEKS = 13
MAX_PLAN_WEEKS = 260  # five years ahead at most
IRF_FILE = "posteriors/irf.nc"
IRF_MAX_DRAWS = 4000
CHANNEL, SPEND = "Channel", "Spend"
SALES_UNIT = "currency of sales"
SPEND_UNIT = "currency of spend"
ROI_UNIT = "currency of sales per currency unit of spend"
TIDY_COLUMNS = ["scenario", "date", "phase", "channel", "metric", "unit", "mean", "lower", "upper"]


# ------------------------------------------------------------------------------------------------
# the impulse-response artefact (written by the pipeline, read by load_run)
# ------------------------------------------------------------------------------------------------


def irf_dataset(irf: dict, max_draws: int = IRF_MAX_DRAWS, status: str = "estimated"):
    """``BVAR.calculate_irf`` output -> xarray Dataset for ``posteriors/irf.nc``.

    ``base_sales`` (draw, horizon, channel): draws of the base-sales response (currency of sales) in
    week ``horizon`` after one currency unit of spend, stable draws only, at most ``max_draws``
    (evenly spaced over the pooled draws, so every replicate and chain is represented);
    ``mean``/``lower``/``upper`` (horizon, response, channel): summaries over all draws, for every
    endogenous series (brand metrics in their own units)."""
    import xarray as xr

    draws = np.asarray(irf["draws"], dtype=float)  # (S, H, n, C)
    S = len(draws)
    idx = np.arange(S)
    if S > max_draws:
        idx = np.unique(np.linspace(0, S - 1, max_draws).round().astype(int))
    base = draws[idx, :, 0, :] / float(irf.get("shock_size", 1.0))
    if status != "estimated":  # a long-term model the run cannot support adds nothing to a scenario
        base = np.zeros_like(base)
    coords = {"horizon": np.arange(draws.shape[1]), "response": list(irf["endog_names"]),
              "channel": list(irf["exog_names"])}
    ds = xr.Dataset(
        {"base_sales": (("draw", "horizon", "channel"), base),
         "mean": (("horizon", "response", "channel"), irf["mean"]),
         "lower": (("horizon", "response", "channel"), irf["lower"]),
         "upper": (("horizon", "response", "channel"), irf["upper"])},
        coords=coords,
        attrs={"units": "response per currency unit of spend in week 0 (base sales: currency of sales)",
               "shock_size": float(irf.get("shock_size", 1.0)), "n_draws": int(irf["n_draws"]),
               "n_unstable": int(irf["n_unstable"]), "credible_interval": float(irf["credible_interval"]),
               "long_term_status": status},
    )
    return ds


# ------------------------------------------------------------------------------------------------
# a finished run, loaded
# ------------------------------------------------------------------------------------------------


@dataclass
class LoadedRun:
    """What the scenario planner and the dashboard need from a finished run (no refit)."""

    run_dir: Path
    manifest: dict
    config: object  # ltae.config.RunConfig
    dataset: object  # ltae.data.MMMDataset
    mmm: object  # ltae.models.mmm.ShortTermMMM with its posterior
    lt_roi_draws: np.ndarray  # (S, C) long-term ROI draws (roi_draws.csv)
    roi: pd.DataFrame  # roi.csv
    diagnostics: dict  # diagnostics.json (checklist included)
    irf: object | None  # xarray Dataset of posteriors/irf.nc (None: a run from before it existed)

    @property
    def run_id(self) -> str:
        """The run's id (from its manifest)."""
        return str(self.manifest.get("run_id", self.run_dir.name))

    @property
    def channels(self) -> list[str]:
        """The run's channels, in the order of its data."""
        return list(self.dataset.spend.columns)

    @property
    def horizon(self) -> int:
        """The long-term horizon in weeks."""
        return int(self.config.horizon)

    @property
    def last_date(self) -> pd.Timestamp:
        """The last week of the data the run was fitted on."""
        return pd.Timestamp(self.dataset.dates[-1])

    @property
    def target_name(self) -> str:
        """The name of the target (sales) column."""
        return self.dataset.target_name

    @property
    def checklist(self) -> list[dict]:
        """The run's validation checklist (from diagnostics.json)."""
        return list(self.diagnostics.get("checklist") or [])

    @functools.cached_property
    def response(self):
        """The budget optimiser's response model, built as ``ltae optimize`` builds it."""
        from ltae.analysis.optimize import ResponseModel

        return ResponseModel.from_mmm(self.mmm, lt_roi=self.lt_roi_draws, seed=self.config.sampling.seed)

    def recent_spend(self, weeks: int = RECENT_WEEKS) -> np.ndarray:
        """(C,) mean weekly spend per channel over the last ``weeks`` weeks of the data."""
        weeks = max(1, min(int(weeks), self.dataset.n_weeks))
        return self.dataset.spend.values[-weeks:].mean(axis=0)

    def irf_base_draws(self) -> np.ndarray:
        """(S, H, C) draws of the base-sales response per currency unit of spend."""
        if self.irf is None:
            raise DataValidationError(
                f"the run has no impulse-response draws ({IRF_FILE})", file=str(self.run_dir),
                hint="it was made before scenarios existed: run `ltae run` again with the same --out "
                     "(it resumes from the saved posteriors and writes the file)")
        return self.irf["base_sales"].sel(channel=self.channels).values


def load_run(run_dir) -> LoadedRun:
    """Read a finished run folder (no refit) through :func:`ltae.store.runs.open_run`, which refuses a
    missing, incomplete or mixed folder. ``run_dir``: a path or an open :class:`SavedRun`.

    Uses manifest.json (configuration), prepared_data.csv, posteriors/short_term.nc, roi_draws.csv,
    roi.csv, diagnostics.json and posteriors/irf.nc (optional)."""
    import xarray as xr

    from ltae.models.mmm import ShortTermMMM
    from ltae.store.runs import SavedRun, open_run

    saved = run_dir if isinstance(run_dir, SavedRun) else open_run(run_dir)
    cfg, ds = saved.config, saved.dataset
    if hasattr(ds, "markets"):
        raise DataValidationError("the scenario planner (and the dashboard's pages built on it) works on one-market "
                                  "runs; this run has several markets", file=str(saved.path),
                                  hint="use `ltae optimize --run` for the national budget, or run one market")
    mmm = ShortTermMMM.from_dataset(ds, cfg.channel_groups, cfg.mmm_priors)
    mmm.idata = saved.posterior("short_term")
    draws = saved.roi_draws()
    lt = draws[[f"long_{c}" for c in ds.spend.columns]].values
    irf = None
    if IRF_FILE in saved.paths:
        irf = xr.open_dataset(saved.file(IRF_FILE), engine="h5netcdf").load()
        irf.close()
    return LoadedRun(run_dir=saved.path, manifest=saved.manifest, config=cfg, dataset=ds, mmm=mmm,
                     lt_roi_draws=lt, roi=saved.roi(), diagnostics=saved.diagnostics(), irf=irf)


# ------------------------------------------------------------------------------------------------
# spend plans: reading and validation
# ------------------------------------------------------------------------------------------------


@dataclass
class SpendPlan:
    """A validated plan: weekly spend (index: week dates, columns: the channels it names)."""

    spend: pd.DataFrame
    name: str
    rows: dict = field(default_factory=dict)  # week -> row/line number in the source (for messages)
    row_kind: str = "row"

    @property
    def start(self) -> pd.Timestamp:
        """The plan's first week."""
        return pd.Timestamp(self.spend.index[0])

    @property
    def end(self) -> pd.Timestamp:
        """The plan's last week."""
        return pd.Timestamp(self.spend.index[-1])

    def fail(self, problem: str, *, week=None, column: str | None = None, hint: str | None = None):
        """Raise a :class:`~ltae.data.validate.DataValidationError` naming the plan's file and, for
        ``week``, its line."""
        row = self.rows.get(pd.Timestamp(week)) if week is not None else None
        raise DataValidationError(problem, file=self.name, column=column, row=row, row_kind=self.row_kind,
                                  context=None if week is None else f"{DATE} {fmt_date(week)}", hint=hint)


def _plan_table(source, name: str | None) -> Table:
    from ltae.data.load import read_csv_table

    if isinstance(source, pd.DataFrame):
        df = source.copy()
        if isinstance(df.index, pd.DatetimeIndex) and find_column(df.columns, DATE) is None:
            df = df.rename_axis(DATE).reset_index()
        df.columns = [str(c) for c in df.columns]
        df.index = pd.RangeIndex(1, len(df) + 1, name="row")
        name = name or "plan"
        if df.empty:
            raise DataValidationError("the plan has no rows", file=name, hint="give one row per week")
        return Table(df, name, "row")
    path = Path(source)
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        raise DataValidationError(f"unsupported plan file type '{path.suffix or '(none)'}'", file=str(path),
                                  hint="write the plan as CSV: Date plus one column per channel, or "
                                       "Date,Channel,Spend")
    return read_csv_table(path, name or path.name)


def _match_channel(value, channels: list[str]) -> str | None:
    k = name_key(value)
    hits = [c for c in channels if name_key(c) == k]
    return hits[0] if hits else None


def read_plan(source, channels, *, name: str | None = None) -> SpendPlan:
    """Read and validate a spend plan (CSV path or DataFrame) for a run with ``channels``.

    Errors (``DataValidationError``, naming file, column and row): no date column, unreadable or
    duplicate dates, rows not 7 days apart, an unknown channel, a spend that is empty, not a number,
    infinite or negative, a channel missing some weeks of a long plan."""
    if isinstance(source, SpendPlan):
        return source
    channels = list(channels)
    table = _plan_table(source, name)
    normalize_headers(table)
    dcol = find_date_column(table)
    dates = parse_dates(table, dcol)
    df = table.df.rename(columns={dcol: DATE})
    df[DATE] = dates
    table = Table(df, table.name, table.row_kind, {DATE: dcol})
    listing = ", ".join(channels)
    ch_col, sp_col = find_column(df.columns, CHANNEL), find_column(df.columns, SPEND)
    if ch_col is not None and sp_col is not None:  # long: Date, Channel, Spend
        extra = [c for c in df.columns if c not in (DATE, ch_col, sp_col)]
        if extra:
            table.fail(f"unexpected column '{extra[0]}' in a long plan (Date, Channel, Spend)", column=extra[0],
                       hint="a long plan has the columns Date, Channel and Spend only")
        table.original.update({CHANNEL: ch_col, SPEND: sp_col})
        df = df.rename(columns={ch_col: CHANNEL, sp_col: SPEND})
        table.df = df
        names = []
        for label, v in df[CHANNEL].items():
            hit = _match_channel(v, channels) if isinstance(v, str) and v.strip() else None
            if hit is None:
                table.fail(f"unknown channel {fmt_value(v)}", column=CHANNEL, label=label,
                           hint=f"the run's channels are {listing}")
            names.append(hit)
        df[CHANNEL] = names
        values = _spend_values(table, SPEND, context=(DATE, CHANNEL))
        df[SPEND] = values
        check_duplicates(table, [DATE, CHANNEL])
        wide = df.pivot(index=DATE, columns=CHANNEL, values=SPEND)
        wide = wide[[c for c in channels if c in wide.columns]].sort_index()
        rows = df.groupby(DATE).apply(lambda g: int(g.index.min()), include_groups=False).to_dict()
        for c in wide.columns:
            miss = wide.index[wide[c].isna()]
            if len(miss):
                raise DataValidationError(
                    f"channel '{c}' has no row for the week {fmt_date(miss[0])}", file=table.name,
                    column=table.label(CHANNEL), hint="give every planned week for each channel in the plan "
                    "(0 for no spend), or leave the channel out to keep its reference spend")
    else:  # wide: Date + one column per channel
        cols = [c for c in df.columns if c != DATE]
        if not cols:
            raise DataValidationError("the plan has no channel columns", file=table.name,
                                      row=table.header_row, row_kind=table.row_kind,
                                      hint=f"add a column per channel ({listing}) or use Date,Channel,Spend")
        mapping = {}
        for c in cols:
            hit = _match_channel(c, channels)
            if hit is None:
                raise DataValidationError(f"unknown channel column '{c}'", file=table.name, column=c,
                                          row=table.header_row, row_kind=table.row_kind,
                                          hint=f"the run's channels are {listing}")
            if hit in mapping.values():
                raise DataValidationError(f"two columns name the channel '{hit}'", file=table.name, column=c,
                                          row=table.header_row, row_kind=table.row_kind,
                                          hint="keep one column per channel")
            mapping[c] = hit
        for c in cols:
            df[c] = _spend_values(table, c, context=(DATE,))
        check_duplicates(table, [DATE])
        wide = df.rename(columns=mapping).set_index(DATE)[[c for c in channels if c in mapping.values()]]
        wide = wide.sort_index()
        rows = {pd.Timestamp(d): int(lab) for lab, d in df[DATE].items()}
    _check_weekly(wide.index, rows, table, dcol)
    wide.index = pd.DatetimeIndex(wide.index, name=DATE)
    wide.columns.name = None
    return SpendPlan(wide.astype(float), table.name, rows, table.row_kind)


def _check_weekly(weeks: pd.Index, rows: dict, table: Table, dcol: str) -> None:
    """Sorted plan weeks must follow each other 7 days apart (no holes, one row per week)."""
    weeks = pd.DatetimeIndex(weeks)
    for prev, cur in zip(weeks[:-1], weeks[1:], strict=True):
        days = (cur - prev).days
        if days == 7:
            continue
        row = rows[pd.Timestamp(cur)]
        if days % 7 == 0:
            problem = (f"week {fmt_date(prev + pd.Timedelta(days=7))} missing between {fmt_date(prev)} and "
                       f"{fmt_date(cur)}")
            hint = "give every week from the plan's first to its last (0 for no spend)"
        else:
            problem = f"date {fmt_date(cur)} is {days} day{'s' if days != 1 else ''} after the previous week {fmt_date(prev)}"
            hint = "a plan has one row per week, 7 days apart, dated like the run's weeks"
        raise DataValidationError(problem, file=table.name, column=dcol, row=row, row_kind=table.row_kind, hint=hint)


def _spend_values(table: Table, column: str, context) -> pd.Series:
    vals = numeric_column(table, column, what="spend", context_cols=context)
    empty = vals.isna()
    if empty.any():
        table.fail("empty spend", column=column, label=empty[empty].index[0], context_cols=context,
                   hint="write 0 for no spend, or leave the channel out to keep its reference spend")
    check_finite(table, column, vals, what="spend", context_cols=context)
    check_nonnegative(table, column, vals, context_cols=context)
    return vals


def _place(plan: SpendPlan, run: LoadedRun, what: str) -> int:
    """Check a plan against the run's calendar; returns the offset of its first week (1 = the week
    right after the data)."""
    last = run.last_date
    if plan.start.weekday() != last.weekday():
        plan.fail(f"the {what} is dated {weekday_name(plan.start)}s but the run's weeks are dated "
                  f"{weekday_name(last)}s", week=plan.start, column=DATE,
                  hint=f"date each week like the data (its last week is {fmt_date(last)})")
    if plan.start <= last:
        nxt = last + pd.Timedelta(days=7)
        plan.fail(f"the {what} starts on {fmt_date(plan.start)}, before the data ends ({fmt_date(last)})",
                  week=plan.start, column=DATE,
                  hint=f"a plan covers weeks after the data: the first is {fmt_date(nxt)}")
    first = int((plan.start - last).days // 7)
    end = int((plan.end - last).days // 7)
    if end > MAX_PLAN_WEEKS:
        plan.fail(f"the {what} ends {end} weeks after the data; at most {MAX_PLAN_WEEKS} are allowed",
                  week=plan.end, column=DATE, hint="plan at most five years ahead")
    return first


def default_plan(run: LoadedRun, weeks: int = 13, recent_weeks: int = RECENT_WEEKS) -> pd.DataFrame:
    """A wide plan of ``weeks`` weeks right after the data at the recent average spend (to edit)."""
    dates = pd.date_range(run.last_date + pd.Timedelta(days=7), periods=weeks, freq="7D")
    df = pd.DataFrame(np.tile(run.recent_spend(recent_weeks), (weeks, 1)), columns=run.channels)
    df.insert(0, DATE, dates)
    return df


# ------------------------------------------------------------------------------------------------
# the scenario engine
# ------------------------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    """A plan against a reference, draw by draw. Weekly arrays cover ``dates`` (the window)."""

    run_id: str
    target: str
    channels: list[str]
    data_end: pd.Timestamp
    dates: pd.DatetimeIndex  # (W,) the scenario window
    phase: np.ndarray  # (W,) "gap" | "plan" | "after" (for the plan)
    plan_spend: np.ndarray  # (W, C) currency of spend
    reference_spend: np.ndarray  # (W, C)
    baseline_spend: np.ndarray  # (C,) recent average
    horizon: int
    l_max: int
    credible_interval: float
    sales_plan: np.ndarray  # (S, W) predicted sales (base + short + long), noise included
    sales_reference: np.ndarray  # (S, W)
    short_plan: np.ndarray  # (S, W, C) short-term media contribution of each channel
    short_reference: np.ndarray  # (S, W, C)
    long_plan: np.ndarray  # (S, W, C) long-term response to (plan - recent average) spend
    long_reference: np.ndarray  # (S, W, C)
    history: pd.Series = None  # recent observed sales (for figures)
    plan_name: str = "plan"
    reference_name: str = "recent average"

    @property
    def n_draws(self) -> int:
        """Number of posterior draws the scenario was computed with."""
        return self.sales_plan.shape[0]

    @property
    def extra_spend(self) -> np.ndarray:
        """(C,) plan spend minus reference spend over the window."""
        return (self.plan_spend - self.reference_spend).sum(axis=0)

    def increment_draws(self) -> dict:
        """Incremental return of the plan over the window, (S, C) per channel: short, long, total."""
        short = (self.short_plan - self.short_reference).sum(axis=1)
        long = (self.long_plan - self.long_reference).sum(axis=1)
        return {"short_term": short, "long_term": long, "total": short + long}

    def _q(self, x: np.ndarray, axis: int = 0):
        q = (1 - self.credible_interval) / 2
        lo, hi = np.quantile(x, [q, 1 - q], axis=axis)
        return x.mean(axis=axis), lo, hi

    def returns(self) -> pd.DataFrame:
        """Per channel and overall ("all"): extra spend, incremental return short/long/total
        (mean and interval, currency of sales), return per extra unit of spend (``roi_*``) and the
        probability that the total increment is positive.

        ``roi_*`` is NaN where the spend does not change (beyond rounding: 1e-6 of the spend) and, for
        "all", for a reallocation (some channels up, some down), which has no single return per unit.
        For a cut it is the return lost per unit saved. ``prob_positive`` is NaN where nothing changes."""
        inc = self.increment_draws()
        extra = self.extra_spend
        scale = np.abs(self.reference_spend).sum(axis=0) + np.abs(self.plan_spend).sum(axis=0)
        moved = np.abs(extra) > 1e-6 * np.maximum(scale, 1.0)
        one_way = moved.any() and (np.all(extra[moved] > 0) or np.all(extra[moved] < 0))
        defined = [*moved, bool(one_way)]
        rows = []
        for i, ch in enumerate([*self.channels, "all"]):
            pick = (lambda a, i=i: a[:, i]) if ch != "all" else (lambda a: a.sum(axis=1))
            sp = float(extra[i]) if ch != "all" else float(extra.sum())
            row = {"channel": ch, "extra_spend": sp}
            for k in ("short_term", "long_term", "total"):
                m, lo, hi = self._q(pick(inc[k]))
                row.update({f"{k}_mean": float(m), f"{k}_lower": float(lo), f"{k}_upper": float(hi)})
            tot = pick(inc["total"])
            if defined[i]:
                m, lo, hi = self._q(tot / sp)
                row.update({"roi_mean": float(m), "roi_lower": float(lo), "roi_upper": float(hi)})
            else:
                row.update({"roi_mean": np.nan, "roi_lower": np.nan, "roi_upper": np.nan})
            row["prob_positive"] = float((tot > 0).mean()) if np.any(tot != 0) else np.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def weekly(self) -> pd.DataFrame:
        """One row per week: spend of both plans, predicted sales (plan, reference) and the weekly
        incremental return (plan - reference) with intervals."""
        out = pd.DataFrame({DATE: self.dates, "phase": self.phase})
        for i, ch in enumerate(self.channels):
            out[f"plan_spend_{ch}"] = self.plan_spend[:, i]
        for i, ch in enumerate(self.channels):
            out[f"reference_spend_{ch}"] = self.reference_spend[:, i]
        for name, arr in (("plan_sales", self.sales_plan), ("reference_sales", self.sales_reference),
                          ("incremental_short_term", (self.short_plan - self.short_reference).sum(-1)),
                          ("incremental_long_term", (self.long_plan - self.long_reference).sum(-1)),
                          ("incremental_total", self.sales_plan - self.sales_reference)):
            m, lo, hi = self._q(arr)
            out[f"{name}_mean"], out[f"{name}_lower"], out[f"{name}_upper"] = m, lo, hi
        return out

    def to_frame(self) -> pd.DataFrame:
        """The tidy table written as scenario.csv (columns: ``TIDY_COLUMNS``; see docs/outputs.md)."""
        rows: list[dict] = []
        ds = [fmt_date(d) for d in self.dates]

        def add(scenario, date, phase, channel, metric, unit, m, lo, hi):
            rows.append({"scenario": scenario, "date": date, "phase": phase, "channel": channel,
                         "metric": metric, "unit": unit, "mean": float(m), "lower": float(lo), "upper": float(hi)})

        for label, spend, sales, short, long in (
                ("plan", self.plan_spend, self.sales_plan, self.short_plan, self.long_plan),
                ("reference", self.reference_spend, self.sales_reference, self.short_reference,
                 self.long_reference)):
            sm, slo, shi = self._q(sales)
            stm, stlo, sthi = self._q(short)
            ltm, ltlo, lthi = self._q(long.sum(-1))
            for t, d in enumerate(ds):
                ph = self.phase[t]
                for i, ch in enumerate(self.channels):
                    add(label, d, ph, ch, "spend", SPEND_UNIT, spend[t, i], spend[t, i], spend[t, i])
                add(label, d, ph, "all", "sales", SALES_UNIT, sm[t], slo[t], shi[t])
                for i, ch in enumerate(self.channels):
                    add(label, d, ph, ch, "short_term", SALES_UNIT, stm[t, i], stlo[t, i], sthi[t, i])
                add(label, d, ph, "all", "long_term", SALES_UNIT, ltm[t], ltlo[t], lthi[t])
            for i, ch in enumerate(self.channels):
                v = spend[:, i].sum()
                add(label, "", "total", ch, "spend", SPEND_UNIT, v, v, v)
            v = spend.sum()
            add(label, "", "total", "all", "spend", SPEND_UNIT, v, v, v)
            m, lo, hi = self._q(sales.sum(axis=1))
            add(label, "", "total", "all", "sales", SALES_UNIT, m, lo, hi)
        inc = "plan - reference"
        wk = {"short_term": (self.short_plan - self.short_reference).sum(-1),
              "long_term": (self.long_plan - self.long_reference).sum(-1),
              "total_return": self.sales_plan - self.sales_reference}
        q = {k: self._q(v) for k, v in wk.items()}
        d_spend = self.plan_spend - self.reference_spend
        for t, d in enumerate(ds):
            for i, ch in enumerate(self.channels):
                add(inc, d, self.phase[t], ch, "spend", SPEND_UNIT, d_spend[t, i], d_spend[t, i], d_spend[t, i])
            for k, (m, lo, hi) in q.items():
                add(inc, d, self.phase[t], "all", k, SALES_UNIT, m[t], lo[t], hi[t])
        for r in self.returns().itertuples():
            add(inc, "", "total", r.channel, "spend", SPEND_UNIT, r.extra_spend, r.extra_spend, r.extra_spend)
            add(inc, "", "total", r.channel, "short_term", SALES_UNIT, r.short_term_mean, r.short_term_lower,
                r.short_term_upper)
            add(inc, "", "total", r.channel, "long_term", SALES_UNIT, r.long_term_mean, r.long_term_lower,
                r.long_term_upper)
            add(inc, "", "total", r.channel, "total_return", SALES_UNIT, r.total_mean, r.total_lower, r.total_upper)
            add(inc, "", "total", r.channel, "roi", ROI_UNIT, r.roi_mean, r.roi_lower, r.roi_upper)
        return pd.DataFrame(rows, columns=TIDY_COLUMNS)


def _resolve(plan: SpendPlan | None, reference: SpendPlan | None, run: LoadedRun, recent_weeks: int):
    """Weekly spend (W, C) of plan and reference over the window, the recent average and phases."""
    C = len(run.channels)
    baseline = run.recent_spend(recent_weeks)
    f_plan = _place(plan, run, "plan") if plan is not None else None
    f_ref = _place(reference, run, "reference plan") if reference is not None else None
    last = run.last_date
    ends = [int((p.end - last).days // 7) for p in (plan, reference) if p is not None]
    E = max(ends) if ends else 1
    tail = max(run.horizon, run.mmm.priors.l_max) - 1
    W = E + tail
    dates = pd.date_range(last + pd.Timedelta(days=7), periods=W, freq="7D")
    ref = np.tile(baseline, (W, 1))
    if reference is not None:
        k = f_ref - 1
        for c, ch in enumerate(run.channels):
            if ch in reference.spend.columns:
                ref[k:k + len(reference.spend), c] = reference.spend[ch].values
    pl = ref.copy()
    phase = np.full(W, "after", dtype=object)
    if plan is not None:
        k = f_plan - 1
        phase[:k] = "gap"
        phase[k:k + len(plan.spend)] = "plan"
        for c, ch in enumerate(run.channels):
            if ch in plan.spend.columns:
                pl[k:k + len(plan.spend), c] = plan.spend[ch].values
    else:
        phase[:E] = "plan"
    assert pl.shape == (W, C)
    return dates, pl, ref, baseline, phase


def _long_term(irf: np.ndarray, dspend: np.ndarray) -> np.ndarray:
    """Long-term response per channel, (S, W, C): irf (S, H, C) convolved over weeks with dspend (W, C)."""
    S, H, C = irf.shape
    W = len(dspend)
    K = min(H, W)
    out = np.zeros((S, W, C))
    for c in np.flatnonzero(np.any(dspend != 0, axis=0)):  # a channel at the recent average adds nothing
        toeplitz = np.zeros((K, W))  # [h, w] = dspend[w - h]: the spend of week w - h, h weeks back
        for h in range(K):
            toeplitz[h, h:] = dspend[:W - h, c]
        out[:, :, c] = irf[:, :K, c] @ toeplitz
    return out


def run_scenario(run, plan, reference=None, *, recent_weeks: int = RECENT_WEEKS, max_draws: int = 2000,
                 seed: int | None = None, plan_name: str | None = None,
                 reference_name: str | None = None) -> ScenarioResult:
    """Predict a spend plan against a reference plan (default: the recent average spend).

    ``run``: a run folder or a :class:`LoadedRun`; ``plan``/``reference``: a CSV path, a DataFrame or
    a :class:`SpendPlan`; ``max_draws``: posterior draws used (thinned evenly); ``seed``: default the
    run's seed (same inputs, same numbers)."""
    run = run if isinstance(run, LoadedRun) else load_run(run)
    if recent_weeks < 1:
        raise DataValidationError("recent_weeks must be at least 1", column="recent_weeks")
    p = read_plan(plan, run.channels, name=plan_name)
    r = read_plan(reference, run.channels, name=reference_name) if reference is not None else None
    dates, pl, ref, baseline, phase = _resolve(p, r, run, recent_weeks)
    irf_all = run.irf_base_draws()
    mmm = run.mmm
    seed = run.config.sampling.seed if seed is None else int(seed)
    S_m = len(mmm.draws("sigma"))
    thin = max(1, S_m // max(1, int(max_draws)))
    S = len(range(0, S_m, thin))
    W = len(dates)
    # short term: Hill(Adstock) on the spend history followed by each plan
    L = mmm.priors.l_max
    hist = mmm.spend[len(mmm.spend) - (L - 1):] if L > 1 else mmm.spend[:0]
    short_pl = mmm.media_contributions(spend=np.vstack([hist, pl]), thin=thin)[:, len(hist):, :]
    short_ref = mmm.media_contributions(spend=np.vstack([hist, ref]), thin=thin)[:, len(hist):, :]
    # long term: impulse responses of base sales (draws paired at random with the MMM's)
    rng = np.random.default_rng(seed)
    j = np.sort(rng.choice(len(irf_all), S, replace=len(irf_all) < S))
    irf = irf_all[j]
    long_pl = _long_term(irf, pl - baseline[None, :])
    long_ref = _long_term(irf, ref - baseline[None, :])
    # base sales carried forward (shared by both plans)
    base = mmm.base_forecast(W, thin=thin, seed=seed)
    hist_sales = pd.Series(mmm.sales[-min(52, len(mmm.sales)):],
                           index=pd.DatetimeIndex(run.dataset.dates[-min(52, len(mmm.sales)):]))
    return ScenarioResult(
        run_id=run.run_id, target=run.target_name, channels=run.channels, data_end=run.last_date, dates=dates,
        phase=phase, plan_spend=pl, reference_spend=ref, baseline_spend=baseline, horizon=run.horizon, l_max=L,
        credible_interval=float(run.config.credible_interval),
        sales_plan=base + short_pl.sum(-1) + long_pl.sum(-1),
        sales_reference=base + short_ref.sum(-1) + long_ref.sum(-1),
        short_plan=short_pl, short_reference=short_ref, long_plan=long_pl, long_reference=long_ref,
        history=hist_sales, plan_name=p.name, reference_name=r.name if r is not None else "recent average",
    )
