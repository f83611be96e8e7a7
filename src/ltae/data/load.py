"""Reading input data: the five-CSV folder, one wide CSV/Parquet file, or a DuckDB table.

``load_dataset`` is the entry point; it always returns a validated
:class:`~ltae.data.dataset.MMMDataset` or raises
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
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ltae.data.dataset import MMMDataset
from ltae.data.prepare import CHANNEL, SPEND, assemble, roles_path
from ltae.data.roles import DataRoles
from ltae.data.validate import (
    DATE,
    DataValidationError,
    Table,
    check_duplicates,
    find_column,
    find_date_column,
    name_key,
    normalize_headers,
    normalize_name,
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


# --------------------------------------------------------------------------------------------
# typing: normalise headers, parse the date column, numbers where the whole column is numeric
# --------------------------------------------------------------------------------------------


def _typed(table: Table, date_col: str | None = None, *, spend: bool = False) -> tuple[Table, bool]:
    """Returns the typed table (``Date`` column, sorted by date) and whether it is long spend."""
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
    for c in df.columns:
        if c not in (DATE, CHANNEL) or (c == CHANNEL and not long):
            if not pd.api.types.is_numeric_dtype(df[c]):
                df[c] = try_numeric(df[c])
    out = Table(df, table.name, table.row_kind, original)
    check_duplicates(out, [DATE, CHANNEL] if long else [DATE])
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


def _load_tables(folder: str | os.PathLike, date_col: str | None = None) -> dict[str, tuple[Table, bool] | None]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataValidationError("folder not found", file=str(folder))
    out: dict[str, tuple[Table, bool] | None] = {}
    for key, filename in SPEC_FILES.items():
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
        out[key] = _typed(read_csv_table(p, p.name), date_col, spend=(key == "marketing"))
    return out


def load_data(path: str | os.PathLike, *, date_col: str | None = None) -> dict[str, pd.DataFrame | None]:
    """Read the five-CSV folder into frames keyed ``sales, marketing, brand, competitor, macro``.

    Headers are stripped (BOM, spaces) and the date column renamed ``Date`` and parsed; columns
    whose cells are all numbers are float64; long spend columns are named ``Date, Channel, Spend``.
    Rows are sorted by date; the index is the line number in the file. Missing optional files are
    ``None``. Raises :class:`DataValidationError` for missing required files, unreadable dates
    and duplicate dates."""
    return {k: (None if v is None else v[0].df) for k, v in _load_tables(path, date_col).items()}


# --------------------------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------------------------


def load_dataset(path: str | os.PathLike, roles: DataRoles | None = None, **options) -> MMMDataset:
    """Load, validate and assemble the modelling data (see the module docstring for ``path``).

    ``roles``: a :class:`~ltae.data.roles.DataRoles` (which column is the target, the channels,
    the controls...); its fields can also be given as keyword arguments (``target=``,
    ``channels=``, ``controls=``, ``brand=``, ``date_col=``, ``table=``, ``min_weeks=``), which
    override the ones in ``roles``. Lists take a list of names or one comma-separated string;
    names match headers case- and whitespace-insensitively. ``controls=[]`` means no controls
    (``None``: the default, i.e. every competitor/macro column for a folder, none for a wide
    file)."""
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
        return _wide(read_csv_table(p), _roles_from_sidecar(p, roles), source=str(p))
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


def dataset_from_wide_frame(df: pd.DataFrame, *, name: str, roles: DataRoles, source: str = "") -> MMMDataset:
    """Validate a wide in-memory frame (used by :meth:`MMMDataset.from_frame`)."""
    return _wide(_frame_table(df, name), roles, source=source or name)


def _roles_from_sidecar(p: Path, roles: DataRoles) -> DataRoles:
    """Column roles not given are taken from the ``<stem>.roles.json`` written by ``ltae prepare``."""
    side = roles_path(p)
    if not side.is_file():
        return roles
    try:
        saved = json.loads(side.read_text(encoding="utf-8"))
        return roles.with_defaults(saved)
    except (OSError, ValueError):  # unreadable or invalid sidecar: the options alone
        return roles


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
    hit = find_column([c for c in table.df.columns if c not in exclude], "revenue")
    if hit is not None:
        return hit
    cands = []
    for c in table.df.columns:
        if c in (DATE, *exclude):
            continue
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


def _wide(raw: Table, roles: DataRoles, *, source: str) -> MMMDataset:
    tab, _ = _typed(raw, roles.date_col)
    cols = [c for c in tab.df.columns if c != DATE]
    if roles.channels is None:
        raise DataValidationError(
            "which columns are media spend? a single-table input needs its roles",
            file=tab.name,
            hint="pass --channels (comma-separated spend columns), --target if the target is not "
            "'revenue', and optionally --controls and --brand; columns found: " + ", ".join(cols),
        )
    tcol = _resolve(tab, roles, "target")[0] if roles.target else _default_target(tab, exclude=[])
    ch, ct, br = (_resolve(tab, roles, r) for r in ("channels", "controls", "brand"))
    _check_roles(tab.name, {"target": [tcol], "channels": ch, "controls": ct, "brand": br})
    return assemble(
        sales=tab,
        target=tcol,
        spend=tab,
        channels=ch,
        spend_long=False,
        fills=[(tab, ct, "control"), (tab, br, "brand")],
        min_weeks=roles.min_weeks,
        source=source,
    )


def _resolve(tab: Table, roles: DataRoles, role: str) -> list[str]:
    """The table's columns named by a role (``[]`` when the role is unset)."""
    value = getattr(roles, role)
    names = [value] if isinstance(value, str) else (value or [])
    label = _ROLE_LABEL.get(role, role)
    return [resolve_column(tab, c, role=label, option=DataRoles.flag(role), exclude=[DATE]) for c in names]


