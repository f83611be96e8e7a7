"""Reading input data: the five-CSV folder, one wide CSV/Parquet file, or a DuckDB table.

``load_dataset`` is the entry point; it returns a validated :class:`~ltae.data.dataset.MMMDataset`
(one market) or :class:`~ltae.data.panel.PanelDataset` (several markets), or raises
:class:`~ltae.data.validate.DataValidationError`.

Accepted ``path`` values:

* a **folder** with ``sales.csv`` and ``marketing_spend.csv`` (required) and optionally
  ``brand_metrics.csv``, ``competitor_activity.csv``, ``macroeconomic_indicators.csv``;
* a **wide file** ``*.csv`` / ``*.tsv`` / ``*.txt`` / ``*.parquet`` / ``*.pq`` with one row per week
  (or per day) and the roles given by the options (``channels`` is required; ``target`` defaults
  to a column named ``revenue``). A CSV written by ``ltae prepare`` has a ``<stem>.roles.json``
  next to it, from which missing role options are taken;
* a **DuckDB database** ``*.duckdb`` / ``*.db`` with ``table=`` naming the table, or written as
  ``path/to/file.duckdb::table_name``; a database holding one table needs no name.

**Markets** (a panel, :class:`~ltae.data.panel.PanelDataset`): the rows of several markets, told
apart by a market column named with ``geo=`` (``--geo``), or found without it: a column named
``Geo`` or ``Market`` (any case) when the dates repeat. In a folder, ``sales.csv`` and
``marketing_spend.csv`` need the market column; ``brand_metrics.csv``, ``competitor_activity.csv``
and ``macroeconomic_indicators.csv`` have it for series per market, or not for one national series
that applies to every market. Every market needs the same weeks. Markets are in natural order
(``Geo2`` before ``Geo10``). Population, optional: a ``population`` column (``--population``) or a
``population.csv`` (market column + population) in the folder; one value per market.

**Meridian's layout** is recognised from its column names: a ``time`` column (and no ``date``),
one or more ``*_spend`` columns and, for markets, a ``geo`` column. Defaults then: dates from
``time``, markets from ``geo``, channels = the ``*_spend`` columns, controls = the ``*_control``
columns, target = ``conversions`` (else ``revenue``, else ``kpi``), population = ``population``,
and ``revenue_per_conversion`` (or ``revenue_per_kpi``) converts the KPI to currency (unless
``kpi_type="non_revenue"``). ``*_impression`` columns and the other columns are not used (a notice
lists them; name them with the options to use them). Every option given overrides its default.

A first column without a name (``""`` or ``Unnamed: 0``) holding whole numbers is a row index that
pandas wrote, and is dropped with a notice.

**What the target measures** (:mod:`ltae.data.kpi`): ``kpi_type`` and ``revenue_per_kpi``.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ltae.data.dataset import MMMDataset
from ltae.data.kpi import (
    CURRENCY,
    KPI,
    NON_REVENUE,
    REVENUE,
    converted_name,
    kpi_type_of_name,
    non_revenue_notice,
)
from ltae.data.panel import POPULATION, PanelDataset, market_sort_key
from ltae.data.prepare import CHANNEL, SPEND, assemble, fail_all_zero, roles_path
from ltae.data.roles import DataRoles
from ltae.data.validate import (
    DATE,
    DataValidationError,
    Table,
    check_duplicates,
    check_finite,
    find_column,
    find_date_column,
    fmt_date,
    fmt_value,
    is_missing_text,
    name_key,
    normalize_headers,
    normalize_name,
    numeric_column,
    parse_dates,
    resolve_column,
    to_float,
    try_numeric,
)
from ltae.io import unneutralize_cell

SPEC_FILES: dict[str, str] = {
    "sales": "sales.csv",
    "marketing": "marketing_spend.csv",
    "brand": "brand_metrics.csv",
    "competitor": "competitor_activity.csv",
    "macro": "macroeconomic_indicators.csv",
}
REQUIRED_FILES = ("sales", "marketing")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")
POPULATION_FILE = "population.csv"
GEO_NAMES = ("Geo", "Market")  # market columns found without --geo (when the dates repeat)
MERIDIAN_TARGETS = ("conversions", "revenue", "kpi")
MERIDIAN_REVENUE_PER_KPI = ("revenue_per_conversion", "revenue_per_kpi")



# --------------------------------------------------------------------------------------------
# readers: each returns a Table of raw cells, indexed by the row numbers a user sees
# --------------------------------------------------------------------------------------------


def read_csv_table(path: str | os.PathLike, name: str | None = None) -> Table:
    """Read a CSV (UTF-8, BOM allowed; ``,`` ``;`` or tab separated) as text cells.

    The index is the line number in the file (header = line 1); blank lines are skipped."""
    path = Path(path)
    name = name or path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataValidationError("file not found", file=str(path)) from None
    except OSError as e:
        raise DataValidationError(f"cannot read the file ({e.strerror or e})", file=str(path)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataValidationError(
            f"byte 0x{raw[e.start]:02x} is not UTF-8 text",
            file=name,
            row=line,
            hint="save the file as UTF-8 (in Excel: 'CSV UTF-8')",
        ) from None
    lines = text.splitlines()
    if not any(ln.strip() for ln in lines):
        raise DataValidationError("the file is empty", file=name, hint="it needs a header line and data rows")
    header_line = next(ln for ln in lines if ln.strip())
    sep = max([",", ";", "\t"], key=header_line.count)
    try:
        rows = list(csv.reader(lines, delimiter=sep))
    except csv.Error as e:
        raise DataValidationError(f"cannot parse the CSV ({e})", file=name) from None
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    (hdr_no, header), body = numbered[0], numbered[1:]
    width = len(header)
    for no, r in body:
        if len(r) > width and any(c.strip() for c in r[width:]):
            raise DataValidationError(
                f"the row has {len(r)} fields but the header has {width}",
                file=name,
                row=no,
                hint="check for unquoted separators inside values (quote them) or a missing header",
            )
    # cells that ltae's CSV writers neutralised for spreadsheets ('=x -> =x; see ltae.data.csvsafe)
    header = [unneutralize_cell(c) for c in header]
    data = [[unneutralize_cell(c) for c in (r + [""] * width)[:width]] for _, r in body]
    df = pd.DataFrame(data, columns=header, index=pd.Index([no for no, _ in body], name="line"), dtype=str)
    if df.empty:
        raise DataValidationError("the file has a header but no data rows", file=name, row=hdr_no + 1)
    return Table(df, name, "line")


def read_parquet_table(path: str | os.PathLike, name: str | None = None) -> Table:
    """Read a Parquet file as a :class:`~ltae.data.validate.Table` (rows numbered from 1)."""
    path = Path(path)
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise DataValidationError("file not found", file=str(path)) from None
    except Exception as e:  # pyarrow raises several types
        raise DataValidationError(f"cannot read the Parquet file ({e})", file=name or path.name) from None
    return _frame_table(df, name or path.name)


def read_duckdb_table(path: str | os.PathLike, table: str | None = None) -> Table:
    """Read a table of a DuckDB file (read-only) as a :class:`~ltae.data.validate.Table`; ``table`` may be
    left out when the database holds one table."""
    import duckdb

    path = Path(path)
    if not path.exists():
        raise DataValidationError("file not found", file=str(path))
    try:
        con = duckdb.connect(str(path), read_only=True)
    except Exception as e:
        raise DataValidationError(f"cannot open the DuckDB database ({e})", file=path.name) from None
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY table_name"
            ).fetchall()
        ]
        if table is None:
            if len(names) != 1:
                raise DataValidationError(
                    f"the database has {len(names)} tables ({', '.join(names) or 'none'})",
                    file=path.name,
                    hint=f"name one with --table or as {path.name}::TABLE",
                )
            table = names[0]
        hit = next((n for n in names if n == table), None) or next(
            (n for n in names if n.casefold() == table.casefold()), None
        )
        if hit is None:
            raise DataValidationError(
                f"table '{table}' not found",
                file=path.name,
                hint=f"tables in the database: {', '.join(names) or 'none'}",
            )
        quoted = '"' + hit.replace('"', '""') + '"'
        df = con.execute(f"SELECT * FROM {quoted}").df()
    finally:
        con.close()
    return _frame_table(df, f"{path.name}::{hit}")


def _frame_table(df: pd.DataFrame, name: str) -> Table:
    """A Table from an in-memory frame: rows numbered 1..n (or the index if it is named 'line')."""
    df = df.copy()
    if df.index.name in ("line", "row") and pd.api.types.is_integer_dtype(df.index):
        kind = df.index.name
    else:
        df.index = pd.RangeIndex(1, len(df) + 1, name="row")
        kind = "row"
    if df.empty:
        raise DataValidationError("the table has no rows", file=name)
    return Table(df, name, kind)


def _drop_index_column(table: Table, notes: list[str]) -> None:
    """Drop a first column without a name (``""``, ``Unnamed: 0``) that holds whole numbers: a row index
    written by pandas (Meridian's example CSVs have one)."""
    df = table.df
    if df.shape[1] < 2:
        return
    name = normalize_name(df.columns[0])
    if name and not re.fullmatch(r"unnamed:\s*\d+", name, flags=re.IGNORECASE):
        return
    vals, bad = to_float(df.iloc[:, 0])
    v = vals.to_numpy()
    if bad.any() or np.isnan(v).any() or not np.all(v == np.round(v)):
        return
    table.df = df.iloc[:, 1:]
    notes.append(f"{table.name}: dropped the first column '{name}' (a row index without a name)")


# --------------------------------------------------------------------------------------------
# typing: normalise headers, parse the date column, numbers where the whole column is numeric
# --------------------------------------------------------------------------------------------


def _market_values(table: Table, col: str) -> pd.Series:
    """The market column as text (``501`` and ``501.0`` -> ``"501"``); an empty market is an error."""
    s = table.df[col]
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        vals = s.astype("float64")
        if vals.isna().any():
            table.fail("the market is empty", column=col, label=vals[vals.isna()].index[0], context_cols=(DATE,),
                       hint="every row needs its market")
        return vals.map(lambda v: str(int(v)) if float(v).is_integer() else repr(float(v)))
    text = s.astype(object).where(s.notna(), "").astype(str).map(normalize_name)
    empty = is_missing_text(text)
    if empty.any():
        table.fail("the market is empty", column=col, label=empty[empty].index[0], context_cols=(DATE,),
                   hint="every row needs its market")
    return text


def _typed(table: Table, date_col: str | None = None, *, spend: bool = False, geo: str | None = None,
           geo_required: bool = False, detect_geo: bool = False) -> tuple[Table, bool]:
    """Returns the typed table (``Date`` column, sorted by date) and whether it is long spend.

    ``geo``: the market column, if this table has it (required with ``geo_required``); with
    ``detect_geo`` a column named ``Geo``/``Market`` is the market column when the dates repeat.
    The result's ``geo`` names the table's market column (``None``: the table is national)."""
    normalize_headers(table)
    df = table.df
    dcol = find_date_column(table, date_col)
    dates = parse_dates(table, dcol)
    if dcol != DATE and DATE in df.columns:
        raise DataValidationError(
            f"the file has a column named '{DATE}' besides the date column '{dcol}'",
            file=table.name,
            column=DATE,
            row=table.header_row,
            row_kind=table.row_kind,
            hint="rename one of them",
        )
    original = {DATE: dcol}
    df = df.rename(columns={dcol: DATE})
    df[DATE] = dates
    long = False
    if spend:
        ch, sp = find_column(df.columns, CHANNEL), find_column(df.columns, SPEND)
        if ch is not None and sp is not None:
            long = True
            df = df.rename(columns={ch: CHANNEL, sp: SPEND})
            original.update({CHANNEL: ch, SPEND: sp})
            df[CHANNEL] = df[CHANNEL].map(lambda v: normalize_name(v) if isinstance(v, str) else v)
    keys = [DATE, CHANNEL] if long else [DATE]
    gcol = None
    cols = [c for c in df.columns if c not in keys]
    if geo:
        gcol = (resolve_column(Table(df, table.name, table.row_kind, original), geo, role="market",
                               option="--geo", exclude=keys) if geo_required else find_column(cols, geo))
    elif detect_geo and df.duplicated(subset=keys).any():
        gcol = next((hit for n in GEO_NAMES if (hit := find_column(cols, n)) is not None), None)
    if gcol is not None:
        df[gcol] = _market_values(Table(df, table.name, table.row_kind, original), gcol)
    for c in df.columns:
        if c not in (DATE, CHANNEL, gcol) or (c == CHANNEL and not long):
            if not pd.api.types.is_numeric_dtype(df[c]):
                df[c] = try_numeric(df[c])
    out = Table(df, table.name, table.row_kind, original, geo=gcol)
    if gcol is None:
        try:
            check_duplicates(out, keys)
        except DataValidationError as e:
            more = (f"if the rows are markets, the file needs the market column '{geo}' (a file without it holds "
                    "one series for every market)" if geo else
                    "if the rows are markets, name the market column with --geo")
            raise DataValidationError(e.problem, file=e.file, column=e.column, row=e.row, row_kind=e.row_kind,
                                      hint=f"{e.hint}; {more}") from None
    else:
        check_duplicates(out, [*keys, gcol], column=DATE)
    out.df = out.df.sort_values(DATE, kind="stable")
    return out, long


def _find_file(folder: Path, filename: str) -> Path | None:
    p = folder / filename
    if p.is_file():
        return p
    for q in folder.iterdir():
        if q.is_file() and q.name.casefold() == filename.casefold():
            return q
    return None


def _load_tables(folder: str | os.PathLike, date_col: str | None = None,
                 geo: str | None = None) -> dict[str, tuple[Table, bool] | None]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataValidationError("folder not found", file=str(folder))
    out: dict[str, tuple[Table, bool] | None] = {}
    gname = geo
    for key, filename in SPEC_FILES.items():  # sales first: it decides whether the data are a panel
        p = _find_file(folder, filename)
        if p is None:
            if key in REQUIRED_FILES:
                raise DataValidationError(
                    f"file not found in {folder}",
                    file=filename,
                    hint="the folder needs sales.csv and marketing_spend.csv (brand_metrics.csv, "
                    "competitor_activity.csv and macroeconomic_indicators.csv are optional)",
                )
            out[key] = None
            continue
        sales = key == "sales"
        out[key] = _typed(read_csv_table(p, p.name), date_col, spend=(key == "marketing"), geo=gname,
                          geo_required=sales and bool(geo), detect_geo=sales and geo is None)
        if sales:
            gname = out[key][0].geo
    return out


def load_data(path: str | os.PathLike, *, date_col: str | None = None,
              geo: str | None = None) -> dict[str, pd.DataFrame | None]:
    """Read the five-CSV folder into frames keyed ``sales, marketing, brand, competitor, macro``.

    Headers are stripped (BOM, spaces) and the date column renamed ``Date`` and parsed; columns
    whose cells are all numbers are float64; long spend columns are named ``Date, Channel, Spend``.
    Rows are sorted by date; the index is the line number in the file. Missing optional files are
    ``None``. ``geo``: the market column (found without it as ``Geo``/``Market`` when the dates of
    sales.csv repeat); its values are kept as text. Raises :class:`DataValidationError` for missing
    required files, unreadable dates and duplicate dates (per market)."""
    return {k: (None if v is None else v[0].df) for k, v in _load_tables(path, date_col, geo).items()}


# --------------------------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------------------------


def load_dataset(path: str | os.PathLike, roles: DataRoles | None = None, **options) -> MMMDataset | PanelDataset:
    """Load, validate and assemble the modelling data (see the module docstring for ``path``).

    ``roles``: a :class:`~ltae.data.roles.DataRoles` (which column is the target, the channels,
    the controls...); its fields can also be given as keyword arguments (``target=``,
    ``channels=``, ``controls=``, ``brand=``, ``date_col=``, ``geo=``, ``population=``,
    ``kpi_type=``, ``revenue_per_kpi=``, ``table=``, ``min_weeks=``), which override the ones in
    ``roles``. Lists take a list of names or one comma-separated string; names match headers case-
    and whitespace-insensitively. ``controls=[]`` means no controls (``None``: the default, i.e.
    every competitor/macro column for a folder, none for a wide file).

    Returns a :class:`~ltae.data.panel.PanelDataset` when the data have a market column (``geo``
    given or found, see the module docstring), else an :class:`~ltae.data.dataset.MMMDataset`."""
    roles = _roles_arg(roles, options)
    spath = os.fspath(path)
    m = re.match(r"^(.*\.(?:duckdb|db|ddb))::(.+)$", spath, flags=re.IGNORECASE)
    if m:
        spath, in_path = m.group(1), m.group(2)
        if roles.table and roles.table != in_path:
            raise DataValidationError(
                f"two table names given ('{in_path}' in the path and '{roles.table}' with --table)",
                file=spath,
                hint="give the table once",
            )
        roles = roles.model_copy(update={"table": in_path})
    p = Path(spath)
    if not p.exists():
        raise DataValidationError(
            "no such file or folder",
            file=spath,
            hint="--data takes the folder of CSV files, a .csv/.parquet file or a .duckdb file",
        )
    if p.is_dir():
        return _load_folder(p, roles)
    suffix = p.suffix.lower()
    if suffix in DUCKDB_SUFFIXES:
        tab = read_duckdb_table(p, roles.table)
        return _wide(tab, roles, source=f"{p}::{tab.name.split('::', 1)[1]}")
    if roles.table:
        raise DataValidationError("--table only applies to DuckDB files", file=p.name,
                                  hint="leave --table out or pass a .duckdb file")
    if suffix in PARQUET_SUFFIXES:
        return _wide(read_parquet_table(p), roles, source=str(p))
    if suffix in CSV_SUFFIXES:
        roles, saved_kpi = _roles_from_sidecar(p, roles)
        return _wide(read_csv_table(p), roles, source=str(p), saved_kpi=saved_kpi)
    raise DataValidationError(
        f"unsupported file type '{p.suffix or '(none)'}'",
        file=p.name,
        hint="use a folder of CSV files, a .csv/.parquet file or a .duckdb file",
    )


def _roles_arg(roles: DataRoles | None, options: dict) -> DataRoles:
    """``roles`` with the keyword options laid over it (unknown keywords are a TypeError)."""
    unknown = sorted(set(options) - set(DataRoles.model_fields))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(map(repr, unknown))}; the data roles "
                        f"are {', '.join(DataRoles.model_fields)}")
    if roles is None:
        return DataRoles.model_validate(options)
    return DataRoles.model_validate({**roles.model_dump(), **options}) if options else roles


