"""Scenario recovery: does the planner's interval cover the generator's true response to a plan?

``python -m benchmarks.scenario_recovery [--seeds 10] [--seed-start 100] [--weeks 208] [--draws 1000]``

For each generated data set (known truth) the whole pipeline runs at the production settings, then
for every channel two plans are predicted against the recent average: +50% of that channel's recent
spend for 13 weeks, and -50%; plus one plan moving every channel +20%. Each prediction's 95%
intervals (short term, long term, total; per channel and overall) are compared with
``scenario_truth``: the same simulation continued past the data's end with the plan and with the
reference. Writes JSON (coverage, median relative error, per-plan rows) to
benchmarks/results/scenario_recovery.json (``--out`` to change). Tiny settings to check that it runs:
``--seeds 1 --weeks 80 --draws 60 --tune 60 --chains 2 --out /tmp/x.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PLAN_WEEKS = 13


def plans(run) -> dict[str, pd.DataFrame]:
    from ltae.analysis.scenarios import default_plan

    out = {}
    for ch in run.channels:
        for label, m in (("up", 1.5), ("down", 0.5)):
            p = default_plan(run, PLAN_WEEKS)
            p[ch] = p[ch] * m
            out[f"{ch} {label} 50%"] = p
    p = default_plan(run, PLAN_WEEKS)
    p[run.channels] = p[run.channels] * 1.2
    out["all up 20%"] = p
    return out


def one_dataset(seed: int, args) -> list[dict]:
    from ltae import pipeline
    from ltae.analysis.scenarios import load_run, run_scenario
    from ltae.data.synthetic import generate_synthetic_data, save_to_csv, scenario_truth

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_synthetic_data(n_weeks=args.weeks, seed=seed)
        save_to_csv(data, Path(tmp) / "data")
        sampling = {"draws": args.draws, "seed": seed}
        if args.tune:
            sampling["tune"] = args.tune
        if args.chains:
            sampling["chains"] = args.chains
        t = time.perf_counter()
        pipeline.run(Path(tmp) / "data", Path(tmp) / "out", {"sampling": sampling}, store_path=Path(tmp) / "s.duckdb")
        fit_s = time.perf_counter() - t
        run = load_run(Path(tmp) / "out")
        for name, plan in plans(run).items():
            t = time.perf_counter()
            res = run_scenario(run, plan, max_draws=args.max_draws)
            scen_s = time.perf_counter() - t
            truth = scenario_truth(data, res.plan_spend, res.reference_spend, res.horizon)
            tab = res.returns().set_index("channel")
            for ch in [*run.channels, "all"]:
                if tab.loc[ch, "extra_spend"] == 0:
                    continue
                i = run.channels.index(ch) if ch != "all" else None
                row = {"seed": seed, "plan": name, "channel": ch, "extra_spend": float(tab.loc[ch, "extra_spend"]),
                       "fit_s": fit_s, "scenario_s": scen_s, "draws_used": res.n_draws}
                for kind in ("short_term", "long_term", "total"):
                    tv = float(truth[f"{kind}_all"] if i is None else truth[kind][i])
                    m, lo, hi = (float(tab.loc[ch, f"{kind}_{s}"]) for s in ("mean", "lower", "upper"))
                    row.update({f"{kind}_truth": tv, f"{kind}_mean": m, f"{kind}_lower": lo, f"{kind}_upper": hi,
                                f"{kind}_covered": bool(lo <= tv <= hi),
                                f"{kind}_rel_error": abs(m - tv) / abs(tv) if tv else None})
                rows.append(row)
    return rows


def summarise(df: pd.DataFrame) -> dict:
    out = {}
    for label, part in (("all plans", df), ("one channel up", df[df.plan.str.endswith("up 50%")]),
                        ("one channel down", df[df.plan.str.endswith("down 50%")]),
                        ("all channels up", df[df.plan == "all up 20%"])):
        part = part[part.channel != "all"] if label != "all channels up" else part[part.channel == "all"]
        if not len(part):
            continue
        out[label] = {"n": int(len(part))}
        for kind in ("short_term", "long_term", "total"):
            out[label][kind] = {"coverage": float(part[f"{kind}_covered"].mean()),
                                "median_rel_error": float(part[f"{kind}_rel_error"].dropna().median())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scenario_recovery", description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-start", type=int, default=100)
    ap.add_argument("--weeks", type=int, default=208)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, help="default: the production default")
    ap.add_argument("--chains", type=int, help="default: the production default")
    ap.add_argument("--max-draws", type=int, default=2000, help="posterior draws used by the scenario")
    ap.add_argument("--out", type=Path, default=RESULTS / "scenario_recovery.json")
    args = ap.parse_args()
    rows: list[dict] = []
    for k in range(args.seeds):
        seed = args.seed_start + k
        rows += one_dataset(seed, args)
        df = pd.DataFrame(rows)
        s = summarise(df)["all plans"]
        print(f"seed {seed}: coverage so far short {s['short_term']['coverage']:.2f}  long "
              f"{s['long_term']['coverage']:.2f}  total {s['total']['coverage']:.2f}", flush=True)
    df = pd.DataFrame(rows)
    summary = summarise(df)
    print(json.dumps(summary, indent=2))
    payload = {"summary": summary, "n_datasets": args.seeds, "seed_start": args.seed_start, "weeks": args.weeks,
               "draws": args.draws, "tune": args.tune, "chains": args.chains, "plan_weeks": PLAN_WEEKS,
               "max_draws": args.max_draws, "scenario_s_median": float(np.median(df.scenario_s)),
               "rows": rows}
    from ltae.store.artifacts import atomic_write_json

    atomic_write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
