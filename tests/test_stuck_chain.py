"""A chain that gets stuck (nearly every transition divergent, the others fine) is detected, and the
run is sampled once more with a fixed, different seed."""

import numpy as np
import pytest
import xarray as xr

from ltae.models import sampling


def _idata(rates, draws=200, seed=0):
    rng = np.random.default_rng(seed)
    div = np.stack([rng.uniform(size=draws) < r for r in rates])
    return {"sample_stats": xr.Dataset({"diverging": (("chain", "draw"), div)})}


def test_one_stuck_chain_is_found():
    assert sampling.stuck_chains(_idata([0.01, 0.0, 0.99, 0.02])) == [2]


@pytest.mark.parametrize("rates", [[0.01, 0.0, 0.02, 0.0],   # healthy
                                   [0.7, 0.6, 0.8, 0.9],     # every chain diverges: the model, not a chain
                                   [0.3, 0.0, 0.01, 0.0]])   # many divergences, but not stuck
def test_no_stuck_chain(rates):
    assert sampling.stuck_chains(_idata(rates)) == []


def test_no_sample_stats_or_one_chain():
    assert sampling.stuck_chains({}) == []
    assert sampling.stuck_chains(_idata([1.0])) == []


def test_a_stuck_run_is_sampled_again_with_another_seed(monkeypatch):
    seeds = []

    def fake(model, settings, var_names=None):
        seeds.append(settings.seed)
        rates = [0.0, 0.99, 0.0, 0.0] if len(seeds) == 1 else [0.0, 0.01, 0.0, 0.0]
        return sampling.SampleResult(idata=_idata(rates), sampler="nutpie", wall_s=1.0, timings={"wall_s": 1.0})

    monkeypatch.setattr(sampling, "_sample_once", fake)
    with pytest.warns(RuntimeWarning, match="stuck"):
        res = sampling.sample(None, sampling.SamplerSettings(seed=7))
    assert seeds == [7, 7 + sampling.STUCK_CHAIN_SEED_OFFSET]
    assert res.timings["stuck_chain_restarts"] == 1 and res.wall_s == 2.0
    assert sampling.stuck_chains(res.idata) == []


def test_a_healthy_run_is_sampled_once(monkeypatch):
    calls = []

    def fake(model, settings, var_names=None):
        calls.append(settings.seed)
        return sampling.SampleResult(idata=_idata([0.0, 0.01, 0.0, 0.0]), sampler="nutpie", wall_s=1.0)

    monkeypatch.setattr(sampling, "_sample_once", fake)
    res = sampling.sample(None, sampling.SamplerSettings(seed=3))
    assert calls == [3] and "stuck_chain_restarts" not in res.timings
