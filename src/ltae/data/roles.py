"""Which input column plays which part: :class:`DataRoles`, declared once.

The same object travels from the command line or the configuration file (``[data]`` in a
TOML/YAML file, :class:`ltae.config.DataConfig` adds the data path to it) to the loaders
(:func:`ltae.data.load_dataset`) and back out with the dataset (:attr:`MMMDataset.roles
<ltae.data.dataset.MMMDataset.roles>`, the ``<stem>.roles.json`` next to a prepared CSV). It plays
the part of Meridian's ``CoordToColumns``.

Each field carries its command-line flag and help text, so the CLI builds its options from this
class (``ltae.cli.data_role_options``), and the loaders take the roles they act on from
:meth:`DataRoles.column_roles`. Adding a role is a new field here (``kind="column"`` for one column,
``"columns"`` for a list, ``"source"`` for a reading option, ``"kpi"`` for what the target measures)
plus the loader code that uses it.

Markets: ``geo`` names the market column of a panel (``ltae.data.panel.PanelDataset``), and
``population`` its population column. The target's unit: ``kpi_type`` (``revenue`` or
``non_revenue``) and ``revenue_per_kpi`` (a number or a column) that converts a non-revenue KPI to
currency (see :mod:`ltae.data.kpi`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ltae.data.names import DATE, normalize_name, split_names

RoleKind = Literal["column", "columns", "source", "kpi"]
KPI_TYPES = ("revenue", "non_revenue")


def _role(default: Any, *, kind: RoleKind, flag: str, help: str, **kw) -> Any:  # noqa: A002
    """A :class:`DataRoles` field: its kind, CLI flag and help text live in its schema metadata."""
    return Field(default, description=help, json_schema_extra={"kind": kind, "flag": flag}, **kw)


class DataRoles(BaseModel):
    """Column roles and reading options of an input data set.

    Every field is optional: ``None`` means "the default" (see each field's description).
    Lists accept a Python list or one comma-separated string (``"Google, TV"``); names are
    normalised (surrounding spaces and a byte-order mark removed, unicode NFC) and later matched
    to headers ignoring case and spaces.
    """

    model_config = ConfigDict(extra="forbid")

    target: str | None = _role(None, kind="column", flag="--target",
                               help="Target column (default: 'revenue').")
    date_col: str | None = _role(None, kind="column", flag="--date-col",
                                 help="Date column (default: 'Date', any case).")
    channels: list[str] | None = _role(
        None, kind="columns", flag="--channels",
        help="Comma-separated channels / spend columns (default: all in the spend file; required for a "
             "single table).")
    controls: list[str] | None = _role(
        None, kind="columns", flag="--controls",
        help="Comma-separated control columns (default: competitor + macro columns; '' for none).")
    brand: list[str] | None = _role(
        None, kind="columns", flag="--brand",
        help="Comma-separated brand-metric columns (default: all of brand_metrics.csv; '' for none).")
    geo: str | None = _role(
        None, kind="column", flag="--geo",
        help="Market column: the data are a panel, one series per market (default: none; a column named "
             "'Geo' or 'Market' when the dates repeat, 'geo' in Meridian's layout).")
    population: str | None = _role(
        None, kind="column", flag="--population",
        help="Population column of a panel, one value per market (default: a column named 'population', "
             "or population.csv in a folder).")
    kpi_type: Literal["revenue", "non_revenue"] | None = _role(
        None, kind="kpi", flag="--kpi-type",
        help="What the target measures: revenue (currency) or non_revenue (conversions, units...) (default: "
             "revenue when its name looks like money, e.g. revenue or sales, else non_revenue).")
    revenue_per_kpi: float | str | None = _role(
        None, kind="kpi", flag="--revenue-per-kpi",
        help="Revenue per unit of a non-revenue KPI, a number or a column (e.g. revenue_per_conversion): the "
             "target is converted to currency before modelling (default: none).")
    table: str | None = _role(None, kind="source", flag="--table", help="Table name in a DuckDB file.")
    min_weeks: int = _role(52, kind="source", flag="--min-weeks", help="Fewest weeks accepted.", ge=1)

    @field_validator("kpi_type", mode="before")
    @classmethod
    def _kpi_type(cls, v: Any) -> Any:
        if isinstance(v, str):
            key = normalize_name(v).casefold().replace("-", "_").replace(" ", "_")
            return {"": None, "nonrevenue": "non_revenue"}.get(key, key)
        return v

    @field_validator("revenue_per_kpi", mode="before")
    @classmethod
    def _revenue_per_kpi(cls, v: Any) -> Any:
        """A number (also written as text, ``"2.5"``) or a column name; a number must be > 0."""
        if isinstance(v, str):
            v = normalize_name(v)
            if not v:
                return None
            try:
                v = float(v)
            except ValueError:
                return v  # a column name
        if isinstance(v, bool):
            raise ValueError("must be a number or a column name")
        if isinstance(v, int | float):
            if not (math.isfinite(v) and v > 0):
                raise ValueError("must be a positive number (revenue per unit of the KPI) or a column name")
            return float(v)
        return v

    @field_validator("channels", "controls", "brand", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if v is None or isinstance(v, str) or isinstance(v, list | tuple):
            return split_names(v)
        return v

    @field_validator("target", "date_col", "table", "geo", "population", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        if isinstance(v, str):
            return normalize_name(v) or None
        return v

    # ---- the roles as the rest of the code sees them ------------------------------------------
    @classmethod
    def kind(cls, name: str) -> RoleKind:
        """``"column"``, ``"columns"``, ``"source"`` or ``"kpi"`` for a field name."""
        return DataRoles.model_fields[name].json_schema_extra["kind"]  # type: ignore[index]

    @classmethod
    def flag(cls, name: str) -> str:
        """The command-line flag of a field (``--channels``), used in messages."""
        return DataRoles.model_fields[name].json_schema_extra["flag"]  # type: ignore[index]

    @classmethod
    def column_role_names(cls) -> tuple[str, ...]:
        """The fields that name columns (``target, date_col, channels, controls, brand, geo, population``)."""
        return tuple(n for n in DataRoles.model_fields if cls.kind(n) in ("column", "columns"))

    @property
    def revenue_per_kpi_column(self) -> str | None:
        """``revenue_per_kpi`` when it names a column (else ``None``)."""
        return self.revenue_per_kpi if isinstance(self.revenue_per_kpi, str) else None

    def column_roles(self) -> dict[str, Any]:
        """The column roles only, as plain values (what a ``roles.json`` sidecar holds)."""
        return {n: getattr(self, n) for n in self.column_role_names()}

    def with_defaults(self, other: DataRoles | dict[str, Any]) -> DataRoles:
        """These roles, with the column roles left unset (``None``) taken from ``other``."""
        other = other if isinstance(other, DataRoles) else DataRoles.model_validate(
            {k: v for k, v in other.items() if k in self.column_role_names()})
        fill = {n: getattr(other, n) for n in self.column_role_names()
                if getattr(self, n) is None and getattr(other, n) is not None}
        return self.model_copy(update=fill) if fill else self

    @classmethod
    def of_dataset(cls, target: str, channels, controls, brand, geo: str | None = None,
                   population: str | None = None) -> DataRoles:
        """The resolved roles of a loaded dataset (its date column is always ``Date``); ``geo`` and
        ``population`` for a panel."""
        return cls(target=target, date_col=DATE, channels=list(channels), controls=list(controls),
                   brand=list(brand), geo=geo, population=population)
