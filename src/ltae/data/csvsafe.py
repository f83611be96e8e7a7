"""Spreadsheet formula neutralisation for CSV cells (CWE-1236, "CSV injection").

Names in ltae's CSV outputs come from the user's data. A text cell starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return would be run as a formula when the file is opened in a
spreadsheet, so ltae writes it with a leading apostrophe (``=1+1`` -> ``'=1+1``). Numbers are never
touched. ltae's readers undo it: a cell ``'`` + one of those characters is read without the
apostrophe, so a file ltae wrote reads back with the original names (a name that itself starts
with apostrophes before such a character gets one more, so the round trip is exact).
"""

from __future__ import annotations

from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _formula_like(text: str) -> bool:
    """Starts with a formula character, possibly after apostrophes (so that escaping round-trips:
    a name that itself starts with ``'=`` is written ``''=`` and read back as ``'=``)."""
    return text.lstrip("'").startswith(FORMULA_START)


def neutralize_cell(value: Any) -> Any:
    """A text cell that a spreadsheet would evaluate gets a leading apostrophe; other values as is."""
    if isinstance(value, str) and _formula_like(value):
        return "'" + value
    return value


def unneutralize_cell(value: Any) -> Any:
    """Inverse of :func:`neutralize_cell` (other values as is)."""
    if isinstance(value, str) and value.startswith("'") and _formula_like(value):
        return value[1:]
    return value


def _text_columns(df):
    import pandas as pd

    return [i for i, dt in enumerate(df.dtypes)
            if pd.api.types.is_object_dtype(dt) or isinstance(dt, pd.StringDtype)]


def neutralize_frame(df):
    """Copy of ``df`` with formula-like text in the headers and text cells neutralised."""
    out = df.copy()
    out.columns = [neutralize_cell(c) for c in out.columns]
    for i in _text_columns(out):
        out.isetitem(i, out.iloc[:, i].map(neutralize_cell))
    return out


def unneutralize_frame(df):
    """Inverse of :func:`neutralize_frame`."""
    out = df.copy()
    out.columns = [unneutralize_cell(c) for c in out.columns]
    for i in _text_columns(out):
        out.isetitem(i, out.iloc[:, i].map(unneutralize_cell))
    return out
