"""Spreadsheet formula neutralisation for CSV cells: moved to :mod:`ltae.io` (re-exported here)."""

from ltae.io import (  # noqa: F401
    FORMULA_START,
    _formula_like,
    neutralize_cell,
    neutralize_frame,
    unneutralize_cell,
    unneutralize_frame,
)
