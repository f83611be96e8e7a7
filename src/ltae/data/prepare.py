"""From loaded tables to an :class:`~ltae.data.dataset.MMMDataset`: merge, clean, aggregate, check.

Conventions (documented once, here):

* ``sales`` defines the time grid: its dates (after daily data are summed to weeks) are the rows
  of the dataset. Missing weeks in sales are an error: target values are never invented.
* Leading/trailing rows whose target is empty (e.g. future weeks with planned spend) are dropped
  with a notice; an empty target inside the period is an error.
* Spend: long (``Date, Channel, Spend``) is pivoted to one column per channel; weeks without a
  spend row, and empty spend cells, are zero spend (with a notice).
* Brand metrics and controls (competitor, macro) may be monthly, irregular or have gaps: they are
  put on the weekly grid by forward fill (the last value known at that week), then back fill for
  weeks before their first value (with a notice).
* Daily data (all rows one day apart) are aggregated to weeks ending on the weekday of the last
  date and labelled by that last day: sum for target and spend, mean for controls and brand. An
  incomplete first week is dropped.
* Nothing is normalised or scaled here; spend and target stay in currency units.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ltae.data.dataset import MMMDataset
from ltae.data.kpi import KPI
from ltae.data.validate import (
    DATE,
    DataValidationError,
    Table,
    check_finite,
    check_min_weeks,
    check_nonnegative,
    detect_spacing,
    find_column,
    fmt_date,
    fmt_value,
    numeric_column,
    try_numeric,
    weekday_name,
    weekly_freq,
)

CHANNEL = "Channel"
SPEND = "Spend"


# --------------------------------------------------------------------------------------------
# public building blocks (the spec's names)
# --------------------------------------------------------------------------------------------


def spend_to_wide(marketing: pd.DataFrame) -> pd.DataFrame:
    """``Date, Channel, Spend`` (long) -> ``Date, <channel...>`` (channels in order of first
    appearance). A frame that is already wide is returned as a copy."""
    if not {DATE, CHANNEL, SPEND} <= set(marketing.columns):
        return marketing.copy()
    df = marketing[[DATE, CHANNEL, SPEND]]
    order = list(dict.fromkeys(df[CHANNEL].tolist()))
    if df.duplicated(subset=[DATE, CHANNEL]).any():
        first = df[df.duplicated(subset=[DATE, CHANNEL])].iloc[0]
        raise DataValidationError(
            f"duplicate Date {fmt_date(first[DATE])} and Channel {first[CHANNEL]}",
            file="marketing_spend.csv",
            column=CHANNEL,
            hint="keep one row per Date and Channel",
        )
    wide = df.pivot(index=DATE, columns=CHANNEL, values=SPEND)
    wide = wide[order].reset_index()
    wide.columns.name = None
    return wide


def merge_data(
    sales: pd.DataFrame,
    marketing: pd.DataFrame,
    brand: pd.DataFrame | None = None,
    competitor: pd.DataFrame | None = None,
    macro: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Join the tables of :func:`ltae.data.load_data` on ``Date`` into one wide frame.

    The join is an outer join on all dates so that brand/competitor/macro values dated between
    sales weeks (monthly surveys, gaps) are carried forward onto the weeks (forward fill, then
    back fill at the start); spend gaps are 0; long spend is pivoted to one column per channel.
    The result has one row per date of ``sales`` (sales defines the time grid), sorted, with
    columns ``Date, <sales columns>, <channels>, <competitor>, <macro>, <brand>``."""
    fills = [f for f in (competitor, macro, brand) if f is not None]
    return _merge(sales, spend_to_wide(marketing), fills)


def clean_data(df: pd.DataFrame, target: str | None = None, *, date_col: str = DATE) -> pd.DataFrame:
    """Tidy a merged frame without inventing anything.

    * sorts by date and resets the index; parses the date column;
    * converts numeric-looking columns to float64 (currency units kept, nothing scaled);
    * drops leading and trailing rows whose target is empty (future/unfinished weeks);
      empty target values inside the period are left as NaN (validation reports them).

    ``target`` defaults to a column named ``revenue`` (any case) when there is one."""
    out = df.copy()
    out[date_col] = pd.to_datetime(out[date_col])
    out = out.sort_values(date_col, kind="stable").reset_index(drop=True)
    for c in out.columns:
        if c != date_col and not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = try_numeric(out[c])
        if pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].astype("float64")
    tcol = find_column(out.columns, target) if target else find_column(out.columns, "revenue")
    if tcol is not None and len(out):
        ok = out[tcol].notna().to_numpy()
        if ok.any():
            first, last = int(np.argmax(ok)), len(ok) - int(np.argmax(ok[::-1]))
            out = out.iloc[first:last].reset_index(drop=True)
        else:
            out = out.iloc[0:0]
    return out


