"""Side by side with Google's Meridian on the same multi-market data (when its package installs here).

    python -m benchmarks.compare_meridian --meridian-python /path/to/venv/bin/python [--markets 20]

Meridian (TensorFlow) and ltae (PyMC) cannot share one environment, so this script (run with ltae's
Python) writes a panel of Meridian's ``geo_media.csv`` shape with ltae's multi-market generator
(``geo, time, <Channel>_impression, <Channel>_spend, two controls, population, revenue``; impressions
= spend, since the generator has none), fits ltae on it (the short-term hierarchical model, as
``ltae run`` does, and the whole two-step run), then runs Meridian's ``sample_posterior`` on the same
CSV in the other Python (its defaults: revenue KPI, national media effects with geo random effects;
4 chains, 500 adaptation + 500 burn-in, 1000 kept) and compares wall time, min bulk ESS and max R-hat
of each model's parameters. The models differ (Meridian: geo-level random effects, no local level);
ESS/s is per model, for its own parameters. Writes benchmarks/results/compare_meridian.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

MERIDIAN = r'''
import json, sys, time
import arviz as az
import numpy as np
from meridian.data import load
from meridian.model import model, spec
path, channels, controls, chains, adapt, burnin, keep = (sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]),
                                                         *map(int, sys.argv[4:8]))
t0 = time.perf_counter()
coords = load.CoordToColumns(time="time", geo="geo", kpi="revenue", controls=controls, population="population",
                             media=[f"{c}_impression" for c in channels], media_spend=[f"{c}_spend" for c in channels])
loader = load.CsvDataLoader(csv_path=path, coord_to_columns=coords, kpi_type="revenue",
                            media_to_channel={f"{c}_impression": c for c in channels},
                            media_spend_to_channel={f"{c}_spend": c for c in channels})
data = loader.load()
mmm = model.Meridian(input_data=data, model_spec=spec.ModelSpec())
t1 = time.perf_counter()
mmm.sample_posterior(n_chains=chains, n_adapt=adapt, n_burnin=burnin, n_keep=keep, seed=1)
t2 = time.perf_counter()
post = mmm.inference_data.posterior
names = [v for v in post.data_vars if post[v].ndim >= 2]
ess = az.ess(post[names], method="bulk")
rhat = az.rhat(post[names])
min_ess = float(min(np.nanmin(ess[v].values) for v in names))
max_rhat = float(max(np.nanmax(rhat[v].values) for v in names))
print(json.dumps({"setup_s": t1 - t0, "sample_s": t2 - t1, "wall_s": t2 - t0, "min_ess_bulk": min_ess,
                  "max_rhat": max_rhat, "n_parameters": len(names)}))
'''


def export(markets: int, weeks: int, seed: int, out: Path) -> tuple[Path, list[str], list[str]]:
    """The panel in Meridian's layout (and the same data as ltae's five files)."""
    import pandas as pd

    from ltae.data.synthetic_geo import generate_geo, save_geo

    d = generate_geo(n_markets=markets, n_weeks=weeks, seed=seed)
    save_geo(d, out / "ltae_data")
    channels = d.truth["channels_order"]
    controls = ["Competitor_A_Spend", "GDP_Growth"]
    rows = []
    sizes = d.truth["market_sizes"]
    for m in d.markets:
        x = d.per_market[m]
        df = pd.DataFrame({"geo": m, "time": pd.to_datetime(x.sales.Date).dt.strftime("%Y-%m-%d"),
                           "revenue": x.sales.revenue.to_numpy()})
        for c in channels:
            df[f"{c}_spend"] = x.spend_wide[c].to_numpy()
            df[f"{c}_impression"] = x.spend_wide[c].to_numpy()
        df["Competitor_A_Spend"] = x.competitor_activity.Competitor_A_Spend.to_numpy()
        df["GDP_Growth"] = x.macroeconomic_indicators.GDP_Growth.to_numpy()
        df["population"] = 1_000_000.0 * sizes[m]
        rows.append(df)
    path = out / "geo_media.csv"
    pd.concat(rows).to_csv(path, index=False)
    return path, channels, controls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare_meridian")
    ap.add_argument("--meridian-python", required=True, help="a Python with google-meridian installed")
    ap.add_argument("--markets", type=int, default=20)
    ap.add_argument("--weeks", type=int, default=156)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    out = {"markets": args.markets, "weeks": args.weeks, "draws": args.draws, "tune": args.tune}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path, channels, controls = export(args.markets, args.weeks, args.seed, tmp)
        # ltae: the hierarchical short-term model on Meridian's file (as `ltae run --data geo_media.csv`)
        from ltae.config import RunConfig
        from ltae.data import load_dataset
        from ltae.pipeline_geo import geo_model

        panel = load_dataset(path, geo="geo", target="revenue", channels=[f"{c}_spend" for c in channels],
                             controls=controls)
        cfg = RunConfig.model_validate({"sampling": {"draws": args.draws, "tune": args.tune}})
        t = time.perf_counter()
        geo = geo_model(panel, cfg)
        geo.fit(draws=args.draws, tune=args.tune, chains=4, seed=args.seed)
        wall = time.perf_counter() - t
        s = geo.summary()
        out["ltae_short_term"] = {"wall_s": wall, "compile_s": geo.fit_info.get("compile_s"),
                                  "min_ess_bulk": s["min_ess_bulk"], "max_rhat": s["max_rhat"],
                                  "min_ess_per_s": s["min_ess_bulk"] / wall}
        print("ltae", json.dumps(out["ltae_short_term"]), flush=True)
        p = subprocess.run([args.meridian_python, "-c", MERIDIAN, str(path), json.dumps(channels), json.dumps(controls),
                            "4", str(args.tune), str(args.tune), str(args.draws)], capture_output=True, text=True)
        if p.returncode:
            out["meridian"] = {"error": p.stderr[-3000:]}
            print("meridian failed", p.stderr[-1500:], flush=True)
        else:
            res = json.loads(p.stdout.strip().splitlines()[-1])
            res["min_ess_per_s"] = res["min_ess_bulk"] / res["wall_s"]
            out["meridian"] = res
            out["ltae_over_meridian_min_ess_per_s"] = out["ltae_short_term"]["min_ess_per_s"] / res["min_ess_per_s"]
            print("meridian", json.dumps(res), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compare_meridian.json").write_text(json.dumps(out, indent=2, default=float))
    print(f"wrote {RESULTS / 'compare_meridian.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
