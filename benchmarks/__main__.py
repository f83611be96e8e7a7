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
        m.fit(draws=args.draws, tune=args.draws, chains=4, sampler=sampler, seed=1)
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
    """Case (f): coverage of the true short-term ROI over several generated data sets."""
    from ltae.analysis.roi import summarize_draws
    from ltae.data.synthetic import generate_synthetic_data

    rows = []
    for seed in range(args.seeds):
        d = generate_synthetic_data(seed=100 + seed)
        m = _mmm(d).fit(draws=args.draws, tune=args.draws, chains=4, seed=seed)
        roi = m.short_term_roi_draws()
        for i, ch in enumerate(d.params.channels):
            s = summarize_draws(roi[:, i])
            truth = d.truth["channels"][ch]["short_term_roi"]
            rows.append({"seed": 100 + seed, "channel": ch, "truth": truth, **s,
                         "covered": s["lower"] <= truth <= s["upper"],
                         "rel_error": abs(s["median"] - truth) / abs(truth)})
        cov = np.mean([r["covered"] for r in rows])
        print(f"seed {100 + seed}: coverage so far {cov:.2f}, median rel. error "
              f"{np.median([r['rel_error'] for r in rows]):.2f}", flush=True)
    return {"rows": rows, "coverage": float(np.mean([r["covered"] for r in rows])),
            "median_abs_rel_error": float(np.median([r["rel_error"] for r in rows]))}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("case", choices=["timing", "recovery"], nargs="?", default="timing")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--samplers", nargs="+", default=["nutpie", "numpyro"])
    args = ap.parse_args()
    res = timing(args) if args.case == "timing" else recovery(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = {"timing": "timing_208x4.json", "recovery": "recovery_short_term.json"}[args.case]
    (RESULTS / name).write_text(json.dumps(res, indent=2, default=float))
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
