"""Bulk ESS per second: ltae's whole two-step run and its short-term fit against pymc-marketing's MMM.

``python -m benchmarks.compare_pymc_marketing [--draws N] [--configs a,b,...] [--no-warmup] [--out FILE]``

Data: ``generate_synthetic_data(seed=11)``: 208 weeks, 4 channels, 4 controls (competitor spend, GDP
growth, unemployment, consumer confidence), 3 brand metrics.

Rows (each in its own new process, one after the other; 4 chains, ``--draws`` draws each):

* ``ltae-run``: ``ltae run`` on the data folder, as a user runs it (production defaults: nutpie,
  500 tuning steps, target_accept 0.9): the whole two-step pipeline with the report, figures and
  results store. Its wall time is the whole process (imports included). ``ltae-fit`` is the
  short-term fit inside that run (model build, compile, sampling, exact draws of the linear effects,
  writing the posterior). ESS: the run's own checklist value, the minimum bulk ESS over every
  short-term parameter (the free ones and ROI, beta, group means, controls, seasonality).
* ``pmm-<saturation>-<sampler>``: ``pymc_marketing.mmm.MMM`` (1.x) with ``GeometricAdstock(l_max=8)``,
  the saturation named, the same 4 controls standardised (pymc-marketing does not scale controls),
  ``yearly_seasonality=2``, library default priors, ``tune=1000`` (PyMC's default), target_accept
  0.9; its static intercept. ``pmm-tvi-...`` adds pymc-marketing's time-varying intercept (an HSGP),
  the like-for-like model of ltae's local level. Wall time: the ``fit`` call alone (no imports, no
  data preparation). ESS: the minimum bulk ESS over the model's free random variables.

"Converging": max R-hat < 1.01 and divergences < 1% of draws. The ratios compare ltae's min-ESS/s
with the best converging pymc-marketing configuration (named in the output), and with the best
converging like-for-like one. Caches are warm for every row: before each timed run, an untimed run
of the same configuration with tiny draws (``--no-warmup`` skips it) fills pytensor's and numba's
caches, ltae's compile cache and JAX's compilation cache (used by the numpyro rows too).

Timings on a busy machine are not comparable: run this on an otherwise idle machine; the JSON
records the load average before and after each row. Writes
``benchmarks/results/compare_pymc_marketing.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DATA_SEED = 11
CHAINS = 4
SEED = 1
TARGET_ACCEPT = 0.9
PMM_TUNE = 1000
CONFIGS = ("ltae-run", "pmm-logistic-numpyro", "pmm-logistic-nutpie", "pmm-tvi-logistic-numpyro",
           "pmm-tvi-logistic-nutpie", "pmm-hill-nutpie")
EXTRA_CONFIGS = ("pmm-hill-numpyro", "pmm-tvi-logistic-pymc", "pmm-logistic-pymc")


def _data():
    from ltae.data.synthetic import generate_synthetic_data

    d = generate_synthetic_data(seed=DATA_SEED)
    ctrl = d.competitor_activity.set_index("Date").join(d.macroeconomic_indicators.set_index("Date"))
    ctrl = ctrl.reindex(d.sales.Date.values)
    spend = d.spend_wide.reindex(d.sales.Date.values)
    return d, spend, ctrl


def diagnostics(idata, names) -> dict:
    """Over every scalar component of the named free variables: min/median bulk ESS, max R-hat,
    divergences."""
    import arviz as az
    import numpy as np

    post = idata["posterior"]
    post = post.to_dataset() if hasattr(post, "to_dataset") else post
    names = [n for n in names if n in post]
    ds = post[names]
    ess, rhat = az.ess(ds, method="bulk"), az.rhat(ds)
    ess_all = np.concatenate([np.ravel(ess[n].values) for n in names])
    rhat_all = np.concatenate([np.ravel(rhat[n].values) for n in names])
    ss = idata["sample_stats"]
    ss = ss.to_dataset() if hasattr(ss, "to_dataset") else ss
    div = int(np.asarray(ss["diverging"].values).sum()) if "diverging" in ss else 0
    weakest = min(names, key=lambda n: float(np.nanmin(ess[n].values)))
    return {"n_params": int(ess_all.size), "min_ess_bulk": float(np.nanmin(ess_all)),
            "median_ess_bulk": float(np.nanmedian(ess_all)), "max_rhat": float(np.nanmax(rhat_all)),
            "divergences": div, "n_draws": int(ds.sizes["chain"] * ds.sizes["draw"]), "weakest": weakest}


def pmm_model(config: str):
    """pymc-marketing's MMM for ``pmm-[tvi-]<logistic|hill>-<sampler>``."""
    from pymc_marketing.mmm import MMM, GeometricAdstock, HillSaturation, LogisticSaturation

    parts = config.split("-")[1:-1]
    tvi = "tvi" in parts
    saturation = LogisticSaturation() if "logistic" in parts else HillSaturation()
    d, spend, ctrl = _data()
    ctrl_std = (ctrl - ctrl.mean()) / ctrl.std(ddof=0)
    X = spend.join(ctrl_std).reset_index().rename(columns={"index": "date", "Date": "date"})
    X.columns = [str(c) for c in X.columns]
    y = d.sales.revenue.reset_index(drop=True).rename("y")
    mmm = MMM(date_column="date", channel_columns=[str(c) for c in spend.columns],
              control_columns=list(ctrl.columns), adstock=GeometricAdstock(l_max=8), saturation=saturation,
              yearly_seasonality=2, time_varying_intercept=tvi)
    return mmm, X, y


