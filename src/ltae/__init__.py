"""ltae — long-term ad effectiveness: two-step Bayesian marketing mix modelling.

``ltae.run(data, out, config)`` runs the whole pipeline and returns a ``RunResult``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "run"]


def __getattr__(name: str):
    if name == "run":  # lazy: importing ltae does not import PyMC
        from ltae.pipeline import run

        return run
    raise AttributeError(f"module 'ltae' has no attribute {name!r}")