_ROLE_LABEL = {"channels": "channel", "controls": "control"}  # singular in messages


def _load_folder(folder: Path, roles: DataRoles) -> MMMDataset:
    tables = _load_tables(folder, roles.date_col)
    channels, controls, brand = roles.channels, roles.controls, roles.brand
    sales, _ = tables["sales"]
    spend, long = tables["marketing"]
    tcol = _resolve(sales, roles, "target")[0] if roles.target else _default_target(sales)

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
        ch = (
            [c for c in spend.df.columns if c != DATE]
            if channels is None
            else _resolve(spend, roles, "channels")
        )
    if not ch:
        raise DataValidationError("no channels found", file=spend.name,
                                  hint="the file needs Date, Channel, Spend columns or one column per channel")

    # controls: competitor + macro by default; named ones may also come from sales.csv
    fills: list[tuple[Table, list[str], str]] = []
    ctrl_tables = [t for t in (tables["competitor"], tables["macro"]) if t is not None]
    if controls is None:
        for t, _ in ctrl_tables:
            fills.append((t, [c for c in t.df.columns if c != DATE], "control"))
    else:
        search = [*(t for t, _ in ctrl_tables), sales]
        picked: dict[int, list[str]] = {}
        for c in controls:
            for i, t in enumerate(search):
                excl = [DATE, tcol] if t is sales else [DATE]
                hit = find_column([x for x in t.df.columns if x not in excl], c)
                if hit is not None:
                    picked.setdefault(i, []).append(hit)
                    break
            else:
                names = [t.name for t in search]
                avail = [x for t in search for x in t.df.columns if x not in (DATE, tcol)]
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
            fills.append((bt[0], [c for c in bt[0].df.columns if c != DATE], "brand"))
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
        },
    )
    return assemble(
        sales=sales,
        target=tcol,
        spend=spend,
        channels=ch,
        spend_long=long,
        fills=fills,
        min_weeks=roles.min_weeks,
        source=str(folder),
    )