def worker_pmm(config: str, draws: int, tune: int) -> dict:
    """One pymc-marketing fit (run in its own process)."""
    import multiprocessing as mp
    import warnings

    from ltae.models import sampling

    warnings.filterwarnings("ignore")
    sampling._setup_jax()  # float64 and a persistent JAX compilation cache (the numpyro rows)
    sampler = config.rsplit("-", 1)[1]
    mmm, X, y = pmm_model(config)
    kw = {"draws": draws, "tune": tune, "chains": CHAINS, "target_accept": TARGET_ACCEPT,
          "nuts_sampler": sampler, "compute_convergence_checks": False}
    if sampler == "numpyro":
        kw["nuts_sampler_kwargs"] = {"chain_method": "vectorized"}
    elif sampler == "pymc":
        kw.update(cores=min(CHAINS, os.cpu_count() or 1), mp_ctx=mp.get_context("spawn"))
    t = time.perf_counter()
    idata = mmm.fit(X, y, progressbar=False, random_seed=SEED, **kw)
    wall = time.perf_counter() - t
    return {"wall_s": wall, **diagnostics(idata, [rv.name for rv in mmm.model.free_RVs])}


def _run_process(cmd: list[str], env: dict | None = None, timeout: float | None = None) -> tuple[dict, str]:
    """Run ``cmd`` in a new process: ({process_wall_s, returncode, peak_rss_mb}, its output)."""
    import threading

    with tempfile.TemporaryFile("w+") as log:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
        timer = threading.Timer(timeout, p.kill) if timeout else None
        if timer:
            timer.start()
        _, status, usage = os.wait4(p.pid, 0)  # this child's own resource use (its peak RSS)
        wall = time.perf_counter() - t
        if timer:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        out = log.read()
    return {"process_wall_s": wall, "returncode": p.returncode, "peak_rss_mb": usage.ru_maxrss / 1024}, out


_STEP_LINE = re.compile(r"^\[\s*([\d.]+) s\] (.+): done in ([\d.]+) s$")


def _step_times(log: str) -> dict:
    """Step durations from ``ltae run``'s progress lines (printed where output is not a terminal)."""
    from ltae.cli import STEP_LABELS

    by_label = {v: k for k, v in STEP_LABELS.items()}
    steps = {}
    for line in log.splitlines():
        m = _STEP_LINE.match(line.strip())
        if m and m.group(2) in by_label:
            steps[by_label[m.group(2)]] = float(m.group(3))
    return steps


