"""Run report: PNG figures (:func:`make_figures`) and one self-contained HTML file (:func:`write_report`).

Imports are lazy so that ``import ltae.report`` does not load matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ltae.report.figures import make_figures
    from ltae.report.html import render_report, write_report

__all__ = ["make_figures", "render_report", "write_report"]


def __getattr__(name: str) -> Any:
    if name == "make_figures":
        from ltae.report.figures import make_figures

        return make_figures
    if name in ("write_report", "render_report"):
        from ltae.report import html

        return getattr(html, name)
    raise AttributeError(f"module 'ltae.report' has no attribute {name!r}")