def dataset_from_wide_frame(df: pd.DataFrame, *, name: str, roles: DataRoles,
                            source: str = "") -> MMMDataset | PanelDataset:
    """Validate a wide in-memory frame (used by :meth:`MMMDataset.from_frame`); a panel when ``roles``
    has a market column."""
    return _wide(_frame_table(df, name), roles, source=source or name)


def _roles_from_sidecar(p: Path, roles: DataRoles) -> tuple[DataRoles, dict | None]:
    """Column roles not given are taken from the ``<stem>.roles.json`` written by ``ltae prepare``, and
    so is what the target measures (returned as the saved KPI, used unless kpi options are given)."""
    side = roles_path(p)
    if not side.is_file():
        return roles, None
    try:
        saved = json.loads(side.read_text(encoding="utf-8"))
        out = roles.with_defaults(saved)
    except (OSError, ValueError):  # unreadable or invalid sidecar: the options alone
        return roles, None
    kpi = saved.get("kpi") if isinstance(saved, dict) else None
    return out, (kpi if isinstance(kpi, dict) else None)


def _check_roles(file: str, roles: dict[str, list[str]], row_kind: str = "line") -> None:
    seen: dict[str, str] = {}
    for role, names in roles.items():
        for n in names:
            k = name_key(n)
            if k == name_key(DATE):
                raise DataValidationError(f"'{n}' is the date column and cannot be a {role} column",
                                          file=file, column=n, hint=f"remove it from --{role}")
            if k in seen:
                raise DataValidationError(
                    f"column '{n}' is given both as {seen[k]} and as {role}",
                    file=file,
                    column=n,
                    hint="each column can have one role only",
                )
            seen[k] = role