def run_ltae(workdir: Path, draws: int | None, warmup: bool) -> dict:
    """``ltae run`` in a new process (after an untimed warm-up run into another folder)."""
    data = workdir / "data"
    base = [sys.executable, "-m", "ltae", "run", "--data", str(data), "--store", str(workdir / "ltae.duckdb")]
    if draws is not None:
        base += ["--draws", str(draws)]
    if warmup:
        _run_process(base + ["--out", str(workdir / "warmup"), "--draws", "30", "--tune", "30"])
    out_dir = workdir / "timed"
    info, log = _run_process(base + ["--out", str(out_dir)])
    if info["returncode"] != 0:
        return {"error": log[-3000:], **info}
    from ltae.store.runs import POSTERIOR_FIT_INFO_ATTR, posterior_attrs

    diag = json.loads((out_dir / "diagnostics.json").read_text())
    fit_info = json.loads(posterior_attrs(out_dir / "posteriors" / "short_term.nc").get(POSTERIOR_FIT_INFO_ATTR) or "{}")
    steps = _step_times(log)
    timings = json.loads((out_dir / "manifest.json").read_text()).get("timings", {})
    st = diag["short_term"]
    return {"wall_s": info["process_wall_s"], "steps_s": steps, "pipeline_timings": timings,
            "imports_and_cli_s": info["process_wall_s"] - sum(steps.values()),
            "short_term_parts": {"compile_s": fit_info.get("compile_s"),
                                 "sampling_s": fit_info.get("wall_s", 0) - fit_info.get("compile_s", 0),
                                 "linear_draws_s": fit_info.get("linear_draws_s")},
            "min_ess_bulk": st["min_ess_bulk"], "max_rhat": st["max_rhat"], "divergences": st["divergences"],
            "n_draws": CHAINS * (draws or 1000),
            "long_term": {k: diag["long_term"].get(k) for k in ("max_rhat", "min_ess_bulk", "divergences")},
            "peak_rss_mb": info["peak_rss_mb"], "log_tail": log[-1500:]}


def run_pmm(config: str, draws: int, tune: int, warmup: bool, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.compare_pymc_marketing", "--worker", config]
    if warmup:
        _run_process(cmd + ["--draws", "20", "--tune", "20"], timeout=timeout)
    info, log = _run_process(cmd + ["--draws", str(draws), "--tune", str(tune)], timeout=timeout)
    lines = [ln for ln in log.splitlines() if ln.startswith("{")]
    if info["returncode"] != 0 or not lines:
        return {"error": log[-3000:], **info}
    return {**json.loads(lines[-1]), "process_wall_s": info["process_wall_s"], "peak_rss_mb": info["peak_rss_mb"]}


def _converged(r: dict) -> bool:
    return ("error" not in r and r["max_rhat"] < 1.01
            and r["divergences"] < 0.01 * r.get("n_draws", CHAINS * 1000))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--pmm-tune", type=int, default=PMM_TUNE, help="pymc-marketing's tuning steps")
    ap.add_argument("--tune", type=int, help=argparse.SUPPRESS)  # worker only
    ap.add_argument("--configs", default=",".join(CONFIGS),
                    help=f"comma list from {', '.join(CONFIGS + EXTRA_CONFIGS)}")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run before each row")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds before a pymc-marketing row is stopped")
    ap.add_argument("--out", default=str(RESULTS / "compare_pymc_marketing.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:  # one pymc-marketing fit, in this (new) process
        print(json.dumps(worker_pmm(args.worker, args.draws, args.tune or PMM_TUNE)), flush=True)
        return {}
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS + EXTRA_CONFIGS)
    if unknown:
        ap.error(f"unknown configs {sorted(unknown)}")

    try:
        import pymc_marketing  # noqa: F401
    except ImportError:
        ap.exit(2, "pymc-marketing is not installed: pip install 'ltae[bench]'\n")
    from ltae.data.synthetic import generate_synthetic_data, save_to_csv

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        save_to_csv(generate_synthetic_data(seed=DATA_SEED), work / "data")
        print(f"draws {args.draws} x {CHAINS} chains; pymc-marketing tune {args.pmm_tune}; data seed {DATA_SEED}",
              flush=True)
        for name in configs:
            load0 = os.getloadavg()[0]
            print(f"... {name}", flush=True)
            if name == "ltae-run":
                r = run_ltae(work, args.draws, not args.no_warmup)
            else:
                r = run_pmm(name, args.draws, args.pmm_tune, not args.no_warmup, args.timeout)
            r["loadavg_1m_start"], r["loadavg_1m_end"] = load0, os.getloadavg()[0]
            if "error" not in r:
                r["ess_per_s"] = r["min_ess_bulk"] / r["wall_s"]
                r["converged"] = _converged(r)
            results[name] = r
            if name == "ltae-run" and "error" not in r and "short_term_fit_s" in r["pipeline_timings"]:
                fit_s = r["pipeline_timings"]["short_term_fit_s"]
                results["ltae-fit"] = {"wall_s": fit_s, "min_ess_bulk": r["min_ess_bulk"], "max_rhat": r["max_rhat"],
                                       "divergences": r["divergences"], "ess_per_s": r["min_ess_bulk"] / fit_s,
                                       "converged": r["converged"], "note": "the short-term fit inside ltae-run"}
            print(_row(name, r), flush=True)

    summary = _summary(results)
    print()
    for name, r in results.items():
        print(_row(name, r))
    for line in summary.get("lines", []):
        print(line)
    out = {"data": f"generate_synthetic_data(seed={DATA_SEED}): 208 weeks, 4 channels, 4 controls, 3 brand metrics",
           "draws": args.draws, "chains": CHAINS, "pmm_tune": args.pmm_tune, "target_accept": TARGET_ACCEPT,
           "warmup": not args.no_warmup, "results": results, "summary": summary,
           "pymc_marketing_config": {
               "class": "pymc_marketing.mmm.MMM", "adstock": "GeometricAdstock(l_max=8)",
               "saturation": "LogisticSaturation() (lam ~ Gamma(3, 1), beta ~ HalfNormal(2)) or HillSaturation()",
               "controls": "Competitor_A_Spend, GDP_Growth, Unemployment_Rate, Consumer_Confidence, standardised",
               "seasonality": "yearly_seasonality=2",
               "intercept": "static, or time_varying_intercept=True (HSGP) for the pmm-tvi rows",
               "priors": "library defaults", "numpyro": "chain_method=vectorized", "seed": SEED},
           "ltae_config": "production defaults (`ltae run --data DIR`): nutpie, 4 x 1000, tune 500",
           "versions": _versions(), "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
           "note": "timings on a busy machine are not final: compare the loadavg fields"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=float))
    print(f"wrote {args.out}")
    return out


