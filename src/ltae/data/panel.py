"""Data of several markets: :class:`PanelDataset`, a read-only mapping market -> :class:`MMMDataset`.

Every market has the same weeks, target, channels, controls and brand metrics (validated when the
panel is built); a market's series are its own, a national series (a file or column without the
market column) is repeated in every market. Build it with :func:`ltae.data.load_dataset` and a
market column (``--geo``), or from datasets with :class:`PanelDataset` directly.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from ltae.data.dataset import MMMDataset
from ltae.data.kpi import KPI
from ltae.data.roles import DataRoles
from ltae.data.validate import DATE, fmt_date

GEO = "Geo"  # the market column's default name
POPULATION = "population"  # the population column's default name


def market_sort_key(name: str) -> tuple:
    """Natural order of market names: ``Geo2`` before ``Geo10``, ``M02`` before ``M10``."""
    parts = re.split(r"(\d+)", str(name))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in parts if p != "")


class PanelDataset(Mapping[str, MMMDataset]):
    """Weekly modelling data of several markets, validated and immutable.

    A ``Mapping[str, MMMDataset]``: ``panel["M01"]`` is market M01's dataset, ``list(panel)`` the
    markets in order, ``len(panel)`` their number. Every market has the same ``dates``, target name,
    ``channels``, ``control_names``, ``brand_names`` and ``kpi`` (a ``ValueError`` otherwise).

    Args:
        datasets: market -> :class:`~ltae.data.dataset.MMMDataset`, in the panel's order.
        geo: the market column's name (in :meth:`to_frame` and the roles).
        source: where the data came from.
        population: market -> population (> 0), or ``None``.
        population_name: the population column's name in :meth:`to_frame`.
        notices: what was done to the input on the way (every market's, merged).
    """

    __slots__ = ("_datasets", "_geo", "_source", "_population", "_population_name", "_notices")

    def __init__(self, datasets: Mapping[str, MMMDataset], *, geo: str = GEO, source: str = "",
                 population: Mapping[str, float] | None = None, population_name: str = POPULATION,
                 notices: Sequence[str] = ()) -> None:
        ds = {str(m): d for m, d in datasets.items()}
        if not ds:
            raise ValueError("a PanelDataset needs at least one market")
        if len(ds) != len(datasets) or any(not m.strip() for m in ds):
            raise ValueError(f"market names must be unique, non-empty strings: {list(datasets)}")
        first = next(iter(ds.values()))
        for m, d in ds.items():
            if not isinstance(d, MMMDataset):
                raise TypeError(f"market {m!r}: expected an MMMDataset, got {type(d).__name__}")
            for attr in ("target_name", "channels", "control_names", "brand_names", "kpi"):
                if getattr(d, attr) != getattr(first, attr):
                    raise ValueError(f"market {m!r}: {attr} {getattr(d, attr)!r} differs from the first market's "
                                     f"{getattr(first, attr)!r}")
            if not d.dates.equals(first.dates):
                raise ValueError(f"market {m!r}: its dates differ from the first market's")
        names = [DATE, first.target_name, *first.channels, *first.control_names, *first.brand_names]
        if geo in names:
            raise ValueError(f"the market column's name {geo!r} is also a column of the data")
        pop = None
        if population is not None:
            pop = {str(m): float(v) for m, v in population.items()}
            if set(pop) != set(ds):
                raise ValueError(f"population must have one value per market (markets {list(ds)}, got {list(pop)})")
            bad = [m for m, v in pop.items() if not (math.isfinite(v) and v > 0)]
            if bad:
                raise ValueError(f"population must be > 0 (markets {bad})")
            pop = {m: pop[m] for m in ds}
            if population_name in (*names, geo):
                raise ValueError(f"the population column's name {population_name!r} is also a column of the data")
        object.__setattr__(self, "_datasets", ds)
        object.__setattr__(self, "_geo", str(geo))
        object.__setattr__(self, "_source", str(source))
        object.__setattr__(self, "_population", pop)
        object.__setattr__(self, "_population_name", str(population_name))
        object.__setattr__(self, "_notices", tuple(notices))

    def __setattr__(self, name, value):
        raise AttributeError("PanelDataset is immutable")

    # ---- the mapping ---------------------------------------------------------------------------
    def __getitem__(self, market: str) -> MMMDataset:
        try:
            return self._datasets[market]
        except KeyError:
            raise KeyError(f"no market {market!r} (markets: {', '.join(self._datasets)})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._datasets)

    def __len__(self) -> int:
        return len(self._datasets)

    # ---- what every market shares ----------------------------------------------------------------
    @property
    def markets(self) -> tuple[str, ...]:
        """The markets, in order."""
        return tuple(self._datasets)

    @property
    def n_markets(self) -> int:
        """Number of markets."""
        return len(self._datasets)

    @property
    def _first(self) -> MMMDataset:
        return next(iter(self._datasets.values()))

    @property
    def geo(self) -> str:
        """The market column's name."""
        return self._geo

    @property
    def source(self) -> str:
        """Where the data came from."""
        return self._source

    @property
    def notices(self) -> tuple[str, ...]:
        """What was done to the input on the way (a market's own notices start with its name)."""
        return self._notices

    @property
    def population(self) -> dict[str, float] | None:
        """market -> population, or ``None`` when the data have none (a new dict each time)."""
        return None if self._population is None else dict(self._population)

    @property
    def population_name(self) -> str:
        """The population column's name (in :meth:`to_frame`)."""
        return self._population_name

    @property
    def kpi(self) -> KPI:
        """What the target measures (the same in every market), see :class:`~ltae.data.kpi.KPI`."""
        return self._first.kpi

    @property
    def kpi_type(self) -> str:
        """``"revenue"`` or ``"non_revenue"`` (``kpi.type``)."""
        return self.kpi.type

    @property
    def revenue_per_kpi(self) -> float | str | None:
        """The number or the column the KPI was converted to currency with, else ``None``."""
        return self._first.revenue_per_kpi

    @property
    def dates(self) -> pd.DatetimeIndex:
        """The weeks (the same in every market)."""
        return self._first.dates

    @property
    def n_weeks(self) -> int:
        """Number of weeks (per market)."""
        return self._first.n_weeks

    @property
    def target_name(self) -> str:
        """The target column's name."""
        return self._first.target_name

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels, in order."""
        return self._first.channels

    @property
    def control_names(self) -> tuple[str, ...]:
        """The control columns, in order."""
        return self._first.control_names

    @property
    def brand_names(self) -> tuple[str, ...]:
        """The brand-metric columns, in order."""
        return self._first.brand_names

    @property
    def data_roles(self) -> DataRoles:
        """The resolved roles (date column ``Date``, the market column, the population column if any)."""
        return DataRoles.of_dataset(self.target_name, self.channels, self.control_names, self.brand_names,
                                    geo=self.geo, population=self._population_name if self._population else None)

    @property
    def roles(self) -> dict[str, object]:
        """Column roles, JSON-serialisable (what :func:`ltae.data.load_dataset` takes)."""
        return {k: v for k, v in self.data_roles.column_roles().items() if v is not None}

    # ---- arrays for the models -------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """``target`` (M, T), ``spend`` (M, T, C), ``controls`` (M, T, J), ``brand`` (M, T, B), float64,
        markets in order."""
        ds = list(self._datasets.values())
        return {"target": np.stack([d.target.to_numpy(float) for d in ds]),
                "spend": np.stack([d.spend.to_numpy(float) for d in ds]),
                "controls": np.stack([d.controls.to_numpy(float) for d in ds]),
                "brand": np.stack([d.brand.to_numpy(float) for d in ds])}

    # ---- conversions ---------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """Long form, one row per market and week (markets in order, then weeks): ``Date, <geo>,
        <target>, <channels...>, <controls...>, <brand...>`` and ``<population>`` when given."""
        frames = []
        for m, d in self._datasets.items():
            f = d.to_frame()
            f.insert(1, self.geo, m)
            if self._population is not None:
                f[self._population_name] = self._population[m]
            frames.append(f)
        return pd.concat(frames, ignore_index=True)

    def data_hash(self) -> str:
        """sha256 of a canonical CSV of :meth:`to_frame` (roles line + ISO dates + repr floats); the KPI
        type is a label, not hashed (as :meth:`MMMDataset.data_hash`)."""
        roles = json.dumps(self.roles, ensure_ascii=False, sort_keys=True)
        frame = self.to_frame()
        frame[DATE] = pd.DatetimeIndex(frame[DATE]).strftime("%Y-%m-%d")
        num = [c for c in frame.columns if c not in (DATE, self.geo)]
        frame[num] = frame[num].astype("float64") + 0.0  # -0.0 -> 0.0
        text = roles + "\n" + frame.to_csv(index=False, lineterminator="\n")
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def market_summary(self) -> pd.DataFrame:
        """One row per market: ``market, weeks, <target> (total), spend (total), spend_<channel>...,
        population`` (the last when given)."""
        rows = []
        for m, d in self._datasets.items():
            row = {"market": m, "weeks": d.n_weeks, self.target_name: float(d.target.sum()),
                   "spend": float(d.spend.to_numpy().sum())}
            row.update({f"spend_{c}": float(d.spend[c].sum()) for c in d.channels})
            if self._population is not None:
                row["population"] = self._population[m]
            rows.append(row)
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, object]:
        """Short JSON-serialisable description (for manifests and ``ltae check --json``)."""
        return {
            "source": self.source,
            "n_markets": self.n_markets,
            "markets": list(self.markets),
            "n_weeks": self.n_weeks,
            "start": fmt_date(self.dates[0]),
            "end": fmt_date(self.dates[-1]),
            "freq": self.dates.freqstr,
            **self.roles,
            "kpi": self.kpi.to_dict(),
            "population": self.population,
            "per_market": self.market_summary().to_dict(orient="records"),
            "notices": list(self.notices),
            "data_hash": self.data_hash(),
        }

    def national(self) -> MMMDataset:
        """The markets added up into one national series: target and spend summed; controls and brand
        metrics averaged over the markets (weighted by population when the panel has it). For
        comparing with a model of the summed data."""
        ds = list(self._datasets.values())
        w = np.array([self._population[m] for m in self._datasets]) if self._population else np.ones(len(ds))
        w = w / w.sum()

        def avg(frames: list[pd.DataFrame]) -> pd.DataFrame:
            out = sum(f * wi for f, wi in zip(frames, w, strict=True))
            return out if isinstance(out, pd.DataFrame) else frames[0].copy()

        how = "weighted by population" if self._population else "unweighted"
        note = (f"national series: target and spend summed over {self.n_markets} markets, controls and brand "
                f"metrics averaged ({how})")
        return MMMDataset(dates=self.dates, target=sum(d.target for d in ds).rename(self.target_name),
                          spend=sum(d.spend for d in ds), controls=avg([d.controls for d in ds]),
                          brand=avg([d.brand for d in ds]), source=f"{self.source} (sum of {self.n_markets} markets)",
                          notices=(*self.notices, note), kpi=self.kpi)

    def subset(self, start: int, stop: int) -> PanelDataset:
        """Weeks ``[start, stop)`` of every market (as :meth:`MMMDataset.subset`)."""
        return PanelDataset({m: d.subset(start, stop) for m, d in self._datasets.items()}, geo=self.geo,
                            source=self.source, population=self._population, population_name=self._population_name,
                            notices=self.notices)

    def __repr__(self) -> str:
        return (f"PanelDataset({self.n_markets} markets x {self.n_weeks} weeks "
                f"{fmt_date(self.dates[0])}..{fmt_date(self.dates[-1])}, geo={self.geo!r}, "
                f"target={self.target_name!r}, channels={list(self.channels)}, "
                f"controls={list(self.control_names)}, brand={list(self.brand_names)}, kpi={self.kpi.type!r}, "
                f"source={self.source!r})")