def _default_target(table: Table, exclude: Sequence[str] = ()) -> str:
    cols = [c for c in table.data_columns() if c not in exclude]
    hit = find_column(cols, "revenue")
    if hit is not None:
        return hit
    cands = []
    for c in cols:
        vals, bad = to_float(table.df[c])
        if vals.notna().sum() > bad.sum():
            cands.append(c)
    if len(cands) == 1:
        return cands[0]
    raise DataValidationError(
        "cannot tell which column is the target"
        + (f" (numeric columns: {', '.join(cands)})" if cands else " (no numeric column)"),
        file=table.name,
        row=table.header_row,
        row_kind=table.row_kind,
        hint="name it with --target",
    )


# --------------------------------------------------------------------------------------------
# what is loaded: the resolved roles of the tables (the same for every market of a panel)
# --------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Resolved roles: the tables and their columns; the market column when the data are a panel."""

    sales: Table
    target: str
    spend: Table
    channels: list[str]
    spend_long: bool
    fills: list[tuple[Table, list[str], str]]
    source: str
    notes: list[str]
    population: str | None = None  # population column of the sales table
    population_table: Table | None = None  # population.csv (market column + population)
    kpi: KPI | None = None

    @property
    def geo(self) -> str | None:
        return self.sales.geo

    def tables(self) -> list[Table]:
        seen, out = set(), []
        for t in (self.sales, self.spend, *(t for t, cols, _ in self.fills if cols)):
            if id(t) not in seen:
                seen.add(id(t))
                out.append(t)
        return out


