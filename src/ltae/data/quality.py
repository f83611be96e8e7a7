"""Data-quality report for an :class:`~ltae.data.dataset.MMMDataset` (statsmodels).

* VIF per regressor (channels + controls), flagged above :data:`VIF_THRESHOLD`; perfectly
  collinear or constant regressors get ``inf``;
* augmented Dickey-Fuller test per series (target, channels, controls, brand): statistic,
  p-value, stationary at 5%; "not applicable" for constant or too-short series;
* summary statistics: mean, std, min, max, share of zero weeks.

statsmodels is imported lazily so that ``import ltae.data`` stays fast.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ltae.data.dataset import MMMDataset
from ltae.data.validate import fmt_date

VIF_THRESHOLD = 10.0
ADF_ALPHA = 0.05


@dataclass(frozen=True)
class VIFRow:
    """Variance inflation factor of one regressor (``high``: above the threshold of 10)."""
    name: str
    role: str
    vif: float  # inf when perfectly collinear or constant
    high: bool
    note: str = ""


@dataclass(frozen=True)
class ADFRow:
    """Augmented Dickey-Fuller test of one series (``stationary``: None where the test does not apply)."""
    name: str
    role: str
    statistic: float | None
    p_value: float | None
    lags: int | None
    stationary: bool | None  # None: test not applicable
    note: str = ""


@dataclass(frozen=True)
class SummaryRow:
    """Summary statistics of one column."""
    name: str
    role: str
    mean: float
    std: float
    min: float
    max: float
    zero_share: float


@dataclass(frozen=True)
class QualityReport:
    """The data quality report (``ltae check``, ``quality.json``): VIF of the regressors, ADF tests of the
    series and summary statistics."""
    n_weeks: int
    start: str
    end: str
    vif: tuple[VIFRow, ...]
    adf: tuple[ADFRow, ...]
    summary: tuple[SummaryRow, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def high_vif(self) -> tuple[str, ...]:
        """Names of the regressors whose VIF is above the threshold."""
        return tuple(r.name for r in self.vif if r.high)

    def to_dict(self) -> dict:
        """Strictly JSON-serialisable (infinite/NaN numbers become ``None``; see ``note``)."""

        def clean(d: dict) -> dict:
            return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

        return {
            "n_weeks": self.n_weeks,
            "start": self.start,
            "end": self.end,
            "vif_threshold": VIF_THRESHOLD,
            "adf_alpha": ADF_ALPHA,
            "vif": [clean(asdict(r)) for r in self.vif],
            "adf": [clean(asdict(r)) for r in self.adf],
            "summary": [clean(asdict(r)) for r in self.summary],
            "warnings": list(self.warnings),
        }

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """``{"vif": ..., "adf": ..., "summary": ...}``, one row per series."""

        def frame(rows, cls):
            cols = list(cls.__dataclass_fields__)
            return pd.DataFrame([asdict(r) for r in rows], columns=cols)

        return {
            "vif": frame(self.vif, VIFRow),
            "adf": frame(self.adf, ADFRow),
            "summary": frame(self.summary, SummaryRow),
        }

    def rich_tables(self) -> list:
        """rich ``Table`` objects (summary, VIF, ADF) for printing with a ``rich.console.Console``."""
        from rich.markup import escape as esc
        from rich.table import Table

        def num(x, fmt="{:,.2f}"):
            if x is None:
                return "-"
            if isinstance(x, float) and math.isinf(x):
                return "inf"
            return fmt.format(x)

        summ = Table(title=f"Series summary ({self.n_weeks} weeks, {self.start} to {self.end})")
        for c, j in (("series", "left"), ("role", "left"), ("mean", "right"), ("std", "right"),
                     ("min", "right"), ("max", "right"), ("zero weeks", "right")):
            summ.add_column(c, justify=j)
        for r in self.summary:
            summ.add_row(esc(str(r.name)), r.role, num(r.mean), num(r.std), num(r.min), num(r.max),
                         f"{r.zero_share:.0%}")

        vif = Table(title=f"Collinearity (VIF, flag > {VIF_THRESHOLD:g})")
        for c, j in (("regressor", "left"), ("role", "left"), ("VIF", "right"), ("", "left")):
            vif.add_column(c, justify=j)
        for r in self.vif:
            flag = "[red]high[/red]" if r.high else "[green]ok[/green]"
            vif.add_row(esc(str(r.name)), r.role, num(r.vif), flag + (f" ({esc(r.note)})" if r.note else ""))

        adf = Table(title=f"Stationarity (ADF, {ADF_ALPHA:.0%} level)")
        for c, j in (("series", "left"), ("role", "left"), ("statistic", "right"), ("p-value", "right"),
                     ("lags", "right"), ("stationary", "left")):
            adf.add_column(c, justify=j)
        for r in self.adf:
            st = "n/a" if r.stationary is None else ("yes" if r.stationary else "[yellow]no[/yellow]")
            if r.note:
                st += f" ({esc(r.note)})"
            adf.add_row(esc(str(r.name)), r.role, num(r.statistic), num(r.p_value, "{:.3f}"),
                        "-" if r.lags is None else str(r.lags), st)
        return [summ, vif, adf]


def print_quality_report(report: QualityReport, console=None) -> None:
    """Print the report's tables and warnings with rich."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    for t in report.rich_tables():
        console.print(t)
    for w in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(str(w))}", highlight=False)


