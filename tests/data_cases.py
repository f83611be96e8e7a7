"""Shared helpers for the data tests: a small synthetic folder and the bad-input cases.

Line numbers: in the CSV files written by ``save_to_csv`` data row ``i`` (0-based) is on line
``i + 2`` (the header is line 1). ``marketing_spend.csv`` is long with 4 channels per week in the
order Content, Events, Google, LinkedIn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ltae.data import generate_synthetic_data, save_to_csv

N_WEEKS = 60
SEED = 7


def make_folder(folder: Path, n_weeks: int = N_WEEKS, seed: int = SEED, **kw) -> Path:
    save_to_csv(generate_synthetic_data(n_weeks=n_weeks, seed=seed, **kw), folder)
    return folder


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False)


def write(folder: Path, name: str, df: pd.DataFrame) -> None:
    df.to_csv(folder / name, index=False)


def edit(folder: Path, name: str, fn: Callable[[pd.DataFrame], pd.DataFrame | None]) -> None:
    df = read(folder, name)
    out = fn(df)
    write(folder, name, df if out is None else out)


def set_cell(name: str, row: int, column: str, value: str):
    def mutate(folder: Path) -> list[str]:
        def fn(df):
            df.loc[row, column] = value

        edit(folder, name, fn)
        return []

    return mutate


@dataclass
class Case:
    id: str
    mutate: Callable[[Path], list[str]]  # corrupts the folder, returns extra CLI args
    file: str | None
    column: str | None
    row: int | None
    words: tuple[str, ...] = field(default=())  # fragments the message must contain


def _remove_sales(folder):
    (folder / "sales.csv").unlink()
    return []


def _rename_date(folder):
    edit(folder, "sales.csv", lambda df: df.rename(columns={"Date": "Week"}))
    return []


def _dup_date(folder):
    def fn(df):
        df.loc[5, "Date"] = df.loc[4, "Date"]

    edit(folder, "sales.csv", fn)
    return []


def _dup_spend(folder):
    def fn(df):
        df.loc[9, ["Date", "Channel"]] = df.loc[5, ["Date", "Channel"]].to_numpy()

    edit(folder, "marketing_spend.csv", fn)
    return []


def _every_two_weeks(folder):
    def fn(df):
        d = pd.to_datetime(df["Date"])
        df["Date"] = (d.iloc[0] + pd.to_timedelta(14 * pd.RangeIndex(len(d)), unit="D")).strftime("%Y-%m-%d")

    edit(folder, "sales.csv", fn)
    return []


def _shift_one(folder):
    def fn(df):
        df.loc[10, "Date"] = (pd.Timestamp(df.loc[10, "Date"]) + pd.Timedelta(days=2)).strftime("%Y-%m-%d")

    edit(folder, "sales.csv", fn)
    return []


def _drop_week(folder):
    edit(folder, "sales.csv", lambda df: df.drop(index=20).reset_index(drop=True))
    return []


def _constant_target(folder):
    def fn(df):
        df["revenue"] = "100"

    edit(folder, "sales.csv", fn)
    return []


def _zero_channel(folder):
    def fn(df):
        df.loc[df["Channel"] == "Google", "Spend"] = "0"

    edit(folder, "marketing_spend.csv", fn)
    return []


def _empty_brand(folder):
    def fn(df):
        df["Awareness"] = ""

    edit(folder, "brand_metrics.csv", fn)
    return []


def _mixed_dates(folder):
    def fn(df):
        df.loc[8, "Date"] = pd.Timestamp(df.loc[8, "Date"]).strftime("%d/%m/%Y")

    edit(folder, "sales.csv", fn)
    return []


def _args(*a):
    return lambda folder: list(a)


# every bad-input case: (file, column, row) of the first problem and words the message must have
BAD_CASES = [
    Case("missing_file", _remove_sales, "sales.csv", None, None, ("not found",)),
    Case("missing_target_column", _args("--target", "profit"), "sales.csv", "profit", 1, ("not found",)),
    Case("missing_date_column", _rename_date, "sales.csv", "Date", 1, ("--date-col",)),
    Case("missing_named_channel", _args("--channels", "Google,TikTok"), "marketing_spend.csv", "Channel", None,
         ("TikTok",)),
    Case("missing_named_control", _args("--controls", "GDP_Growth,Inflation"),
         "competitor_activity.csv, macroeconomic_indicators.csv or sales.csv", "Inflation", 1,
         ("is not in any of these files",)),
    Case("unparseable_date", set_cell("sales.csv", 8, "Date", "2021-02-30"), "sales.csv", "Date", 10,
         ("2021-02-30",)),
    Case("mixed_date_formats", _mixed_dates, "sales.csv", "Date", 10, ("mixed date formats",)),
    Case("duplicate_date", _dup_date, "sales.csv", "Date", 7, ("duplicate", "line 6")),
    Case("duplicate_date_channel", _dup_spend, "marketing_spend.csv", "Date", 11, ("duplicate", "Channel")),
    Case("non_weekly", _every_two_weeks, "sales.csv", "Date", 3, ("14 days",)),
    Case("irregular_spacing", _shift_one, "sales.csv", "Date", 12, ("9 days", "same weekday")),
    Case("missing_week", _drop_week, "sales.csv", "Date", 22, ("missing", "line 21")),
    Case("negative_spend", set_cell("marketing_spend.csv", 15, "Spend", "-120"), "marketing_spend.csv", "Spend",
         17, ("negative spend -120.0", ">= 0")),
    Case("non_numeric_spend", set_cell("marketing_spend.csv", 15, "Spend", "abc"), "marketing_spend.csv",
         "Spend", 17, ("'abc'", "not a number")),
    Case("non_numeric_target", set_cell("sales.csv", 15, "revenue", "12O45"), "sales.csv", "revenue", 17,
         ("'12O45'", "not a number")),
    Case("nan_target", set_cell("sales.csv", 30, "revenue", ""), "sales.csv", "revenue", 32, ("empty",)),
    Case("inf_target", set_cell("sales.csv", 30, "revenue", "inf"), "sales.csv", "revenue", 32, ("inf",)),
    Case("constant_target", _constant_target, "sales.csv", "revenue", 2, ("same value",)),
    Case("all_zero_channel", _zero_channel, "marketing_spend.csv", "Spend", 4, ("Google", "0 in all 60 weeks")),
    Case("too_few_weeks", _args("--min-weeks", "100"), "sales.csv", "Date", None,
         ("only 60 weeks", "at least 100", "--min-weeks")),
    Case("brand_column_empty", _empty_brand, "brand_metrics.csv", "Awareness", 2, ("no values",)),
]


def cli_to_kwargs(args: list[str]) -> dict:
    """The few CLI role options used by the cases, as ``load_dataset`` keyword arguments."""
    kw: dict = {}
    it = iter(args)
    for a in it:
        v = next(it)
        key = a.lstrip("-").replace("-", "_")
        kw[key] = int(v) if key == "min_weeks" else v
    return kw
