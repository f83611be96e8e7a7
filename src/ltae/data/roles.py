"""Which input column plays which part: :class:`DataRoles`, declared once.

The same object travels from the command line or the configuration file (``[data]`` in a
TOML/YAML file, :class:`ltae.config.DataConfig` adds the data path to it) to the loaders
(:func:`ltae.data.load_dataset`) and back out with the dataset (:attr:`MMMDataset.roles
<ltae.data.dataset.MMMDataset.roles>`, the ``<stem>.roles.json`` next to a prepared CSV). It plays
the part of Meridian's ``CoordToColumns``.

Each field carries its command-line flag and help text, so the CLI builds its options from this
class (``ltae.cli.data_role_options``), and the loaders take the roles they act on from
:meth:`DataRoles.column_roles`. Adding a role is a new field here (``kind="column"`` for one column,
``"columns"`` for a list, ``"source"`` for a reading option) plus the loader code that uses it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ltae.data.names import DATE, normalize_name, split_names

RoleKind = Literal["column", "columns", "source"]


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
    table: str | None = _role(None, kind="source", flag="--table", help="Table name in a DuckDB file.")
    min_weeks: int = _role(52, kind="source", flag="--min-weeks", help="Fewest weeks accepted.", ge=1)

    @field_validator("channels", "controls", "brand", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if v is None or isinstance(v, str) or isinstance(v, list | tuple):
            return split_names(v)
        return v

    @field_validator("target", "date_col", "table", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        if isinstance(v, str):
            return normalize_name(v) or None
        return v

    # ---- the roles as the rest of the code sees them ------------------------------------------
    @classmethod
    def kind(cls, name: str) -> RoleKind:
        """``"column"``, ``"columns"`` or ``"source"`` for a field name."""
        return DataRoles.model_fields[name].json_schema_extra["kind"]  # type: ignore[index]

    @classmethod
    def flag(cls, name: str) -> str:
        """The command-line flag of a field (``--channels``), used in messages."""
        return DataRoles.model_fields[name].json_schema_extra["flag"]  # type: ignore[index]

    @classmethod
    def column_role_names(cls) -> tuple[str, ...]:
        """The fields that name columns (``target, date_col, channels, controls, brand``)."""
        return tuple(n for n in DataRoles.model_fields if cls.kind(n) != "source")

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
    def of_dataset(cls, target: str, channels, controls, brand) -> DataRoles:
        """The resolved roles of a loaded dataset (its date column is always ``Date``)."""
        return cls(target=target, date_col=DATE, channels=list(channels), controls=list(controls),
                   brand=list(brand))
