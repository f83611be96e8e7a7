"""Analysis layer: ROI tables (:mod:`~ltae.analysis.roi`), fit diagnostics
(:mod:`~ltae.analysis.diagnostics`), the budget optimiser (:mod:`~ltae.analysis.optimize`) and
spend-plan scenarios (:mod:`~ltae.analysis.scenarios`). Every face of ltae (CLI, report, dashboard,
API) gets its numbers from here, so the same inputs give the same numbers everywhere."""
