"""Benchmarks: ``python -m benchmarks [timing|recovery|pipeline|scale|soak] [--seeds N] [--draws D]``.

The comparison with pymc-marketing: ``python -m benchmarks.compare_pymc_marketing``.

Prints a table and writes JSON to benchmarks/results/. Speed and recovery targets live here, never
in timed test asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _tune(args) -> int:
    from ltae.config import SamplingConfig

    return args.tune or SamplingConfig().tune


def _mmm(d):
    from ltae.models.mmm import ShortTermMMM

    ctrl = d.competitor_activity.drop(columns="Date").join(d.macroeconomic_indicators.drop(columns="Date"))
    return ShortTermMMM(d.sales.revenue.values, d.spend_wide.values, ctrl.values, d.params.channels,
                        list(ctrl.columns))


def timing(args) -> dict:
    """Case (a): 208 x 4 production fit of each step, per sampler."""
    from ltae.data.synthetic import generate_synthetic_data

    d = generate_synthetic_data(seed=1)
    out = {}
    for sampler in args.samplers:
        m = _mmm(d)
        t = time.perf_counter()
        m.fit(draws=args.draws, tune=_tune(args), chains=4, sampler=sampler, seed=1)
        wall = time.perf_counter() - t
        s = m.summary()
        out[sampler] = {"wall_s": wall, "compile_s": m.fit_info.get("compile_s"), "max_rhat": s["max_rhat"],
                        "min_ess_bulk": s["min_ess_bulk"], "divergences": s["divergences"],
                        "ess_per_s": s["min_ess_bulk"] / wall}
        print(f"{sampler:10s} wall {wall:7.1f}s  R-hat {s['max_rhat']:.3f}  ESS {s['min_ess_bulk']:7.0f}  "
              f"div {s['divergences']:4d}  ESS/s {s['min_ess_bulk'] / wall:6.1f}", flush=True)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def recovery(args) -> dict:
    """Case (f): the whole pipeline on several generated data sets; coverage of the true short-,
    long- and total ROI by the 95% intervals, and median absolute relative error."""
    import tempfile

    import pandas as pd

    from ltae import pipeline
    from ltae.data.synthetic import default_params, generate_synthetic_data, save_to_csv

    rows = []
    prior_override = json.loads(args.mmm_priors) if args.mmm_priors else {}
    run_override = json.loads(args.run_config) if args.run_config else {}
    for k in range(args.seeds):
        seed = args.seed_start + k
        with tempfile.TemporaryDirectory() as tmp:
            if args.generator == "funnel":  # the second data-generating process (not ltae's own)
                from ltae.data import synthetic_funnel

                d = synthetic_funnel.generate(seed=seed)
            else:
                # --zero-lt: Events gets no long-term effect (its interval should contain 0)
                params = default_params(lt_roi=[3.0, 0.0, 0.5, 2.0]) if args.zero_lt else None
                d = generate_synthetic_data(seed=seed, params=params)
            save_to_csv(d, Path(tmp) / "data")
            t = time.perf_counter()
            res = pipeline.run(Path(tmp) / "data", Path(tmp) / "out",
                               {**run_override,
                                "sampling": {"draws": args.draws, "tune": _tune(args), "seed": seed},
                                "mmm_priors": prior_override},
                               store_path=Path(tmp) / "s.duckdb")
            wall = time.perf_counter() - t
        for r in res.roi.itertuples():
            tr = d.truth["channels"][r.channel]
            ltd = res.diagnostics["long_term"]
            row = {"seed": seed, "channel": r.channel, "wall_s": wall,
                   "st_max_rhat": res.diagnostics["short_term"]["max_rhat"],
                   "st_min_ess": res.diagnostics["short_term"]["min_ess_bulk"],
                   "st_divergences": res.diagnostics["short_term"]["divergences"],
                   "lt_max_rhat": ltd["max_rhat"], "lt_min_ess": ltd["min_ess_bulk"],
                   "lt_unstable_share": ltd["unstable_draws"] / max(ltd["irf_draws"], 1),
                   "long_term_status": getattr(r, "long_term_status", "estimated"),
                   "short_term_evidence": getattr(r, "short_term_evidence", None)}
            for kind, col in (("short_term", "short_term_roi"), ("long_term", "long_term_roi"),
                              ("total", "total_roi")):
                truth = tr[col] if kind != "total" else tr["total_roi"]
                lo, hi, mean = getattr(r, f"{col}_lower"), getattr(r, f"{col}_upper"), getattr(r, f"{col}_mean")
                row.update({f"{kind}_truth": truth, f"{kind}_mean": mean, f"{kind}_lower": lo,
                            f"{kind}_upper": hi, f"{kind}_covered": bool(lo <= truth <= hi),
                            f"{kind}_abs_error": abs(mean - truth),
                            f"{kind}_rel_error": abs(mean - truth) / abs(truth) if truth else None,
                            # sharpness next to coverage: interval width relative to the truth
                            f"{kind}_width_rel": (hi - lo) / abs(truth) if truth else None,
                            f"{kind}_excludes_zero": bool(lo > 0 or hi < 0)})
            rows.append(row)
        df = pd.DataFrame(rows)
        print(f"seed {seed}: {wall:5.0f}s  coverage so far  short {df.short_term_covered.mean():.2f}  "
              f"long {df.long_term_covered.mean():.2f}  total {df.total_covered.mean():.2f}  "
              f"median rel. error short {df.short_term_rel_error.median():.2f}", flush=True)
    df = pd.DataFrame(rows)
    summary = {}
    for kind in ("short_term", "long_term", "total"):
        summary[kind] = {"coverage": float(df[f"{kind}_covered"].mean()),
                         "median_abs_rel_error": float(df[f"{kind}_rel_error"].dropna().median()),
                         "median_abs_error": float(df[f"{kind}_abs_error"].median()),
                         "median_width_rel": float(df[f"{kind}_width_rel"].dropna().median())}
    big = df[df.long_term_truth >= 1.0]
    summary["long_term"]["excludes_zero_where_truth_ge_1"] = float(big.long_term_excludes_zero.mean()) if len(
        big) else None
    summary["long_term"]["max_unstable_share"] = float(df.lt_unstable_share.max())
    summary["long_term"]["statuses"] = sorted(set(df.long_term_status))
    summary["short_term"]["max_rhat"] = float(df.st_max_rhat.max())
    summary["short_term"]["min_ess_bulk"] = float(df.st_min_ess.min())
    zero = df[df.long_term_truth.abs() < 1e-9]
    if len(zero):
        summary["long_term"]["zero_effect_interval_contains_zero"] = float(
            ((zero.long_term_lower <= 0) & (zero.long_term_upper >= 0)).mean())
    print(json.dumps(summary, indent=2))
    return {"summary": summary, "n_datasets": args.seeds, "draws": args.draws, "tune": _tune(args),
            "seed_start": args.seed_start, "generator": args.generator,
            "mmm_priors": prior_override, "run_config": run_override, "rows": rows}


def geo_one(item: dict) -> dict:
    """One multi-market data set: the hierarchical model and the long-term model per market, against
    the truth; and the one-market model on the markets' summed data (national only) for comparison.
    A pure function of its item (a task for ltae.distributed.fan_out)."""

    from ltae import pipeline_geo as pg
    from ltae.config import RunConfig
    from ltae.data.dataset import MMMDataset
    from ltae.data.synthetic_geo import generate_geo, market_datasets
    from ltae.models.mmm import ShortTermMMM

    seed = item["seed"]
    d = generate_geo(n_markets=item["markets"], n_weeks=item["weeks"], seed=seed)
    panel = market_datasets(d)
    cfg = RunConfig.model_validate({"sampling": {"draws": item["draws"], "tune": item["tune"], "seed": seed}})
    t = time.perf_counter()
    geo = pg.geo_model(panel, cfg)
    s = cfg.sampling
    geo.fit(draws=s.draws, tune=s.tune, chains=s.chains, target_accept=s.target_accept, seed=seed)
    conv = geo.summary()
    long = pg.geo_long_term(panel, geo, cfg, scheduler="serial")
    table, _ = pg.geo_roi(geo, long, cfg)
    wall = time.perf_counter() - t
    rows = []
    for r in table.itertuples():
        tr = d.truth["national"][r.channel] if r.market == pg.NATIONAL else d.truth["markets"][r.market][r.channel]
        row = {"seed": seed, "market": r.market, "channel": r.channel, "wall_s": wall, "st_max_rhat": conv["max_rhat"],
               "st_min_ess": conv["min_ess_bulk"], "st_divergences": conv["divergences"]}
        for kind, col in (("short_term", "short_term_roi"), ("long_term", "long_term_roi"), ("total", "total_roi")):
            truth, lo, hi, mean = tr[col], getattr(r, f"{col}_lower"), getattr(r, f"{col}_upper"), getattr(r, f"{col}_mean")
            row.update({f"{kind}_truth": truth, f"{kind}_mean": mean, f"{kind}_lower": lo, f"{kind}_upper": hi,
                        f"{kind}_covered": bool(lo <= truth <= hi),
                        f"{kind}_rel_error": abs(mean - truth) / abs(truth) if truth else None,
                        f"{kind}_width_rel": (hi - lo) / abs(truth) if truth else None})
        rows.append(row)
    # the one-market model on the summed data (what a user without the panel would fit)
    first = panel[d.markets[0]]
    summed = MMMDataset(first.dates, sum(panel[m].target for m in d.markets), sum(panel[m].spend for m in d.markets),
                        sum(panel[m].controls for m in d.markets), sum(panel[m].brand for m in d.markets) / len(panel),
                        "summed")
    one = ShortTermMMM.from_dataset(summed, cfg.channel_groups, cfg.mmm_priors)
    one.fit(draws=s.draws, tune=s.tune, chains=s.chains, target_accept=s.target_accept, seed=seed)
    roi1 = one.short_term_roi_draws()
    for c, ch in enumerate(first.channels):
        lo, hi = np.quantile(roi1[:, c], [0.025, 0.975])
        truth = d.truth["national"][ch]["short_term_roi"]
        rows.append({"seed": seed, "market": "summed_single_market", "channel": ch, "short_term_truth": truth,
                     "short_term_mean": float(roi1[:, c].mean()), "short_term_lower": lo, "short_term_upper": hi,
                     "short_term_covered": bool(lo <= truth <= hi),
                     "short_term_rel_error": abs(roi1[:, c].mean() - truth) / truth,
                     "short_term_width_rel": (hi - lo) / truth})
    print(f"seed {seed}: {wall:.0f} s, R-hat {conv['max_rhat']:.3f}, ESS {conv['min_ess_bulk']:.0f}", flush=True)
    return {"rows": rows, "wall_s": wall}


def geo_recovery(args) -> dict:
    """Multi-market recovery: ``--seeds`` data sets of ``--markets`` x ``--weeks`` x 4 channels, fanned
    out over ``--scheduler`` (serial, local = a LocalCluster, or a Dask address)."""
    import pandas as pd

    from ltae.distributed import fan_out

    items = [{"seed": args.seed_start + k, "markets": args.markets, "weeks": args.weeks, "draws": args.draws,
              "tune": _tune(args)} for k in range(args.seeds)]
    sched = None if args.scheduler == "local" else args.scheduler
    res = fan_out(geo_one, items, scheduler=sched, workers=args.workers)
    df = pd.DataFrame([r for x in res for r in x["rows"]])
    summary = {}
    for label, part in (("market", df[~df.market.isin(["ALL", "summed_single_market"])]),
                        ("national", df[df.market == "ALL"]), ("summed_single_market", df[df.market == "summed_single_market"])):
        summary[label] = {}
        for kind in ("short_term", "long_term", "total"):
            if f"{kind}_covered" not in part or part[f"{kind}_covered"].isna().all():
                continue
            summary[label][kind] = {"coverage": float(part[f"{kind}_covered"].mean()),
                                    "median_abs_rel_error": float(part[f"{kind}_rel_error"].dropna().median()),
                                    "median_width_rel": float(part[f"{kind}_width_rel"].dropna().median())}
    nat, one = df[df.market == "ALL"], df[df.market == "summed_single_market"]
    w_nat = (nat.short_term_upper - nat.short_term_lower).to_numpy()
    w_one = (one.short_term_upper - one.short_term_lower).to_numpy()
    summary["national_width_pooled_over_summed"] = float(np.median(w_nat / w_one))
    summary["max_rhat"] = float(df.st_max_rhat.max())
    summary["min_ess_bulk"] = float(df.st_min_ess.min())
    print(json.dumps(summary, indent=2))
    return {"summary": summary, "n_datasets": args.seeds, "markets": args.markets, "weeks": args.weeks,
            "draws": args.draws, "tune": _tune(args), "scheduler": args.scheduler,
            "wall_s": [x["wall_s"] for x in res], "rows": df.replace({np.nan: None}).to_dict("records")}


def _truncate_data(src: Path, dst: Path, weeks: int) -> None:
    import pandas as pd

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.csv"):
        df = pd.read_csv(f)
        d = pd.to_datetime(df.Date)
        df[d < d.min() + pd.Timedelta(weeks=weeks)].to_csv(dst / f.name, index=False)


def refresh_one(item: dict) -> list[dict]:
    """One data set: a run on the first ``base`` weeks, then for each extra k weeks a refresh (previous
    posterior as prior) and a full refit with the default priors; ROI moves and coverage of the truth."""
    import tempfile

    from ltae import pipeline
    from ltae.data.synthetic import generate_synthetic_data, save_to_csv
    from ltae.refresh import refresh

    seed, base, extras = item["seed"], item["base"], item["extras"]
    d = generate_synthetic_data(n_weeks=base + max(extras), seed=seed)
    cfg = {"sampling": {"draws": item["draws"], "tune": item["tune"], "seed": seed}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_to_csv(d, tmp / "full")
        _truncate_data(tmp / "full", tmp / f"w{base}", base)
        prev = pipeline.run(tmp / f"w{base}", tmp / "r0", cfg, store_path=tmp / "s.duckdb")
        comp = d.components
        for k in extras:
            n = base + k
            _truncate_data(tmp / "full", tmp / f"w{n}", n)
            t = time.perf_counter()
            ref = refresh(tmp / "r0", tmp / f"w{n}", tmp / f"refresh{k}", store_path=tmp / "s.duckdb")
            t_ref = time.perf_counter() - t
            t = time.perf_counter()
            full = pipeline.run(tmp / f"w{n}", tmp / f"full{k}", cfg, store_path=tmp / "s.duckdb")
            t_full = time.perf_counter() - t
            spend = d.spend_wide.iloc[:n]
            for label, res in (("refresh", ref), ("full_refit", full)):
                new = res.roi.set_index("channel")
                old = prev.roi.set_index("channel")
                for ch in new.index:
                    st_truth = float(comp[f"media_{ch}"].iloc[:n].sum() / spend[ch].sum())
                    lt_truth = d.truth["channels"][ch]["long_term_roi"]
                    for term, truth in (("short_term", st_truth), ("long_term", lt_truth),
                                        ("total", st_truth + lt_truth)):
                        lo, hi, mu = (float(new.at[ch, f"{term}_roi_{x}"]) for x in ("lower", "upper", "mean"))
                        plo, phi, pmu = (float(old.at[ch, f"{term}_roi_{x}"]) for x in ("lower", "upper", "mean"))
                        rows.append({"seed": seed, "extra_weeks": k, "method": label, "channel": ch, "term": term,
                                     "previous_mean": pmu, "mean": mu, "lower": lo, "upper": hi,
                                     "move_in_widths": abs(mu - pmu) / (phi - plo), "width_rel": (hi - lo) / abs(truth),
                                     "truth": truth, "covered": bool(lo <= truth <= hi),
                                     "wall_s": t_ref if label == "refresh" else t_full})
    print(f"seed {seed} done", flush=True)
    return rows


def refresh_study(args) -> dict:
    """Refresh stability: ``--seeds`` data sets, a run on 208 weeks, then 4 and 13 extra weeks by refresh
    and by a full refit from the default priors (fanned out over ``--scheduler``)."""
    import pandas as pd

    from ltae.distributed import fan_out

    items = [{"seed": args.seed_start + k, "base": args.weeks, "extras": [4, 13], "draws": args.draws,
              "tune": _tune(args)} for k in range(args.seeds)]
    sched = None if args.scheduler == "local" else args.scheduler
    df = pd.DataFrame([r for rows in fan_out(refresh_one, items, scheduler=sched, workers=args.workers) for r in rows])
    summary = {}
    for (method, k), g in df.groupby(["method", "extra_weeks"]):
        summary[f"{method}_{k}w"] = {"share_moved_under_quarter_width": float((g.move_in_widths < 0.25).mean()),
                                     "median_move_in_widths": float(g.move_in_widths.median()),
                                     "coverage": float(g.covered.mean()),
                                     "coverage_short_term": float(g[g.term == "short_term"].covered.mean()),
                                     "median_width_rel": float(g.width_rel.median()),
                                     "median_wall_s": float(g.wall_s.median())}
    print(json.dumps(summary, indent=2))
    return {"summary": summary, "n_datasets": args.seeds, "base_weeks": args.weeks, "draws": args.draws,
            "tune": _tune(args), "rows": df.to_dict("records")}


GEO_RUN = """
import json, resource, sys, time
t0 = time.perf_counter()
from ltae import pipeline
res = pipeline.run(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), store_path=sys.argv[4])
d = res.diagnostics
print(json.dumps({"wall_s": time.perf_counter() - t0, "steps": res.timings,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "short_term": d["short_term"], "long_term": {k: v for k, v in d["long_term"].items() if k != "markets"},
                  "compile_s": res.short.fit_info.get("compile_s")}))
