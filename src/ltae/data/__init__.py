"""Data layer: loading, validation, preparation, quality checks and synthetic data.

Everything downstream takes an :class:`MMMDataset`, built by :func:`load_dataset`.
"""

from __future__ import annotations

from ltae.data.dataset import MMMDataset
from ltae.data.load import SPEC_FILES, load_data, load_dataset
from ltae.data.prepare import clean_data, merge_data, write_prepared
from ltae.data.quality import QualityReport, quality_report
from ltae.data.synthetic import (
    SyntheticData,
    SyntheticParams,
    default_params,
    generate_synthetic_data,
    save_to_csv,
)
from ltae.data.validate import DataValidationError

__all__ = [
    "SPEC_FILES",
    "DataValidationError",
    "MMMDataset",
    "QualityReport",
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
