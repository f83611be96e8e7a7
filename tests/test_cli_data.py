"""CLI: generate, check, prepare; clean errors (exit 2, one red line, no traceback, no output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from data_cases import BAD_CASES, Case, make_folder, set_cell
from typer.testing import CliRunner

from ltae import __version__
from ltae.cli import app

runner = CliRunner()


def invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "data")


def assert_clean_error(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert err.startswith("error: ")
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in result.output
    return err


@pytest.mark.parametrize("case", BAD_CASES, ids=[c.id for c in BAD_CASES])
def test_prepare_rejects_bad_input(tmp_path, case: Case):
    folder = make_folder(tmp_path / "data")
    extra = case.mutate(folder)
    out = tmp_path / "out" / "prepared_data.csv"
    result = invoke("prepare", "--data", folder, "--out", out, *extra)
    err = assert_clean_error(result)
    if case.file:
        assert case.file in err
    if case.column:
        assert f"column '{case.column}'" in err
    if case.row:
        assert f"line {case.row}" in err
    for w in case.words:
        assert w in err
    assert not out.exists() and not (tmp_path / "out").exists()
    assert result.stdout == ""


def test_generate_check_prepare(tmp_path):
    data = tmp_path / "gen"
    res = invoke("generate", "--out", data, "--weeks", "60", "--seed", "3", "--channels", "TV,Search")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in data.iterdir()) == sorted(
        ["sales.csv", "marketing_spend.csv", "brand_metrics.csv", "competitor_activity.csv",
         "macroeconomic_indicators.csv", "truth.json"])
    assert "True ROIs" in res.stdout and "Search" in res.stdout
    truth = json.loads((data / "truth.json").read_text())
    assert set(truth["channels"]) == {"TV", "Search"}

    res = invoke("check", "--data", data, "--json", tmp_path / "q.json")
    assert res.exit_code == 0, res.output
    assert "data OK" in res.stdout and "VIF" in res.stdout
    rep = json.loads((tmp_path / "q.json").read_text())
    assert rep["valid"] and rep["dataset"]["n_weeks"] == 60 and rep["dataset"]["channels"] == ["TV", "Search"]

    out = tmp_path / "prepared_data.csv"
    res = invoke("prepare", "--data", data, "--out", out, "--controls", "GDP_Growth", "--brand", "")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert list(df.columns) == ["Date", "revenue", "TV", "Search", "GDP_Growth"]
    assert len(df) == 60 and df["Date"].iloc[0] == "2021-01-04"
    roles = json.loads((tmp_path / "prepared_data.roles.json").read_text())
    assert roles["channels"] == ["TV", "Search"] and roles["controls"] == ["GDP_Growth"]
    # the prepared file is valid input without role options
    res = invoke("check", "--data", out)
    assert res.exit_code == 0, res.output
    # no temporary files left behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_check_fails_on_one_corrupted_column(folder):
    assert invoke("check", "--data", folder).exit_code == 0
    set_cell("competitor_activity.csv", 20, "Competitor_A_Spend", "lots")(folder)
    err = assert_clean_error(invoke("check", "--data", folder, "--json", folder / "q.json"))
    assert err == (
        "error: competitor_activity.csv, column 'Competitor_A_Spend', line 22 (Date 2021-05-24): value 'lots' "
        "is not a number; use plain numbers (e.g. 1234.5) in 'Competitor_A_Spend'; empty cells are allowed."
    )
    assert not (folder / "q.json").exists()
    # leaving the bad column out makes the data valid again
    assert invoke("check", "--data", folder, "--controls", "GDP_Growth").exit_code == 0


def test_role_options_for_a_wide_file(tmp_path, folder):
    wide = tmp_path / "wide.csv"
    invoke("prepare", "--data", folder, "--out", wide)
    (tmp_path / "wide.roles.json").unlink()
    err = assert_clean_error(invoke("check", "--data", wide))
    assert "--channels" in err
    res = invoke("check", "--data", wide, "--channels", "Google, LinkedIn", "--controls", "GDP_Growth",
                 "--target", "REVENUE", "--min-weeks", "10")
    assert res.exit_code == 0, res.output
    err = assert_clean_error(invoke("check", "--data", wide, "--channels", "Google,TikTok"))
    assert "column 'TikTok', line 1" in err


def test_missing_data_path(tmp_path):
    err = assert_clean_error(invoke("check", "--data", tmp_path / "nope"))
    assert "no such file or folder" in err


def test_unexpected_errors_are_one_line_unless_debug(folder, monkeypatch):
    import ltae.data

    def boom(*a, **k):
        raise RuntimeError("kaput")

    monkeypatch.setattr(ltae.data, "load_dataset", boom)
    err = assert_clean_error(invoke("check", "--data", folder), code=1)
    assert "RuntimeError: kaput" in err and "--debug" in err
    res = invoke("--debug", "check", "--data", folder)
    assert res.exit_code == 1 and "Traceback" in res.stderr
    res = invoke("check", "--data", folder, env={"LTAE_DEBUG": "1"})
    assert res.exit_code == 1 and "Traceback" in res.stderr


def test_version_and_help():
    res = invoke("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"ltae {__version__}"
    for cmd in ("generate", "check", "prepare"):
        res = invoke(cmd, "--help")
        assert res.exit_code == 0 and "--" in res.stdout
    res = invoke("--help")
    assert all(c in res.stdout for c in ("generate", "check", "prepare"))


def test_real_entry_point_exit_code_and_stderr(tmp_path, folder):
    set_cell("marketing_spend.csv", 15, "Spend", "-120")(folder)
    out = tmp_path / "p.csv"
    env = {**os.environ, "LTAE_DEBUG": ""}
    proc = subprocess.run([sys.executable, "-m", "ltae", "prepare", "--data", str(folder), "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: marketing_spend.csv, column 'Spend', line 17")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not out.exists()
    assert Path(sys.executable).exists()


def test_bad_option_values_are_usage_errors(tmp_path):
    res = invoke("generate", "--out", tmp_path / "g", "--channels", "A,A")
    assert res.exit_code == 2 and "unique" in res.output and "Traceback" not in res.output
    res = invoke("generate", "--out", tmp_path / "g", "--weeks", "2")
    assert res.exit_code == 2 and not (tmp_path / "g").exists()


def test_prepare_into_a_folder(tmp_path, folder):
    out = tmp_path / "out"
    out.mkdir()
    assert invoke("prepare", "--data", folder, "--out", out).exit_code == 0
    assert (out / "prepared_data.csv").is_file() and (out / "prepared_data.roles.json").is_file()
