"""Post-processing of the short-term posterior (vectorised shortcuts against the direct computation)."""

from __future__ import annotations

import numpy as np


def test_marginal_roi_equals_the_full_recomputation(small_run):
    """marginal_roi_draws recomputes only the changed channel's curve; that equals recomputing every
    channel's contribution with one channel's spend raised (the others do not move)."""
    from ltae.models.mmm import ShortTermMMM
    from ltae.store.runs import open_run

    saved = open_run(small_run[0])
    cfg, ds = saved.config, saved.dataset
    mmm = ShortTermMMM.from_dataset(ds, cfg.channel_groups, cfg.mmm_priors)
    mmm.idata = saved.posterior("short_term")
    got = mmm.marginal_roi_draws(step=0.05)
    base = mmm.media_contributions()
    for c in range(len(ds.channels)):
        spend = mmm.spend.copy()
        spend[:, c] *= 1.05
        up = mmm.media_contributions(spend=spend)
        others = [k for k in range(len(ds.channels)) if k != c]
        np.testing.assert_array_equal(up[..., others], base[..., others])
        want = (up[..., c].sum(1) - base[..., c].sum(1)) / (mmm.spend[:, c].sum() * 0.05)
        np.testing.assert_allclose(got[:, c], want, rtol=1e-12, atol=0)
        assert np.all(got[:, c] >= 0)  # more spend never lowers a Hill curve


def test_figures_hide_a_lazy_jax_module_and_put_it_back(monkeypatch):
    """arviz registers ``jax`` as a lazy module; matplotlib would import it on every new axes."""
    import importlib.util
    import sys
    import types

    from ltae.report.figures import no_lazy_jax

    spec = importlib.util.find_spec("json")  # any module: only its laziness matters here
    spec.loader = importlib.util.LazyLoader(spec.loader)
    lazy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lazy)
    assert type(lazy).__name__ == "_LazyModule"
    monkeypatch.setitem(sys.modules, "jax", lazy)
    with no_lazy_jax():
        assert "jax" not in sys.modules
    assert sys.modules["jax"] is lazy and type(lazy).__name__ == "_LazyModule"  # still not loaded
    real = types.ModuleType("jax")
    with no_lazy_jax():
        sys.modules["jax"] = real  # something imported the real one meanwhile: it stays
    assert sys.modules["jax"] is real
