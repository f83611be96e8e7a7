"""Bulk-ESS per second: our short-term model vs pymc-marketing's own MMM, same data, one process.

``python -m benchmarks.compare_pymc_marketing [--draws N] [--tune N] [--configs a,b,...] [--pymc-limit S]``

Data: ``generate_synthetic_data(seed=1)`` (208 weeks, 4 channels, 4 controls).

* ours: ``ShortTermMMM`` (geometric adstock l_max=8, Hill, hierarchical ROI, Kalman-marginalised local
  level, 4 standardised controls, Fourier K=2) with nutpie and numpyro;
* pymc-marketing: ``pymc_marketing.mmm.MMM`` (the 1.x main class, ``pymc_marketing.mmm.mmm``) with
  ``GeometricAdstock(l_max=8)``, ``HillSaturation()``, the same 4 controls standardised the same way
  (pymc-marketing does not scale controls itself), ``yearly_seasonality=2``, its default static
  intercept, library default priors; sampled with nutpie, numpyro and PyMC's NUTS (the last one is
  interrupted and recorded as skipped past ``--pymc-limit`` seconds).

All runs: 4 chains, target_accept 0.9, seed 1; the wall time is the whole ``fit`` call (model build,
compile and sampling). Diagnostics are computed the same way for every run, over the model's free
random variables (every scalar component): max R-hat, min and median bulk ESS, divergences.
Writes ``benchmarks/results/compare_pymc_marketing.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CONFIGS = ("ours-nutpie", "ours-numpyro", "pmm-nutpie", "pmm-numpyro", "pmm-pymc")
CHAINS = 4
SEED = 1
TARGET_ACCEPT = 0.9


def _data():
    from ltae.data.synthetic import generate_synthetic_data

    d = generate_synthetic_data(seed=1)
    ctrl = d.competitor_activity.set_index("Date").join(d.macroeconomic_indicators.set_index("Date"))
    ctrl = ctrl.reindex(d.sales.Date.values)
    spend = d.spend_wide.reindex(d.sales.Date.values)
    return d, spend, ctrl


def _posterior(idata):
    post = idata["posterior"]
    return post.to_dataset() if hasattr(post, "to_dataset") else post


def diagnostics(idata, names) -> dict:
    """Same metric for every run: over every scalar component of the named free variables."""
    import arviz as az

    post = _posterior(idata)
    names = [n for n in names if n in post]
    ds = post[names]
    ess = az.ess(ds, method="bulk")
    rhat = az.rhat(ds)
    ess_all = np.concatenate([np.ravel(ess[n].values) for n in names])
    rhat_all = np.concatenate([np.ravel(rhat[n].values) for n in names])
    per_var = {n: {"min_ess_bulk": float(np.nanmin(ess[n].values)), "max_rhat": float(np.nanmax(rhat[n].values))}
               for n in names}
    div, div_chain = 0, None
    try:
        ss = idata["sample_stats"]
        ss = ss.to_dataset() if hasattr(ss, "to_dataset") else ss
        for key in ("diverging", "divergences"):
            if key in ss:
                arr = np.asarray(ss[key].values)
                div, div_chain = int(arr.sum()), [int(x) for x in arr.reshape(arr.shape[0], -1).sum(axis=1)]
                break
    except (KeyError, TypeError):
        pass
    attrs = dict(post.attrs)
    weakest = min(per_var, key=lambda n: per_var[n]["min_ess_bulk"])
    wv = ds[weakest].values  # (chain, draw, ...): chain means show a stuck or separated chain
    chain_means = wv.reshape(wv.shape[0], wv.shape[1], -1).mean(axis=1)
    return {"free_vars": names, "n_params": int(ess_all.size),
            "min_ess_bulk": float(np.nanmin(ess_all)), "median_ess_bulk": float(np.nanmedian(ess_all)),
            "max_rhat": float(np.nanmax(rhat_all)), "divergences": div, "divergences_per_chain": div_chain,
            "weakest": weakest, "weakest_chain_means": chain_means.round(4).tolist(), "per_var": per_var,
            "sampling_time_attr": float(attrs["sampling_time"]) if "sampling_time" in attrs else None,
            "n_draws": int(ds.sizes["chain"] * ds.sizes["draw"])}


def run_ours(sampler: str, draws: int, tune: int) -> dict:
    from ltae.models.mmm import ShortTermMMM

    d, spend, ctrl = _data()
    m = ShortTermMMM(d.sales.revenue.values, spend.values, ctrl.values, list(spend.columns), list(ctrl.columns))
    t = time.perf_counter()
    m.fit(draws=draws, tune=tune, chains=CHAINS, sampler=sampler, seed=SEED, target_accept=TARGET_ACCEPT)
    wall = time.perf_counter() - t
    out = diagnostics(m.idata, [rv.name for rv in m.model.free_RVs])
    s = m.summary()  # the package's own summary: also over the deterministics roi and beta
    out.update({"wall_s": wall, "compile_s": m.fit_info.get("compile_s"),
                "own_summary": {k: s[k] for k in ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences")}})
    return out


class _Deadline:
    """pm.sample per-draw callback: a KeyboardInterrupt stops PyMC's sampler cleanly after ``limit`` s."""

    def __init__(self, limit: float):
        self.limit, self.t0, self.hit = limit, time.perf_counter(), False

    def __call__(self, trace=None, draw=None):
        if time.perf_counter() - self.t0 > self.limit:
            self.hit = True
            raise KeyboardInterrupt


