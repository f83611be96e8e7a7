"""Dashboard pages with Streamlit's AppTest on a small finished run: every page renders without an
exception, warnings come before the numbers, and the numbers are those of `ltae optimize` and
`ltae scenario` for the same inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import drop_artifact
from typer.testing import CliRunner

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from ltae.analysis.scenarios import default_plan, load_run, run_scenario  # noqa: E402
from ltae.cli import _is_loopback, app  # noqa: E402

SCRIPT = str(Path(__file__).resolve().parents[1] / "src" / "ltae" / "serve" / "dashboard.py")
runner = CliRunner()


def money(x: float) -> str:
    return f"{x:,.0f}"


def open_page(run_dir, page: str, monkeypatch=None, runs_dir=None) -> AppTest:
    at = AppTest.from_file(SCRIPT, default_timeout=180)
    if runs_dir is not None:
        monkeypatch.setenv("LTAE_RUNS_DIR", str(runs_dir))
    if run_dir is not None:
        at.query_params["run"] = str(run_dir)
    at.query_params["page"] = page
    at.run()
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def kinds(at: AppTest) -> list[str]:
    return [type(e).__name__ for e in at.main]


@pytest.fixture(scope="module")
def run_dir(small_run):
    return small_run[0]


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir)


# ---- overview -----------------------------------------------------------------------------------


def test_overview(run_dir, run):
    at = open_page(run_dir, "Overview")
    no_exception(at)
    assert at.title[0].value == f"Overview: run {run.run_id}"
    roi = at.table[0].value
    assert list(roi.index) == run.channels
    r = run.roi.set_index("channel")
    for ch in run.channels:
        m, lo, hi = r.loc[ch, ["total_roi_mean", "total_roi_lower", "total_roi_upper"]]
        assert roi.loc[ch, "total"] == f"{m:.2f} [{lo:.2f}, {hi:.2f}]"
    checks = at.table[1].value
    assert len(checks) == len(run.checklist)
    # the tiny run fails some checks: they are shown, before the first table of numbers
    bad = [c for c in run.checklist if c["status"] in ("warn", "fail")]
    assert bad
    k = kinds(at)
    box = k.index("Error") if "Error" in k else k.index("Warning")
    assert box < k.index("Table")
    text = (at.error[0] if at.error else at.warning[0]).value
    for c in bad:
        assert c["check"] in text
    assert "base_sales" in at.main.selectbox[0].options  # impulse responses of every series


def test_overview_of_a_clean_run_has_no_warning_box(run_dir, tmp_path):
    clean = tmp_path / "clean"
    shutil.copytree(run_dir, clean)
    diag = json.loads((clean / "diagnostics.json").read_text())
    for c in diag["checklist"]:
        c["status"] = "pass"
    (clean / "diagnostics.json").write_text(json.dumps(diag))
    # keep the folder consistent for open_run: the manifest records each artefact's sha256
    from ltae.store.artifacts import sha256_file

    man = json.loads((clean / "manifest.json").read_text())
    man["artifacts"]["diagnostics.json"] = sha256_file(clean / "diagnostics.json")
    (clean / "manifest.json").write_text(json.dumps(man))
    at = open_page(clean, "Overview")
    no_exception(at)
    assert not at.error and not at.warning


# ---- budget -------------------------------------------------------------------------------------


def _cli_budget(run_dir, tmp_path, budget: float, *extra) -> pd.DataFrame:
    out = tmp_path / f"b{len(list(tmp_path.iterdir()))}.csv"
    r = runner.invoke(app, ["optimize", "--run", str(run_dir), "--budget", f"{budget:.0f}", "--out", str(out),
                            *extra])
    assert r.exit_code == 0, r.output
    return pd.read_csv(out)


def _same_allocation(table: pd.DataFrame, cli: pd.DataFrame) -> None:
    for row in cli.itertuples():
        assert table.loc[row.channel, "optimal spend"] == money(row.optimal_spend)
        assert table.loc[row.channel, "current spend"] == money(row.current_spend)
        assert table.loc[row.channel, "return, optimal [95%]"] == (
            f"{money(row.expected_return_mean)} [{money(row.expected_return_lower)}, "
            f"{money(row.expected_return_upper)}]")


def test_budget_same_numbers_as_cli(run_dir, run, tmp_path):
    at = open_page(run_dir, "Budget")
    no_exception(at)
    slider = at.slider[0]
    cur = run.response.current
    assert slider.min == pytest.approx(np.ceil(0.5 * cur.sum() / 10_000) * 10_000)
    assert slider.max == pytest.approx(np.floor(1.5 * cur.sum() / 10_000) * 10_000)
    first = at.table[0].value
    _same_allocation(first, _cli_budget(run_dir, tmp_path, slider.value))
    # move the slider: a new allocation, again the CLI's
    new_budget = slider.value + 20 * slider.step
    at.slider[0].set_value(new_budget).run()
    no_exception(at)
    moved = at.table[0].value
    assert not moved.equals(first)
    _same_allocation(moved, _cli_budget(run_dir, tmp_path, new_budget))
    # short term only and a risk level
    at.toggle[0].set_value(False).run()
    at.main.radio[0].set_value("prudent (10th percentile)").run()
    no_exception(at)
    _same_allocation(at.table[0].value, _cli_budget(run_dir, tmp_path, new_budget, "--short-term-only",
                                                     "--risk-quantile", "0.1"))
    code = at.code[0].value
    assert "--short-term-only" in code and "--risk-quantile 0.1" in code and f"--budget {new_budget:.0f}" in code


# ---- scenarios ----------------------------------------------------------------------------------


def test_scenarios_same_numbers_as_the_api(run_dir, run):
    at = open_page(run_dir, "Scenarios")
    no_exception(at)
    totals = at.table[0].value
    assert list(totals.index) == ["Plan A", "Plan B"]
    # plan B by default: +50% in the first channel for 13 weeks
    plan = default_plan(run, 13)
    plan[run.channels[0]] = plan[run.channels[0]] * 1.5
    res = run_scenario(run, plan, max_draws=1000)
    a = res.returns().set_index("channel").loc["all"]
    assert totals.loc["Plan B", "total"] == f"{money(a.total_mean)} [{money(a.total_lower)}, {money(a.total_upper)}]"
    assert totals.loc["Plan B", "extra spend"] == money(a.extra_spend)
    # three plans; plan C's defaults cut spend by 20%
    at.radio(key="n-plans").set_value(3).run()
    no_exception(at)
    totals = at.table[0].value
    assert list(totals.index) == ["Plan A", "Plan B", "Plan C"]
    assert totals.loc["Plan C", "extra spend"].startswith("-")
    # editing a plan's inputs changes its result
    at.number_input(key="weeks-1").set_value(4).run()
    no_exception(at)
    assert at.table[0].value.loc["Plan B", "planned weeks"] == 4
    assert at.table[0].value.loc["Plan B", "total"] != totals.loc["Plan B", "total"]
    # a plan that starts after a gap
    at.number_input(key="gap-0").set_value(5).run()
    no_exception(at)
    assert len(at.get("download_button")) == 1


def test_scenarios_upload_and_edits(run_dir, run):
    """Uploaded plans (good and bad), a reference upload and a cell edited in a plan's table."""
    at = open_page(run_dir, "Scenarios")
    at.radio(key="mode-0").set_value("Upload CSV").run()
    bad = b"Date,Content\n2022-07-18,100\n2022-07-25,-5\n"
    at.file_uploader(key="upload-0").upload("plan.csv", bad, "text/csv").run()
    no_exception(at)
    msg = at.error[-1].value
    assert msg.startswith("Plan A: Plan A (plan.csv), column 'Content', line 3") and "negative spend" in msg
    assert list(at.table[0].value.index) == ["Plan B"]  # the other plan is still computed
    good = b"Date,Google\n2022-07-18,60000\n2022-07-25,60000\n"
    at.file_uploader(key="upload-0").clear().upload("good.csv", good, "text/csv").run()
    no_exception(at)
    tab = at.table[0].value
    res = run_scenario(run, pd.DataFrame({"Date": pd.to_datetime(["2022-07-18", "2022-07-25"]),
                                          "Google": [60000.0, 60000.0]}), max_draws=1000)
    a = res.returns().set_index("channel").loc["all"]
    assert tab.loc["Plan A (good.csv)", "total"] == (f"{money(a.total_mean)} [{money(a.total_lower)}, "
                                                     f"{money(a.total_upper)}]")
    # a reference plan: the same as plan A, so plan A's increment is zero
    at.file_uploader(key="reference").upload("ref.csv", good, "text/csv").run()
    no_exception(at)
    tab = at.table[0].value
    assert tab.loc["Plan A (good.csv)", "total"] == "0 [0, 0]"
    assert "reference (ref.csv)" in [m.value for m in at.markdown if "Incremental return vs" in m.value][0]
    before_b = tab.loc["Plan B", "extra spend"]
    # a cell edited in plan B's table: a negative spend names the row
    at.session_state["editor-1"] = {"edited_rows": {2: {"Events": -1.0}}, "added_rows": [], "deleted_rows": []}
    at.run()
    no_exception(at)
    assert any("Plan B: Plan B, column 'Events', row 3" in e.value and "negative spend" in e.value for e in at.error)
    # an accepted edit changes the result; new inputs above the table start it afresh
    at.session_state["editor-1"] = {"edited_rows": {2: {"Events": 0.0}}, "added_rows": [], "deleted_rows": []}
    at.run()
    no_exception(at)
    edited = at.table[0].value.loc["Plan B", "extra spend"]
    assert edited != before_b
    at.number_input(key="pct-1-2").set_value(110.0).run()
    at.number_input(key="pct-1-2").set_value(100.0).run()
    no_exception(at)
    assert at.table[0].value.loc["Plan B", "extra spend"] == before_b


