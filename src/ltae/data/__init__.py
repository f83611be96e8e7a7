"""Data layer: loading, validation, preparation, quality checks and synthetic data.

Everything downstream takes an :class:`MMMDataset` (one market) or a :class:`PanelDataset`
(several markets: a mapping market -> MMMDataset), built by :func:`load_dataset` from a path and
the column roles (:class:`DataRoles`); ``ds.kpi`` (:class:`KPI`) says what the target measures. The names below are imported on first use, so that
``import ltae.data.roles`` (the command line's options) does not import pandas.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SPEC_FILES": "load",
    "DataRoles": "roles",
    "DataValidationError": "validate",
    "KPI": "kpi",
    "MMMDataset": "dataset",
    "PanelDataset": "panel",
    "QualityReport": "quality",
    "SyntheticData": "synthetic",
    "SyntheticParams": "synthetic",
    "clean_data": "prepare",
    "default_params": "synthetic",
    "generate_synthetic_data": "synthetic",
    "load_data": "load",
    "load_dataset": "load",
    "merge_data": "prepare",
    "quality_report": "quality",
    "save_to_csv": "synthetic",
    "write_prepared": "prepare",
}

__all__ = [
    "DataRoles",
    "DataValidationError",
    "KPI",
    "MMMDataset",
    "PanelDataset",
    "QualityReport",
    "SPEC_FILES",
    "SyntheticData",
    "SyntheticParams",
    "clean_data",
    "default_params",
    "generate_synthetic_data",
    "load_data",
    "load_dataset",
    "merge_data",
    "quality_report",
    "save_to_csv",
    "write_prepared",
]

def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"ltae.data.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ltae.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