"""


def geo_scale(args) -> dict:
    """Multi-market scale: the whole two-step run (report included) in a new process on generated panels
    of Meridian's geo_media.csv shape (20 geos x 156 weeks x 4 channels + 2 controls) and 40 geos x 5
    channels; each shape twice (the first run compiles that model structure, the second loads it)."""
    import subprocess
    import sys
    import tempfile

    from ltae.data.synthetic_geo import generate_geo, save_geo

    out = {}
    shapes = (("20x156x4", 20, ["Content", "Events", "Google", "LinkedIn"]),
              ("40x156x5", 40, ["Content", "Events", "Google", "LinkedIn", "Radio"]))
    for label, M, chans in shapes:
        if args.only and label not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            save_geo(generate_geo(n_markets=M, n_weeks=156, channels=chans, seed=11), tmp / "data")
            cfg = {"data": {"geo": "Geo", "controls": ["Competitor_A_Spend", "GDP_Growth"]},
                   "sampling": {"draws": args.draws, "tune": _tune(args)}, "scheduler": args.scheduler_run}
            for attempt in args.attempts.split(","):
                t = time.perf_counter()
                p = subprocess.run([sys.executable, "-c", GEO_RUN, str(tmp / "data"), str(tmp / f"out_{attempt}"),
                                    json.dumps(cfg), str(tmp / "s.duckdb")], capture_output=True, text=True)
                if p.returncode:
                    out[f"{label}_{attempt}"] = {"error": p.stderr[-3000:]}
                    print(label, attempt, "failed", p.stderr[-800:], flush=True)
                    continue
                res = json.loads(p.stdout.strip().splitlines()[-1])
                res["process_wall_s"] = time.perf_counter() - t
                out[f"{label}_{attempt}"] = res
                print(f"{label} {attempt}: {res['process_wall_s']:.0f} s, peak RSS {res['peak_rss_mb']:.0f} MB, "
                      f"R-hat {res['short_term']['max_rhat']:.3f}, ESS {res['short_term']['min_ess_bulk']:.0f}, "
                      f"compile {res['compile_s']}", flush=True)
    return out


def lt_bound(args) -> dict:
    """How precise can ANY long-term estimate be on ltae's generator? Two references per data set:

    1. the first funnel link alone: the generator's awareness responds to spend as aw[t] = 0.7 aw[t-1]
       + gain . (spend[t] - mean) + N(0, 0.8^2), and the true long-term ROI is proportional to the gain.
       OLS of the *true* awareness on its lag and spend gives the gain's relative standard error: a
       calibrated 95% interval of the long-term ROI is at least 3.92 x that wide relative to the truth
       (the rest of the funnel only adds uncertainty), and excludes 0 with probability
       Phi(1/rse - 1.96) + Phi(-1/rse - 1.96);
    2. an oracle: the pipeline's long-term model fitted on the true base-sales level (no step-1
       error) and the true brand metrics."""
    import pandas as pd
    import statsmodels.api as sm
    from scipy.stats import norm

    from ltae.config import RunConfig
    from ltae.data.synthetic import generate_synthetic_data
    from ltae.models.bvar import BVAR
    from ltae.models.mmm import _fourier

    cfg = RunConfig()
    rows = []
    for k in range(args.seeds):
        seed = args.seed_start + k
        d = generate_synthetic_data(seed=seed)
        aw, X = d.brand_metrics.Awareness.to_numpy(), d.spend_wide.to_numpy()
        fit = sm.OLS(aw[1:], sm.add_constant(np.column_stack([aw[:-1], X[1:]]))).fit()
        rse = fit.bse[2:] / np.asarray(d.params.awareness_gain)
        c = d.components
        level = (c.base_sales - c.controls - c.seasonality + c.noise).to_numpy()
        Y = np.column_stack([level, d.brand_metrics[["Awareness", "Consideration"]].to_numpy()])
        b = BVAR([Y], X, cfg.bvar_priors.lags, ["base_sales", "Awareness", "Consideration"], d.params.channels,
                 deterministic=_fourier(np.arange(len(Y), dtype=float), 2, 52), priors=cfg.bvar_priors)
        b.fit(draws=args.draws, tune=_tune(args), chains=4, seed=seed)
        lt = b.long_term_roi_draws(b.calculate_irf(periods=cfg.horizon), horizon=cfg.horizon)
        for i, ch in enumerate(d.params.channels):
            truth = d.truth["channels"][ch]["long_term_roi"]
            lo, hi = np.quantile(lt[:, i], [0.025, 0.975])
            rows.append({"seed": seed, "channel": ch, "truth": truth, "gain_rel_se": float(rse[i]),
                         "bound_width_rel": float(3.92 * rse[i]),
                         "bound_p_excludes_zero": float(norm.cdf(1 / rse[i] - 1.96) + norm.cdf(-1 / rse[i] - 1.96)),
                         "oracle_mean": float(lt[:, i].mean()), "oracle_covered": bool(lo <= truth <= hi),
                         "oracle_rel_error": abs(float(lt[:, i].mean()) - truth) / truth,
                         "oracle_width_rel": float((hi - lo) / truth), "oracle_excludes_zero": bool(lo > 0)})
        print(f"seed {seed}: gain rel. s.e. {np.round(rse, 2)}", flush=True)
    df = pd.DataFrame(rows)
    big = df[df.truth >= 1.0]
    summary = {"bound_median_width_rel": float(df.bound_width_rel.median()),
               "bound_median_abs_rel_error": float(0.6745 * df.gain_rel_se.median()),
               "bound_excludes_zero_where_truth_ge_1": float(big.bound_p_excludes_zero.mean()),
               "oracle_coverage": float(df.oracle_covered.mean()),
               "oracle_median_abs_rel_error": float(df.oracle_rel_error.median()),
               "oracle_median_width_rel": float(df.oracle_width_rel.median()),
               "oracle_excludes_zero_where_truth_ge_1": float(big.oracle_excludes_zero.mean()),
               "gain_rel_se_by_channel": df.groupby("channel").gain_rel_se.mean().round(3).to_dict()}
    print(json.dumps(summary, indent=2))
    return {"summary": summary, "n_datasets": args.seeds, "seed_start": args.seed_start, "rows": rows}




PIPELINE_RUN = """
import json, resource, sys, time
t0 = time.perf_counter()
from ltae import pipeline
t_import = time.perf_counter() - t0
data, out, store, draws, tune = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
steps, started = {}, {}
def progress(step, status):
    if status == "start":
        started[step] = time.perf_counter()
    elif status == "done":
        steps[step] = time.perf_counter() - started.pop(step)
