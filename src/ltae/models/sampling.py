"""One ``sampler=`` switch over the inference backends.

* ``nutpie``  – nutpie NUTS, chains in threads (numba; pytensor caches each op's code on disk and
  :mod:`ltae.models.compile_cache` caches nutpie's linked C callback, so only a new model
  structure pays the LLVM compile)
* ``nutpie_jax`` – nutpie NUTS with the log density compiled by JAX (seconds to compile, cached
  on disk by JAX; each gradient call goes through Python, so sampling is slower than numba's)
* ``pymc``    – PyMC's own NUTS (chains in processes, spawn context: no fork deadlock)
* ``numpyro`` – NumPyro NUTS through JAX, chains vectorised in one process (CPU or GPU)
* ``blackjax``– BlackJAX NUTS through JAX, chains vectorised in one process
* ``advi``    – mean-field ADVI (fast approximation; no convergence diagnostics)

All return ArviZ data (an xarray DataTree with a ``posterior`` group) plus timing information.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

SamplerName = Literal["nutpie", "nutpie_jax", "pymc", "numpyro", "blackjax", "advi"]
SAMPLERS: tuple[str, ...] = ("nutpie", "nutpie_jax", "pymc", "numpyro", "blackjax", "advi")
DEFAULT_SAMPLER: SamplerName = "nutpie"


def cache_dir() -> Path:
    """ltae's cache folder (``LTAE_CACHE_DIR``, default ``~/.cache/ltae``), created private (0700):
    it holds compiled code that is loaded and run (see :mod:`ltae.models.compile_cache`)."""
    from .compile_cache import private_dir

    d = Path(os.environ.get("LTAE_CACHE_DIR", Path.home() / ".cache" / "ltae"))
    private_dir(d)
    return d


_JAX_READY = False


def _setup_jax() -> None:
    """Persistent JAX compilation cache and float64; idempotent."""
    global _JAX_READY
    if _JAX_READY:
        return
    import jax

    jax.config.update("jax_enable_x64", True)
    from ltae.models.kalman import register_jax

    register_jax()  # the Kalman filter operation's JAX implementation
    try:
        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except Exception:  # pragma: no cover - older jax
        pass
    _JAX_READY = True


@dataclass
class SamplerSettings:
    """Settings of one sampling run (sampler, draws, tune, chains, target_accept, cores, seed...)."""
    sampler: SamplerName = DEFAULT_SAMPLER
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.9
    cores: int | None = None
    seed: int = 42
    progressbar: bool = False
    advi_iterations: int = 30_000
    nutpie_adaptation: str = "diag"  # "diag" | "low_rank" (nutpie's mass-matrix adaptation)


@dataclass
class SampleResult:
    """A posterior (``idata``), the sampler that drew it and its wall time (with a breakdown in
    ``timings``)."""
    idata: object  # arviz DataTree
    sampler: str
    wall_s: float
    timings: dict = field(default_factory=dict)


STUCK_CHAIN_SEED_OFFSET = 104_729  # the restart's seed: settings.seed + this (deterministic)


def stuck_chains(idata, share: float = 0.5) -> list[int]:
    """The chains that got stuck: more than ``share`` of their draws divergent while the other chains'
    median is below a tenth of that. A NUTS chain that adapts its step size in a bad region can stay
    there for the whole run (every transition divergent, R-hat far above 1) although the data and the
    model are fine; another seed then converges. Empty for ADVI (no divergences) or one chain."""
    from .diagnostics import _sample_stats

    ss = _sample_stats(idata)
    if ss is None or "diverging" not in ss:
        return []
    div = np.asarray(ss["diverging"].values, dtype=float)
    if div.ndim != 2 or div.shape[0] < 2:
        return []
    rate = div.mean(axis=1)
    return [int(c) for c in np.flatnonzero(rate > share)
            if np.median(np.delete(rate, c)) < share / 10]


def sample(model, settings: SamplerSettings, var_names=None) -> SampleResult:
    """Sample ``model`` with the backend named in ``settings`` (NUTS via nutpie, nutpie_jax, pymc, numpyro,
    blackjax, or ADVI); returns a :class:`SampleResult`. If one chain got stuck (:func:`stuck_chains`) the
    whole run is sampled once more with the seed ``settings.seed + STUCK_CHAIN_SEED_OFFSET`` (the same
    inputs still give the same numbers); ``timings["stuck_chain_restarts"]`` records it, and the second
    run is kept whatever its outcome (the checklist judges it)."""
    res = _sample_once(model, settings, var_names)
    if stuck_chains(res.idata):
        import dataclasses
        import warnings

        warnings.warn(f"a chain got stuck (seed {settings.seed}): sampling again with seed "
                      f"{settings.seed + STUCK_CHAIN_SEED_OFFSET}", RuntimeWarning, stacklevel=2)
        first_wall = res.wall_s
        res = _sample_once(model, dataclasses.replace(settings, seed=settings.seed + STUCK_CHAIN_SEED_OFFSET),
                           var_names)
        res.timings["stuck_chain_restarts"] = 1
        res.wall_s += first_wall
        res.timings["wall_s"] = res.wall_s
    return res


def _sample_once(model, settings: SamplerSettings, var_names=None) -> SampleResult:
    """One sampling run with the backend named in ``settings``."""
    import pymc as pm

    s = settings
    if s.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {s.sampler!r}; choose one of {', '.join(SAMPLERS)}")
    t0 = time.perf_counter()
    cores = s.cores or min(s.chains, os.cpu_count() or 1)
    timings: dict = {}
    if s.sampler == "advi":
        from pymc.variational.callbacks import CheckParametersConvergence

        with model:
            approx = pm.fit(
                n=s.advi_iterations,
                method="advi",
                random_seed=s.seed,
                progressbar=s.progressbar,
                callbacks=[CheckParametersConvergence(tolerance=1e-3, diff="relative")],
            )
            idata = approx.sample(draws=s.draws * s.chains, random_seed=s.seed)
        idata = _split_chains(idata, s.chains)
    elif s.sampler in ("numpyro", "blackjax"):
        _setup_jax()
        kw = {"chain_method": "vectorized"}
        with model:
            idata = pm.sample(
                draws=s.draws, tune=s.tune, chains=s.chains, target_accept=s.target_accept,
                random_seed=s.seed, nuts_sampler=s.sampler, progressbar=s.progressbar,
                nuts_sampler_kwargs=kw, var_names=var_names, compute_convergence_checks=False,
            )
    elif s.sampler in ("nutpie", "nutpie_jax"):
        import nutpie

        tc = time.perf_counter()
        if s.sampler == "nutpie_jax":
            _setup_jax()
            compiled = nutpie.compile_pymc_model(model, var_names=var_names, backend="jax", gradient_backend="jax")
        else:
            compiled = _compile_nutpie_numba(model, var_names)
        timings["compile_s"] = time.perf_counter() - tc
        idata = nutpie.sample(
            compiled, draws=s.draws, tune=s.tune, chains=s.chains, cores=cores, seed=s.seed,
            target_accept=s.target_accept, progress_bar=s.progressbar, adaptation=s.nutpie_adaptation,
        )
    else:  # pymc
        import multiprocessing as mp

        with model:
            idata = pm.sample(
                draws=s.draws, tune=s.tune, chains=s.chains, cores=cores, target_accept=s.target_accept,
                random_seed=s.seed, progressbar=s.progressbar, mp_ctx=mp.get_context("spawn") if cores > 1 else None,
                var_names=var_names, compute_convergence_checks=False,
            )
    wall = time.perf_counter() - t0
    timings["wall_s"] = wall
    return SampleResult(idata=idata, sampler=s.sampler, wall_s=wall, timings=timings)


def _compile_nutpie_numba(model, var_names):
    """nutpie's numba compile with the compiled model cached (see :mod:`ltae.models.compile_cache`):
    a model structure compiled before is rebuilt from disk without pytensor's graph rewriting, and
    the C callbacks are cached on their own for anything else. ``LTAE_COMPILE_CACHE=0`` turns both
    caches off.

    Code numba compiles in a process can round differently in the last bits from the same code
    saved and loaded in another (the sampler turns that into other draws), so a model that is not
    cached is compiled in a helper process (``compile_cache.compile_in_helper``) and loaded here
    from the cache, as every later run loads it: the first run gives the same numbers as the next.
    Without a usable cache folder, or if the helper fails, it is compiled here as before."""
    import nutpie

    from . import compile_cache

    if os.environ.get("LTAE_COMPILE_CACHE", "1") == "0":
        return nutpie.compile_pymc_model(model, var_names=var_names)
    directory = compile_cache.private_dir(cache_dir() / "nutpie")  # None: memory only (see private_dir)
    try:
        model_key, shared = compile_cache.model_key(model, var_names)
    except Exception:  # noqa: BLE001 - uncacheable (or a PyMC this code does not know): compile as before
        model_key = None

    def load():
        compiled = compile_cache.load_model(directory, model_key, model, shared, var_names)
        if compiled is not None and (_logp_raises(compiled) or _expand_raises(compiled)):
            compile_cache.evict_model(directory, model_key)  # restored wrongly: compile afresh
            return None
        return compiled

    if model_key is not None and (compiled := load()) is not None:
        return compiled
    if model_key is not None and directory is not None and os.environ.get("LTAE_COMPILE_HELPER") != "1":
        # compiled in a new process and loaded here: the same machine code as every later run
        if compile_cache.compile_in_helper(model, var_names) and (compiled := load()) is not None:
            return compiled
    with compile_cache.nutpie_cfunc_cache(directory) as keys:
        compiled = nutpie.compile_pymc_model(model, var_names=var_names)
    if keys and _logp_raises(compiled):  # a callback restored wrongly: drop it, compile afresh
        compile_cache.evict(directory, keys)
        return nutpie.compile_pymc_model(model, var_names=var_names)
    if model_key is not None:
        compile_cache.save_model(directory, model_key, compiled, keys)
    return compiled


def _logp_raises(compiled) -> bool:
    """Call the compiled log density once at the origin; True if it reports an exception (nutpie's
    return code 1) rather than a value (0) or a non-finite value (3, 4)."""
    import ctypes

    import numpy as np

    n = compiled.n_dim
    x, grad, logp = np.zeros(n), np.zeros(n), np.zeros(())
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_void_p)(compiled.compiled_logp_func.address)
    rc = fn(n, x.ctypes.data, grad.ctypes.data, logp.ctypes.data, compiled.user_data.ctypes.data)
    return rc not in (0, 3, 4)


def _expand_raises(compiled) -> bool:
    """Call the compiled expand function (the traced variables of a draw) once at the origin; True
    if it fails."""
    import ctypes

    import numpy as np

    x, out = np.zeros(compiled.n_dim), np.zeros(compiled.n_expanded)
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_void_p)(compiled.compiled_expand_func.address)
    return fn(compiled.n_dim, compiled.n_expanded, x.ctypes.data, out.ctypes.data,
              compiled.user_data.ctypes.data) != 0


def _split_chains(idata, chains: int):
    """ADVI returns one chain of draws; reshape it into ``chains`` pseudo-chains."""
    post = idata["posterior"].to_dataset() if hasattr(idata["posterior"], "to_dataset") else idata["posterior"]
    n = post.sizes["draw"] * post.sizes["chain"]
    per = n // chains
    post = post.isel(chain=0).isel(draw=slice(0, per * chains))
    post = post.assign_coords(draw=range(per * chains))
    import numpy as np
    import xarray as xr

    new = {}
    for k, v in post.data_vars.items():
        arr = v.values.reshape((chains, per) + v.shape[1:])
        new[k] = (("chain", "draw") + v.dims[1:], arr)
    ds = xr.Dataset(new, coords={"chain": np.arange(chains), "draw": np.arange(per),
                                 **{c: post.coords[c] for c in post.coords if c not in ("chain", "draw")}})
    return xr.DataTree.from_dict({"posterior": ds})


def posterior_dataset(idata):
    """The posterior group as an xarray Dataset (works for DataTree and InferenceData)."""
    post = idata["posterior"] if not hasattr(idata, "posterior") else idata.posterior
    return post.to_dataset() if hasattr(post, "to_dataset") else post


def stacked(idata, name):
    """Posterior draws of ``name`` as a numpy array with one leading sample axis (chain*draw)."""
    v = posterior_dataset(idata)[name]
    arr = v.values
    return arr.reshape((-1,) + arr.shape[2:])


def with_posterior_vars(idata, new: dict, coords: dict):
    """Add variables {name: (array (chain, draw, [dims...]), dim, a tuple of dims or None)} to the
    posterior group."""
    import xarray as xr

    post = posterior_dataset(idata)
    data = {}
    for name, (arr, dim) in new.items():
        extra = () if not dim else ((dim,) if isinstance(dim, str) else tuple(dim))
        data[name] = xr.DataArray(arr, dims=("chain", "draw") + extra,
                                  coords={k: post.coords[k] for k in ("chain", "draw")} | {d: coords[d] for d in extra})
    post = post.assign(data)
    if hasattr(idata, "children") or isinstance(idata, xr.DataTree):
        idata["posterior"] = xr.DataTree(post)
        return idata
    idata.posterior = post  # InferenceData
    return idata
