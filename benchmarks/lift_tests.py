"""Lift tests on generated data with known truth: does one experiment narrow its channel's short-term ROI
interval while still covering the truth, and is a contradicting experiment flagged?

``python -m benchmarks.lift_tests [--seeds 10] [--seed-start 100] [--weeks 208] [--draws 1000] [--tune 500]
[--chains 4] [--channel Google] [--test-weeks 8] [--se-share 0.12] [--contradict 2.5] [--contradict-se 0.08]
[--scheduler serial] [--out FILE]``

For each data set (``generate_synthetic_data(seed)``, known truth) the short-term model is fitted at the
given (default: production) settings three times:

* without any test;
* with one honest test: a go-dark of ``--channel`` over ``--test-weeks`` weeks at a seeded position
  (``spend_change`` = minus the channel's spend in those weeks, ``spread = proportional``), measured over
  those weeks plus 2 (carry-over); the measured lift is the generator's true short-term lift
  (``lift_test_truth``: the channel's own adstock, Hill and beta) plus N(0, se²) noise, se =
  ``--se-share`` x |true lift|;
* with a contradicting test: the same go-dark claiming ``--contradict`` x the true lift with se =
  ``--contradict-se`` x |true lift|.

Reported per data set and overall: the channel's short-term ROI interval (95%) without and with the
honest test, its narrowing (1 - width with / width without), whether it covers the true ROI, the other
channels' narrowing; the honest test's check (``lift_test_check`` against the fit without tests:
``agrees``); the contradicting test's pull on the ROI mean and whether the check flags it. The targets
(issue 15): median narrowing >= 40%, coverage with the test >= 90% of data sets, contradictions moved
and flagged.

Writes JSON to benchmarks/results/lift_tests.json (``--out`` to change). Tiny settings to check that it
runs: ``--seeds 1 --weeks 80 --draws 100 --tune 100 --chains 2 --out /tmp/lift.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def go_dark(data, ds, channel: str, weeks: int, seed: int) -> dict:
    """The test's window (seeded) and its true short-term lift."""
    from ltae.data.synthetic import lift_test_truth

    n = ds.n_weeks
    rng = np.random.default_rng(seed + 7919)
    x = ds.spend[channel].to_numpy()
    starts = [s for s in range(13, n - weeks - 2) if x[s:s + weeks].sum() > 0]
    s = int(rng.choice(starts))
    e = s + weeks - 1
    change = -float(x[s:e + 1].sum())
    truth = lift_test_truth(data, channel, s, e, change, e + 2, "proportional")
    return {"start": s, "end": e, "until": e + 2, "spend_change": change, "true_lift": truth["short_term"],
            "true_lift_long_term_part": truth["long_term"]}


def _frame(ds, channel, w, lift, se, name):
    return pd.DataFrame({"name": [name], "channel": [channel], "start": [ds.dates[w["start"]]],
                         "end": [ds.dates[w["end"]]], "measured_until": [ds.dates[w["until"]]],
                         "spend_change": [w["spend_change"]], "spread": ["proportional"], "lift": [lift],
                         "lift_se": [se]})