def pmm_model():
    from pymc_marketing.mmm import MMM, GeometricAdstock, HillSaturation

    d, spend, ctrl = _data()
    ctrl_std = (ctrl - ctrl.mean()) / ctrl.std(ddof=0)  # as ours does internally
    X = spend.join(ctrl_std).reset_index().rename(columns={"index": "date", "Date": "date"})
    X.columns = [str(c) for c in X.columns]
    y = d.sales.revenue.reset_index(drop=True).rename("y")
    mmm = MMM(date_column="date", channel_columns=[str(c) for c in spend.columns],
              control_columns=list(ctrl.columns), adstock=GeometricAdstock(l_max=8),
              saturation=HillSaturation(), yearly_seasonality=2)
    return mmm, X, y


def run_pmm(sampler: str, draws: int, tune: int, pymc_limit: float) -> dict:
    import multiprocessing as mp

    mmm, X, y = pmm_model()
    kw = {"draws": draws, "tune": tune, "chains": CHAINS, "target_accept": TARGET_ACCEPT,
          "nuts_sampler": sampler, "compute_convergence_checks": False}
    deadline = None
    if sampler == "numpyro":
        kw["nuts_sampler_kwargs"] = {"chain_method": "vectorized"}  # as ours
    elif sampler == "pymc":
        deadline = _Deadline(pymc_limit)
        kw.update(cores=min(CHAINS, os.cpu_count() or 1), mp_ctx=mp.get_context("spawn"), callback=deadline)
    t = time.perf_counter()
    if deadline is not None:
        deadline.t0 = t
    idata = mmm.fit(X, y, progressbar=False, random_seed=SEED, **kw)
    wall = time.perf_counter() - t
    if deadline is not None and deadline.hit:
        return {"skipped": f"PyMC NUTS interrupted after {wall:.0f} s (limit {pymc_limit:.0f} s)", "wall_s": wall}
    out = diagnostics(idata, [rv.name for rv in mmm.model.free_RVs])
    out["wall_s"] = wall
    return out


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its waited-for children (PyMC's chain processes)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _source_state() -> dict:
    """Which version of our model was measured: commit, and a hash of uncommitted changes under src/."""
    import hashlib
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        diff = subprocess.run(["git", "diff", "HEAD", "--", "src"], cwd=root, capture_output=True, text=True).stdout
        return {"commit": head, "src_dirty": bool(diff),
                "src_diff_sha1": hashlib.sha1(diff.encode()).hexdigest() if diff else None}
    except Exception as e:  # noqa: BLE001
        return {"error": str(e)}


def _row(name: str, r: dict) -> str:
    if "error" in r or "skipped" in r:
        return f"{name:14s} {('SKIPPED: ' + r['skipped']) if 'skipped' in r else 'ERROR: ' + r['error']}"
    return (f"{name:14s} {r['wall_s']:8.1f} {r['n_params']:4d} {r['min_ess_bulk']:8.0f} {r['median_ess_bulk']:8.0f} "
            f"{r['ess_per_s']:8.2f} {r['median_ess_per_s']:8.2f} {r['max_rhat']:6.3f} {r['divergences']:5d}  "
            f"{_f(r.get('sample_s'), 7, 1)} {_f(r.get('ess_per_sample_s'), 8, 2)}  {r['weakest']}")


def _f(x, w, p) -> str:
    return f"{x:{w}.{p}f}" if x is not None else " " * (w - 1) + "-"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=None, help="default: = draws")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list from {', '.join(CONFIGS)}")
    ap.add_argument("--pymc-limit", type=float, default=480.0, help="seconds before PyMC's NUTS is skipped")
    ap.add_argument("--out", default=str(RESULTS / "compare_pymc_marketing.json"))
    args = ap.parse_args(argv)
    tune = args.draws if args.tune is None else args.tune
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        ap.error(f"unknown configs {sorted(unknown)}")

    import pymc

    try:
        import pymc_marketing
    except ImportError:
        ap.exit(2, "pymc-marketing is not installed: pip install 'ltae[bench]'\n")

    from ltae.models import sampling

    sampling._setup_jax()  # float64 + JAX compile cache, global: the same for both models' numpyro runs
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)

    source = _source_state()
    results: dict = {}
    print(f"draws {args.draws}  tune {tune}  chains {CHAINS}  target_accept {TARGET_ACCEPT}", flush=True)
    for name in configs:
        model, sampler = name.split("-", 1)
        print(f"... {name}", flush=True)
        cpu0, t0 = _cpu_s(), time.perf_counter()
        try:
            r = run_ours(sampler, args.draws, tune) if model == "ours" else run_pmm(
                sampler, args.draws, tune, args.pymc_limit)
            if "skipped" not in r:
                r["ess_per_s"] = r["min_ess_bulk"] / r["wall_s"]
                r["median_ess_per_s"] = r["median_ess_bulk"] / r["wall_s"]
                # sampling only (no build/compile): PyMC's recorded sampling time, else wall - compile
                st = r.get("sampling_time_attr") or (r["wall_s"] - r["compile_s"] if r.get("compile_s") else None)
                r["sample_s"] = st
                r["ess_per_sample_s"] = r["min_ess_bulk"] / st if st else None
        except Exception as e:  # noqa: BLE001 - record and go on
            r = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=6)}
        # contention check: this process's CPU use vs the 2-core wall, and the machine's load
        r["cpu_s"], r["elapsed_s"], r["loadavg_1m_end"] = _cpu_s() - cpu0, time.perf_counter() - t0, os.getloadavg()[0]
        results[name] = r
        print(_row(name, r), flush=True)

    def best(prefix, key):
        ok = {k: v[key] for k, v in results.items() if k.startswith(prefix) and v.get(key) is not None}
        return (max(ok, key=ok.get), ok[max(ok, key=ok.get)]) if ok else (None, None)

    summary = {}
    for key in ("ess_per_s", "median_ess_per_s", "ess_per_sample_s"):
        (o_name, o), (p_name, p) = best("ours-", key), best("pmm-", key)
        summary[key] = {"ours_best": o_name, "ours": o, "pmm_best": p_name, "pmm": p,
                        "ratio_ours_over_pmm": (o / p) if o and p else None}

    print(f"\n{'config':14s} {'wall_s':>8s} {'npar':>4s} {'minESS':>8s} {'medESS':>8s} {'min/s':>8s} "
          f"{'med/s':>8s} {'R-hat':>6s} {'div':>5s}  {'samp_s':>7s} {'min/s_s':>8s}  weakest")
    for name, r in results.items():
        print(_row(name, r))
    for key, s in summary.items():
        if s["ratio_ours_over_pmm"] is not None:
            print(f"{key:17s}: ours best {s['ours_best']} {s['ours']:.2f}/s, pymc-marketing best {s['pmm_best']} "
                  f"{s['pmm']:.2f}/s  ->  ratio {s['ratio_ours_over_pmm']:.2f}")

    out = {
        "draws": args.draws, "tune": tune, "chains": CHAINS, "target_accept": TARGET_ACCEPT, "seed": SEED,
        "data": "generate_synthetic_data(seed=1): 208 weeks, 4 channels, 4 controls",
        "pymc_marketing_config": {
            "class": "pymc_marketing.mmm.MMM", "adstock": "GeometricAdstock(l_max=8) (normalize=True)",
            "saturation": "HillSaturation() (slope, kappa, beta ~ HalfNormal(1.5))",
            "controls": "Competitor_A_Spend, GDP_Growth, Unemployment_Rate, Consumer_Confidence, standardised",
            "seasonality": "yearly_seasonality=2", "intercept": "static, library default prior (no trend)",
            "priors": "library defaults", "numpyro": "chain_method=vectorized", "pymc": "cores=min(4, ncpu), spawn",
        },
        "results": results, "summary": summary, "ltae_source": source,
        "versions": {"pymc": pymc.__version__, "pymc_marketing": pymc_marketing.__version__},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for pkg in ("nutpie", "numpyro", "jax", "arviz"):
        try:
            out["versions"][pkg] = __import__(pkg).__version__
        except Exception:  # noqa: BLE001
            pass
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=float))
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
