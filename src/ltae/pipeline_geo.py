"""The two steps across markets: one hierarchical short-term model (:class:`ltae.models.geo.GeoMMM`)
for all markets, then the long-term model of each market (independent fits, fanned out on Dask),
then ROI per market and nationally, draw by draw.

A panel is a mapping market -> :class:`~ltae.data.dataset.MMMDataset` with the same weeks, channels
and controls in every market (the data layer checks this); brand metrics per market where given.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ltae.analysis.roi import LT_ESTIMATED, align_draws, long_term_status, summarize_draws
from ltae.config import RunConfig
from ltae.models.geo import GeoMMM

NATIONAL = "ALL"  # the market label of national rows


def geo_model(panel: Mapping, cfg: RunConfig) -> GeoMMM:
    """The multi-market short-term model of a panel (not yet fitted)."""
    markets = list(panel)
    first = panel[markets[0]]
    return GeoMMM(np.stack([panel[m].target.to_numpy(float) for m in markets]),
                  np.stack([panel[m].spend.to_numpy(float) for m in markets]),
                  np.stack([panel[m].controls.to_numpy(float) for m in markets]), markets, list(first.channels),
                  list(first.control_names), cfg.channel_groups, cfg.mmm_priors, dates=first.dates)


def _market_long_term(item: dict) -> dict:
    """One market's long-term model (a task for :func:`ltae.distributed.fan_out`: a pure function
    of its item, seeded by it)."""
    from ltae.pipeline import build_bvar, long_term_result

    cfg: RunConfig = item["cfg"]
    ds = item["dataset"]
    bvar = build_bvar(ds, item["base_draws"], cfg)
    s = cfg.sampling
    bvar.fit(draws=s.draws, tune=s.tune, chains=s.chains, target_accept=s.target_accept, sampler=s.bvar_sampler,
             seed=item["seed"])
    long = long_term_result(bvar, cfg)
    long.status = long_term_status(len(ds.brand_names), cfg.bvar_priors.direct_spend_effect,
                                   long.n_unstable / max(long.n_draws, 1))
    return {"market": item["market"], "roi_draws": long.roi_draws, "status": long.status,
            "n_unstable": long.n_unstable, "n_draws": long.n_draws, "max_rhat": long.convergence["max_rhat"],
            "min_ess_bulk": long.convergence["min_ess_bulk"], "irf_mean": long.irf_mean,
            "cumulative_mean": long.cumulative_mean}


def geo_long_term(panel: Mapping, geo: GeoMMM, cfg: RunConfig, scheduler: str | None = "serial",
                  progress=None) -> list[dict]:
    """The long-term model of every market on that market's base-sales draws (R replicates), fanned
    out with :func:`ltae.distributed.fan_out` (``scheduler``: "serial", None for a LocalCluster, or
    an address). Same seed, same numbers either way."""
    from ltae.distributed import fan_out

    base = geo.base_sales_draws()  # (S, M, T)
    if cfg.bvar_net_of_controls:
        base = base - geo.control_effect_draws()
    rng = np.random.default_rng(cfg.sampling.seed)
    items = []
    for k, m in enumerate(geo.markets):
        idx = np.sort(rng.choice(base.shape[0], cfg.replicates, replace=False)) if cfg.replicates > 1 else None
        draws = base[idx, k] if idx is not None else base[:, k].mean(0, keepdims=True)
        items.append({"market": m, "dataset": panel[m], "base_draws": draws, "cfg": cfg,
                      "seed": cfg.sampling.seed + 1009 * k})
    return fan_out(_market_long_term, items, scheduler=scheduler, progress=progress)


def geo_roi(geo: GeoMMM, long: list[dict], cfg: RunConfig) -> tuple[pd.DataFrame, dict]:
    """ROI per market and nationally (market = ``NATIONAL``): short, long and total, draw by draw.
    Returns (the table, {"short": (S, M+1, C), "long": ..., "total": ...} draws; the last market
    index is national)."""
    st = geo.roi_draws()  # (S, M, C)
    S = st.shape[0]
    lts, statuses = [], []
    for k, res in enumerate(long):
        a, b = align_draws(st[:, k], res["roi_draws"], seed=cfg.sampling.seed + k)
        n = min(len(a), S)
        lt = np.zeros((S, st.shape[2]))
        lt[:n] = b[:n]
        if n < S:  # fewer long-term draws than short-term ones: reuse them in order
            lt[n:] = b[np.arange(S - n) % n]
        used = res["status"] == LT_ESTIMATED
        lts.append(lt * used)
        statuses.append(res["status"])
    lt = np.stack(lts, axis=1)  # (S, M, C)
    sp = geo.spend.sum(axis=1)  # (M, C)
    w = sp / np.where(sp.sum(0) > 0, sp.sum(0), 1.0)
    st_nat = (st * w[None]).sum(1)
    lt_nat = (lt * w[None]).sum(1)
    short = np.concatenate([st, st_nat[:, None]], axis=1)
    longd = np.concatenate([lt, lt_nat[:, None]], axis=1)
    total = short + longd
    markets = [*geo.markets, NATIONAL]
    spend = np.vstack([sp, sp.sum(0)])
    nat_status = LT_ESTIMATED if all(s == LT_ESTIMATED for s in statuses) else (
        "partly estimated: " + ", ".join(f"{m}: {s}" for m, s in zip(geo.markets, statuses, strict=True)
                                         if s != LT_ESTIMATED))
    rows = []
    ci = cfg.credible_interval
    for k, m in enumerate(markets):
        status = statuses[k] if k < len(statuses) else nat_status
        for c, ch in enumerate(geo.channels):
            row = {"market": m, "channel": ch, "spend": float(spend[k, c])}
            for term, d in (("short_term", short), ("long_term", longd), ("total", total)):
                s_ = summarize_draws(d[:, k, c], ci)
                row.update({f"{term}_roi_mean": s_["mean"], f"{term}_roi_lower": s_["lower"],
                            f"{term}_roi_upper": s_["upper"]})
            row["long_term_status"] = status
            rows.append(row)
    return pd.DataFrame(rows), {"short": short, "long": longd, "total": total}