def _meridian_defaults(table: Table, roles: DataRoles, notes: list[str]) -> DataRoles:
    """Roles not given, from Meridian's column names (see the module docstring); unchanged when the
    table is not in Meridian's layout."""
    cols = list(table.df.columns)
    time = find_column(cols, "time")
    spend_cols = [c for c in cols if name_key(c).endswith("_spend")]
    if time is None or find_column(cols, "date") is not None or not spend_cols:
        return roles
    upd: dict[str, object] = {}
    geo = find_column(cols, "geo")
    if roles.date_col is None:
        upd["date_col"] = time
    if roles.geo is None and geo is not None:
        upd["geo"] = geo
    if roles.channels is None:
        upd["channels"] = spend_cols
    if roles.target is None:
        hit = next((h for n in MERIDIAN_TARGETS if (h := find_column(cols, n)) is not None), None)
        if hit is not None:
            upd["target"] = hit
    if roles.controls is None:
        upd["controls"] = [c for c in cols if name_key(c).endswith("_control")]
    if roles.population is None and (roles.geo or geo) and find_column(cols, POPULATION) is not None:
        upd["population"] = find_column(cols, POPULATION)
    rpk = next((h for n in MERIDIAN_REVENUE_PER_KPI if (h := find_column(cols, n)) is not None), None)
    if roles.revenue_per_kpi is None and rpk is not None:
        if roles.kpi_type == NON_REVENUE:
            notes.append(f"{table.name}: '{rpk}' not used (--kpi-type non_revenue)")
        else:
            upd["revenue_per_kpi"] = rpk
    out = roles.model_copy(update=upd)
    used = {name_key(c) for c in [out.date_col, out.geo, out.target, out.population, out.revenue_per_kpi_column,
                                  *(out.channels or []), *(out.controls or []), *(out.brand or [])] if c}
    unused = [c for c in cols if name_key(c) not in used]
    words = {"date_col": "dates", "geo": "markets", "target": "target", "channels": "channels",
             "controls": "controls", "population": "population"}
    what = "; ".join(f"{words[k]} {v if isinstance(v, str) else ', '.join(map(str, v)) or 'none'}"
                     for k, v in upd.items() if k in words)
    notes.append(f"{table.name}: Meridian's layout recognised ({what})"
                 + (f"; not used: {', '.join(unused)} (name them with --controls or --channels to use them)"
                    if unused else ""))
    return out


