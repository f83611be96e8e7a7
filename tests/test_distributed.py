"""Fan-out on Dask: the same numbers as a serial run, and a task whose worker dies is run again."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dask.distributed")


def _bvar_items():
    return [{"seed": s, "T": 120} for s in range(3)]


def _make_fit():
    def fit(item):  # nested: pickled by value for the workers
        from ltae.models.bvar import BVAR

        rng = np.random.default_rng(item["seed"])
        T = item["T"]
        X = rng.normal(size=(T, 2))
        Y = np.zeros((T, 2))
        for t in range(1, T):
            Y[t] = 0.5 * Y[t - 1] + X[t] @ [[0.4, 0.0], [0.1, 0.3]] + rng.normal(scale=0.5, size=2)
        b = BVAR([Y], X, 1, priors=None)
        b.fit(draws=200, tune=100, chains=2, seed=item["seed"])
        return b.calculate_irf(periods=6)["draws"].sum(axis=1).mean(axis=0)

    return fit


def test_local_cluster_gives_the_serial_numbers():
    from ltae.distributed import fan_out

    fit = _make_fit()
    serial = fan_out(fit, _bvar_items(), scheduler="serial")
    on_dask = fan_out(fit, _bvar_items(), workers=2)
    for a, b in zip(serial, on_dask, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_task_whose_worker_dies_is_run_again(tmp_path):
    from ltae.distributed import fan_out

    marker = str(tmp_path / "died-once")

    def flaky(x):
        import os

        if x == 2:
            try:  # the first attempt kills its worker process outright
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                os._exit(1)
            except FileExistsError:
                pass
        return x * x

    assert fan_out(flaky, range(5), workers=2) == [0, 1, 4, 9, 16]
    assert (tmp_path / "died-once").exists()
