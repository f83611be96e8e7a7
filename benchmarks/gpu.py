"""GPU benchmark of the NumPyro (JAX) backend: ``python -m benchmarks.gpu [--quick] [--cases ...]``.

Fits the short-term MMM with ``sampler="numpyro"`` (chains vectorised in one process) on generated
data of several sizes, and the BVAR of step 2, on whatever JAX sees (the GPU when there is one):

* ``a_208x4``        208 weeks x 4 channels, 4 chains x 1000 draws (1000 tune)
* ``a_208x4_repeat`` the same call again (JAX's persistent compilation cache now warm)
* ``bvar_208``       BVAR(2) on [base sales, awareness, consideration], spend exogenous, 4 x 1000
* ``b_208x4_64ch``   208 x 4 with 64 chains x 250 draws (1000 tune): vectorised chains
* ``c_500x10x5``     500 weeks x 10 channels x 5 controls, 4 x 1000
* ``d_1000x4``       1000 weeks x 4 channels, 4 x 1000
* ``bvar_208_r4``    the BVAR with 4 base-sales replicates, as the pipeline fits it, 4 x 1000
* ``geo_20x156x4``   the multi-market model (ltae.models.geo), 20 markets x 156 weeks x 4 channels + 2
                     controls (Meridian's geo_media.csv shape), 4 x 1000
* ``geo_20x156x4_64ch`` the same with 64 vectorised chains x 250 draws

One line per case is printed as soon as it ends; every case is wrapped so that a failure does not
stop the others; cases are skipped once the budget (``--budget`` or ``LTAE_GPU_BUDGET_S``, default
420 s) is spent. Results go to ``$OUT/gpu.json`` (else benchmarks/results/gpu_h100.json) after every
case, so a run killed by a timeout still leaves what it finished. ``--quick`` (2 chains x 50 draws,
cases a and BVAR) checks the script on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# a fresh JAX compilation cache, so that the first call of a case includes the whole compile
os.environ.setdefault("LTAE_CACHE_DIR", tempfile.mkdtemp(prefix="ltae_gpu_cache_"))

import numpy as np  # noqa: E402

RESULTS = Path(__file__).parent / "results"

# name: (kind, weeks, channels, controls, chains, draws, tune)
CASES: dict[str, tuple] = {
    "a_208x4": ("mmm", 208, 4, 4, 4, 1000, 1000),
    "a_208x4_repeat": ("mmm", 208, 4, 4, 4, 1000, 1000),
    "bvar_208": ("bvar", 208, 4, 1, 4, 1000, 1000),
    "b_208x4_64ch": ("mmm", 208, 4, 4, 64, 250, 1000),
    "c_500x10x5": ("mmm", 500, 10, 5, 4, 1000, 1000),
    "d_1000x4": ("mmm", 1000, 4, 4, 4, 1000, 1000),
    "bvar_208_r4": ("bvar", 208, 4, 4, 4, 1000, 1000),
    "geo_20x156x4": ("geo", 156, 4, 20, 4, 1000, 1000),
    "geo_20x156x4_64ch": ("geo", 156, 4, 20, 64, 250, 1000),
}
QUICK = ("a_208x4", "a_208x4_repeat", "bvar_208")


def _log(msg: str) -> None:
    print(msg, flush=True)


def _data(weeks: int, channels: int):
    from ltae.data.synthetic import generate_synthetic_data

    kw = {} if channels == 4 else {"channels": [f"ch{i}" for i in range(channels)]}
    return generate_synthetic_data(n_weeks=weeks, seed=7 if weeks != 208 else 1, **kw)


def _mmm(d, n_controls: int):
    from ltae.models.mmm import ShortTermMMM

    ctrl = d.competitor_activity.drop(columns="Date").join(d.macroeconomic_indicators.drop(columns="Date"))
    if n_controls > ctrl.shape[1]:  # extra noise controls (benchmarks/__main__.py scale_case does one)
        rng = np.random.default_rng(0)
        for k in range(n_controls - ctrl.shape[1]):
            ctrl[f"Noise_Control_{k}"] = rng.normal(size=len(ctrl))
    return ShortTermMMM(d.sales.revenue.values, d.spend_wide.values, ctrl.values, d.params.channels,
                        list(ctrl.columns))


def _bvar(d, replicates: int):
    """Endogenous: true base sales (plus noisy copies as replicates) and the brand metrics;
    exogenous: spend; Fourier terms as deterministic inputs, as ``pipeline.build_bvar`` does."""
    from ltae.models.bvar import BVAR
    from ltae.models.mmm import _fourier

    base = d.components.base_sales.values
    brand = d.brand_metrics[["Awareness", "Consideration"]].values
    rng = np.random.default_rng(0)
    reps = [np.column_stack([base + (0 if r == 0 else 0.02 * base.std() * rng.standard_normal(len(base))),
                             brand]) for r in range(replicates)]
    det = _fourier(np.arange(len(base), dtype=float), 2, 52.0)
    return BVAR(reps if replicates > 1 else reps[0], d.spend_wide.values, 2,
                ["base_sales", "Awareness", "Consideration"], list(d.spend_wide.columns), deterministic=det,
                deterministic_names=[f"fourier_{i}" for i in range(det.shape[1])])


def _stats(model) -> dict:
    """NUTS statistics: leapfrog steps (gradient evaluations), step size, sampling time."""
    out: dict = {}
    try:
        ss = model.idata["sample_stats"]
        ss = ss.to_dataset() if hasattr(ss, "to_dataset") else ss
        for key in ("n_steps", "num_steps", "tree_size"):
            if key in ss:
                steps = np.asarray(ss[key].values)
                out["leapfrog_steps_draws"] = int(steps.sum())
                out["mean_leapfrog_steps"] = float(steps.mean())
                out["max_leapfrog_steps"] = int(steps.max())
                break
        for key in ("step_size", "step_size_bar"):
            if key in ss:
                out["mean_step_size"] = float(np.asarray(ss[key].values).mean())
                break
        post = model.idata["posterior"]
        attrs = dict(getattr(post, "attrs", {}) or {})
        if "sampling_time" in attrs:
            out["sampling_time_s"] = float(attrs["sampling_time"])
    except Exception as e:  # pragma: no cover - diagnostics only
        out["stats_error"] = repr(e)
    return out


def run_case(name: str, spec: tuple, quick: bool) -> dict:
    kind, weeks, channels, extra, chains, draws, tune = spec
    if quick:
        chains, draws, tune = 2, 50, 50
    t_build = time.perf_counter()
    if kind == "geo":  # extra = markets
        from ltae.data.synthetic_geo import generate_geo
        from ltae.models.geo import GeoMMM

        d = generate_geo(n_markets=extra if not quick else 3, n_weeks=weeks if not quick else 60, seed=11)
        pn = d.panel()
        m = GeoMMM(pn["sales"], pn["spend"], pn["controls"][:, :, :2], d.markets, d.truth["channels_order"],
                   ["Competitor_A_Spend", "GDP_Growth"])
    else:
        d = _data(weeks, channels)
        m = _mmm(d, extra) if kind == "mmm" else _bvar(d, extra)
    m.build_model()
    build_s = time.perf_counter() - t_build
    t = time.perf_counter()
    m.fit(draws=draws, tune=tune, chains=chains, sampler="numpyro", seed=1)
    wall = time.perf_counter() - t
    ts = time.perf_counter()
    s = m.summary()
    summary_s = time.perf_counter() - ts
    res = {"kind": kind, "weeks": weeks, "channels": channels,
           {"mmm": "controls", "bvar": "replicates", "geo": "markets"}[kind]: extra, "chains": chains, "draws": draws,
           "tune": tune, "build_s": build_s, "wall_s": wall, "summary_s": summary_s,
           "max_rhat": s["max_rhat"], "min_ess_bulk": s["min_ess_bulk"], "min_ess_tail": s["min_ess_tail"],
           "divergences": s["divergences"], "ess_per_s": s["min_ess_bulk"] / wall, **_stats(m)}
    res["fit_info"] = {k: v for k, v in m.fit_info.items() if isinstance(v, int | float | str | bool)}
    if res.get("leapfrog_steps_draws") and res.get("sampling_time_s"):
        # a rough rate: draws' leapfrog steps (tuning steps not counted) over sampling time
        res["leapfrog_steps_per_s_lower_bound"] = res["leapfrog_steps_draws"] / res["sampling_time_s"]
    if kind == "geo":
        nat = m.national_roi_draws()
        truth = np.array([d.truth["national"][c]["short_term_roi"] for c in d.truth["channels_order"]])
        lo, hi = np.quantile(nat, [0.025, 0.975], axis=0)
        res["national_st_roi_coverage"] = float(np.mean((lo <= truth) & (truth <= hi)))
        res["national_st_roi_median_width_rel"] = float(np.median((hi - lo) / np.abs(truth)))
    if kind == "mmm":
        try:
            roi = m.short_term_roi_draws()
            truth = np.array([d.truth["channels"][c]["short_term_roi"] for c in d.params.channels])
            lo, hi = np.quantile(roi, [0.025, 0.975], axis=0)
            res["st_roi_coverage"] = float(np.mean((lo <= truth) & (truth <= hi)))
            res["st_roi_median_width_rel"] = float(np.median((hi - lo) / np.abs(truth)))
        except Exception as e:  # pragma: no cover
            res["st_roi_coverage_error"] = repr(e)
    return res


def environment() -> dict:
    import jax

    env: dict = {"python": sys.version.split()[0], "machine": platform.machine(), "node": platform.node()}
    for mod in ("jax", "jaxlib", "numpyro", "pymc", "pytensor", "numpy", "scipy", "pandas", "xarray", "arviz"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as e:
            env[mod] = f"unavailable: {e!r}"
    devs = jax.devices()
    env["jax_devices"] = [str(x) for x in devs]
    env["backend"] = jax.default_backend()
    env["device_kind"] = getattr(devs[0], "device_kind", str(devs[0]))
    try:
        import pytensor

        env["pytensor_cxx"] = pytensor.config.cxx or "(none: Python fallback for non-JAX functions)"
    except Exception:
        pass
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        if q.returncode == 0:
            env["nvidia_smi"] = q.stdout.strip()
    except Exception:
        pass
    env["cpu_count"] = os.cpu_count()
    env["x64"] = bool(jax.config.jax_enable_x64)
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu")
    ap.add_argument("--quick", action="store_true", help="2 chains x 50 draws, cases a and BVAR (a CPU check)")
    ap.add_argument("--cases", nargs="*", choices=list(CASES), help="run only these cases (in this order)")
    ap.add_argument("--budget", type=float, default=float(os.environ.get("LTAE_GPU_BUDGET_S", 420)),
                    help="seconds; cases not started by then are skipped (env LTAE_GPU_BUDGET_S)")
    ap.add_argument("--out", help="JSON path (default $OUT/gpu.json, else benchmarks/results/gpu_h100.json)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.out:
        out_path = Path(args.out)
    elif os.environ.get("OUT"):
        out_path = Path(os.environ["OUT"]) / "gpu.json"
    else:
        out_path = RESULTS / ("gpu_quick.json" if args.quick else "gpu_h100.json")
    names = args.cases or (list(QUICK) if args.quick else list(CASES))

    import jax

    from ltae.models import sampling

    sampling._setup_jax()  # float64 and the persistent compilation cache, as a fit would set them
    _log(f"jax.devices(): {jax.devices()}")
    result: dict = {"quick": args.quick, "budget_s": args.budget, "cache_dir": os.environ["LTAE_CACHE_DIR"],
                    "environment": {}, "cases": {}, "skipped": []}
    try:
        result["environment"] = environment()
    except Exception as e:
        result["environment"] = {"error": repr(e)}
    _log(json.dumps(result["environment"]))

    def save() -> None:
        result["total_s"] = time.perf_counter() - t0
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2, default=float))

    save()
    for name in names:
        elapsed = time.perf_counter() - t0
        if elapsed > args.budget:
            result["skipped"].append(name)
            _log(f"{name:16s} SKIPPED (budget: {elapsed:.0f} s of {args.budget:.0f} s spent)")
            continue
        try:
            r = run_case(name, CASES[name], args.quick)
            result["cases"][name] = r
            _log(f"{name:16s} {r['chains']:3d}x{r['draws']:<4d} wall {r['wall_s']:7.1f}s  "
                 f"sampling {r.get('sampling_time_s', float('nan')):7.1f}s  R-hat {r['max_rhat']:.3f}  "
                 f"ESS {r['min_ess_bulk']:7.0f}  div {r['divergences']:4d}  ESS/s {r['ess_per_s']:7.1f}  "
                 f"steps {r.get('mean_leapfrog_steps', float('nan')):5.1f}")
        except Exception as e:
            result["cases"][name] = {"error": repr(e), "traceback": traceback.format_exc()[-4000:]}
            _log(f"{name:16s} FAILED: {e!r}")
            traceback.print_exc()
            sys.stderr.flush()
        save()
    save()
    _log(f"wrote {out_path} (total {time.perf_counter() - t0:.0f} s)")
    failed = [n for n, r in result["cases"].items() if "error" in r]
    return 1 if failed and len(failed) == len(result["cases"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
