"""ltae — long-term ad effectiveness: two-step Bayesian marketing mix modelling."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
