"""Refresh: new weeks appended, changed history refused, the previous posterior of the response
curves as the widened prior, the ROI before and after."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ltae import pipeline
from ltae.cli import app
from ltae.data.synthetic import generate_synthetic_data, save_to_csv
from ltae.refresh import _beta, _gamma, history_changes

CFG = {"sampling": {"draws": 100, "tune": 100, "chains": 2, "seed": 5}, "replicates": 2}


def _truncate(src, dst, weeks):
    dst.mkdir(parents=True)
    for f in src.glob("*.csv"):
        df = pd.read_csv(f)
        d = pd.to_datetime(df.Date)
        df[d < d.min() + pd.Timedelta(weeks=weeks)].to_csv(dst / f.name, index=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("refresh")
    save_to_csv(generate_synthetic_data(n_weeks=84, seed=4), root / "full")
    _truncate(root / "full", root / "old", 80)
    pipeline.run(root / "old", root / "r1", CFG, store_path=root / "s.duckdb")
    return root


def test_moment_matching_reproduces_mean_and_sd():
    m, sd = np.array([0.3, 0.7]), np.array([0.05, 0.1])
    (a1, b1), (a2, b2) = _beta(m, sd)
    for (a, b), mm, ss in (((a1, b1), 0.3, 0.05), ((a2, b2), 0.7, 0.1)):
        assert a / (a + b) == pytest.approx(mm)
        assert np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))) == pytest.approx(ss)
    (k, r), = _gamma(np.array([1.5]), np.array([0.4]))
    assert k / r == pytest.approx(1.5) and np.sqrt(k) / r == pytest.approx(0.4)


def test_history_changes_are_found(runs):
    from ltae.data import load_dataset

    old, full = load_dataset(runs / "old"), load_dataset(runs / "full")
    assert history_changes(old, full).empty
    sales = pd.read_csv(runs / "full" / "sales.csv")
    sales.loc[10, "revenue"] += 5_000
    changed = runs / "changed"
    import shutil

    shutil.copytree(runs / "full", changed)
    sales.to_csv(changed / "sales.csv", index=False)
    ch = history_changes(old, load_dataset(changed))
    assert len(ch) == 1 and ch.iloc[0]["column"] == "revenue" and ch.iloc[0]["new"] - ch.iloc[0]["previous"] == 5_000
    r = CliRunner().invoke(app, ["refresh", "--run", str(runs / "r1"), "--data", str(changed), "--out",
                                 str(runs / "nope")])
    assert r.exit_code == 2 and "change 1 value" in r.output and "revenue" in r.output
    assert not (runs / "nope").exists()
    r = CliRunner().invoke(app, ["refresh", "--run", str(runs / "r1"), "--data", str(runs / "old"), "--out",
                                 str(runs / "nope")])
    assert r.exit_code == 2 and "no week after" in r.output


def test_refresh_uses_the_previous_posterior_and_compares(runs):
    from ltae.store.runs import open_run

    r = CliRunner().invoke(app, ["refresh", "--run", str(runs / "r1"), "--data", str(runs / "full"), "--out",
                                 str(runs / "r2"), "--store", str(runs / "s.duckdb")])
    assert r.exit_code == 0, r.output
    new = open_run(runs / "r2")
    assert "refresh.json" in new.paths and new.dataset.n_weeks == 84
    info = json.loads((runs / "r2" / "refresh.json").read_text())
    assert info["new_weeks"] == 4 and info["widen"] == 2.0 and info["history_changes"] == []
    comp = pd.DataFrame(info["comparison"])
    assert set(comp.term) == {"short_term", "long_term", "total"} and len(comp) == 12
    old = open_run(runs / "r1")
    prev = old.roi().set_index("channel")
    np.testing.assert_allclose(comp[comp.term == "total"].previous_mean.to_numpy(),
                               prev.loc[comp[comp.term == "total"].channel, "total_roi_mean"].to_numpy())
    # the curves' priors are the previous posterior: Beta means equal the previous alpha posterior means
    alpha = old.posterior("short_term")["posterior"]["adstock_alpha"].values.reshape(-1, 4)
    ab = np.array(new.config.mmm_priors.alpha_ab)
    np.testing.assert_allclose(ab[:, 0] / ab.sum(1), alpha.mean(0), rtol=1e-9)
    sd = np.sqrt(ab[:, 0] * ab[:, 1] / (ab.sum(1) ** 2 * (ab.sum(1) + 1)))
    np.testing.assert_allclose(sd, np.minimum(2 * alpha.std(0), np.sqrt(0.95 * alpha.mean(0) * (1 - alpha.mean(0)))),
                               rtol=1e-9)
    assert new.config.sampling.initial_values["adstock_alpha"] == pytest.approx(alpha.mean(0).tolist())
    assert "Refresh" in (runs / "r2" / "report.html").read_text()
