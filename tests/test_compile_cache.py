"""The disk cache of nutpie's compiled C callbacks (ltae.models.compile_cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ltae.models import compile_cache

# a small model with shared data; prints the cache use and a checksum of the draws
_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, pymc as pm
    from ltae.models import compile_cache, sampling
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = 1.0 + 2.0 * x + rng.normal(size=50) * float(sys.argv[1])
    with pm.Model() as m:
        xd, yd = pm.Data("x", x), pm.Data("y", y)
        a, b = pm.Normal("a", 0, 5), pm.Normal("b", 0, 5)
        s = pm.HalfNormal("s", 1)
        pm.Normal("obs", a + b * xd, s, observed=yd)
    hits, rewrites = [], []
    orig = compile_cache._DiskCache.load_overload
    def load(self, sig, ctx):
        r = orig(self, sig, ctx)
        hits.append(r is not None)
        return r
    compile_cache._DiskCache.load_overload = load
    import nutpie.compile_pymc as ncp
    make = ncp._make_functions  # pytensor's graph building, rewriting and linking
    ncp._make_functions = lambda *a, **k: (rewrites.append(1), make(*a, **k))[1]
    res = sampling.sample(m, sampling.SamplerSettings(sampler="nutpie", draws=100, tune=100, chains=2, seed=3))
    post = res.idata.posterior
    folder = sampling.cache_dir() / "nutpie"
    print(json.dumps({"hits": hits, "b": float(post["b"].values.sum()), "files": len(list(folder.glob("*.nbc"))),
                      "models": len(list(folder.glob("*.model.json"))), "pytensor_compiles": len(rewrites)}))
""")


def _run(tmp_path: Path, noise: float = 1.0) -> dict:
    env = {**os.environ, "LTAE_CACHE_DIR": str(tmp_path / "cache"), "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(noise)], env=env, capture_output=True, text=True,
                         check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _warm(tmp_path: Path) -> dict:
    """The first run into an empty ltae cache: the model is compiled by the helper process and
    loaded from the cache, like in every later run."""
    res = _run(tmp_path)
    assert res["models"] == 1 and res["pytensor_compiles"] == 0 and res["hits"] and all(res["hits"]), res
    return res


def test_broken_cache_files_are_ignored_recompiled_and_replaced(tmp_path):
    first = _warm(tmp_path)
    folder = tmp_path / "cache" / "nutpie"
    (entry,) = folder.glob("*.model.json")
    saved = json.loads(entry.read_text())
    # a model entry that does not fit this model (another size)
    entry.write_text(json.dumps({**saved, "n_dim": saved["n_dim"] + 1}))
    res = _run(tmp_path)
    assert json.loads(entry.read_text()) == saved  # compiled again (in the helper), entry rewritten
    assert res["b"] == first["b"]  # and the same draws
    # corrupt callbacks: refused, compiled again and replaced
    files = sorted(folder.glob("*.nbc"))
    assert len(files) == 2
    for f in files:
        f.write_bytes(b"LTAE-CFUNC-1\n" + b"\0" * 32 + b"garbage")
    again = _run(tmp_path)
    assert again["hits"][:2] == [False, False] and all(again["hits"][2:])  # refused, then the new ones
    assert again["b"] == first["b"]
    assert all(f.read_bytes()[:13] == b"LTAE-CFUNC-1\n" and b"garbage" not in f.read_bytes()[-7:] for f in files)


def _linear_model(n: int, prior_sd: float = 5.0, seed: int = 0):
    import pymc as pm

    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    with pm.Model(coords={"k": ["a", "b"]}) as m:
        xd, yd = pm.Data("x", x), pm.Data("y", 1.0 + 2.0 * x + rng.normal(size=n))
        coef = pm.Normal("coef", 0, prior_sd, dims="k")
        pm.Normal("obs", coef[0] + coef[1] * xd, 1.0, observed=yd)
    return m


def test_model_key_follows_structure_not_data_values():
    key = lambda m: compile_cache.model_key(m)[0]  # noqa: E731
    base = key(_linear_model(40))
    assert key(_linear_model(40, seed=1)) == base  # other values: compiled code is the same
    assert key(_linear_model(41)) != base  # another shape
    assert key(_linear_model(40, prior_sd=4.0)) != base  # a constant in the graph
    assert compile_cache.model_key(_linear_model(40), var_names=["coef"])[0] != base
    _, shared = compile_cache.model_key(_linear_model(40))
    assert set(shared) == {"x", "y", "k"}  # the data and the dimension length


def test_compiled_model_loads_from_disk_in_a_new_process_with_identical_draws(tmp_path):
    first = _warm(tmp_path)  # compiled by the helper, loaded: the same code as every later run
    second = _run(tmp_path)
    assert second["hits"] and all(second["hits"])  # every callback came from disk
    assert second["pytensor_compiles"] == 0  # and the model around them: no graph rewriting
    assert second["b"] == first["b"]  # the same machine code: the same draws, the first run too
    # other data, same model structure: the same compiled model (data reach it at run time)
    third = _run(tmp_path, noise=3.0)
    assert all(third["hits"]) and third["pytensor_compiles"] == 0 and third["b"] != first["b"]


def test_fingerprint_ignores_field_names_not_layout():
    a = np.dtype([("shared", [("data", [("u1", np.uintp), ("u2", np.uintp)])])])
    b = np.dtype([("shared", [("data", [("v1", np.uintp), ("v2", np.uintp)])])])
    c = np.dtype([("shared", [("data", [("v1", np.uintp)])])])
    assert compile_cache._canon_dtype(a) == compile_cache._canon_dtype(b)
    assert compile_cache._canon_dtype(a) != compile_cache._canon_dtype(c)
    f = compile_cache._fingerprint
    assert f(np.zeros((3, 2))) == f(np.ones((5, 7)))  # values and sizes come at run time
    assert f(np.zeros((3, 2))) != f(np.zeros(3))  # rank is compiled in
    assert f(np.zeros(3)) != f(np.zeros(3, dtype=np.float32))
    with pytest.raises(compile_cache._Uncacheable):
        f(object())


def test_a_callback_that_raises_after_loading_is_evicted_and_recompiled(tmp_path, monkeypatch):
    import pymc as pm

    from ltae.models import sampling

    monkeypatch.setenv("LTAE_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(1)
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 5)
        pm.Normal("obs", mu, 1.0, observed=pm.Data("y", rng.normal(2.0, 1.0, size=30)))
    calls, compiles = [], []

    def raises_once(compiled):
        calls.append(compiled)
        return len(calls) == 1

    import nutpie

    compile_here = nutpie.compile_pymc_model
    monkeypatch.setattr(nutpie, "compile_pymc_model", lambda *a, **k: (compiles.append(1), compile_here(*a, **k))[1])
    monkeypatch.setattr(sampling, "_logp_raises", raises_once)
    res = sampling.sample(m, sampling.SamplerSettings(sampler="nutpie", draws=100, tune=100, chains=2, seed=1))
    # the model compiled by the helper loaded, its log density "raised": evicted, compiled here
    assert len(calls) == 2 and len(compiles) == 1
    assert abs(float(res.idata.posterior["mu"].mean()) - 2.0) < 0.6
    folder = tmp_path / "nutpie"
    assert len(list(folder.glob("*.model.json"))) == 1  # the fresh compile is cached again