def _wide(raw: Table, roles: DataRoles, *, source: str, saved_kpi: dict | None = None) -> MMMDataset | PanelDataset:
    notes: list[str] = []
    _drop_index_column(raw, notes)
    normalize_headers(raw)
    roles = _meridian_defaults(raw, roles, notes)
    tab, _ = _typed(raw, roles.date_col, geo=roles.geo, geo_required=bool(roles.geo), detect_geo=roles.geo is None)
    if tab.geo is not None and roles.geo is None:
        notes.append(f"{tab.name}: the dates repeat, one series per value of '{tab.geo}': read as markets "
                     f"(--geo {tab.geo})")
    cols = tab.data_columns()
    if roles.channels is None:
        raise DataValidationError(
            "which columns are media spend? a single-table input needs its roles",
            file=tab.name,
            hint="pass --channels (comma-separated spend columns), --target if the target is not "
            "'revenue', and optionally --controls and --brand; columns found: " + ", ".join(cols),
        )
    pop = _population_column(tab, roles) if tab.geo is not None else None
    if tab.geo is None and roles.population:
        raise DataValidationError("--population applies to data of several markets", file=tab.name,
                                  hint="name the market column with --geo, or leave --population out")
    rpk_col = _resolve(tab, roles, "revenue_per_kpi") if roles.revenue_per_kpi_column else []
    exclude = [c for c in (pop, *rpk_col) if c]
    tcol = _resolve(tab, roles, "target")[0] if roles.target else _default_target(tab, exclude=exclude)
    ch, ct, br = (_resolve(tab, roles, r) for r in ("channels", "controls", "brand"))
    _check_roles(tab.name, {"target": [tcol], "channels": ch, "controls": ct, "brand": br,
                            "geo": [tab.geo] if tab.geo else [], "population": [pop] if pop else [],
                            "revenue_per_kpi": rpk_col})
    plan = _Plan(sales=tab, target=tcol, spend=tab, channels=ch, spend_long=False,
                 fills=[(tab, ct, "control"), (tab, br, "brand")], source=source, notes=notes, population=pop)
    return _build(plan, roles, saved_kpi)


def _population_column(tab: Table, roles: DataRoles) -> str | None:
    """The population column of a panel's table: ``--population``, else a column named ``population``."""
    if roles.population:
        return resolve_column(tab, roles.population, role="population", option="--population",
                              exclude=[DATE, tab.geo])
    return find_column(tab.data_columns(), POPULATION)


def _resolve(tab: Table, roles: DataRoles, role: str) -> list[str]:
    """The table's columns named by a role (``[]`` when the role is unset)."""
    value = getattr(roles, role)
    names = [value] if isinstance(value, str) else (value or [])
    label = _ROLE_LABEL.get(role, role)
    return [resolve_column(tab, c, role=label, option=DataRoles.flag(role), exclude=[DATE, tab.geo])
            for c in names]


_ROLE_LABEL = {"channels": "channel", "controls": "control", "revenue_per_kpi": "revenue per KPI"}


