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
    ap.add_argument("case", choices=["timing", "recovery", "pipeline", "scale", "soak"], nargs="?", default="timing")
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
    ap.add_argument("--runs", type=int, default=20, help="soak: number of pipeline runs")
    ap.add_argument("--parallel", type=int, default=4, help="soak: runs at a time")
    ap.add_argument("--weeks", type=int, default=80, help="soak: weeks of generated data")
    args = ap.parse_args()
    if args.draws is None:
        args.draws = 100 if args.case == "soak" else 1000
    res = {"timing": timing, "recovery": recovery, "pipeline": pipeline_case, "scale": scale_case,
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
                "soak": "soak.json"}[args.case]
        (RESULTS / name).write_text(json.dumps(res, indent=2, default=float))
        print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
