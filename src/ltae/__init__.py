"""ltae — long-term ad effectiveness: two-step Bayesian marketing mix modelling.

``ltae.run(data, out, config)`` runs the whole pipeline and returns a ``RunResult``. The
specification's names are here too: :func:`load_data`, :func:`merge_data`, :func:`clean_data`,
:func:`generate_synthetic_data`, :class:`UCM_MMM_Optimized`, :class:`BVAR_Optimized`,
:func:`optimize_budget`; and :func:`load_dataset`, :class:`DataRoles`, :class:`RunConfig`.
Everything is imported on first use, so ``import ltae`` does not import PyMC.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "run": "ltae.pipeline",
    "RunConfig": "ltae.config",
    "DataRoles": "ltae.data.roles",
    "load_dataset": "ltae.data.load",
    "load_data": "ltae.data.load",
    "merge_data": "ltae.data.prepare",
    "clean_data": "ltae.data.prepare",
    "generate_synthetic_data": "ltae.data.synthetic",
    "UCM_MMM_Optimized": "ltae.models.mmm",
    "BVAR_Optimized": "ltae.models.bvar",
    "optimize_budget": "ltae.analysis.optimize",
}

__all__ = [
    "BVAR_Optimized",
    "DataRoles",
    "RunConfig",
    "UCM_MMM_Optimized",
    "__version__",
    "clean_data",
    "generate_synthetic_data",
    "load_data",
    "load_dataset",
    "merge_data",
    "optimize_budget",
    "run",
]


def __getattr__(name: str):
    if name in _EXPORTS:  # lazy: importing ltae does not import PyMC
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ltae' has no attribute {name!r}")