def write_prepared(ds, out: str | Path) -> tuple[Path, Path]:
    """Write ``ds.to_frame()`` as CSV (atomically) plus ``<stem>.roles.json`` next to it, so that
    :func:`ltae.data.load_dataset` can read the file back without role options.

    ``ds``: an :class:`~ltae.data.dataset.MMMDataset`, or a :class:`~ltae.data.panel.PanelDataset`
    (long form: one row per market and week, with the market column; the sidecar names it). The
    sidecar also records what the target measures (``kpi_type`` and ``kpi``); a KPI converted to
    currency is written converted, so it is not converted again when read back."""
    from ltae.io import atomic_write_csv, atomic_write_json

    out = Path(out)
    frame = ds.to_frame()
    frame[DATE] = pd.DatetimeIndex(frame[DATE]).strftime("%Y-%m-%d")
    roles = roles_path(out)
    atomic_write_csv(out, frame)
    atomic_write_json(roles, {**ds.roles, "kpi_type": ds.kpi.type, "kpi": ds.kpi.to_dict(), "source": ds.source,
                              "notices": list(ds.notices), "data_hash": ds.data_hash()})
    return out, roles


def roles_path(csv_path: str | Path) -> Path:
    """The ``<stem>.roles.json`` sidecar next to a prepared CSV."""
    p = Path(csv_path)
    return p.with_name(p.stem + ".roles.json")


# --------------------------------------------------------------------------------------------
# internals
# --------------------------------------------------------------------------------------------