def one_dataset(item: dict) -> dict:
    """One generated data set (a task for ltae.distributed.fan_out: a pure function of its item)."""
    import tempfile

    from ltae.analysis.calibration import lift_test_check, lift_test_checklist_row, read_lift_tests
    from ltae.data import load_dataset
    from ltae.data.synthetic import generate_synthetic_data, save_to_csv
    from ltae.models.mmm import ShortTermMMM

    seed, a = item["seed"], item["args"]
    data = generate_synthetic_data(n_weeks=a["weeks"], seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        save_to_csv(data, tmp)
        ds = load_dataset(tmp)
    ch = a["channel"]
    c = list(ds.channels).index(ch)
    truth = {k: v["short_term_roi"] for k, v in data.truth["channels"].items()}
    w = go_dark(data, ds, ch, a["test_weeks"], seed)
    tl = w["true_lift"]
    rng = np.random.default_rng(seed)
    se = a["se_share"] * abs(tl)
    honest = _frame(ds, ch, w, tl + se * rng.standard_normal(), se, "honest")
    contra = _frame(ds, ch, w, a["contradict"] * tl, a["contradict_se"] * abs(tl), "contradicting")
    fit_kw = {"draws": a["draws"], "tune": a["tune"], "chains": a["chains"], "seed": seed}
    q = (1 - a["ci"]) / 2
    out = {"seed": seed, "channel": ch, "true_roi": truth[ch], "test": {**w, "se": se, "lift": float(honest.lift[0])}}
    fits = {}
    for key, tests in (("without", None), ("with", honest), ("contradicting", contra)):
        t = time.perf_counter()
        m = ShortTermMMM.from_dataset(ds, lift_tests=None if tests is None else read_lift_tests(tests, ds))
        m.fit(**fit_kw)
        roi = m.short_term_roi_draws()
        conv = m.summary()
        fits[key] = m
        lo, hi = np.quantile(roi, [q, 1 - q], axis=0)
        out[key] = {"roi_mean": roi.mean(0).tolist(), "roi_lower": lo.tolist(), "roi_upper": hi.tolist(),
                    "max_rhat": conv["max_rhat"], "divergences": conv["divergences"],
                    "fit_s": time.perf_counter() - t}
    wo, wi, co = out["without"], out["with"], out["contradicting"]
    width = lambda r, k: r["roi_upper"][k] - r["roi_lower"][k]  # noqa: E731
    out["narrowing"] = 1 - width(wi, c) / width(wo, c)
    out["narrowing_other_channels"] = {k: 1 - width(wi, j) / width(wo, j) for j, k in enumerate(ds.channels) if j != c}
    out["covered_without"] = wo["roi_lower"][c] <= truth[ch] <= wo["roi_upper"][c]
    out["covered_with"] = wi["roi_lower"][c] <= truth[ch] <= wi["roi_upper"][c]
    (h,) = lift_test_check(fits["with"], fits["without"], a["ci"])
    (x,) = lift_test_check(fits["contradicting"], fits["without"], a["ci"])
    out["honest_check"] = {k: h[k] for k in ("z", "without_tests_z", "agrees")}
    out["contradicting_check"] = {k: x[k] for k in ("z", "without_tests_z", "agrees")}
    out["contradicting_checklist"] = lift_test_checklist_row([x])["status"]
    out["contradicting_roi_shift"] = (co["roi_mean"][c] - wo["roi_mean"][c]) / max(abs(wo["roi_mean"][c]), 1e-12)
    out["contradicting_moved_out"] = not (wo["roi_lower"][c] <= co["roi_mean"][c] <= wo["roi_upper"][c])
    return out


def summarize(rows: list[dict]) -> dict:
    """The targets over the data sets."""
    nar = np.array([r["narrowing"] for r in rows])
    other = np.array([v for r in rows for v in r["narrowing_other_channels"].values()])
    return {
        "datasets": len(rows),
        "narrowing_median": float(np.median(nar)), "narrowing_min": float(nar.min()),
        "share_narrowing_ge_40pct": float(np.mean(nar >= 0.4)),
        "narrowing_other_channels_median": float(np.median(other)) if other.size else None,
        "coverage_without_test": float(np.mean([r["covered_without"] for r in rows])),
        "coverage_with_test": float(np.mean([r["covered_with"] for r in rows])),
        "honest_test_agrees": float(np.mean([r["honest_check"]["agrees"] for r in rows])),
        "contradiction_flagged": float(np.mean([not r["contradicting_check"]["agrees"] for r in rows])),
        "contradiction_roi_shift_median": float(np.median([r["contradicting_roi_shift"] for r in rows])),
        "contradiction_moved_out_of_interval": float(np.mean([r["contradicting_moved_out"] for r in rows])),
        "targets": {"narrowing_median_ge_0.4": bool(np.median(nar) >= 0.4),
                    "coverage_with_test_ge_0.9": bool(np.mean([r["covered_with"] for r in rows]) >= 0.9),
                    "contradiction_flagged_all": bool(all(not r["contradicting_check"]["agrees"] for r in rows))},
    }


def main(argv=None) -> dict:
    """Run the benchmark and write its JSON."""
    from ltae.distributed import fan_out

    ap = argparse.ArgumentParser(prog="python -m benchmarks.lift_tests")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-start", type=int, default=100)
    ap.add_argument("--weeks", type=int, default=208)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--channel", default="Google")
    ap.add_argument("--test-weeks", type=int, default=8)
    ap.add_argument("--se-share", type=float, default=0.12)
    ap.add_argument("--contradict", type=float, default=2.5)
    ap.add_argument("--contradict-se", type=float, default=0.08)
    ap.add_argument("--ci", type=float, default=0.95)
    ap.add_argument("--scheduler", default="serial", help='"serial", "local" (a Dask LocalCluster) or an address')
    ap.add_argument("--out", type=Path, default=RESULTS / "lift_tests.json")
    a = ap.parse_args(argv)
    args = {k: getattr(a, k) for k in ("weeks", "draws", "tune", "chains", "channel", "test_weeks", "se_share",
                                       "contradict", "contradict_se", "ci")}
    items = [{"seed": s, "args": args} for s in range(a.seed_start, a.seed_start + a.seeds)]
    t = time.perf_counter()
    rows = fan_out(one_dataset, items, scheduler=None if a.scheduler == "local" else a.scheduler)
    res = {"benchmark": "lift_tests", "settings": {**args, "seeds": list(range(a.seed_start, a.seed_start + a.seeds)),
                                                   "scheduler": a.scheduler},
           "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
           "wall_s": time.perf_counter() - t, "summary": summarize(rows), "datasets": rows}
    from ltae.store.artifacts import atomic_write_json

    atomic_write_json(a.out, res)
    print(json.dumps(res["summary"], indent=1))
    return res


if __name__ == "__main__":
    main()
