"""The canonical, validated input of every model: :class:`MMMDataset`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ltae.data.kpi import KPI
from ltae.data.roles import DataRoles
from ltae.data.validate import DATE, fmt_date


@dataclass(frozen=True, eq=False, repr=False)
class MMMDataset:
    """Weekly modelling data, validated.

    * ``dates``: weekly, sorted, unique, regular (``dates.freq`` is ``W-<weekday>``);
    * ``target``: float series indexed by ``dates``, named after the target column;
    * ``spend``: one float column per channel, in currency, all values >= 0;
    * ``controls`` / ``brand``: float frames indexed by ``dates``, possibly with no columns;
    * ``source``: where the data came from (for messages and manifests);
    * ``notices``: what was done to the input on the way (aggregation, filling, dropped rows);
    * ``kpi``: what the target measures (:class:`~ltae.data.kpi.KPI`: revenue, or a non-revenue KPI
      such as conversions, and whether it was converted to currency); when not given, inferred from
      the target's name.

    Build it with :func:`ltae.data.load_dataset` or :meth:`from_frame`; both validate.
    """

    dates: pd.DatetimeIndex
    target: pd.Series
    spend: pd.DataFrame
    controls: pd.DataFrame
    brand: pd.DataFrame
    source: str
    notices: tuple[str, ...] = ()
    kpi: KPI | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dates, pd.DatetimeIndex):
            raise TypeError("dates must be a pandas DatetimeIndex")
        for name in ("target", "spend", "controls", "brand"):
            obj = getattr(self, name)
            if not obj.index.equals(self.dates):
                raise ValueError(f"MMMDataset.{name} must be indexed by dates")
        if not isinstance(self.notices, tuple):
            object.__setattr__(self, "notices", tuple(self.notices))
        if self.kpi is None:
            object.__setattr__(self, "kpi", KPI.of_name(str(self.target.name)))
        elif self.kpi.target != str(self.target.name):
            raise ValueError(f"MMMDataset.kpi is about '{self.kpi.target}', the target is '{self.target.name}'")
        names = [str(self.target.name), *self.channels, *self.control_names, *self.brand_names]
        if len(set(names)) != len(names) or DATE in names:
            raise ValueError(f"MMMDataset column names must be unique and not '{DATE}': {names}")

    # ---- roles -------------------------------------------------------------------------------
    @property
    def target_name(self) -> str:
        """The target column's name."""
        return str(self.target.name)

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels (spend columns), in order."""
        return tuple(str(c) for c in self.spend.columns)

    @property
    def control_names(self) -> tuple[str, ...]:
        """The control columns, in order."""
        return tuple(str(c) for c in self.controls.columns)

    @property
    def brand_names(self) -> tuple[str, ...]:
        """The brand-metric columns, in order."""
        return tuple(str(c) for c in self.brand.columns)

    @property
    def n_weeks(self) -> int:
        """Number of weeks."""
        return len(self.dates)

    @property
    def kpi_type(self) -> str:
        """``"revenue"`` or ``"non_revenue"`` (``kpi.type``)."""
        return self.kpi.type

    @property
    def revenue_per_kpi(self) -> float | str | None:
        """The number or the column the KPI was converted to currency with, else ``None``."""
        return self.kpi.revenue_per_kpi if self.kpi.revenue_per_kpi is not None else self.kpi.column

    @property
    def data_roles(self) -> DataRoles:
        """The resolved :class:`~ltae.data.roles.DataRoles` of this dataset (date column ``Date``)."""
        return DataRoles.of_dataset(self.target_name, self.channels, self.control_names, self.brand_names)

    @property
    def roles(self) -> dict[str, object]:
        """Column roles, JSON-serialisable (what :func:`ltae.data.load_dataset` takes). Roles that
        are unset are left out, so adding a role to :class:`DataRoles` keeps the data hash."""
        return {k: v for k, v in self.data_roles.column_roles().items() if v is not None}

    # ---- conversions -------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """One row per week: ``Date, <target>, <channels...>, <controls...>, <brand...>``."""
        df = pd.concat(
            [self.target.rename(self.target_name).to_frame(), self.spend, self.controls, self.brand], axis=1
        )
        df.insert(0, DATE, self.dates)
        return df.reset_index(drop=True)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        target: str,
        channels: Sequence[str],
        controls: Sequence[str] = (),
        brand: Sequence[str] = (),
        date_col: str = DATE,
        source: str = "",
        *,
        min_weeks: int = 1,
        kpi_type: str | None = None,
        revenue_per_kpi: float | str | None = None,
    ) -> MMMDataset:
        """Validate a wide frame (one row per week or per day) and build the dataset.

        Same checks and conventions as :func:`ltae.data.load_dataset` for a wide file; messages
        name rows as ``row N`` (1-based), unless the frame's index is named ``line`` (then the
        index values are reported as file line numbers). ``kpi_type`` / ``revenue_per_kpi``: see
        :mod:`ltae.data.kpi`."""
        from ltae.data.load import dataset_from_wide_frame

        roles = DataRoles(target=target, channels=list(channels), controls=list(controls), brand=list(brand),
                          date_col=date_col, min_weeks=min_weeks, kpi_type=kpi_type,
                          revenue_per_kpi=revenue_per_kpi)
        return dataset_from_wide_frame(df, name=source or "data frame", roles=roles, source=source or "data frame")

    def subset(self, start: int, stop: int) -> MMMDataset:
        """Weeks ``[start, stop)`` (Python slice semantics, e.g. for a holdout)."""
        idx = range(self.n_weeks)[start:stop]
        if len(idx) == 0:
            raise ValueError(f"subset({start}, {stop}) of {self.n_weeks} weeks is empty")
        sl = slice(idx.start, idx.stop)
        return MMMDataset(
            dates=self.dates[sl],
            target=self.target.iloc[sl],
            spend=self.spend.iloc[sl],
            controls=self.controls.iloc[sl],
            brand=self.brand.iloc[sl],
            source=self.source,
            notices=self.notices,
            kpi=self.kpi,
        )

    def data_hash(self) -> str:
        """sha256 of a canonical CSV of :meth:`to_frame` (roles line + ISO dates + repr floats).

        The KPI's type is a label of the numbers, not part of them: it is not hashed (a KPI converted
        to currency has other numbers, and so another hash)."""
        roles = json.dumps(self.roles, ensure_ascii=False, sort_keys=True)
        frame = self.to_frame()
        frame[DATE] = self.dates.strftime("%Y-%m-%d")
        num = frame.columns[1:]
        frame[num] = frame[num].astype("float64") + 0.0  # -0.0 -> 0.0
        text = roles + "\n" + frame.to_csv(index=False, lineterminator="\n")
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def summary(self) -> dict[str, object]:
        """Short JSON-serialisable description (for manifests and ``ltae check --json``)."""
        return {
            "source": self.source,
            "n_weeks": self.n_weeks,
            "start": fmt_date(self.dates[0]),
            "end": fmt_date(self.dates[-1]),
            "freq": self.dates.freqstr,
            **self.roles,
            "kpi": self.kpi.to_dict(),
            "notices": list(self.notices),
            "data_hash": self.data_hash(),
        }

    def __repr__(self) -> str:
        return (
            f"MMMDataset({self.n_weeks} weeks {fmt_date(self.dates[0])}..{fmt_date(self.dates[-1])}, "
            f"target={self.target_name!r}, channels={list(self.channels)}, "
            f"controls={list(self.control_names)}, brand={list(self.brand_names)}, source={self.source!r})"
        )