def _merge(sales: pd.DataFrame, spend_wide: pd.DataFrame, fills: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [sales, spend_wide, *fills]
    seen: dict[str, int] = {}
    for i, f in enumerate(frames):
        if DATE not in f.columns:
            raise ValueError(f"merge_data: every table needs a '{DATE}' column (table {i} has {list(f.columns)})")
        if f[DATE].duplicated().any():
            d = f.loc[f[DATE].duplicated(), DATE].iloc[0]
            raise ValueError(f"merge_data: duplicate date {fmt_date(d)} in table {i}")
        for c in f.columns:
            if c == DATE:
                continue
            if c in seen:
                raise ValueError(f"merge_data: column '{c}' appears in two tables ({seen[c]} and {i})")
            seen[c] = i
    all_dates = pd.Index(pd.concat([pd.to_datetime(f[DATE]) for f in frames]).unique()).sort_values()
    merged = pd.DataFrame({DATE: all_dates})
    for f in frames:
        g = f.copy()
        g[DATE] = pd.to_datetime(g[DATE])
        merged = merged.merge(g, on=DATE, how="left")
    spend_cols = [c for c in spend_wide.columns if c != DATE]
    if spend_cols:
        merged[spend_cols] = merged[spend_cols].fillna(0.0)
    fill_cols = [c for f in fills for c in f.columns if c != DATE]
    if fill_cols:
        merged[fill_cols] = merged[fill_cols].ffill().bfill()
    keep = merged[DATE].isin(pd.to_datetime(sales[DATE]))
    return merged[keep].reset_index(drop=True)


def _week_end(dates: pd.Series, anchor_weekday: int) -> pd.Series:
    """Label each date with the end (inclusive) of its week; weeks end on ``anchor_weekday``."""
    offs = (anchor_weekday - dates.dt.day_of_week) % 7
    return dates.dt.normalize() + pd.to_timedelta(offs, unit="D")


def _date_kind(dates: pd.Series) -> str:
    u = pd.Series(dates.unique()).sort_values()
    if len(u) < 2:
        return "unknown"
    med = float(np.median(u.diff().dropna().dt.total_seconds() / 86400.0))
    return "daily" if med <= 1.0 else "weekly" if med == 7.0 else "other"


def assemble(
    *,
    sales: Table,
    target: str,
    spend: Table,
    channels: Sequence[str],
    spend_long: bool,
    fills: Sequence[tuple[Table, Sequence[str], str]],
    min_weeks: int,
    source: str,
    notices: Sequence[str] = (),
    kpi: KPI | None = None,
    allow_zero_channels: bool = False,
) -> MMMDataset:
    """Validate resolved roles and build the dataset. Tables have a ``Date`` column (datetime),
    are sorted by date and indexed by the row numbers users see. ``fills`` holds
    ``(table, columns, role)`` with role ``"control"`` or ``"brand"``. ``kpi``: what the target
    measures (default: inferred from its name). ``allow_zero_channels``: a channel without spend is
    kept (one market of a panel, where the other markets inform it) instead of an error."""
    notes = list(notices)
    tlabel = sales.label(target)

    # ---- sales: target values and the time grid ------------------------------------------
    y = numeric_column(sales, target, what="value")
    check_finite(sales, target, y, what="the target value")
    kind = detect_spacing(sales, DATE)
    ok = y.notna()
    if not ok.any():
        sales.fail("the target column has no values", column=target,
                   label=sales.df.index[0] if len(sales.df) else None,
                   hint="fill in the target or choose another column with --target")
    pos_ok = np.flatnonzero(ok.to_numpy())
    first, last = pos_ok[0], pos_ok[-1]
    inner = ok.iloc[first : last + 1]
    if not inner.all():
        label = inner[~inner].index[0]
        sales.fail(f"{tlabel} is empty", column=target, label=label,
                   hint="fill in the value; ltae never invents target values")
    dropped = len(ok) - (last - first + 1)
    if dropped:
        d = sales.df[DATE]
        lead = [fmt_date(x) for x in d.iloc[:first]]
        trail = [fmt_date(x) for x in d.iloc[last + 1 :]]
        parts = []
        if lead:
            parts.append(f"{len(lead)} leading ({lead[0]}..{lead[-1]})")
        if trail:
            parts.append(f"{len(trail)} trailing ({trail[0]}..{trail[-1]})")
        notes.append(f"{sales.name}: dropped {' and '.join(parts)} rows without {tlabel}")
    y = y.iloc[first : last + 1]
    dates = sales.df[DATE].iloc[first : last + 1]
    sales_lines = list(y.index)

    anchor = None
    if kind == "daily":
        anchor = pd.Timestamp(dates.iloc[-1]).weekday()
        wk = _week_end(dates, anchor)
        counts = wk.groupby(wk.to_numpy()).size()
        yw = y.groupby(wk.to_numpy()).sum()
        if counts.iloc[0] < 7:
            notes.append(
                f"{sales.name}: dropped the incomplete first week ({counts.iloc[0]} days, "
                f"up to {fmt_date(counts.index[0])})"
            )
            yw = yw.iloc[1:]
        notes.append(
            "daily data aggregated to weekly (weeks ending "
            f"{weekday_name(dates.iloc[-1])}, dated by their last day; sum for spend/target, "
            "mean for controls/brand)"
        )
        grid = pd.DatetimeIndex(yw.index)
        target_week = yw.to_numpy(dtype=float)
    else:
        grid = pd.DatetimeIndex(dates.to_numpy())
        target_week = y.to_numpy(dtype=float)
    check_min_weeks(sales, sales.label(DATE), grid, min_weeks)
    sales_week = pd.DataFrame({DATE: grid, target: target_week})

    # ---- spend -----------------------------------------------------------------------------
    spend_week = _spend_on_grid(spend, channels, spend_long, grid, kind, anchor, sales.name, notes)

    # ---- controls and brand --------------------------------------------------------------------
    fill_frames = []
    for table, cols, role in fills:
        if cols:
            fill_frames.append(_fill_on_grid(table, list(cols), role, grid, kind, anchor, notes))

    merged = _merge(sales_week, spend_week, fill_frames)
    merged = clean_data(merged, target)
    if len(merged) != len(grid):  # cannot happen: the grid has a target value in every week
        raise AssertionError("internal error: merged data lost weeks")

    dates_idx = pd.DatetimeIndex(merged[DATE].to_numpy(), name=DATE)
    if len(dates_idx) >= 1:
        dates_idx = pd.DatetimeIndex(dates_idx, freq=weekly_freq(dates_idx[0]), name=DATE)

    # ---- whole-series checks ---------------------------------------------------------------
    yv = merged[target]
    if yv.nunique() <= 1:
        sales.fail(
            f"{tlabel} has the same value {fmt_value(float(yv.iloc[0]))} in all {len(yv)} weeks "
            f"({sales.lines_span()})",
            column=target,
            label=sales_lines[0],
            hint="a constant target cannot be modelled; check the column or choose another with --target",
        )
    channel_cols = [c for c in spend_week.columns if c != DATE]
    for c in channel_cols:
        if float(merged[c].abs().sum()) == 0.0 and not allow_zero_channels:
            _fail_all_zero(spend, c, spend_long, grid)

    def frame(cols):
        f = merged[list(cols)].astype("float64")
        f.index = dates_idx
        f.columns = [str(x) for x in cols]
        return f

    ctrl_cols = [c for t, cols, role in fills if role == "control" for c in cols]
    brand_cols = [c for t, cols, role in fills if role == "brand" for c in cols]
    tser = merged[target].astype("float64")
    tser.index = dates_idx
    tser.name = target
    return MMMDataset(
        dates=dates_idx,
        target=tser,
        spend=frame(channel_cols),
        controls=frame(ctrl_cols),
        brand=frame(brand_cols),
        source=source,
        notices=tuple(notes),
        kpi=kpi,
    )


def fail_all_zero(spend: Table, channel: str, spend_long: bool, grid: pd.DatetimeIndex, where: str = ""):
    """Raise the error of a channel whose spend is 0 in every week (``where``: e.g. " in every market")."""
    _fail_all_zero(spend, channel, spend_long, grid, where)


def _fail_all_zero(spend: Table, channel: str, spend_long: bool, grid: pd.DatetimeIndex, where: str = ""):
    span = f"{len(grid)} weeks ({fmt_date(grid[0])} to {fmt_date(grid[-1])}){where}"
    hint = "remove the channel (list the others with --channels) or fix the data"
    if spend_long:
        rows = spend.df[spend.df[CHANNEL] == channel]
        label = rows.index.min() if len(rows) else None
        spend.fail(f"spend for channel '{channel}' is 0 in all {span}", column=SPEND,
                   label=label, context_cols=(CHANNEL,), hint=hint)
    label = spend.df.index.min() if len(spend.df) else None
    spend.fail(f"spend is 0 in all {span}", column=channel, label=label, context_cols=(), hint=hint)


def _spend_on_grid(
    spend: Table,
    channels: Sequence[str],
    spend_long: bool,
    grid: pd.DatetimeIndex,
    kind: str,
    anchor: int | None,
    sales_name: str,
    notes: list[str],
) -> pd.DataFrame:
    df = spend.df
    if spend_long:
        empty = df[CHANNEL].isna() | (df[CHANNEL].astype(str).str.strip() == "")
        if empty.any():
            spend.fail("the channel name is empty", column=CHANNEL, label=empty[empty].index[0],
                       hint="every row needs a channel name")
        sel = Table(df[df[CHANNEL].isin(list(channels))], spend.name, spend.row_kind, spend.original)
        ctx = (DATE, CHANNEL)
        vals = numeric_column(sel, SPEND, what="spend", context_cols=ctx)
        check_finite(sel, SPEND, vals, what="spend", context_cols=ctx)
        check_nonnegative(sel, SPEND, vals, context_cols=ctx)
        n_empty = int(vals.isna().sum())
        long = pd.DataFrame({DATE: sel.df[DATE], CHANNEL: sel.df[CHANNEL], SPEND: vals.fillna(0.0)})
        rows = sel
    else:
        wide = pd.DataFrame({DATE: df[DATE]})
        n_empty = 0
        for c in channels:
            v = numeric_column(spend, c, what="spend")
            check_finite(spend, c, v, what="spend")
            check_nonnegative(spend, c, v)
            n_empty += int(v.isna().sum())
            wide[c] = v.fillna(0.0)
        long = wide.melt(id_vars=[DATE], var_name=CHANNEL, value_name=SPEND)
        long.index = np.tile(df.index.to_numpy(), len(channels)) if len(channels) else long.index
        rows = spend
    if n_empty:
        notes.append(f"{spend.name}: {n_empty} empty spend value(s) treated as 0")

    same_file = spend.name == sales_name
    spend_kind = _date_kind(rows.df[DATE]) if len(rows.df) else "unknown"
    if kind == "daily":
        if spend_kind not in ("daily", "unknown"):
            raise DataValidationError(
                f"spend is {spend_kind} but {sales_name} is daily",
                file=spend.name,
                column=spend.label(DATE),
                hint="give spend and sales at the same frequency (both daily or both weekly)",
            )
        long = long.assign(**{DATE: _week_end(long[DATE], anchor)})
        long = long.groupby([DATE, CHANNEL], sort=False, as_index=False)[SPEND].sum()
    elif spend_kind == "daily" and not same_file:
        raise DataValidationError(
            f"spend is daily but {sales_name} is weekly",
            file=spend.name,
            column=spend.label(DATE),
            hint="give spend and sales at the same frequency (both daily or both weekly)",
        )
    else:
        inside = (long[DATE] >= grid[0]) & (long[DATE] <= grid[-1])
        off = inside & ~long[DATE].isin(grid)
        if off.any():
            label = long.index[np.flatnonzero(off.to_numpy())].min()
            d = rows.df.at[label, DATE] if label in rows.df.index else long.loc[off, DATE].iloc[0]
            spend.fail(
                f"date {fmt_date(d)} is not one of the weeks of {sales_name} "
                f"(weekly on {weekday_name(grid[0])})",
                column=DATE,
                label=label,
                context_cols=(),
                hint=f"spend rows must use the same week dates as {sales_name}",
            )
        n_out = int((~inside).sum())
        if n_out and not same_file:
            notes.append(f"{spend.name}: {n_out} row(s) outside the sales period ignored")

    long = long[long[DATE].isin(grid)]
    wide = (
        long.pivot_table(index=DATE, columns=CHANNEL, values=SPEND, aggfunc="sum", sort=False)
        if len(long)
        else pd.DataFrame(index=pd.DatetimeIndex([], name=DATE))
    )
    wide = wide.reindex(index=grid, columns=list(channels))
    missing_weeks = int(wide.isna().all(axis=1).sum()) if len(channels) else 0
    if missing_weeks and not same_file:
        notes.append(
            f"{spend.name}: no spend rows for {missing_weeks} of {len(grid)} weeks; spend there is 0"
        )
    wide = wide.fillna(0.0)
    wide.index.name = DATE
    wide.columns.name = None
    return wide.reset_index()


def _fill_on_grid(
    table: Table,
    cols: list[str],
    role: str,
    grid: pd.DatetimeIndex,
    kind: str,
    anchor: int | None,
    notes: list[str],
) -> pd.DataFrame:
    df = table.df
    out = pd.DataFrame({DATE: df[DATE]})
    for c in cols:
        v = numeric_column(table, c, what="value")
        check_finite(table, c, v, what=f"the {role} value")
        if not v.notna().any():
            table.fail(
                "the column has no values at all",
                column=c,
                label=df.index.min() if len(df) else None,
                context_cols=(),
                hint=f"fill it in or leave it out (list the {role} columns you want with --{'brand' if role == 'brand' else 'controls'})",
            )
        first_date = df.loc[v.notna(), DATE].min()
        if first_date > grid[-1]:
            label = v[v.notna()].index[0]
            table.fail(
                f"the first value is dated {fmt_date(first_date)}, after the last sales week {fmt_date(grid[-1])}",
                column=c,
                label=label,
                hint="the series must have values within the sales period",
            )
        out[c] = v
    if kind == "daily" and _date_kind(df[DATE]) == "daily":
        out = out.assign(**{DATE: _week_end(out[DATE], anchor)})
        out = out.groupby(DATE, as_index=False, sort=True)[cols].mean()
    else:
        out = out.sort_values(DATE, kind="stable").reset_index(drop=True)
    # notices: how much had to be filled
    exact = out[out[DATE].isin(grid)].set_index(DATE)
    filled = []
    for c in cols:
        have = exact[c].notna().reindex(grid, fill_value=False)
        n_fill = int((~have).sum())
        if n_fill:
            first = out.loc[out[c].notna(), DATE].min()
            n_back = int((grid < first).sum())
            msg = f"{table.label(c)}: {n_fill} of {len(grid)} weeks"
            if n_back:
                msg += f", {n_back} before its first value {fmt_date(first)} back-filled"
            filled.append(msg)
    if filled:
        notes.append(f"{table.name}: values carried onto the weekly dates by forward fill ({'; '.join(filled)})")
    return out