def test_budget_bounds_edits(run_dir, run):
    at = open_page(run_dir, "Budget")
    key = f"bounds-{run.run_id}"
    at.session_state[key] = {"edited_rows": {1: {"min": 2.0}}, "added_rows": [], "deleted_rows": []}
    at.run()
    no_exception(at)
    assert "Bounds of Events" in at.error[-1].value and not at.table
    at.session_state[key] = {"edited_rows": {1: {"min": 1.0, "max": 1.0}}, "added_rows": [], "deleted_rows": []}
    at.run()
    no_exception(at)
    tab = at.table[0].value
    assert tab.loc["Events", "change"] == "+0.0%"  # held at its current spend


def test_scenarios_page_of_a_run_without_irf(run_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    (old / "posteriors" / "irf.nc").unlink()
    drop_artifact(old, "posteriors/irf.nc")  # a complete run whose manifest lists no irf.nc
    at = open_page(old, "Scenarios")
    no_exception(at)
    assert any("irf.nc" in w.value for w in at.warning)
    at = open_page(old, "Budget")  # the budget needs no impulse responses
    no_exception(at)
    assert len(at.table) == 1


# ---- runs, access -------------------------------------------------------------------------------


def test_run_picker_lists_folder_and_store_runs(run_dir, monkeypatch):
    at = AppTest.from_file(SCRIPT, default_timeout=180)
    monkeypatch.setenv("LTAE_RUNS_DIR", str(run_dir.parent))
    at.run()
    no_exception(at)
    assert at.sidebar.selectbox[0].options == ["small"]
    assert at.title[0].value.startswith("Overview: run ")
    # only the store knows the run: listed by its folder
    monkeypatch.setenv("LTAE_RUNS_DIR", str(run_dir.parent.parent / "data"))
    monkeypatch.setenv("LTAE_STORE", str(run_dir.parent / "ltae_runs.duckdb"))
    at = AppTest.from_file(SCRIPT, default_timeout=180)
    at.run()
    no_exception(at)
    assert at.sidebar.selectbox[0].options == [str(run_dir.resolve())]


def test_bad_run_folder_is_a_message(tmp_path):
    at = open_page(tmp_path, "Overview")
    no_exception(at)
    assert "not a finished" in at.error[0].value


def test_token_required_when_set(run_dir, monkeypatch):
    monkeypatch.setenv("LTAE_DASHBOARD_TOKEN", "s3cret")
    at = open_page(run_dir, "Overview")
    no_exception(at)
    assert not at.title and not at.table  # nothing shown before the token
    at.text_input[0].input("wrong").run()
    assert "Wrong token" in at.error[0].value and not at.table
    at.text_input[0].input("s3cret").run()
    no_exception(at)
    assert at.title[0].value.startswith("Overview: run ")


def test_dashboard_cli_refuses_exposed_host_without_token(tmp_path, monkeypatch):
    monkeypatch.delenv("LTAE_DASHBOARD_TOKEN", raising=False)
    r = runner.invoke(app, ["dashboard", "--runs", str(tmp_path), "--host", "0.0.0.0"])
    assert r.exit_code == 2
    assert "LTAE_DASHBOARD_TOKEN" in r.stderr and "Traceback" not in r.output
    r = runner.invoke(app, ["dashboard", "--runs", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "folder not found" in r.stderr
    assert _is_loopback("127.0.0.1") and _is_loopback("localhost") and _is_loopback("::1")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("192.168.1.5") and not _is_loopback("example.com")


@pytest.mark.slow
@pytest.mark.parametrize("channels", [["Search"], [f"ch{i}" for i in range(7)]], ids=["1-channel", "7-channels"])
def test_any_number_of_channels(tmp_path, channels):
    """Every page and a scenario on runs of 1 and 7 channels (new model shapes: compiles)."""
    from ltae import pipeline
    from ltae.data.synthetic import generate_synthetic_data, save_to_csv

    save_to_csv(generate_synthetic_data(n_weeks=70, seed=3, channels=channels), tmp_path / "data")
    out = tmp_path / "run"
    pipeline.run(tmp_path / "data", out, {"sampling": {"draws": 60, "tune": 60, "chains": 2, "seed": 1},
                                          "replicates": 1}, store_path=tmp_path / "s.duckdb")
    for page in ("Overview", "Budget", "Scenarios"):
        at = open_page(out, page)
        no_exception(at)
        assert at.table, page
    at = open_page(out, "Budget")
    assert list(at.table[0].value.index) == channels
    at = open_page(out, "Scenarios")
    assert len(at.table[0].value) == 2
    run = load_run(out)
    plan = default_plan(run, 4)
    plan[channels[-1]] = plan[channels[-1]] * 2
    tab = run_scenario(run, plan).returns().set_index("channel")
    assert tab.loc[channels[-1], "extra_spend"] > 0 and list(tab.index) == [*channels, "all"]
