"""A multi-market run end to end: one hierarchical short-term model, each market's long-term model,
ROI per market and nationally, the national budget, the report's market section, the store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ltae import pipeline
from ltae.cli import app
from ltae.data.synthetic_geo import generate_geo, save_geo

CFG = {"data": {"geo": "Geo"}, "scheduler": "serial", "replicates": 2,
       "sampling": {"draws": 100, "tune": 100, "chains": 2, "seed": 3}}


@pytest.fixture(scope="module")
def geo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("geo")
    d = generate_geo(n_markets=3, n_weeks=60, seed=2)
    save_geo(d, root / "data")
    res = pipeline.run(root / "data", root / "out", CFG, store_path=root / "s.duckdb")
    return root, d, res


def test_roi_per_market_and_national(geo_run):
    root, d, res = geo_run
    roi = pd.read_csv(root / "out" / "roi.csv")
    assert list(roi.market.unique()) == [*d.markets, "ALL"]
    assert len(roi) == 4 * (len(d.markets) + 1)
    # national short-term ROI = contributions summed over markets / spend summed over markets
    short = roi.pivot(index="market", columns="channel", values="short_term_roi_mean")
    spend = roi.pivot(index="market", columns="channel", values="spend")
    w = spend.loc[d.markets] / spend.loc[d.markets].sum()
    np.testing.assert_allclose((short.loc[d.markets] * w).sum(), short.loc["ALL"], rtol=1e-9)
    np.testing.assert_allclose(spend.loc[d.markets].sum(), spend.loc["ALL"], rtol=1e-12)
    nat = json.loads((root / "out" / "diagnostics.json").read_text())
    assert nat["short_term"]["markets"] == 3 and set(nat["long_term"]["markets"]) == set(d.markets)
    assert len(nat["markets_fit"]) == 3
    draws = pd.read_csv(root / "out" / "roi_draws.csv")  # national draws, for the optimiser
    np.testing.assert_allclose(draws.filter(like="short_").mean().to_numpy(),
                               roi[roi.market == "ALL"].short_term_roi_mean.to_numpy(), rtol=1e-9)


def test_report_store_and_budget_of_a_geo_run(geo_run, tmp_path):
    import duckdb

    root, d, res = geo_run
    html = (root / "out" / "report.html").read_text()
    assert 'id="market-select"' in html and all(m in html for m in d.markets)
    assert (root / "out" / "figures" / "market_roi.png").is_file()
    con = duckdb.connect(str(root / "s.duckdb"), read_only=True)
    rows = con.execute("SELECT market, count(*) FROM roi WHERE run_id = ? GROUP BY market ORDER BY market",
                       [res.run_id]).fetchall()
    con.close()
    assert rows == sorted([(m, 4) for m in [*d.markets, "ALL"]])
    cur = res.budget.current_spend.sum()
    r = CliRunner().invoke(app, ["optimize", "--run", str(root / "out"), "--budget", str(cur * 1.1),
                                 "--out", str(tmp_path / "b.csv")])
    assert r.exit_code == 0, r.output
    b = pd.read_csv(tmp_path / "b.csv")
    assert abs(b.optimal_spend.sum() - cur * 1.1) < 1e-3 * cur
    # the scenario planner is one-market: a clear refusal
    plan = tmp_path / "plan.csv"
    plan.write_text("Date,Content\n2030-01-07,1\n")
    r = CliRunner().invoke(app, ["scenario", "--run", str(root / "out"), "--plan", str(plan), "--out",
                                 str(tmp_path / "sc")])
    assert r.exit_code == 2 and "several markets" in r.output


def test_geo_run_resumes_and_repeats(geo_run, tmp_path):
    root, d, res = geo_run
    before = (root / "out" / "roi.csv").read_text()
    again = pipeline.run(root / "data", root / "out", CFG, store_path=root / "s.duckdb")
    assert again.diagnostics["short_term"]["resumed"] and again.diagnostics["long_term"]["resumed"]
    assert (root / "out" / "roi.csv").read_text() == before
    fresh = pipeline.run(root / "data", tmp_path / "o2", CFG, store_path=tmp_path / "s.duckdb")
    assert (tmp_path / "o2" / "roi.csv").read_text() == (root / "out" / "roi.csv").read_text()
    assert fresh.run_id != res.run_id


@pytest.mark.slow
def test_geo_run_on_dask_gives_the_serial_numbers(geo_run, tmp_path):
    root, d, res = geo_run
    pipeline.run(root / "data", tmp_path / "dask", {**CFG, "scheduler": None}, store_path=tmp_path / "s.duckdb")
    assert (tmp_path / "dask" / "roi.csv").read_text() == (root / "out" / "roi.csv").read_text()
