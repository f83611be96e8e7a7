"""Benchmarks: ``python -m benchmarks [timing|recovery] [--seeds N] [--draws D]``.

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
            row = {"seed": seed, "channel": r.channel, "wall_s": wall,
                   "st_max_rhat": res.diagnostics["short_term"]["max_rhat"],
                   "st_min_ess": res.diagnostics["short_term"]["min_ess_bulk"],
                   "st_divergences": res.diagnostics["short_term"]["divergences"],
                   "lt_max_rhat": res.diagnostics["long_term"]["max_rhat"]}
            for kind, col in (("short_term", "short_term_roi"), ("long_term", "long_term_roi"),
                              ("total", "total_roi")):
                truth = tr[col] if kind != "total" else tr["total_roi"]
                lo, hi, mean = getattr(r, f"{col}_lower"), getattr(r, f"{col}_upper"), getattr(r, f"{col}_mean")
                row.update({f"{kind}_truth": truth, f"{kind}_mean": mean, f"{kind}_lower": lo,
                            f"{kind}_upper": hi, f"{kind}_covered": bool(lo <= truth <= hi),
                            f"{kind}_abs_error": abs(mean - truth),
                            f"{kind}_rel_error": abs(mean - truth) / abs(truth) if truth else None})
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
                         "median_abs_error": float(df[f"{kind}_abs_error"].median())}
    zero = df[df.long_term_truth.abs() < 1e-9]
    if len(zero):
        summary["long_term"]["zero_effect_interval_contains_zero"] = float(
            ((zero.long_term_lower <= 0) & (zero.long_term_upper >= 0)).mean())
    print(json.dumps(summary, indent=2))
    return {"summary": summary, "n_datasets": args.seeds, "draws": args.draws, "tune": _tune(args),
            "seed_start": args.seed_start,
            "mmm_priors": prior_override, "run_config": run_override, "rows": rows}


def pipeline_case(args) -> dict:
    """Cases (a) and (e): the full two-step production run on 208 x 4 (wall per step, peak RSS), in
    fresh processes: (1) with empty compile caches (a new machine), (2) a new run with the compile
    cache on disk warm, (3) the same command again (finished steps reused), (4) another data set of
    the same shape in a new process (the compiled code does not depend on the data's values)."""
    import subprocess
    import sys
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        code = ("import json, resource, sys, time; t0 = time.perf_counter(); from ltae import pipeline; "
                "from ltae.data.synthetic import generate_synthetic_data, save_to_csv; "
                "save_to_csv(generate_synthetic_data(seed=int(sys.argv[4])), sys.argv[1] + '/data' + sys.argv[4]); t = time.perf_counter(); "
                "r = pipeline.run(sys.argv[1] + '/data' + sys.argv[4], sys.argv[3], "
                "{'sampling': {'draws': int(sys.argv[2]), 'tune': int(sys.argv[5])}}, "
                "store_path=sys.argv[1] + '/s.duckdb'); "
                "print(json.dumps({'wall_s': time.perf_counter() - t, 'import_s': t - t0, 'steps': r.timings, "
                "'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
                "'short_term': r.diagnostics['short_term'], 'long_term': r.diagnostics['long_term']}))")
        fresh = Path(tmp) / "fresh_caches"
        runs = (("cold_empty_caches", "out1", 1, {"PYTENSOR_FLAGS": f"base_compiledir={fresh / 'pytensor'}",
                                                  "LTAE_CACHE_DIR": str(fresh / "ltae")}),
                ("cold_cached_compile", "out2", 1, {}),
                ("warm_rerun", "out2", 1, {}),
                ("cold_cached_compile_other_data", "out3", 2, {}))
        for label, outdir, seed, env in runs:
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", code, tmp, str(args.draws), str(Path(tmp) / outdir), str(seed),
                                str(_tune(args))],
                               capture_output=True, text=True, env={**os.environ, **env})
            wall = time.perf_counter() - t
            if p.returncode:
                out[label] = {"error": p.stderr[-2000:]}
                print(label, "failed", p.stderr[-500:])
                continue
            res = json.loads(p.stdout.strip().splitlines()[-1])
            res["process_wall_s"] = wall
            out[label] = res
            print(f"{label}: {wall:6.1f}s process, {res['wall_s']:6.1f}s pipeline, peak RSS "
                  f"{res['peak_rss_mb']:.0f} MB, steps {json.dumps({k: round(v, 1) for k, v in res['steps'].items()})}",
                  flush=True)
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


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("case", choices=["timing", "recovery", "pipeline", "scale"], nargs="?", default="timing")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--tune", type=int, help="tuning steps per chain (default: the production default)")
    ap.add_argument("--samplers", nargs="+", default=["nutpie", "numpyro"])
    ap.add_argument("--only", nargs="*", help="scale: run only these cases (e.g. 1000x4_advi)")
    ap.add_argument("--zero-lt", action="store_true", help="recovery: one channel without long-term effect")
    ap.add_argument("--seed-start", type=int, default=100,
                    help="recovery: first data-set seed (100: the evaluation seeds; 200+: held out for tuning)")
    ap.add_argument("--mmm-priors", help='recovery: JSON of MMMPriors overrides, e.g. \'{"roi_sigma_sd": 0.3}\'')
    ap.add_argument("--tag", help="recovery: write recovery_<tag>.json instead of the standard files")
    ap.add_argument("--run-config", help='recovery: JSON of RunConfig overrides, e.g. \'{"bvar_controls": true}\'')
    args = ap.parse_args()
    res = {"timing": timing, "recovery": recovery, "pipeline": pipeline_case, "scale": scale_case}[args.case](args)
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
        name = {"timing": "timing_208x4.json", "pipeline": "pipeline_208x4.json", "scale": "scale.json"}[args.case]
        (RESULTS / name).write_text(json.dumps(res, indent=2, default=float))
        print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