def _load_folder(folder: Path, roles: DataRoles) -> MMMDataset | PanelDataset:
    tables = _load_tables(folder, roles.date_col, roles.geo)
    channels, controls, brand = roles.channels, roles.controls, roles.brand
    sales, _ = tables["sales"]
    spend, long = tables["marketing"]
    notes: list[str] = []
    if sales.geo is not None and roles.geo is None:
        notes.append(f"{sales.name}: the dates repeat, one series per value of '{sales.geo}': read as markets "
                     f"(--geo {sales.geo})")
    if sales.geo is not None and spend.geo is None:
        raise DataValidationError(
            f"the file has no market column '{sales.geo}' (sales.csv has one)", file=spend.name,
            row=spend.header_row, row_kind=spend.row_kind,
            hint="give spend per market: add the market column to the file")
    if sales.geo is None and roles.population:
        raise DataValidationError("--population applies to data of several markets", file=sales.name,
                                  hint="name the market column with --geo, or leave --population out")
    pop, pop_table = None, None
    if sales.geo is not None:
        pfile = _find_file(folder, POPULATION_FILE)
        in_sales = (find_column(sales.data_columns(), roles.population) if roles.population
                    else find_column(sales.data_columns(), POPULATION))
        if in_sales is not None:
            pop = in_sales
        elif pfile is not None:
            pop_table = _population_table(pfile, sales.geo, roles.population)
        elif roles.population:
            raise DataValidationError(
                f"population column '{roles.population}' (from --population) is neither in sales.csv nor in "
                f"a {POPULATION_FILE}", file=sales.name, column=roles.population, row=sales.header_row,
                row_kind=sales.row_kind, hint=f"add it to sales.csv or give {POPULATION_FILE} (market, population)")
    rpk_col = _resolve(sales, roles, "revenue_per_kpi") if roles.revenue_per_kpi_column else []
    tcol = (_resolve(sales, roles, "target")[0] if roles.target
            else _default_target(sales, exclude=[c for c in (pop, *rpk_col) if c]))

    # channels
    if long:
        present = list(dict.fromkeys(
            v for v in spend.df.sort_index()[CHANNEL].tolist() if isinstance(v, str) and v.strip()
        ))
        if channels is None:
            ch = present
        else:
            ch = []
            for c in channels:
                hit = find_column(present, c)
                if hit is None:
                    raise DataValidationError(
                        f"channel '{c}' (from --channels) does not appear in the file",
                        file=spend.name,
                        column=spend.label(CHANNEL),
                        hint=f"channels in the file: {', '.join(present)}",
                    )
                ch.append(hit)
    else:
        ch = spend.data_columns() if channels is None else _resolve(spend, roles, "channels")
    if not ch:
        raise DataValidationError("no channels found", file=spend.name,
                                  hint="the file needs Date, Channel, Spend columns or one column per channel")

    # controls: competitor + macro by default; named ones may also come from sales.csv
    fills: list[tuple[Table, list[str], str]] = []
    ctrl_tables = [t for t in (tables["competitor"], tables["macro"]) if t is not None]
    sales_roles = [c for c in (tcol, pop, *rpk_col) if c]
    if controls is None:
        for t, _ in ctrl_tables:
            fills.append((t, [c for c in t.data_columns() if c != pop], "control"))
    else:
        search = [*(t for t, _ in ctrl_tables), sales]
        picked: dict[int, list[str]] = {}
        for c in controls:
            for i, t in enumerate(search):
                excl = sales_roles if t is sales else []
                hit = find_column([x for x in t.data_columns() if x not in excl], c)
                if hit is not None:
                    picked.setdefault(i, []).append(hit)
                    break
            else:
                names = [t.name for t in search]
                avail = [x for t in search for x in t.data_columns() if x not in sales_roles]
                where = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
                raise DataValidationError(
                    f"control column '{c}' (from --controls) is not in "
                    + ("the file" if len(names) == 1 else "any of these files"),
                    file=where,
                    column=c,
                    row=1,
                    hint=f"available columns: {', '.join(avail) or 'none'}",
                )
        for i, cols in picked.items():
            fills.append((search[i], cols, "control"))

    # brand
    bt = tables["brand"]
    if brand is None:
        if bt is not None:
            fills.append((bt[0], bt[0].data_columns(), "brand"))
    elif brand:
        if bt is None:
            raise DataValidationError(
                f"file not found in {folder}",
                file=SPEC_FILES["brand"],
                hint="--brand names columns of brand_metrics.csv; add the file or leave --brand out",
            )
        fills.append((bt[0], _resolve(bt[0], roles, "brand"), "brand"))

    _check_roles(
        str(folder),
        {
            "target": [tcol],
            "channels": ch,
            "controls": [c for _, cols, r in fills if r == "control" for c in cols],
            "brand": [c for _, cols, r in fills if r == "brand" for c in cols],
            "geo": [sales.geo] if sales.geo else [],
            "population": [pop] if pop else [],
            "revenue_per_kpi": rpk_col,
        },
    )
    plan = _Plan(sales=sales, target=tcol, spend=spend, channels=ch, spend_long=long, fills=fills,
                 source=str(folder), notes=notes, population=pop, population_table=pop_table)
    return _build(plan, roles)


def _population_table(path: Path, geo: str, population: str | None) -> Table:
    """``population.csv``: the market column and one population column, one row per market."""
    t = read_csv_table(path, path.name)
    normalize_headers(t)
    gcol = resolve_column(t, geo, role="market", option="--geo")
    others = [c for c in t.df.columns if c != gcol]
    if population:
        pcol = resolve_column(t, population, role="population", option="--population", exclude=[gcol])
    else:
        pcol = find_column(others, POPULATION) or (others[0] if len(others) == 1 else None)
        if pcol is None:
            raise DataValidationError(
                "which column is the population?", file=t.name, row=t.header_row, row_kind=t.row_kind,
                hint=f"name it '{POPULATION}' or pass --population; columns found: {', '.join(others) or 'none'}")
    t.df[gcol] = _market_values(t, gcol)
    dup = t.df[gcol].duplicated()
    if dup.any():
        label = dup[dup].index[0]
        t.fail(f"market '{t.df.at[label, gcol]}' appears twice", column=gcol, label=label, context_cols=(),
               hint="give one population per market")
    return Table(t.df[[gcol, pcol]].rename(columns={pcol: POPULATION}), t.name, t.row_kind,
                 {POPULATION: pcol}, geo=gcol)


# --------------------------------------------------------------------------------------------
# building the dataset(s): what the target measures, then one market or every market
# --------------------------------------------------------------------------------------------


