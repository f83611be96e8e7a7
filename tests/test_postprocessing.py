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
