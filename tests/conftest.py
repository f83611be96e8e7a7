"""Shared test setup: no test writes to the user's results store."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_results_store(tmp_path_factory):
    """Point the default results store (LTAE_STORE, XDG_DATA_HOME) at a temporary folder."""
    d = tmp_path_factory.mktemp("ltae_store")
    saved = {k: os.environ.get(k) for k in ("LTAE_STORE", "XDG_DATA_HOME")}
    os.environ["LTAE_STORE"] = str(d / "ltae_runs.duckdb")
    os.environ["XDG_DATA_HOME"] = str(d / "xdg")
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
