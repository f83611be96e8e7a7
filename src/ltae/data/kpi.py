"""What the target measures: revenue (currency) or a non-revenue KPI (conversions, units, leads...).

ROI is "currency of sales per currency unit of spend" only when the target is money. Meridian's
files model ``conversions`` (with ``revenue_per_conversion``): read as revenue, 90 conversions per
unit of spend would be reported as an ROI of 90. So every dataset carries a :class:`KPI`:

* ``kpi_type`` given (``--kpi-type``, ``data.kpi_type``): that;
* ``revenue_per_kpi`` given (``--revenue-per-kpi``: a number, or a column such as Meridian's
  ``revenue_per_conversion``): the target is converted to currency before modelling (KPI x revenue
  per KPI, row by row for a column, so daily rows are converted before they are summed to weeks),
  the modelled column is called ``<kpi>_revenue`` and the KPI is revenue;
* neither: decided from the target's name (:func:`kpi_type_of_name`): revenue when it looks like
  money (revenue, sales, turnover, income, value, GMV, profit...) and does not name a count
  (units, conversions, orders, volume...), else non-revenue, with a notice saying so.

For a non-revenue KPI the analysis layer reports "incremental KPI per unit of spend" and the cost per
incremental KPI (CPIK), see :func:`ltae.analysis.roi.kpi_columns`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

REVENUE = "revenue"
NON_REVENUE = "non_revenue"
CURRENCY = "currency"

# tokens of a name that say "money" / "a count of things"; a count word wins ("sales_units")
_MONEY_WORDS = frozenset({
    "revenue", "revenues", "rev", "sales", "turnover", "income", "value", "gmv", "profit", "profits", "margin",
    "amount", "money", "currency", "eur", "euro", "euros", "usd", "dollar", "dollars", "gbp", "pounds", "chf",
    "jpy", "yen", "cash", "earnings", "receipts", "billings", "bookings", "umsatz", "ventes", "ventas",
})
_MONEY_PARTS = ("revenue", "turnover", "income", "umsatz")  # also inside a word (netrevenue, grossincome)
_COUNT_WORDS = frozenset({
    "unit", "units", "conversion", "conversions", "order", "orders", "lead", "leads", "signup", "signups",
    "install", "installs", "visit", "visits", "visitors", "customer", "customers", "volume", "volumes", "count",
    "counts", "qty", "quantity", "quantities", "transaction", "transactions", "subscription", "subscriptions",
    "subscribers", "download", "downloads", "call", "calls", "click", "clicks", "acquisitions", "registrations",
    "purchases", "footfall", "traffic", "sessions", "users", "pieces", "items", "kg", "tons", "litres", "liters",
})


def _tokens(name: str) -> list[str]:
    """Lower-case word tokens of a column name (``netRevenue_EUR`` -> ``net, revenue, eur``)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name))
    return [t for t in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if t]


def kpi_type_of_name(name: str) -> Literal["revenue", "non_revenue"]:
    """``"revenue"`` when a column name looks like money and names no count, else ``"non_revenue"``.

    ``revenue``, ``Sales``, ``net_turnover``, ``GMV_EUR`` -> revenue; ``conversions``, ``sales_units``,
    ``orders``, ``y`` -> non_revenue."""
    toks = _tokens(name)
    if any(t in _COUNT_WORDS for t in toks):
        return NON_REVENUE
    low = str(name).lower()
    if any(t in _MONEY_WORDS for t in toks) or any(p in low for p in _MONEY_PARTS):
        return REVENUE
    return NON_REVENUE


@dataclass(frozen=True)
class KPI:
    """What a dataset's target measures (immutable; ``to_dict()`` is its JSON form).

    Attributes:
        type: ``"revenue"`` (the modelled target is currency) or ``"non_revenue"``.
        name: the KPI column as the input names it (``conversions``), before any conversion.
        target: the modelled column (``name``, or ``<name>_revenue`` when converted).
        unit: ``"currency"`` for revenue, else the KPI's name (``conversions``): what one unit of
            the target is.
        revenue_per_kpi: the number the KPI was multiplied by (``--revenue-per-kpi 2.5``), else ``None``.
        column: the column of revenue per KPI it was multiplied by, row by row, else ``None``.
        detected: ``True`` when the type was inferred from the target's name (no option given).
    """

    type: Literal["revenue", "non_revenue"]
    name: str
    target: str
    unit: str
    revenue_per_kpi: float | None = None
    column: str | None = None
    detected: bool = False

    def __post_init__(self) -> None:
        if self.type not in (REVENUE, NON_REVENUE):
            raise ValueError(f"KPI type must be '{REVENUE}' or '{NON_REVENUE}', not {self.type!r}")
        if self.converted and self.type != REVENUE:
            raise ValueError("a KPI converted to currency is revenue")

    @property
    def is_revenue(self) -> bool:
        """Whether the modelled target is currency (ROI is then currency per unit of spend)."""
        return self.type == REVENUE

    @property
    def converted(self) -> bool:
        """Whether the target was converted to currency (by a number or a column)."""
        return self.revenue_per_kpi is not None or self.column is not None

    @classmethod
    def revenue(cls, target: str, *, detected: bool = False) -> KPI:
        """A target that is currency as it is."""
        return cls(REVENUE, target, target, CURRENCY, detected=detected)

    @classmethod
    def non_revenue(cls, target: str, *, detected: bool = False) -> KPI:
        """A target that is a count (conversions...); its unit is its own name."""
        return cls(NON_REVENUE, target, target, target, detected=detected)

    @classmethod
    def of_name(cls, target: str) -> KPI:
        """The type inferred from the target's name (:func:`kpi_type_of_name`)."""
        kind = kpi_type_of_name(target)
        return cls.revenue(target, detected=True) if kind == REVENUE else cls.non_revenue(target, detected=True)

    def to_dict(self) -> dict[str, Any]:
        """``{"type", "name", "target", "unit", "revenue_per_kpi", "column", "detected", "converted"}``."""
        return {**asdict(self), "converted": self.converted}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KPI:
        """The inverse of :meth:`to_dict` (unknown keys are ignored)."""
        keys = ("type", "name", "target", "unit", "revenue_per_kpi", "column", "detected")
        return cls(**{k: d[k] for k in keys if k in d})


def converted_name(kpi_name: str) -> str:
    """The modelled column of a KPI converted to currency: ``conversions`` -> ``conversions_revenue``."""
    return f"{kpi_name}_revenue"


def non_revenue_notice(kpi: KPI) -> str:
    """The notice of a KPI inferred to be non-revenue."""
    return (f"the target '{kpi.name}' does not look like money: it is treated as a non-revenue KPI (results in "
            f"{kpi.unit} per unit of spend and cost per incremental {kpi.unit}); pass --kpi-type revenue if it "
            "is currency, or --revenue-per-kpi (a number or a column) to convert it to currency")
