"""Scenario planner: known truth, exact identities of the engine, plan validation, CLI and Python API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import drop_artifact
from typer.testing import CliRunner

from ltae.analysis.scenarios import (
    TIDY_COLUMNS,
    default_plan,
    load_run,
    read_plan,
    run_scenario,
)
from ltae.cli import app
from ltae.data.synthetic import generate_synthetic_data, scenario_truth
from ltae.data.validate import DataValidationError

runner = CliRunner()


@pytest.fixture(scope="module")
def run(small_run):
    return load_run(small_run[0])


def _plan(run, weeks=8, **mult) -> pd.DataFrame:
    p = default_plan(run, weeks)
    for ch, m in mult.items():
        p[ch] = p[ch] * m
    return p


# ---- known truth ------------------------------------------------------------------------------


def test_extra_spend_in_one_channel_interval_covers_the_truth(run, small_run):
    """+50% of recent spend in Content for 8 weeks: the predicted incremental return (short term and
    total) covers the generator's true response to the same plan."""
    res = run_scenario(run, _plan(run, Content=1.5))
    truth = scenario_truth(small_run[1], res.plan_spend, res.reference_spend, res.horizon)
    tab = res.returns().set_index("channel")
    i = run.channels.index("Content")
    assert truth["total"][i] > 0 and tab.loc["Content", "extra_spend"] > 0
    for key, col in (("short_term", "short_term"), ("total", "total")):
        lo, hi = tab.loc["Content", f"{col}_lower"], tab.loc["Content", f"{col}_upper"]
        assert lo <= truth[key][i] <= hi, (key, lo, truth[key][i], hi)
    # channels the plan does not touch have no increment, in the model and in truth
    for ch in ("Events", "Google", "LinkedIn"):
        assert tab.loc[ch, "total_mean"] == 0.0 and truth["total"][run.channels.index(ch)] == 0.0


def test_scenario_truth_matches_the_generators_own_truth(small_run):
    """The long-term part with the horizon convention equals extra spend x the generator's true
    long-term ROI (computed there by another route); the short-term part is the media difference."""
    data = small_run[1]
    C = len(data.params.channels)
    ref = np.tile(np.asarray(data.params.mean_spend), (40, 1))
    plan = ref.copy()
    plan[:6, 1] += 5_000.0
    tr = scenario_truth(data, plan, ref)
    lt_roi = data.truth["channels"][data.params.channels[1]]["long_term_roi"]
    assert tr["long_term"][1] == pytest.approx(30_000.0 * lt_roi, rel=1e-9)
    assert tr["weekly_long"].sum(0) == pytest.approx(tr["long_term"], rel=1e-9, abs=1e-6)
    assert np.all(tr["short_term"][[0, 2, 3]] == 0) and tr["short_term"][1] > 0
    same = scenario_truth(data, ref, ref)
    assert same["total_all"] == 0.0 and np.all(same["weekly_short"] == 0)
    assert tr["irf"].shape == (24, C)


# ---- exact identities of the engine -------------------------------------------------------------


