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

from ltae.analysis.roi import LT_ESTIMATED, align_draws, kpi_columns, long_term_status, summarize_draws
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
    irf = bvar.calculate_irf(periods=cfg.horizon, credible_interval=cfg.credible_interval)
    long = long_term_result(bvar, cfg, irf)
    long.status = long_term_status(len(ds.brand_names), cfg.bvar_priors.direct_spend_effect,
                                   long.n_unstable / max(long.n_draws, 1))
    # a fixed number of draws per market (resampled, seeded) so markets pair draw by draw
    n = s.chains * s.draws
    rng = np.random.default_rng(item["seed"] + 1)
    idx = rng.choice(len(long.roi_draws), n, replace=len(long.roi_draws) < n) if len(long.roi_draws) else None
    C = len(ds.channels)
    empty = idx is None
    return {"market": item["market"], "status": long.status, "n_unstable": long.n_unstable, "n_draws": long.n_draws,
            "max_rhat": long.convergence["max_rhat"], "min_ess_bulk": long.convergence["min_ess_bulk"],
            "endog_names": list(bvar.endog_names),
            "roi_draws": np.zeros((n, C)) if empty else long.roi_draws[idx],
            "irf_draws": np.zeros((n,) + irf["draws"].shape[1:]) if empty else irf["draws"][idx]}


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