def _apply_kpi(plan: _Plan, roles: DataRoles, saved: dict | None = None) -> None:
    """Decide what the target measures (:mod:`ltae.data.kpi`) and convert it to currency when a revenue
    per KPI is given: the sales table gets the column ``<target>_revenue``, which becomes the target."""
    target, rpk = plan.target, roles.revenue_per_kpi
    if rpk is not None and roles.kpi_type == NON_REVENUE:
        raise DataValidationError(
            "--revenue-per-kpi converts the target to currency, so --kpi-type cannot be non_revenue",
            file=plan.sales.name, column=plan.sales.label(target),
            hint="leave out --revenue-per-kpi to keep the KPI as it is, or --kpi-type to convert it")
    if rpk is None:
        if roles.kpi_type is None and saved and name_key(str(saved.get("target", ""))) == name_key(target):
            try:
                kpi = KPI.from_dict({**saved, "target": target})
            except (TypeError, ValueError):
                kpi = None
            if kpi is not None:
                plan.kpi = kpi
                return
        if roles.kpi_type == REVENUE:
            plan.kpi = KPI.revenue(target)
        elif roles.kpi_type == NON_REVENUE:
            plan.kpi = KPI.non_revenue(target)
        else:
            plan.kpi = KPI.of_name(target)
            if not plan.kpi.is_revenue:
                plan.notes.append(non_revenue_notice(plan.kpi))
        return

    sales = plan.sales
    new = converted_name(target)
    if find_column(sales.df.columns, new) is not None:
        raise DataValidationError(
            f"the converted target would be called '{new}', but the file has a column of that name",
            file=sales.name, column=new, row=sales.header_row, row_kind=sales.row_kind,
            hint=f"if '{new}' is the revenue already, use --target {new} without --revenue-per-kpi")
    y = numeric_column(sales, target, what="value")
    tlabel = sales.label(target)
    if isinstance(rpk, float):
        factor = pd.Series(rpk, index=y.index)
        kpi = KPI(REVENUE, tlabel, new, CURRENCY, revenue_per_kpi=rpk)
        how = f"{fmt_value(rpk)} per {tlabel}"
    else:
        col = _resolve(sales, roles, "revenue_per_kpi")[0]
        factor = numeric_column(sales, col, what="revenue per KPI")
        check_finite(sales, col, factor, what="revenue per KPI")
        neg = factor < 0
        if neg.any():
            sales.fail(f"negative revenue per KPI {fmt_value(factor[neg].iloc[0])}", column=col,
                       label=neg[neg].index[0], hint="revenue per unit of the KPI must be >= 0")
        gap = y.notna() & factor.isna()
        if gap.any():
            sales.fail(f"revenue per KPI is empty where '{tlabel}' has a value", column=col,
                       label=gap[gap].index[0], hint="fill it in: ltae never invents values")
        kpi = KPI(REVENUE, tlabel, new, CURRENCY, column=sales.label(col))
        how = f"'{sales.label(col)}' week by week"
    df = sales.df.copy()
    df[new] = y * factor
    plan.notes.append(f"the KPI '{tlabel}' converted to currency as '{new}' = {tlabel} x {how}; ROI is in currency")
    if kpi_type_of_name(tlabel) == REVENUE:
        plan.notes.append(f"'{tlabel}' already looks like money; it was still multiplied by the revenue per KPI")
    new_sales = replace(sales, df=df)
    plan.spend = new_sales if plan.spend is sales else plan.spend
    plan.fills = [(new_sales if t is sales else t, cols, r) for t, cols, r in plan.fills]
    plan.sales, plan.target, plan.kpi = new_sales, new, kpi


def _build(plan: _Plan, roles: DataRoles, saved_kpi: dict | None = None) -> MMMDataset | PanelDataset:
    _apply_kpi(plan, roles, saved_kpi)
    if plan.geo is None:
        return assemble(sales=plan.sales, target=plan.target, spend=plan.spend, channels=plan.channels,
                        spend_long=plan.spend_long, fills=plan.fills, min_weeks=roles.min_weeks, source=plan.source,
                        notices=plan.notes, kpi=plan.kpi)
    return _build_panel(plan, roles)


def _split(table: Table) -> dict[str, Table]:
    """A panel table's rows per market (line numbers kept); the market column dropped."""
    out = {}
    for m, g in table.df.groupby(table.geo, sort=False):
        out[str(m)] = Table(g.drop(columns=[table.geo]), table.name, table.row_kind, table.original)
    return out


def _build_panel(plan: _Plan, roles: DataRoles) -> PanelDataset:
    sales = plan.sales
    markets = sorted(dict.fromkeys(sales.df[sales.geo]), key=market_sort_key)
    splits = {id(t): _split(t) for t in plan.tables() if t.geo is not None}
    _check_markets(plan, markets, splits)

    def part(t: Table, m: str) -> Table:
        return splits[id(t)][m] if id(t) in splits else t

    datasets: dict[str, MMMDataset] = {}
    for m in markets:
        try:
            datasets[m] = assemble(
                sales=part(sales, m), target=plan.target, spend=part(plan.spend, m), channels=plan.channels,
                spend_long=plan.spend_long, fills=[(part(t, m), cols, r) for t, cols, r in plan.fills],
                min_weeks=roles.min_weeks, source=f"{plan.source} [{m}]", kpi=plan.kpi, allow_zero_channels=True)
        except DataValidationError as e:
            raise e.in_market(m) from None
    _check_same_weeks(plan, datasets, splits)
    notes = [*plan.notes, *_merge_notices({m: d.notices for m, d in datasets.items()})]
    notes += _zero_channels(plan, datasets)
    population = _population(plan, markets, splits, notes)
    label = sales.label(sales.geo)
    return PanelDataset(datasets, geo=label, source=plan.source, population=population,
                        population_name=sales.label(plan.population) if plan.population else POPULATION,
                        notices=notes)


