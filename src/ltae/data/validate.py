"""Input validation: one exception type whose message is one actionable sentence.

Every check here works on a :class:`Table`: a DataFrame whose index holds the row numbers a user
sees in the source (for CSV files the *line* number, the header being line 1, so the first data
row is line 2; for Parquet files, DuckDB tables and in-memory frames, which have no lines, the
1-based data *row* number). Messages therefore say ``line N`` for CSV files and ``row N``
otherwise, and :attr:`DataValidationError.row` holds that N.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np
import pandas as pd

from ltae.data.names import DATE, name_key, normalize_name, split_names  # noqa: F401 - re-exported

_DAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_DAY_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class DataValidationError(ValueError):
    """Bad input data. ``str(err)`` is one sentence naming file, column, first bad row and the fix.

    Attributes
    ----------
    file:
        File (or table) the problem is in, as a user would recognise it (e.g. ``sales.csv``).
    column:
        Column name as written in the file, or ``None`` when the problem is not about a column.
    row:
        Where the first bad value is: for CSV files the line number in the file (header = line 1),
        for other sources the 1-based data row; ``None`` when no single row is at fault.
    row_kind:
        ``"line"`` or ``"row"``, the word the message uses before :attr:`row`.
    market:
        The market (of a panel, ``--geo``) the problem is in, or ``None``.
    problem, hint, context:
        The parts the message is built from.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
        row_kind: str = "line",
        context: str | None = None,
        hint: str | None = None,
        market: str | None = None,
    ) -> None:
        self.problem = problem
        self.market = None if market is None else str(market)
        self.file = None if file is None else str(file)
        self.column = None if column is None else str(column)
        self.row = None if row is None else int(row)
        self.row_kind = row_kind
        self.context = context
        self.hint = hint
        super().__init__(self._format())

    @property
    def line(self) -> int | None:
        """The line number in a text file, or ``None`` when the source has no lines."""
        return self.row if self.row_kind == "line" else None

    def _format(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.column is not None:
            where.append(f"column '{self.column}'")
        if self.market is not None:
            where.append(f"market '{self.market}'")
        if self.row is not None:
            loc = f"{self.row_kind} {self.row}"
            if self.context:
                loc += f" ({self.context})"
            where.append(loc)
        text = self.problem.strip().rstrip(".")
        if where:
            text = f"{', '.join(where)}: {text}"
        if self.hint:
            text += f"; {self.hint.strip().rstrip('.')}"
        return " ".join(text.split()) + "."

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        kwargs = {k: getattr(self, k) for k in ("file", "column", "row", "row_kind", "context", "hint", "market")}
        return (_rebuild_error, (self.problem, kwargs))

    def in_market(self, market: str) -> DataValidationError:
        """The same error, naming ``market`` (unchanged when it names one already)."""
        if self.market is not None:
            return self
        out = type(self).__new__(type(self))
        DataValidationError.__init__(out, self.problem, file=self.file, column=self.column, row=self.row,
                                     row_kind=self.row_kind, context=self.context, hint=self.hint, market=market)
        return out


def _rebuild_error(problem, kwargs):
    return DataValidationError(problem, **kwargs)


# --------------------------------------------------------------------------------------------
# tables and small helpers
# --------------------------------------------------------------------------------------------


@dataclass
class Table:
    """A frame plus what messages need: its file name and whether rows are 'line's or 'row's.

    ``df.index`` holds the user-visible row numbers (see the module docstring)."""

    df: pd.DataFrame
    name: str
    row_kind: str = "line"
    original: dict[str, str] = field(default_factory=dict)  # canonical column -> name in the file
    geo: str | None = None  # the market column of a panel's table (None: one series for every market)

    def data_columns(self) -> list[str]:
        """The columns other than the date and the market column."""
        return [c for c in self.df.columns if c not in (DATE, self.geo)]

    def label(self, column: str | None) -> str | None:
        """The column's name as the file spells it (before renaming), for messages."""
        return None if column is None else self.original.get(column, column)

    @property
    def header_row(self) -> int | None:
        """The header's line number (1) for files with lines, else None."""
        return 1 if self.row_kind == "line" else None

    def fail(
        self,
        problem: str,
        *,
        column: str | None = None,
        label=None,
        context_cols: Sequence[str] = (DATE,),
        hint: str | None = None,
    ) -> NoReturn:
        """Raise a :class:`DataValidationError` about row ``label`` (an index label) of this table."""
        context = None
        if label is not None:
            context = self.context(label, context_cols)
        raise DataValidationError(
            problem,
            file=self.name,
            column=self.label(column),
            row=None if label is None else int(label),
            row_kind=self.row_kind,
            context=context,
            hint=hint,
        )

    def context(self, label, cols: Sequence[str] = (DATE,)) -> str | None:
        """``Date 2021-01-04``-style text locating a row in messages (the values of ``cols``)."""
        parts = []
        for c in cols:
            if c in self.df.columns:
                v = self.df.at[label, c]
                if isinstance(v, pd.Timestamp) and not pd.isna(v):
                    v = fmt_date(v)
                elif v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
                    continue
                parts.append(f"{c} {v}")
        return ", ".join(parts) or None

    def lines_span(self) -> str:
        """``lines 2-209`` (or ``rows 1-208``): the span of the table's rows, for messages."""
        idx = self.df.index
        if len(idx) == 0:
            return ""
        lo, hi = int(min(idx)), int(max(idx))
        word = "lines" if self.row_kind == "line" else "rows"
        return f"{word} {lo}-{hi}" if lo != hi else f"{self.row_kind} {lo}"


def fmt_date(ts) -> str:
    """ISO date (``YYYY-MM-DD``), or full timestamp when it has a time of day."""
    ts = pd.Timestamp(ts)
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()


def fmt_value(v) -> str:
    """A cell's value as a message shows it (``empty``, a quoted string shortened to 40 characters, a
    number)."""
    if v is None:
        return "empty"
    if isinstance(v, str):
        s = v if len(v) <= 40 else v[:37] + "..."
        return repr(s) if s.strip() else "empty"
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return repr(v)


def weekday_name(ts) -> str:
    """The weekday's English name (``Monday``)."""
    return _DAY_LONG[pd.Timestamp(ts).weekday()]


def weekly_freq(ts) -> str:
    """pandas frequency string of weeks anchored on the weekday of ``ts`` (e.g. ``W-MON``)."""
    return f"W-{_DAY_NAMES[pd.Timestamp(ts).weekday()]}"


# --------------------------------------------------------------------------------------------
# headers and columns
# --------------------------------------------------------------------------------------------


def normalize_headers(table: Table) -> None:
    """Strip/normalise header names in place; two headers that only differ by case or spaces fail."""
    names = [normalize_name(c) for c in table.df.columns]
    seen: dict[str, str] = {}
    for n in names:
        if not n:
            raise DataValidationError(
                "a column has an empty header",
                file=table.name,
                row=table.header_row,
                row_kind=table.row_kind,
                hint="give every column a name",
            )
        k = name_key(n)
        if k in seen:
            raise DataValidationError(
                f"the header has two columns named '{seen[k]}' and '{n}'",
                file=table.name,
                column=n,
                row=table.header_row,
                row_kind=table.row_kind,
                hint="column names must be unique (ignoring case and spaces)",
            )
        seen[k] = n
    table.df.columns = names


def find_column(columns: Iterable[str], name: str) -> str | None:
    """The column among ``columns`` that ``name`` names, ignoring case and spaces; None if none."""
    cols = list(columns)
    n = normalize_name(name)
    if n in cols:
        return n
    k = name_key(n)
    hits = [c for c in cols if name_key(c) == k]
    return hits[0] if hits else None


def _listing(names: Iterable[str], limit: int = 12) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f", ... ({len(names)} in all)"
    return shown or "none"


def resolve_column(
    table: Table, name: str, *, role: str, option: str | None = None, exclude: Iterable[str] = ()
) -> str:
    """The column of ``table`` called ``name`` (case/space-insensitive) or a clear error."""
    cols = [c for c in table.df.columns if c not in set(exclude)]
    hit = find_column(cols, name)
    if hit is not None:
        return hit
    hint = f"available columns: {_listing(cols)}"
    if option:
        hint += f"; pass the right name with {option}"
    raise DataValidationError(
        f"{role} column '{name}' not found in the header",
        file=table.name,
        column=name,
        row=table.header_row,
        row_kind=table.row_kind,
        hint=hint,
    )


def find_date_column(table: Table, date_col: str | None = None) -> str:
    """The table's date column: ``date_col`` if given, else a column named ``date`` (any case), else the
    only datetime column; a clear error otherwise."""
    if date_col:
        return resolve_column(table, date_col, role="date", option="--date-col")
    hit = find_column(table.df.columns, "date")
    if hit is not None:
        return hit
    dt_cols = [c for c in table.df.columns if pd.api.types.is_datetime64_any_dtype(table.df[c])]
    if len(dt_cols) == 1:
        return dt_cols[0]
    raise DataValidationError(
        "no date column found (expected a column named 'Date')",
        file=table.name,
        column="Date",
        row=table.header_row,
        row_kind=table.row_kind,
        hint=f"columns found: {_listing(table.df.columns)}; name the date column with --date-col",
    )


# --------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------

_MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a", "<na>", "nat"})
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")

_DATE_FORMATS: tuple[tuple[str, str], ...] = (
    ("ISO8601", "YYYY-MM-DD"),
    ("%Y/%m/%d", "YYYY/MM/DD"),
    ("%d/%m/%Y", "DD/MM/YYYY"),
    ("%m/%d/%Y", "MM/DD/YYYY"),
    ("%d.%m.%Y", "DD.MM.YYYY"),
    ("%d-%m-%Y", "DD-MM-YYYY"),
    ("%m-%d-%Y", "MM-DD-YYYY"),
    ("%Y%m%d", "YYYYMMDD"),
)


def is_missing_text(s: pd.Series) -> pd.Series:
    """Whether each text cell is a missing-value token (empty, ``NA``, ``n/a``, ``NaN``, ``null``, ``none``...)."""
    return s.str.strip().str.lower().isin(_MISSING_TOKENS)


def to_float(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse a column to float64. Returns ``(values, bad)``: ``bad`` marks non-empty cells that are
    not numbers. Empty cells (and NA-like tokens) become NaN; ``1,234.5`` is read as 1234.5."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        vals = pd.Series(np.asarray(series, dtype="float64"), index=series.index)
        return vals, pd.Series(False, index=series.index)
    s = series.astype(object).where(series.notna(), "").astype(str).str.strip()
    missing = s.str.lower().isin(_MISSING_TOKENS)
    thousands = s.str.fullmatch(_THOUSANDS.pattern)
    s = s.where(~thousands, s.str.replace(",", "", regex=False))
    vals = pd.to_numeric(s.where(~missing, None), errors="coerce").astype("float64")
    bad = ~missing & vals.isna()
    return pd.Series(vals.to_numpy(), index=series.index), pd.Series(bad.to_numpy(), index=series.index)


def try_numeric(series: pd.Series) -> pd.Series:
    """Lenient: float64 if every non-empty cell is a number, else the column unchanged."""
    vals, bad = to_float(series)
    return series if bad.any() else vals


def numeric_column(table: Table, column: str, *, what: str = "value", context_cols=(DATE,)) -> pd.Series:
    """Strict: float64 values of ``column`` or an error at the first non-numeric cell."""
    vals, bad = to_float(table.df[column])
    if bad.any():
        label = bad[bad].index[0]
        raw = table.df.at[label, column]
        table.fail(
            f"{what} {fmt_value(raw)} is not a number",
            column=column,
            label=label,
            context_cols=context_cols,
            hint=f"use plain numbers (e.g. 1234.5) in '{table.label(column)}'; empty cells are allowed",
        )
    return vals


def parse_dates(table: Table, column: str) -> pd.Series:
    """Parse a date column. One format for the whole column; ambiguous DD/MM vs MM/DD is decided
    by which reading gives regularly spaced dates. Errors name the first bad row."""
    raw = table.df[column]
    if pd.api.types.is_datetime64_any_dtype(raw):
        out = raw
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_localize(None)
        out = out.astype("datetime64[ns]")
        if out.isna().any():
            label = out[out.isna()].index[0]
            table.fail("the date is empty", column=column, label=label, context_cols=(),
                       hint="every row needs a date")
        return out
    if raw.dtype == object and raw.map(lambda v: hasattr(v, "year") or v is None).all():
        out = pd.to_datetime(raw, errors="coerce")
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_localize(None)
        if out.isna().any():
            label = out[out.isna()].index[0]
            table.fail("the date is empty", column=column, label=label, context_cols=(),
                       hint="every row needs a date")
        return out.astype("datetime64[ns]")

    s = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
    if pd.api.types.is_float_dtype(raw):  # e.g. 20210104.0 from a parquet file
        s = s.str.replace(r"\.0$", "", regex=True)
    empty = is_missing_text(s)
    if empty.any():
        label = empty[empty].index[0]
        table.fail("the date is empty", column=column, label=label, context_cols=(),
                   hint="every row needs a date (YYYY-MM-DD)")

    parsed: list[tuple[str, str, pd.Series]] = []
    for fmt, human in _DATE_FORMATS:
        try:
            p = pd.to_datetime(s, format=fmt, errors="coerce")
        except (ValueError, TypeError):
            continue
        parsed.append((fmt, human, p))
    complete = [(f, h, p) for f, h, p in parsed if p.notna().all()]
    if complete:
        def irregularity(p: pd.Series) -> int:
            d = p.sort_values().diff().dropna()
            return int(d.nunique())

        best = min(complete, key=lambda t: irregularity(t[2]))
        return best[2].astype("datetime64[ns]")

    fmt, human, best = max(parsed, key=lambda t: int(t[2].notna().sum()))
    if best.notna().sum() == 0:
        label = s.index[0]
        table.fail(
            f"cannot read date {fmt_value(s.iloc[0])}",
            column=column,
            label=label,
            context_cols=(),
            hint="write dates as YYYY-MM-DD (e.g. 2021-01-04)",
        )
    bad = best.isna()
    label = bad[bad].index[0]
    value = s.at[label]
    other = [h for f, h, p in parsed if f != fmt and not pd.isna(p.at[label])]
    if other:
        table.fail(
            f"mixed date formats: {fmt_value(value)} looks like {other[0]} but other rows use {human}",
            column=column,
            label=label,
            context_cols=(),
            hint="use one date format for the whole column (YYYY-MM-DD is safest)",
        )
    table.fail(
        f"cannot read date {fmt_value(value)}",
        column=column,
        label=label,
        context_cols=(),
        hint=f"the other rows use {human}; use one date format for the whole column",
    )


def check_duplicates(table: Table, keys: Sequence[str], *, column: str | None = None) -> None:
    """Fail on the first row (in file order) whose ``keys`` repeat an earlier row."""
    df = table.df.sort_index()
    dup = df.duplicated(subset=list(keys), keep=False)
    if not dup.any():
        return
    later = df.duplicated(subset=list(keys), keep="first")
    label = later[later].index[0]
    key_vals = tuple(df.loc[label, k] for k in keys)
    same = df[(df[list(keys)] == pd.Series(key_vals, index=list(keys))).all(axis=1)]
    first = same.index[0]
    what = " and ".join(
        f"{k} {fmt_date(v) if isinstance(v, pd.Timestamp) else v}" for k, v in zip(keys, key_vals, strict=True)
    )
    table.fail(
        f"duplicate {what}: already on {table.row_kind} {first}",
        column=column or keys[0],
        label=label,
        context_cols=(),
        hint="keep one row per " + " and ".join(keys) + " (sum or remove the duplicates)",
    )


def detect_spacing(table: Table, column: str = DATE, *, strict: bool = True) -> str:
    """``"weekly"`` or ``"daily"`` for a date column sorted ascending; with ``strict`` any gap or
    irregular step is an error naming the row after it."""
    d = table.df[column]
    if len(d) < 2:
        return "weekly"
    days = (d.diff().dt.total_seconds() / 86400.0).iloc[1:]
    med = float(np.median(days))
    labels = list(d.index)
    if med == 7.0:
        kind, step = "weekly", 7.0
    elif med == 1.0:
        kind, step = "daily", 1.0
    else:
        label = labels[1]
        table.fail(
            f"rows are {med:g} days apart (median); ltae needs weekly rows 7 days apart",
            column=column,
            label=label,
            context_cols=(),
            hint="aggregate the data to weeks (daily data is also accepted and summed to weeks)",
        )
    if not strict:
        return kind
    off = days[days != step]
    if len(off):
        label = off.index[0]
        pos = labels.index(label)
        prev_label = labels[pos - 1]
        prev, cur = d.at[prev_label], d.at[label]
        gap = (cur - prev).total_seconds() / 86400.0
        unit = "week" if kind == "weekly" else "day"
        if gap > step and gap % step == 0:
            missing = pd.Timestamp(prev) + pd.Timedelta(days=step)
            n_missing = int(gap // step) - 1
            more = f" and {n_missing - 1} more" if n_missing > 1 else ""
            table.fail(
                f"{unit} {fmt_date(missing)}{more} missing between {fmt_date(prev)} "
                f"({table.row_kind} {prev_label}) and {fmt_date(cur)}",
                column=column,
                label=label,
                context_cols=(),
                hint=f"add the missing {unit}(s); ltae never invents target values",
            )
        table.fail(
            f"date {fmt_date(cur)} is {gap:g} days after the previous date {fmt_date(prev)} "
            f"({table.row_kind} {prev_label}); {kind} rows must be {'7 days' if kind == 'weekly' else '1 day'} apart"
            + (f" and all on the same weekday ({weekday_name(prev)})" if kind == "weekly" else ""),
            column=column,
            label=label,
            context_cols=(),
            hint="fix the date or resample the data to regular weeks",
        )
    return kind


def check_finite(table: Table, column: str, values: pd.Series, *, what: str, context_cols=(DATE,)) -> None:
    """Fail on the first infinite value of a column (naming file, column and row)."""
    bad = np.isinf(values.to_numpy(dtype=float))
    if bad.any():
        label = values.index[np.flatnonzero(bad)[0]]
        table.fail(
            f"{what} is {fmt_value(float(values.at[label]))}",
            column=column,
            label=label,
            context_cols=context_cols,
            hint=f"{what} must be a finite number",
        )


def check_nonnegative(table: Table, column: str, values: pd.Series, *, context_cols=(DATE,)) -> None:
    """Fail on the first negative spend of a column (naming file, column and row)."""
    neg = values < 0
    if neg.any():
        label = neg[neg].index[0]
        table.fail(
            f"negative spend {fmt_value(values.at[label])}",
            column=column,
            label=label,
            context_cols=context_cols,
            hint="spend must be >= 0",
        )


def check_min_weeks(table: Table, column: str, dates: pd.Series | pd.DatetimeIndex, min_weeks: int) -> None:
    """Fail when there are fewer than ``min_weeks`` weeks."""
    n = len(dates)
    if n >= min_weeks:
        return
    span = f" ({fmt_date(dates[0])} to {fmt_date(dates[-1])})" if n else ""
    raise DataValidationError(
        f"only {n} weeks of data found{span}, at least {min_weeks} are needed",
        file=table.name,
        column=column,
        hint="provide more history or lower the limit with --min-weeks",
    )