class GeoLongTerm:
    """The long-term models of all markets as one step of the pipeline (fitted, saved and resumed
    like any posterior): ``idata`` holds each market's long-term ROI draws and the national impulse
    responses (per unit of national spend spread over the markets like the spend)."""

    def __init__(self, panel: Mapping, geo: GeoMMM, cfg: RunConfig, scheduler: str | None = "serial"):
        self.panel, self.geo, self.cfg, self.scheduler = panel, geo, cfg, scheduler
        self.model = None
        self.idata = None
        self.fit_info: dict = {}

    def build_model(self):
        """Nothing to build: each market's model is built where it is fitted."""

    def fit(self, draws=1000, tune=500, chains=4, target_accept=0.9, sampler=None, seed=42, **kw):
        """Fit every market's long-term model (``ltae.distributed.fan_out``) and keep the draws."""
        import time

        import xarray as xr

        t0 = time.perf_counter()
        res = geo_long_term(self.panel, self.geo, self.cfg, self.scheduler)
        M = len(res)
        lt = np.stack([r["roi_draws"] for r in res], axis=1)  # (S, M, C)
        w = self._weights()
        irf = np.einsum("smhnc,mc->shnc", np.stack([r["irf_draws"] for r in res], axis=1), w)
        S, H = irf.shape[0], irf.shape[1]
        resh = lambda a: a.reshape((chains, S // chains) + a.shape[1:])  # noqa: E731
        post = xr.Dataset({"long_term_roi": (("chain", "draw", "market", "channel"), resh(lt)),
                           "irf_national": (("chain", "draw", "horizon", "response", "channel"), resh(irf))},
                          coords={"chain": np.arange(chains), "draw": np.arange(S // chains), "market": self.geo.markets,
                                  "channel": self.geo.channels, "horizon": np.arange(H),
                                  "response": res[0]["endog_names"]})
        self.idata = xr.DataTree.from_dict({"posterior": post})
        self.fit_info = {"sampler": self.cfg.sampling.bvar_sampler, "draws": draws, "tune": tune, "chains": chains,
                         "seed": seed, "markets": {r["market"]: {k: r[k] for k in ("status", "n_unstable", "n_draws",
                                                                                   "max_rhat", "min_ess_bulk")}
                                                   for r in res},
                         "wall_s": time.perf_counter() - t0, "n_markets": M}
        return self

    def _weights(self) -> np.ndarray:
        sp = self.geo.spend.sum(axis=1)  # (M, C)
        return sp / np.where(sp.sum(0) > 0, sp.sum(0), 1.0)

    def results(self) -> list[dict]:
        """Per market: status, convergence and long-term ROI draws (S, C), as geo_long_term returns."""
        from ltae.models.sampling import stacked

        lt = stacked(self.idata, "long_term_roi")
        info = self.fit_info.get("markets", {})
        return [{"market": m, "roi_draws": lt[:, k], **info.get(m, {"status": LT_ESTIMATED})}
                for k, m in enumerate(self.geo.markets)]

    def national(self, cfg: RunConfig, lt_national: np.ndarray, status: str):
        """The national :class:`~ltae.results.LongTermResult` (impulse responses per unit of national
        spend, long-term ROI draws, stability and convergence over the markets)."""
        from ltae.models.sampling import stacked
        from ltae.results import LongTermResult

        irf = stacked(self.idata, "irf_national")  # (S, H, n, C)
        q = (1 - cfg.credible_interval) / 2
        cum = np.cumsum(irf, axis=1)
        info = list(self.fit_info.get("markets", {}).values())
        conv = {"max_rhat": max((i["max_rhat"] for i in info), default=float("nan")),
                "min_ess_bulk": min((i["min_ess_bulk"] for i in info), default=float("nan")),
                "min_ess_tail": float("nan"), "divergences": 0, "divergence_rate": 0.0}
        post = self.idata["posterior"]
        return LongTermResult(
            endog_names=[str(r) for r in post["response"].values], channels=list(self.geo.channels),
            horizon=irf.shape[1], irf_mean=irf.mean(0), irf_lower=np.quantile(irf, q, 0),
            irf_upper=np.quantile(irf, 1 - q, 0), cumulative_mean=cum.mean(0), cumulative_lower=np.quantile(cum, q, 0),
            cumulative_upper=np.quantile(cum, 1 - q, 0), roi_draws=lt_national,
            n_unstable=int(sum(i["n_unstable"] for i in info)), n_draws=int(sum(i["n_draws"] for i in info)),
            convergence=conv, replicates=cfg.replicates, fit_info=self.fit_info, status=status)


def _national_short(geo: GeoMMM, resp, dates, cfg: RunConfig):
    """The national :class:`~ltae.results.ShortTermResult`: sums over markets (sales, spend,
    contributions, base sales, one-week-ahead predictions) and national ROI draws."""
    from ltae.analysis.diagnostics import fit_metrics
    from ltae.results import ShortTermResult

    ci = cfg.credible_interval
    q = (1 - ci) / 2
    contrib = geo.national_contributions()  # (S, T, C)
    base = geo.base_sales_draws().sum(axis=1)
    osa = sum(geo.one_step_ahead(m, seed=cfg.sampling.seed + m) for m in range(geo.n_markets))
    sales = geo.sales.sum(0)
    m = fit_metrics(sales, osa.mean(0), osa, ci)
    metrics = {**m, "one_step_mape": m["mape"], "one_step_coverage": m["coverage"], "one_step_r2": m["r2"],
               "note": "national sums of the markets' one-week-ahead predictions"}
    cur = resp.current
    eps = 0.01
    base_ret = resp.short_term(np.ones(len(cur)))
    mroi = np.empty_like(base_ret)
    for c in range(len(cur)):
        mult = np.ones(len(cur))
        mult[c] += eps
        mroi[:, c] = (resp.short_term(mult)[:, c] - base_ret[:, c]) / (eps * cur[c]) if cur[c] > 0 else np.nan
    return ShortTermResult(
        channels=list(geo.channels), dates=pd.DatetimeIndex(dates), sales=sales, spend=geo.spend.sum(0),
        roi_draws=geo.national_roi_draws(), marginal_roi_draws=mroi,
        contributions_mean=contrib.mean(0), contributions_lower=np.quantile(contrib, q, 0),
        contributions_upper=np.quantile(contrib, 1 - q, 0), base_sales_mean=base.mean(0),
        base_sales_lower=np.quantile(base, q, 0), base_sales_upper=np.quantile(base, 1 - q, 0),
        fitted_mean=osa.mean(0), fitted_lower=np.quantile(osa, q, 0), fitted_upper=np.quantile(osa, 1 - q, 0),
        fit_metrics=metrics, convergence=geo.summary(), adstock_alpha_draws=geo.draws("adstock_alpha"),
        l_max=geo.priors.l_max, response_curves=resp.curves(credible_interval=ci), fit_info=geo.fit_info)


def _market_fit(geo: GeoMMM, cfg: RunConfig) -> pd.DataFrame:
    """One-week-ahead MAPE, R² and interval coverage of every market."""
    from ltae.analysis.diagnostics import fit_metrics

    rows = []
    for k, m in enumerate(geo.markets):
        osa = geo.one_step_ahead(k, seed=cfg.sampling.seed + k)
        f = fit_metrics(geo.sales[k], osa.mean(0), osa, cfg.credible_interval)
        rows.append({"market": m, "one_step_mape": f["mape"], "one_step_r2": f["r2"],
                     "one_step_coverage": f["coverage"], "weeks": f["n"]})
    return pd.DataFrame(rows)


def geo_steps(panel, cfg: RunConfig, out, progress, timings: dict, data_hash: str, run_id: str, quality: dict):
    """Steps 2-6 of :func:`ltae.pipeline.run` for a panel: the hierarchical short-term model, each
    market's long-term model (fanned out on ``cfg.scheduler``), ROI per market and nationally, the
    checklist (national figures) and the national budget across channels."""
    import time

    from ltae import pipeline as pl
    from ltae.analysis.optimize import MarketResponse, optimize_budget
    from ltae.results import RunResult

    # 2. short term, all markets at once
    progress("short_term", "start")
    geo = geo_model(panel, cfg)
    st_key = cfg.step_key("short_term", data_hash)
    resumed_st, timings["short_term_fit_s"] = pl._fit_or_resume(
        geo, "short_term", out, st_key, cfg, progress, cfg.sampling.sampler, data_hash=data_hash,
        expect={"channel": len(geo.channels), "market": geo.n_markets})
    progress("short_term", "done")

    # 3. long term, each market
    progress("long_term", "start")
    lt_model = GeoLongTerm(panel, geo, cfg, cfg.scheduler)
    lt_key = cfg.step_key("bvar", data_hash, upstream=st_key)
    resumed_lt, timings["long_term_fit_s"] = pl._fit_or_resume(
        lt_model, "long_term", out, lt_key, cfg, progress, cfg.sampling.bvar_sampler, upstream=st_key,
        data_hash=data_hash, expect={"market": geo.n_markets, "channel": len(geo.channels)})
    long_markets = lt_model.results()
    progress("long_term", "done")

    # 4. ROI per market and nationally
    progress("roi", "start")
    t = time.perf_counter()
    table, draws = geo_roi(geo, long_markets, cfg)
    table = kpi_columns(table, panel.kpi) if hasattr(panel, "kpi") else table
    nat_rows = table[table.market == NATIONAL].reset_index(drop=True)
    status = str(nat_rows.long_term_status.iloc[0])
    lt_used = draws["long"][:, :-1]  # (S, M, C), zero where a market's long term is not used
    resp = MarketResponse.from_geo(geo, lt_roi=lt_used, seed=cfg.sampling.seed)
    short = _national_short(geo, resp, panel.dates if hasattr(panel, "dates") else geo.dates, cfg)
    long = lt_model.national(cfg, draws["long"][:, -1], LT_ESTIMATED if status == LT_ESTIMATED else status)
    nat_rows["total_includes_long_term"] = status == LT_ESTIMATED
    table["total_includes_long_term"] = table.long_term_status == LT_ESTIMATED
    timings["short_term_post_s"] = time.perf_counter() - t
    progress("roi", "done")

    # 5. checklist on the national figures (+ the markets' fit)
    progress("checklist", "start")
    checks = pl.checklist(short, long, nat_rows, None, cfg.credible_interval)
    fit = _market_fit(geo, cfg)
    worst = fit.loc[fit.one_step_mape.idxmax()]
    checks.append({"check": "Market fit (worst one-week-ahead MAPE)", "value": float(worst.one_step_mape),
                   "threshold": "< 15% in every market", "status": pl._status(worst.one_step_mape < 15),
                   "action": f"Worst market: {worst.market}; check its data or add its controls."})
    progress("checklist", "done")

    # 6. national budget across channels (each channel's spend scaled in every market)
    progress("budget", "start")
    budget = optimize_budget(resp, cfg.budget, list(geo.channels), tuple(cfg.budget_bounds), cfg.risk_quantile,
                             include_long_term=status == LT_ESTIMATED, credible_interval=cfg.credible_interval)
    budget.attrs["long_term"] = status
    budget.attrs["markets"] = "national: each channel's spend scaled in every market"
    progress("budget", "done")

    conv = short.convergence
    keys5 = ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences", "divergence_rate")
    diagnostics = {
        "short_term": {k: conv[k] for k in keys5} | {"sampler": geo.fit_info.get("sampler"), "resumed": resumed_st,
                                                     "markets": geo.n_markets},
        "long_term": {k: long.convergence[k] for k in keys5} | {
            "unstable_draws": long.n_unstable, "irf_draws": long.n_draws, "replicates": cfg.replicates,
            "resumed": resumed_lt, "status": status, "markets": lt_model.fit_info.get("markets", {})},
        "fit": short.fit_metrics,
        "markets_fit": fit.to_dict("records"),
        "holdout": None, "prior_sensitivity": None,
        "checklist": checks,
        "budget": dict(budget.attrs),
        "kpi": panel.kpi.to_dict() if hasattr(panel, "kpi") else None,
    }
    result = RunResult(run_id=run_id, config=cfg.model_dump(mode="json"), dataset_summary=panel.summary(),
                       quality=quality, short=short, long=long, roi=nat_rows, total_roi_draws=draws["total"][:, -1],
                       checklist=checks, budget=budget, timings=timings, diagnostics=diagnostics, out_dir=str(out))
    ch = list(geo.channels)
    result.draws = pd.concat([pd.DataFrame(draws["total"][:, -1], columns=[f"total_{c}" for c in ch]),
                              pd.DataFrame(draws["short"][:, -1], columns=[f"short_{c}" for c in ch]),
                              pd.DataFrame(draws["long"][:, -1], columns=[f"long_{c}" for c in ch])], axis=1)
    result.markets = {"roi": table, "fit": fit}
    return result, {"data": data_hash, "short_term": st_key, "long_term": lt_key}
