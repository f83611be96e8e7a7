"""Shared test setup.

* No test writes to the user's results store (``LTAE_STORE`` and ``XDG_DATA_HOME`` point at a
  temporary folder for the whole session).
* ``small_run``: one finished pipeline run with tiny draws (80 weeks, 4 channels), built once per test
  session and used by the scenario, dashboard and browser tests.
"""

from __future__ import annotations

import os

import pytest

SMALL_RUN_WEEKS, SMALL_RUN_SEED = 80, 4
SMALL_RUN_CFG = {"sampling": {"draws": 100, "tune": 100, "chains": 2, "seed": 5}, "replicates": 2}


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


def drop_artifact(run_dir, name: str) -> None:
    """Remove one artefact from a (copied) run folder and from its manifest, so the folder stays a
    complete, consistent run that simply lacks that file."""
    import json
    from pathlib import Path

    run_dir = Path(run_dir)
    (run_dir / name).unlink(missing_ok=True)
    man = json.loads((run_dir / "manifest.json").read_text())
    man["artifacts"].pop(name, None)
    man["files"] = [f for f in man.get("files", []) if f != name]
    (run_dir / "manifest.json").write_text(json.dumps(man))
