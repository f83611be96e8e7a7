"""Shared fixtures. ``small_run``: one finished pipeline run with tiny draws (80 weeks, 4 channels),
built once per test session and used by the scenario, dashboard and browser tests."""

from __future__ import annotations

import pytest

SMALL_RUN_WEEKS, SMALL_RUN_SEED = 80, 4
SMALL_RUN_CFG = {"sampling": {"draws": 100, "tune": 100, "chains": 2, "seed": 5}, "replicates": 2}


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """(run folder, SyntheticData): the folder holds a finished run; the data hold the known truth."""
    from ltae import pipeline
    from ltae.data.synthetic import generate_synthetic_data, save_to_csv

    root = tmp_path_factory.mktemp("small_run")
    data = generate_synthetic_data(n_weeks=SMALL_RUN_WEEKS, seed=SMALL_RUN_SEED)
    save_to_csv(data, root / "data")
    out = root / "runs" / "small"
    pipeline.run(root / "data", out, SMALL_RUN_CFG, store_path=root / "runs" / "ltae_runs.duckdb")
    return out, data