def test_paths_and_increments_add_up(run):
    res = run_scenario(run, _plan(run, Content=1.4, Google=0.7))
    inc = res.increment_draws()
    weekly = res.sales_plan - res.sales_reference  # base sales cancel exactly
    short = (res.short_plan - res.short_reference).sum(-1)
    long = (res.long_plan - res.long_reference).sum(-1)
    np.testing.assert_allclose(weekly, short + long, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(weekly.sum(1), inc["total"].sum(1), rtol=1e-9, atol=1e-6)
    tab = res.returns().set_index("channel")
    assert tab.loc["all", "total_mean"] == pytest.approx(inc["total"].sum(1).mean())
    assert tab.loc["all", "extra_spend"] == pytest.approx(tab.loc[run.channels, "extra_spend"].sum())
    assert tab.loc["Google", "extra_spend"] < 0 < tab.loc["Content", "extra_spend"]


def test_channels_are_separable(run):
    """Additive MMM + linear VAR: a two-channel plan's per-channel increments are those of the
    one-channel plans, draw by draw."""
    both = run_scenario(run, _plan(run, Content=1.5, Google=1.3)).increment_draws()
    a = run_scenario(run, _plan(run, Content=1.5)).increment_draws()
    b = run_scenario(run, _plan(run, Google=1.3)).increment_draws()
    ic, ig = run.channels.index("Content"), run.channels.index("Google")
    for k in ("short_term", "long_term"):
        np.testing.assert_allclose(both[k][:, ic], a[k][:, ic], rtol=1e-10)
        np.testing.assert_allclose(both[k][:, ig], b[k][:, ig], rtol=1e-10)


def test_long_term_is_the_saved_irf_times_extra_spend(run, small_run):
    """Every week of extra spend gets `horizon` weeks of the BVAR's base-sales response: the
    long-term increment per unit of extra spend is, draw by draw, a long-term ROI draw of the run
    (the horizon sum of a saved IRF draw), and roi_draws.csv's long-term draws are those sums."""
    irf_sums = run.irf_base_draws().sum(axis=1)  # (S, C)
    res = run_scenario(run, _plan(run, 12, LinkedIn=2.0))
    j = run.channels.index("LinkedIn")
    per_unit = res.increment_draws()["long_term"][:, j] / res.extra_spend[j]
    gap = np.abs(per_unit[:, None] - irf_sums[None, :, j]).min(axis=1)
    assert gap.max() < 1e-9 * max(1.0, np.abs(irf_sums[:, j]).max())
    saved = pd.read_csv(small_run[0] / "roi_draws.csv")[f"long_{run.channels[j]}"].to_numpy()
    gap = np.abs(saved[:, None] - irf_sums[None, :, j]).min(axis=1)
    assert gap.max() < 1e-9 * max(1.0, np.abs(irf_sums[:, j]).max())


def test_reference_equal_to_plan_gives_zero_and_same_seed_same_numbers(run, tmp_path):
    plan = _plan(run, 6, Events=2.0)
    res = run_scenario(run, plan, reference=plan)
    tab = res.returns()
    assert (tab[["short_term_mean", "long_term_mean", "total_mean", "extra_spend"]].to_numpy() == 0).all()
    assert tab.roi_mean.isna().all()
    np.testing.assert_array_equal(res.sales_plan, res.sales_reference)
    a = run_scenario(run, plan).to_frame()
    b = run_scenario(load_run(run.run_dir), plan).to_frame()
    pd.testing.assert_frame_equal(a, b)


def test_gap_missing_channels_and_window(run):
    last = run.last_date
    start = last + pd.Timedelta(weeks=3)
    plan = pd.DataFrame({"Date": pd.date_range(start, periods=4, freq="7D"), "google": 50_000.0})  # any case
    res = run_scenario(run, plan)
    baseline = run.dataset.spend.values[-13:].mean(0)
    np.testing.assert_allclose(res.baseline_spend, baseline)
    assert list(res.phase[:5]) == ["gap", "gap", "plan", "plan", "plan"]
    assert res.dates[0] == last + pd.Timedelta(weeks=1)
    # the window runs horizon - 1 weeks past the last planned week
    assert len(res.dates) == 2 + 4 + max(run.horizon, run.mmm.priors.l_max) - 1
    g = run.channels.index("Google")
    np.testing.assert_allclose(res.plan_spend[2:6, g], 50_000.0)
    others = [i for i in range(len(run.channels)) if i != g]
    np.testing.assert_allclose(res.plan_spend[:, others], res.reference_spend[:, others])
    np.testing.assert_allclose(res.reference_spend, np.tile(baseline, (len(res.dates), 1)))
    inc_w = (res.short_plan - res.short_reference).sum(-1)
    assert np.all(inc_w[:, :2] == 0)  # nothing changes before the plan starts


def test_custom_reference_fills_plan_weeks(run, tmp_path):
    """Weeks and channels a plan leaves out take the reference's spend."""
    ref = _plan(run, 8, Events=0.0)
    plan = _plan(run, 4, Content=1.5)[["Date", "Content"]]
    res = run_scenario(run, plan, reference=ref)
    e, c = run.channels.index("Events"), run.channels.index("Content")
    assert np.all(res.plan_spend[:8, e] == 0) and np.all(res.reference_spend[:8, e] == 0)
    assert np.all(res.plan_spend[4:8, c] == res.reference_spend[4:8, c])
    tab = res.returns().set_index("channel")
    assert tab.loc["Events", "total_mean"] == 0 and tab.loc["Content", "extra_spend"] > 0


def test_long_plan_equals_wide_plan_and_csv(run, tmp_path):
    wide = _plan(run, 5, Content=1.2, Google=0.9)
    long = wide.melt(id_vars="Date", var_name="Channel", value_name="Spend")
    path = tmp_path / "plan.csv"
    wide.assign(Date=wide.Date.dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    a = run_scenario(run, wide).to_frame()
    b = run_scenario(run, long).to_frame()
    c = run_scenario(run, path).to_frame()
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a[TIDY_COLUMNS[1:]], c[TIDY_COLUMNS[1:]])
    idx = wide.set_index("Date")  # a DatetimeIndex works too
    pd.testing.assert_frame_equal(a, run_scenario(run, idx).to_frame())


def test_base_forecast_is_forecast_without_media(run):
    mmm = run.mmm
    fut = np.tile(mmm.spend[-1], (6, 1))
    full = mmm.forecast(fut, thin=4, seed=3)
    media = mmm.media_contributions(spend=np.vstack([mmm.spend, fut]), thin=4)[:, -6:, :].sum(-1)
    np.testing.assert_allclose(full - media, mmm.base_forecast(6, thin=4, seed=3), rtol=1e-10)
    expected = mmm.base_forecast(30, thin=4, noise=False, seed=3)
    assert expected[:, -1].std() > expected[:, 0].std()  # the level's variance grows


# ---- validation: one message naming file, column and row ---------------------------------------

LAST = "2022-07-11"  # the small run's last week (80 weeks from 2021-01-04)
BAD_PLANS = [
    ("unknown-column", "Date,Content,TikTok\n2022-07-18,1,2\n", "TikTok", "line 1", ["unknown channel"]),
    ("unknown-long", "Date,Channel,Spend\n2022-07-18,Content,1\n2022-07-18,Radio,2\n", "Channel", "line 3",
     ["unknown channel 'Radio'", "Content, Events, Google, LinkedIn"]),
    ("negative", "Date,Content\n2022-07-18,100\n2022-07-25,-5\n", "Content", "line 3", ["negative spend"]),
    ("infinite", "Date,Content\n2022-07-18,inf\n", "Content", "line 2", ["spend is inf"]),
    ("empty", "Date,Content,Google\n2022-07-18,,3\n", "Content", "line 2", ["empty spend"]),
    ("text", "Date,Content\n2022-07-18,lots\n", "Content", "line 2", ["not a number"]),
    ("duplicate", "Date,Content\n2022-07-18,1\n2022-07-18,2\n", "Date", "line 3", ["duplicate"]),
    ("duplicate-long", "Date,Channel,Spend\n2022-07-18,Content,1\n2022-07-18,content,2\n", "Date", "line 3",
     ["duplicate"]),
    ("not-weekly", "Date,Content\n2022-07-18,1\n2022-07-25,1\n2022-08-01,1\n2022-08-11,1\n", "Date", "line 5",
     ["10 days after"]),
    ("hole", "Date,Content\n2022-07-18,1\n2022-07-25,1\n2022-08-08,1\n", "Date", "line 4", ["missing"]),
    ("daily", "Date,Content\n2022-07-18,1\n2022-07-19,1\n2022-07-20,1\n", "Date", "line 3", ["1 day after"]),
    ("before-data-end", f"Date,Content\n{LAST},1\n2022-07-18,1\n", "Date", "line 2",
     ["before the data ends", "2022-07-18"]),
    ("weekday", "Date,Content\n2022-07-19,1\n", "Date", "line 2", ["Tuesdays", "Mondays"]),
    ("too-far", "Date,Content\n2030-01-07,1\n", "Date", "line 2", ["at most 260"]),
    ("long-missing-week", "Date,Channel,Spend\n2022-07-18,Content,1\n2022-07-25,Content,1\n2022-07-25,Google,1\n",
     "Channel", None, ["'Google' has no row for the week 2022-07-18"]),
    ("no-date", "Week,Content\n2022-07-18,1\n", "Date", "line 1", ["no date column"]),
    ("bad-date", "Date,Content\n2022-07-18,1\nsoon,1\n", "Date", "line 3", ["cannot read date"]),
]


@pytest.mark.parametrize("case", BAD_PLANS, ids=[c[0] for c in BAD_PLANS])
def test_bad_plan_python_api(run, tmp_path, case):
    _, text, column, where, words = case
    path = tmp_path / "plan.csv"
    path.write_text(text)
    with pytest.raises(DataValidationError) as e:
        run_scenario(run, path)
    msg = str(e.value)
    assert msg.startswith("plan.csv"), msg
    assert f"column '{column}'" in msg, msg
    if where:
        assert where in msg, msg
    for w in words:
        assert w in msg, msg


def test_bad_plan_frame_names_the_row(run):
    plan = _plan(run, 3)
    plan.loc[1, "Events"] = -1.0
    with pytest.raises(DataValidationError, match=r"plan, column 'Events', row 2 .*negative spend"):
        run_scenario(run, plan)
    with pytest.raises(DataValidationError, match="unknown channel column 'Radio'"):
        read_plan(plan.rename(columns={"Events": "Radio"}), run.channels, name="my plan")


# ---- CLI ----------------------------------------------------------------------------------------


def _csv(df: pd.DataFrame, path):
    df.assign(Date=df.Date.dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


def test_cli_scenario_writes_csv_and_figure(run, small_run, tmp_path):
    plan = _csv(_plan(run, 6, Content=1.5, Google=1.2), tmp_path / "plan.csv")
    out = tmp_path / "out"
    r = runner.invoke(app, ["scenario", "--run", str(small_run[0]), "--plan", str(plan), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "Incremental return" in r.stdout and "Content" in r.stdout
    df = pd.read_csv(out / "scenario.csv")
    assert list(df.columns) == TIDY_COLUMNS
    assert set(df.scenario) == {"plan", "reference", "plan - reference"}
    assert (out / "scenario.png").stat().st_size > 10_000
    res = run_scenario(run, plan)
    tot = df[(df.scenario == "plan - reference") & (df.phase == "total") & (df.channel == "all")].set_index("metric")
    tab = res.returns().set_index("channel")
    assert tot.loc["total_return", "mean"] == pytest.approx(tab.loc["all", "total_mean"], rel=1e-12)
    assert tot.loc["spend", "mean"] == pytest.approx(tab.loc["all", "extra_spend"], rel=1e-12)
    assert tot.loc["roi", "unit"] == "currency of sales per currency unit of spend"
    weekly = df[(df.scenario == "plan") & (df.metric == "sales")]
    assert len(weekly) == len(res.dates) + 1 and (weekly.unit == "currency of sales").all()
    # same inputs, same file
    r2 = runner.invoke(app, ["scenario", "--run", str(small_run[0]), "--plan", str(plan), "--out",
                             str(tmp_path / "again")])
    assert r2.exit_code == 0
    assert (tmp_path / "again" / "scenario.csv").read_text() == (out / "scenario.csv").read_text()


@pytest.mark.parametrize("case", [c for c in BAD_PLANS if c[0] in ("unknown-long", "negative", "not-weekly",
                                                                     "duplicate", "before-data-end")],
                         ids=lambda c: c[0])
def test_cli_scenario_bad_plan_exit_2(small_run, tmp_path, case):
    _, text, column, where, words = case
    plan = tmp_path / "plan.csv"
    plan.write_text(text)
    out = tmp_path / "out"
    r = runner.invoke(app, ["scenario", "--run", str(small_run[0]), "--plan", str(plan), "--out", str(out)])
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert err.startswith("error: plan.csv") and len(err.splitlines()) == 1, err
    assert f"column '{column}'" in err and where in err and "Traceback" not in r.output
    assert not out.exists()


def test_cli_scenario_bad_run_and_reference(small_run, tmp_path):
    plan = tmp_path / "plan.csv"
    plan.write_text("Date,Content\n2022-07-18,1\n")
    r = runner.invoke(app, ["scenario", "--run", str(tmp_path), "--plan", str(plan), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not a finished" in r.stderr
    ref = tmp_path / "ref.csv"
    ref.write_text("Date,Content\n2022-07-18,-1\n")
    r = runner.invoke(app, ["scenario", "--run", str(small_run[0]), "--plan", str(plan), "--reference", str(ref),
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "ref.csv, column 'Content', line 2" in r.stderr
    r = runner.invoke(app, ["scenario", "--run", str(small_run[0]), "--plan", str(tmp_path / "nope.csv"),
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "nope.csv" in r.stderr and "not found" in r.stderr
    assert not (tmp_path / "o").exists()


def test_run_without_irf_file_says_how_to_fix(small_run, tmp_path):
    import shutil

    copy = tmp_path / "old_run"
    shutil.copytree(small_run[0], copy)
    (copy / "posteriors" / "irf.nc").unlink()
    drop_artifact(copy, "posteriors/irf.nc")  # a complete run whose manifest lists no irf.nc
    old = load_run(copy)
    assert old.irf is None and old.response is not None  # the budget still works
    with pytest.raises(DataValidationError, match="run `ltae run` again with the same --out"):
        run_scenario(old, default_plan(old, 2))


def test_cli_optimize_short_term_only(run, small_run, tmp_path):
    from ltae.analysis.optimize import optimize_budget

    out = tmp_path / "b.csv"
    r = runner.invoke(app, ["optimize", "--run", str(small_run[0]), "--budget", "7000000", "--short-term-only",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "short term only" in r.stdout
    cli = pd.read_csv(out)
    api = optimize_budget(run.response, 7_000_000.0, run.channels, (0.5, 1.5), None, include_long_term=False)
    np.testing.assert_allclose(cli.optimal_spend, api.optimal_spend, rtol=1e-9)
    with_lt = optimize_budget(run.response, 7_000_000.0, run.channels, (0.5, 1.5), None)
    assert not np.allclose(with_lt.expected_return_mean, api.expected_return_mean)


def test_generator_consistency_with_run(small_run):
    """The fixture's data are the generator's with the run's seed (the truth tests rely on it)."""
    again = generate_synthetic_data(n_weeks=80, seed=4)
    pd.testing.assert_frame_equal(again.sales, small_run[1].sales)