t = time.perf_counter()
r = pipeline.run(data, out, {"sampling": {"draws": draws, "tune": tune}}, progress=progress, store_path=store)
wall = time.perf_counter() - t
print(json.dumps({"pipeline_s": wall, "import_s": t_import, "steps": steps, "timings": r.timings,
                  "short_term_fit_info": r.short.fit_info,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  # the largest child process: the compile helper on a first run (a model not yet in the
                  # compile cache is compiled in a child); a forked child (pytensor's `g++ -v`) counts
                  # with the size of this process at the fork, so in warm runs this is not a compile
                  "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "short_term": r.diagnostics["short_term"], "long_term": r.diagnostics["long_term"]}))
"""


def pipeline_case(args) -> dict:
    """Cases (a) and (e): the full two-step production run on 208 x 4 (data seed 11), each in a new
    process, with the wall time of every step, the short-term fit's parts (compile, sampling, exact
    draws of the linear effects), imports and peak RSS:

    1. ``first_run_empty_caches``: a new machine (HOME, the pytensor/numba, ltae and matplotlib
       caches all empty);
    2. ``warm_caches``: a new run (new output folder) with the caches filled by run 1;
    3. ``rerun_same_folder``: the same command again (finished steps reused);
    4. ``warm_caches_other_data``: another data set of the same shape (seed 12) in a new process
       (the compiled code does not depend on the data's values).

    min-ESS/s is the short-term model's minimum bulk ESS over the process wall time. Timings on a
    busy machine are not final (the load average is recorded)."""
    import subprocess
    import sys
    import tempfile

    from ltae.data.synthetic import generate_synthetic_data, save_to_csv

    out = {"draws": args.draws, "tune": _tune(args), "chains": 4, "data_seed": 11}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed in (11, 12):
            save_to_csv(generate_synthetic_data(seed=seed), tmp / f"data{seed}")
        home = tmp / "home"
        fresh = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "XDG_CONFIG_HOME": str(home / ".config"),
                 "MPLCONFIGDIR": str(home / ".config" / "matplotlib"), "LTAE_CACHE_DIR": str(home / ".cache" / "ltae"),
                 "PYTENSOR_FLAGS": f"base_compiledir={home / '.pytensor'}"}
        cases = (("first_run_empty_caches", 11, "out1"), ("warm_caches", 11, "out2"), ("rerun_same_folder", 11, "out2"),
                 ("warm_caches_other_data", 12, "out3"))
        for label, seed, outdir in cases:
            if args.only and label not in args.only:
                continue
            load0 = os.getloadavg()[0]
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", PIPELINE_RUN, str(tmp / f"data{seed}"), str(tmp / outdir),
                                str(tmp / "s.duckdb"), str(args.draws), str(_tune(args))],
                               capture_output=True, text=True, env={**os.environ, **fresh})
            wall = time.perf_counter() - t
            if p.returncode:
                out[label] = {"error": p.stderr[-2000:]}
                print(label, "failed", p.stderr[-500:])
                continue
            res = json.loads(p.stdout.strip().splitlines()[-1])
            res["process_wall_s"] = wall
            res["loadavg_1m_start"], res["loadavg_1m_end"] = load0, os.getloadavg()[0]
            fi = res["short_term_fit_info"]
            res["short_term_parts"] = {"compile_s": fi.get("compile_s"),
                                       "sampling_s": (fi["wall_s"] - fi.get("compile_s", 0)) if "wall_s" in fi else None,
                                       "linear_draws_s": fi.get("linear_draws_s")}
            res["min_ess_per_s"] = res["short_term"]["min_ess_bulk"] / wall
            out[label] = res
            print(f"{label}: {wall:6.1f}s process ({res['import_s']:.1f}s imports), peak RSS {res['peak_rss_mb']:.0f} MB "
                  f"(largest child {res['children_peak_rss_mb']:.0f} MB), "
                  f"min ESS {res['short_term']['min_ess_bulk']:.0f} ({res['min_ess_per_s']:.1f}/s), steps "
                  f"{json.dumps({k: round(v, 1) for k, v in res['steps'].items()})}, short-term fit "
                  f"{json.dumps({k: None if v is None else round(v, 1) for k, v in res['short_term_parts'].items()})}",
                  flush=True)
    out["machine"] = {"cpus": os.cpu_count(), "note": "timings on a busy machine are not final: see loadavg_1m_*"}
    return out


def scale_case(args) -> dict:
    """Cases (c) and (d): 500 weeks x 10 channels x 5 controls (NUTS), 1000 weeks (NUTS and ADVI)."""
    from ltae.data.synthetic import generate_synthetic_data
    from ltae.models.mmm import ShortTermMMM

    out = {}
    chans = [f"ch{i}" for i in range(10)]
    for label, weeks, channels, sampler in (("500x10x5_nutpie", 500, chans, "nutpie"),
                                             ("1000x4_nutpie", 1000, None, "nutpie"),
                                             ("1000x4_advi", 1000, None, "advi")):
        if args.only and label not in args.only:
            continue
        d = generate_synthetic_data(n_weeks=weeks, seed=7, **({"channels": channels} if channels else {}))
        ctrl = d.competitor_activity.drop(columns="Date").join(d.macroeconomic_indicators.drop(columns="Date"))
        if channels:  # a fifth control
            ctrl["Noise_Control"] = np.random.default_rng(0).normal(size=weeks)
        m = ShortTermMMM(d.sales.revenue.values, d.spend_wide.values, ctrl.values, d.params.channels,
                         list(ctrl.columns))
        t = time.perf_counter()
        m.fit(draws=args.draws, tune=_tune(args), chains=4, sampler=sampler, seed=1)
        wall = time.perf_counter() - t
        s = m.summary()
        roi = m.short_term_roi_draws()
        truth = np.array([d.truth["channels"][c]["short_term_roi"] for c in d.params.channels])
        lo, hi = np.quantile(roi, [0.025, 0.975], axis=0)
        out[label] = {"wall_s": wall, "compile_s": m.fit_info.get("compile_s"), "max_rhat": s["max_rhat"],
                      "min_ess_bulk": s["min_ess_bulk"], "divergences": s["divergences"],
                      "coverage": float(np.mean((lo <= truth) & (truth <= hi)))}
        print(f"{label:18s} wall {wall:7.1f}s  R-hat {s['max_rhat']:.3f}  ESS {s['min_ess_bulk']:7.0f}  "
              f"div {s['divergences']:4d}  ST-ROI coverage {out[label]['coverage']:.2f}", flush=True)
    return out


SOAK_RUN = """
import json, sys
from ltae import pipeline
data, out, store, cfg = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
r = pipeline.run(data, out, cfg, store_path=store)
print(json.dumps({"run_id": r.run_id}))
"""


def soak(args) -> dict:
    """Reliability soak: ``--runs`` whole pipeline runs with small draws, ``--parallel`` at a time,
    each in its own process and output folder, all recording into one DuckDB store. Counts runs
    that failed, records lost from the store (a run that finished but whose id is not in it) and
    corrupt artefacts (a folder that ``open_run`` refuses, or whose roi.csv differs from the store's
    ROI rows). All three should be 0."""
    import subprocess
    import sys
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from ltae.data.synthetic import generate_synthetic_data, save_to_csv
    from ltae.store.results import connect, list_runs
    from ltae.store.runs import RunFolderError, open_run

    draws, tune = args.draws, args.tune or 100
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data, store = tmp / "data", tmp / "store.duckdb"
        save_to_csv(generate_synthetic_data(n_weeks=args.weeks, seed=1), data)

        def one(k: int) -> dict:
            cfg = {"sampling": {"draws": draws, "tune": tune, "chains": 2, "seed": 1000 + k}, "replicates": 2}
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", SOAK_RUN, str(data), str(tmp / f"run{k}"), str(store),
                                json.dumps(cfg)], capture_output=True, text=True)
            row = {"run": k, "returncode": p.returncode, "wall_s": time.perf_counter() - t, "run_id": None}
            if p.returncode == 0:
                row["run_id"] = json.loads(p.stdout.strip().splitlines()[-1])["run_id"]
            else:
                row["error"] = p.stderr[-1500:]
            print(f"run {k:3d}: rc {p.returncode}  {row['wall_s']:6.1f} s  {row['run_id']}", flush=True)
            return row

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.parallel) as ex:
            rows = list(ex.map(one, range(args.runs)))
        wall = time.perf_counter() - t0
        recorded = set(list_runs(store).run_id) if store.exists() else set()
        con = connect(store, read_only=True) if store.exists() else None
        lost, corrupt = [], []
        for row in rows:
            if row["run_id"] is None:
                continue
            if row["run_id"] not in recorded:
                lost.append(row["run"])
            try:
                saved = open_run(tmp / f"run{row['run']}")
                if saved.run_id != row["run_id"]:
                    raise RunFolderError(f"folder holds run {saved.run_id}, not {row['run_id']}")
                roi = saved.roi()
                if con is not None and row["run_id"] in recorded:
                    db = con.execute("SELECT channel, total_roi_mean FROM roi WHERE run_id = ? ORDER BY channel",
                                     [row["run_id"]]).df()
                    mine = roi[["channel", "total_roi_mean"]].sort_values("channel").reset_index(drop=True)
                    pd.testing.assert_frame_equal(db, mine, check_dtype=False)
            except Exception as exc:  # noqa: BLE001 - counted, with the reason
                corrupt.append({"run": row["run"], "error": f"{type(exc).__name__}: {exc}"[:500]})
        if con is not None:
            con.close()
    failed = [r["run"] for r in rows if r["returncode"] != 0]
    res = {"runs": args.runs, "parallel": args.parallel, "weeks": args.weeks, "draws": draws, "tune": tune,
           "chains": 2, "wall_s": wall, "failed_runs": len(failed), "lost_records": len(lost),
           "corrupt_artifacts": len(corrupt), "records_in_store": len(recorded), "failed": failed, "lost": lost,
           "corrupt": corrupt, "per_run_wall_s": [r["wall_s"] for r in rows],
           "errors": [r.get("error") for r in rows if r.get("error")][:5]}
    print(f"soak: {args.runs} runs, {args.parallel} at a time, {wall:.0f} s: failed {len(failed)}, "
          f"lost records {len(lost)}, corrupt artefacts {len(corrupt)}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("case", choices=["timing", "recovery", "pipeline", "scale", "soak", "lt_bound", "geo_recovery", "refresh",
                                         "geo_scale"],
                    nargs="?", default="timing")
    ap.add_argument("--markets", type=int, default=10, help="geo_recovery: markets per data set")
    ap.add_argument("--attempts", default="first,again",
                    help="geo_scale: the runs per shape (first = compiles the model structure, again = loads it)")
    ap.add_argument("--scheduler", default="serial",
                    help="geo_recovery: serial, local (a Dask LocalCluster) or a Dask scheduler address")
    ap.add_argument("--workers", type=int, help="geo_recovery: LocalCluster workers")
    ap.add_argument("--scheduler-run", default=None,
                    help="geo_scale: the run's scheduler for the markets' long-term fits (default: a LocalCluster)")
    ap.add_argument("--draws", type=int, help="draws per chain (default 1000; soak: 100)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--tune", type=int, help="tuning steps per chain (default: the production default)")
    ap.add_argument("--samplers", nargs="+", default=["nutpie", "numpyro"])
    ap.add_argument("--only", nargs="*", help="scale, pipeline: run only these cases (e.g. 1000x4_advi)")
    ap.add_argument("--zero-lt", action="store_true", help="recovery: one channel without long-term effect")
    ap.add_argument("--seed-start", type=int, default=100,
                    help="recovery: first data-set seed (100: the evaluation seeds; 200+: held out for tuning)")
    ap.add_argument("--mmm-priors", help='recovery: JSON of MMMPriors overrides, e.g. \'{"roi_sigma_sd": 0.3}\'')
    ap.add_argument("--tag", help="recovery: write recovery_<tag>.json instead of the standard files")
    ap.add_argument("--run-config", help='recovery: JSON of RunConfig overrides, e.g. \'{"bvar_controls": true}\'')
    ap.add_argument("--generator", choices=["ltae", "funnel"], default="ltae",
                    help="recovery/lt_bound: ltae's generator or the second process (ltae.data.synthetic_funnel)")
    ap.add_argument("--runs", type=int, default=20, help="soak: number of pipeline runs")
    ap.add_argument("--parallel", type=int, default=4, help="soak: runs at a time")
    ap.add_argument("--weeks", type=int, help="soak (default 80) / geo_recovery (default 156): weeks of generated data")
    args = ap.parse_args()
    if args.draws is None:
        args.draws = 100 if args.case == "soak" else 1000
    if args.weeks is None:
        args.weeks = {"soak": 80, "refresh": 208}.get(args.case, 156)
    res = {"timing": timing, "recovery": recovery, "pipeline": pipeline_case, "scale": scale_case, "lt_bound": lt_bound, "geo_recovery": geo_recovery,
           "refresh": refresh_study, "geo_scale": geo_scale,
           "soak": soak}[args.case](args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.case == "recovery":
        pairs = (("short_term", "recovery_short_term.json"), ("long_term", "recovery_long_term.json"))
        if args.zero_lt:
            pairs = (("long_term", "recovery_long_term_zero_effect.json"),)
        if args.tag:
            (RESULTS / f"recovery_{args.tag}.json").write_text(json.dumps(res, indent=2, default=float))
            print(f"wrote {RESULTS / f'recovery_{args.tag}.json'}")
            pairs = ()
        for kind, name in pairs:
            part = {"summary": res["summary"][kind], "total": res["summary"]["total"], "n_datasets": res["n_datasets"],
                    "draws": res["draws"], "seed_start": res["seed_start"], "mmm_priors": res["mmm_priors"], "rows": [{k: v for k, v in r.items() if k.startswith((kind, "seed",
                                                     "channel", "wall", "st_", "lt_"))} for r in res["rows"]]}
            (RESULTS / name).write_text(json.dumps(part, indent=2, default=float))
            print(f"wrote {RESULTS / name}")
    else:
        name = {"timing": "timing_208x4.json", "pipeline": "pipeline_208x4.json", "scale": "scale.json",
                "soak": "soak.json", "lt_bound": "lt_information_bound.json",
                "geo_recovery": f"geo_recovery{'_' + args.tag if args.tag else ''}.json",
                "refresh": f"refresh{'_' + args.tag if args.tag else ''}.json",
                "geo_scale": "geo_scale.json"}[args.case]
        (RESULTS / name).write_text(json.dumps(res, indent=2, default=float))
        print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
