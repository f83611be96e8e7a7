"""The scheduled-run examples (examples/): they import without Prefect and their dry runs print the week's
commands: a refresh of the latest complete run when ltae has ``refresh``, else a full run, into a dated
folder, then the MLflow registration when asked."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def flow_mod():
    spec = importlib.util.spec_from_file_location("weekly_flow", EXAMPLES / "weekly_flow.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _runs(tmp_path):
    runs = tmp_path / "runs"
    for day, status in (("2025-02-24", "complete"), ("2025-03-03", "complete"), ("2025-03-09", "running")):
        (runs / day).mkdir(parents=True)
        (runs / day / "manifest.json").write_text(json.dumps({"status": status}))
    (runs / "notes").mkdir()
    return runs


def test_flow_imports_and_degrades_without_prefect(flow_mod):
    if importlib.util.find_spec("prefect") is None:
        assert flow_mod.flow is None and flow_mod.weekly_flow is None
    else:
        assert flow_mod.weekly_flow is not None


def test_dry_run_prints_the_weeks_commands(flow_mod, tmp_path, capsys, monkeypatch):
    runs = _runs(tmp_path)
    monkeypatch.setattr(flow_mod, "has_refresh", lambda: True)
    assert flow_mod.main(["--data", "d", "--runs", str(runs), "--date", "2025-03-10", "--store", "s.duckdb",
                          "--mlflow", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].endswith("-m ltae check --data d")
    # the latest complete earlier run (not the one still running), into a dated folder
    assert lines[1].endswith(f"-m ltae refresh --run {runs / '2025-03-03'} --data d --out {runs / '2025-03-10'} "
                             "--store s.duckdb")
    assert lines[2].endswith(f"-m ltae register --run {runs / '2025-03-10'}")
    assert not (runs / "2025-03-10").exists()  # a dry run writes nothing


def test_without_refresh_or_a_previous_run_it_is_a_full_run(flow_mod, tmp_path, monkeypatch):
    runs = _runs(tmp_path)
    monkeypatch.setattr(flow_mod, "has_refresh", lambda: False)
    cmds = flow_mod.plan("d", str(runs), "2025-03-10", config="c.toml")
    assert [c[3] for c in cmds] == ["check", "run"]
    assert cmds[1][4:] == ["--data", "d", "--out", str(runs / "2025-03-10"), "--config", "c.toml"]
    monkeypatch.setattr(flow_mod, "has_refresh", lambda: True)
    first = flow_mod.plan("d", str(tmp_path / "empty"), "2025-03-10")  # no earlier run: fit from scratch
    assert first[1][3] == "run"


def test_a_failing_step_stops_the_job(flow_mod, tmp_path, capsys):
    code = flow_mod.main(["--data", str(tmp_path / "missing"), "--runs", str(tmp_path / "runs"), "--no-prefect"])
    assert code == 1  # `ltae check` exits 2 on missing data; no run is attempted
    out = capsys.readouterr()
    assert "ltae check" in out.out and " run " not in out.out and "exited with 2" in out.err
    assert not (tmp_path / "runs").exists()


def test_cron_script_dry_run(tmp_path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    script = EXAMPLES / "weekly_cron.sh"
    assert subprocess.run([bash, "-n", str(script)]).returncode == 0
    runs = _runs(tmp_path)
    ltae = tmp_path / "ltae"  # a stand-in ltae that has `refresh`
    ltae.write_text("#!/bin/sh\nexit 0\n")
    ltae.chmod(0o755)
    env = {**os.environ, "DRY_RUN": "1", "DATA": "d", "RUNS": str(runs), "TODAY": "2025-03-10", "LTAE": str(ltae),
           "MLFLOW": "1"}
    out = subprocess.run([bash, str(script)], env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [f"+ {ltae} check --data d", f"+ {ltae} refresh --run {runs / '2025-03-03'} --data d --out "
                   f"{runs / '2025-03-10'}", f"+ {ltae} register --run {runs / '2025-03-10'}"]
    ltae.write_text("#!/bin/sh\n[ \"$1\" = refresh ] && exit 2\nexit 0\n")  # an ltae without `refresh`
    out = subprocess.run([bash, str(script)], env={**env, "MLFLOW": "0", "STORE": "s.duckdb"}, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[1] == f"+ {ltae} run --data d --out {runs / '2025-03-10'} --store s.duckdb"