def _check_markets(plan: _Plan, markets: list[str], splits: dict[int, dict[str, Table]]) -> None:
    """Every per-market table has exactly the markets of the target's table."""
    known = set(markets)
    for t in plan.tables():
        if t.geo is None or t is plan.sales:
            continue
        have = splits[id(t)]
        extra = [m for m in have if m not in known]
        if extra:
            label = have[extra[0]].df.index.min()
            raise DataValidationError(
                f"market '{extra[0]}' is not a market of {plan.sales.name}", file=t.name, column=t.label(t.geo),
                row=int(label), row_kind=t.row_kind,
                hint=f"markets of {plan.sales.name}: {', '.join(markets)}; fix the name or add its sales")
        missing = [m for m in markets if m not in have]
        if missing:
            raise DataValidationError(
                "the file has no rows for this market", file=t.name, column=t.label(t.geo), market=missing[0],
                hint="every market needs its rows in a file with a market column (a file without the column "
                "applies to every market)")


def _check_same_weeks(plan: _Plan, datasets: dict[str, MMMDataset], splits: dict[int, dict[str, Table]]) -> None:
    """Every market has the weeks of the others (the weeks most markets have are the reference)."""
    grids = {m: tuple(d.dates) for m, d in datasets.items()}
    ref = Counter(grids.values()).most_common(1)[0][0]
    ref_set = set(ref)
    sales = plan.sales
    for m, g in grids.items():
        if g == ref:
            continue
        span = f"{fmt_date(ref[0])} to {fmt_date(ref[-1])}"
        missing = [d for d in ref if d not in set(g)]
        extra = [d for d in g if d not in ref_set]
        if extra:
            rows = splits[id(sales)][m].df
            hit = rows.index[rows[DATE] == extra[0]]
            raise DataValidationError(
                f"week {fmt_date(extra[0])} is not one of the weeks of the other markets ({len(ref)} weeks, {span})",
                file=sales.name, column=sales.label(DATE), market=m,
                row=int(hit[0]) if len(hit) else None, row_kind=sales.row_kind,
                hint="every market needs the same weeks")
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataValidationError(
            f"week {fmt_date(missing[0])}{more} missing: the market has {len(g)} weeks "
            f"({fmt_date(g[0])} to {fmt_date(g[-1])}), the other markets {len(ref)} ({span})",
            file=sales.name, column=sales.label(DATE), market=m,
            hint="every market needs the same weeks: add the missing weeks or remove the market's rows")


def _zero_channels(plan: _Plan, datasets: dict[str, MMMDataset]) -> list[str]:
    """A channel without spend in some markets is a notice; in every market, the one-market error."""
    notes = []
    first = next(iter(datasets.values()))
    for c in plan.channels:
        zero = [m for m, d in datasets.items() if float(d.spend[c].abs().sum()) == 0.0]
        if len(zero) == len(datasets):
            fail_all_zero(plan.spend, c, plan.spend_long, first.dates, where=" of every market")
        if zero:
            notes.append(f"channel '{c}' has no spend in {len(zero)} of {len(datasets)} markets "
                         f"({', '.join(zero)}): its effect there is informed by the other markets")
    return notes


def _merge_notices(per_market: dict[str, tuple[str, ...]]) -> list[str]:
    """One notice for what every market shares; the others prefixed with their markets."""
    n = len(per_market)
    order: dict[str, list[str]] = {}
    for m, notes in per_market.items():
        for t in notes:
            order.setdefault(t, []).append(m)
    out = []
    for t, ms in order.items():
        if len(ms) == n and n > 1:
            out.append(f"every market: {t}")
        else:
            out.append(f"market{'s' if len(ms) > 1 else ''} {', '.join(ms)}: {t}")
    return out


def _population(plan: _Plan, markets: list[str], splits: dict[int, dict[str, Table]],
                notes: list[str]) -> dict[str, float] | None:
    """market -> population, from the population column (one value per market) or population.csv."""
    if plan.population is None and plan.population_table is None:
        return None
    out: dict[str, float] = {}
    if plan.population_table is not None:
        t = plan.population_table
        vals = numeric_column(t, POPULATION, what="population", context_cols=(t.geo,))
        by_market = dict(zip(t.df[t.geo], vals.items(), strict=True))
        missing = [m for m in markets if m not in by_market]
        if missing:
            raise DataValidationError("the market has no population", file=t.name, column=t.label(t.geo),
                                      market=missing[0], hint="give every market its population")
        extra = [m for m in by_market if m not in set(markets)]
        if extra:
            notes.append(f"{t.name}: population of {len(extra)} market(s) without data ignored ({', '.join(extra)})")
        for m in markets:
            label, v = by_market[m]
            if not (np.isfinite(v) and v > 0):
                t.fail(f"population {fmt_value(v)} is not a positive number", column=POPULATION, label=label,
                       context_cols=(t.geo,), hint="give every market its population (> 0)")
            out[m] = float(v)
        return out
    col = plan.population
    sales = plan.sales
    for m in markets:
        t = splits[id(sales)][m]
        try:
            v = numeric_column(t, col, what="population")
            check_finite(t, col, v, what="the population")
            bad = v <= 0
            if bad.any():
                t.fail(f"population {fmt_value(v[bad].iloc[0])} is not a positive number", column=col,
                       label=bad[bad].index[0], hint="population must be > 0")
            if not v.notna().any():
                t.fail("the market has no population", column=col, label=t.df.index.min(),
                       hint="give every market its population")
        except DataValidationError as e:
            raise e.in_market(m) from None
        vals = v.dropna()
        out[m] = float(vals.mean())
        if vals.nunique() > 1:
            notes.append(f"market {m}: population varies from {fmt_value(float(vals.min()))} to "
                         f"{fmt_value(float(vals.max()))} over the weeks; its mean {fmt_value(out[m])} is used")
    return out