def _series(ds: MMMDataset) -> list[tuple[str, str, np.ndarray]]:
    out = [(ds.target_name, "target", ds.target.to_numpy(dtype=float))]
    out += [(c, "channel", ds.spend[c].to_numpy(dtype=float)) for c in ds.channels]
    out += [(c, "control", ds.controls[c].to_numpy(dtype=float)) for c in ds.control_names]
    out += [(c, "brand", ds.brand[c].to_numpy(dtype=float)) for c in ds.brand_names]
    return out


def compute_vif(x: pd.DataFrame) -> list[tuple[float, str]]:
    """VIF of each column of ``x`` (with an intercept): ``(vif, note)`` pairs."""
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    cols = list(x.columns)
    if not cols:
        return []
    arr = x.to_numpy(dtype=float)
    sd = arr.std(axis=0)
    out: list[tuple[float, str]] = [(math.nan, "")] * len(cols)
    varying = [i for i in range(len(cols)) if sd[i] > 0]
    for i in range(len(cols)):
        if sd[i] == 0:
            out[i] = (math.inf, "constant")
    if not varying:
        return out
    # standardise for numerical stability (VIF is scale invariant)
    z = (arr[:, varying] - arr[:, varying].mean(axis=0)) / sd[varying]
    exog = np.column_stack([np.ones(len(z)), z])
    for k, i in enumerate(varying):
        if len(varying) == 1:
            out[i] = (1.0, "")
            continue
        others = np.delete(z, k, axis=1)
        if np.linalg.matrix_rank(np.column_stack([others, z[:, k]])) < np.linalg.matrix_rank(others) + 1:
            out[i] = (math.inf, "perfectly collinear")
            continue
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")
            v = float(variance_inflation_factor(exog, k + 1))
        if not math.isfinite(v) or v > 1e12:
            out[i] = (math.inf, "perfectly collinear")
        else:
            out[i] = (v, "")
    return out


def _adf(name: str, role: str, x: np.ndarray) -> ADFRow:
    from statsmodels.tsa.stattools import adfuller

    if np.nanstd(x) == 0:
        return ADFRow(name, role, None, None, None, None, "constant")
    if len(x) < 12:
        return ADFRow(name, role, None, None, None, None, "too short")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stat, p, lags, *_ = adfuller(x, autolag="AIC", regression="c")
    except Exception as e:  # degenerate series (e.g. almost constant)
        return ADFRow(name, role, None, None, None, None, f"not applicable: {type(e).__name__}")
    stat, p = float(stat), float(p)
    if not (math.isfinite(stat) and math.isfinite(p)):
        return ADFRow(name, role, None, None, None, None, "not applicable")
    return ADFRow(name, role, stat, p, int(lags), p < ADF_ALPHA)


def quality_report(ds: MMMDataset) -> QualityReport:
    """VIF, ADF and summary statistics for every series of ``ds`` (see the module docstring)."""
    series = _series(ds)
    summary = []
    for name, role, x in series:
        summary.append(SummaryRow(
            name, role, float(np.mean(x)), float(np.std(x, ddof=1)) if len(x) > 1 else 0.0,
            float(np.min(x)), float(np.max(x)), float(np.mean(x == 0)),
        ))

    regs = pd.concat([ds.spend, ds.controls], axis=1)
    roles = ["channel"] * len(ds.channels) + ["control"] * len(ds.control_names)
    vif_rows = []
    for (name, role), (v, note) in zip(zip(regs.columns, roles, strict=True), compute_vif(regs), strict=True):
        vif_rows.append(VIFRow(str(name), role, v, bool(v > VIF_THRESHOLD), note))

    adf_rows = [_adf(name, role, x) for name, role, x in series]

    warns = []
    high = [r.name for r in vif_rows if r.high]
    if high:
        warns.append(f"high collinearity (VIF > {VIF_THRESHOLD:g}): {', '.join(high)}; their effects "
                     "are hard to separate")
    nonstat = [r.name for r in adf_rows if r.stationary is False]
    if nonstat:
        warns.append(f"not stationary at {ADF_ALPHA:.0%} (ADF): {', '.join(nonstat)}; the model's trend/"
                     "level terms absorb slow drifts")
    for r in summary:
        if r.role == "channel" and r.zero_share >= 0.5:
            warns.append(f"channel {r.name} has zero spend in {r.zero_share:.0%} of weeks")
    return QualityReport(
        n_weeks=ds.n_weeks,
        start=fmt_date(ds.dates[0]),
        end=fmt_date(ds.dates[-1]),
        vif=tuple(vif_rows),
        adf=tuple(adf_rows),
        summary=tuple(summary),
        warnings=tuple(warns),
    )