def _summary(results: dict) -> dict:
    pmm = {k: v for k, v in results.items() if k.startswith("pmm-") and v.get("converged")}
    best = max(pmm, key=lambda k: pmm[k]["ess_per_s"]) if pmm else None
    tvi = {k: v for k, v in pmm.items() if "-tvi-" in k}
    best_tvi = max(tvi, key=lambda k: tvi[k]["ess_per_s"]) if tvi else None
    s: dict = {"best_converging_pmm": best, "best_converging_pmm_like_for_like": best_tvi,
               "not_converging": sorted(k for k, v in results.items() if k.startswith("pmm-") and not v.get("converged")),
               "lines": []}
    for ours in ("ltae-run", "ltae-fit"):
        r = results.get(ours)
        if not r or "error" in r:
            continue
        for label, ref in (("best", best), ("like_for_like", best_tvi)):
            if ref:
                ratio = r["ess_per_s"] / results[ref]["ess_per_s"]
                s[f"{ours}_over_{label}"] = ratio
                s["lines"].append(f"{ours} {r['ess_per_s']:.1f} min-ESS/s vs {ref} {results[ref]['ess_per_s']:.1f}"
                                  f" -> {ratio:.2f}x")
    return s


def _row(name: str, r: dict) -> str:
    if "error" in r:
        return f"{name:26s} ERROR: {r['error'][-300:]}"
    return (f"{name:26s} wall {r['wall_s']:7.1f} s  min ESS {r['min_ess_bulk']:7.0f}  R-hat {r['max_rhat']:.3f}  "
            f"div {r['divergences']:4d}  min-ESS/s {r['ess_per_s']:7.1f}  {'ok' if r.get('converged') else 'NOT converged'}")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("ltae", "pymc", "pymc-marketing", "pytensor", "nutpie", "numpyro", "jax", "numba", "arviz"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


if __name__ == "__main__":
    main()
