"""MLflow registry: `ltae register` and `ltae run --mlflow` log params, metrics and artefacts and
register a model version; the registered pyfunc predicts the numbers of `ltae scenario` (round trip:
log, register, load, predict); `ltae serve --model models:/NAME/VERSION` serves it; a failed
registration leaves the finished run usable."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

mlflow = pytest.importorskip("mlflow")
httpx = pytest.importorskip("httpx")

from apiserver import LiveServer  # noqa: E402

from ltae.analysis.scenarios import default_plan, load_run, run_scenario  # noqa: E402
from ltae.cli import app  # noqa: E402
from ltae.config import build_config  # noqa: E402
from ltae.serve.api import ServeSettings  # noqa: E402
from ltae.store.runs import open_run  # noqa: E402

runner = CliRunner()
MODEL = "ltae-test"


@pytest.fixture(scope="module")
def run_dir(small_run):
    return small_run[0]


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def registered(run_dir, uri):
    res = runner.invoke(app, ["register", "--run", str(run_dir), "--mlflow-uri", uri, "--model-name", MODEL])
    assert res.exit_code == 0, res.output
    assert f"registered models:/{MODEL}/1" in res.output
    return f"models:/{MODEL}/1"


@pytest.fixture(scope="module")
def plan(run_dir):
    run = load_run(run_dir)
    p = default_plan(run, 6)
    p["Google"] *= 1.6
    p["Events"] = 0.0
    p = p.drop(columns=["LinkedIn"])  # left out: keeps the recent average
    p["Date"] = p["Date"].dt.strftime("%Y-%m-%d")
    return p


def _client(uri):
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_logged_params_metrics_artifacts_and_version(registered, run_dir, uri):
    client = _client(uri)
    man = json.loads((run_dir / "manifest.json").read_text())
    mv = client.get_model_version(MODEL, "1")
    assert mv.tags["ltae.run_id"] == man["run_id"]
    r = client.get_run(mv.run_id)
    p, m = r.data.params, r.data.metrics
    assert p["ltae_run_id"] == man["run_id"] and p["sampling.draws"] == "100" and p["horizon"] == "24"
    assert p["replicates"] == "2" and "mlflow.tracking_uri" not in p
    roi = pd.read_csv(run_dir / "roi.csv")
    for row in roi.itertuples():
        assert m[f"roi.total.{row.channel}"] == pytest.approx(row.total_roi_mean, rel=1e-12)
        assert m[f"roi.short_term.{row.channel}"] == pytest.approx(row.short_term_roi_mean, rel=1e-12)
    diag = json.loads((run_dir / "diagnostics.json").read_text())
    assert m["short_term.max_rhat"] == pytest.approx(diag["short_term"]["max_rhat"])
    assert m["checklist.total"] == len(diag["checklist"])
    top = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"roi.csv", "budget.csv", "diagnostics.json", "report.html", "manifest.json", "posteriors"} <= top
    post = {a.path for a in client.list_artifacts(r.info.run_id, "posteriors")}
    assert {"posteriors/short_term.nc", "posteriors/long_term.nc", "posteriors/irf.nc"} <= post
    # the model is code plus the run's files: nothing pickled
    with mlflow_tracking(uri):
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=registered))
    files = [f.relative_to(local).as_posix() for f in local.rglob("*") if f.is_file()]
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    assert any(f.endswith("roi_draws.csv") for f in files) and any(f.endswith("short_term.nc") for f in files)


class mlflow_tracking:  # noqa: N801 - a small context manager
    def __init__(self, uri):
        self.uri = uri

    def __enter__(self):
        self.before = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(self.uri)

    def __exit__(self, *exc):
        mlflow.set_tracking_uri(self.before)


def test_round_trip_predict_gives_the_runs_numbers(registered, run_dir, uri, plan):
    with mlflow_tracking(uri):
        model = mlflow.pyfunc.load_model(registered)
    got = model.predict(plan)
    want = run_scenario(run_dir, plan).returns()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_exact=True)
    assert got.set_index("channel").loc["Events", "extra_spend"] < 0
    got300 = model.predict(plan, params={"draws": 300, "recent_weeks": 8})
    want300 = run_scenario(run_dir, plan, recent_weeks=8, max_draws=300).returns()
    pd.testing.assert_frame_equal(got300.reset_index(drop=True), want300, check_exact=True)
    bad = plan.copy()
    bad.loc[2, "Google"] = -5.0
    with pytest.raises(mlflow.exceptions.MlflowException, match="negative"):
        model.predict(bad)


def test_ltae_serve_model_from_the_registry(registered, run_dir, uri, plan, tmp_path):
    run_id = json.loads((run_dir / "manifest.json").read_text())["run_id"]
    settings = ServeSettings(runs_root=tmp_path / "runs", store=tmp_path / "empty.duckdb", models=[registered],
                             mlflow_tracking_uri=uri)
    with LiveServer(settings) as srv:
        listed = srv.client.get("/runs").json()["runs"]
        assert [(r["run_id"], r["source"], r["status"]) for r in listed] == [(run_id, "registry", "complete")]
        weekly = {c: [float(v) for v in plan[c]] for c in plan.columns if c != "Date"}
        r = srv.client.post("/predict_roi", json={"run_id": run_id, "plan": {"start": plan["Date"][0],
                                                                             "weekly": weekly}})
        assert r.status_code == 200, r.text
        want = run_scenario(run_dir, plan).returns().set_index("channel")
        for x in r.json()["scenario"]["returns"]:
            np.testing.assert_allclose([x["total"]["mean"], x["total"]["lower"], x["total"]["upper"]],
                                       want.loc[x["channel"], ["total_mean", "total_lower", "total_upper"]],
                                       rtol=1e-12)
        assert srv.client.post("/optimize_budget", json={"run_id": run_id}).status_code == 200
    assert open_run(tmp_path / "runs" / ".registry" / run_id).run_id == run_id
    res = runner.invoke(app, ["serve", "--model", f"models:/{MODEL}/99", "--mlflow-uri", uri, "--runs",
                              str(tmp_path / "runs2")])
    assert res.exit_code == 2 and "cannot fetch" in res.output


def _rerun_args(small_run, tmp_path) -> tuple[list, Path]:
    """`ltae run` into a copy of the small run's folder with its data and settings: the fits are
    resumed, not redone."""
    run_dir, _ = small_run
    out = tmp_path / "out"
    shutil.copytree(run_dir, out)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("replicates = 2\n")
    return ["run", "--data", str(run_dir.parent.parent / "data"), "--out", str(out), "--config", str(cfg),
            "--draws", "100", "--tune", "100", "--chains", "2", "--seed", "5"], out


def test_ltae_run_mlflow(small_run, tmp_path, monkeypatch):
    """`ltae run --mlflow`, the tracking URI from MLFLOW_TRACKING_URI, registers the new run."""
    args, out = _rerun_args(small_run, tmp_path)
    good = f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", good)
    res = runner.invoke(app, [*args, "--mlflow"])
    assert res.exit_code == 0, res.output
    assert "resumed" in res.output and "registered models:/ltae/1" in res.output
    run_id = open_run(out).run_id
    mv = _client(good).get_model_version("ltae", "1")
    assert mv.tags["ltae.run_id"] == run_id
    assert _client(good).get_run(mv.run_id).data.params["ltae_run_id"] == run_id
    assert (tmp_path / "ml" / "artifacts").is_dir()  # next to the database, not in the current folder
    assert not list(Path.cwd().glob("mlruns"))


def test_register_errors(run_dir, tmp_path):
    res = runner.invoke(app, ["register", "--run", str(run_dir), "--mlflow-uri", "nosuchscheme://x"])
    assert res.exit_code == 2 and "logging to MLflow failed" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["register", "--run", str(tmp_path), "--mlflow-uri", f"sqlite:///{tmp_path}/m.db"])
    assert res.exit_code == 2 and "not a finished ltae run" in res.output


@pytest.mark.slow
def test_failed_registration_keeps_the_run(small_run, tmp_path):
    """With an unusable tracking URI the run still completes and the error says how to register later."""
    args, out = _rerun_args(small_run, tmp_path)
    res = runner.invoke(app, [*args, "--mlflow-uri", "nosuchscheme://x"])
    assert res.exit_code == 2, res.output
    assert "register it later with `ltae register --run" in " ".join(res.output.split())
    run_id = open_run(out).run_id  # complete and usable
    good = f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}"
    res = runner.invoke(app, ["register", "--run", str(out), "--mlflow-uri", good])
    assert res.exit_code == 0 and _client(good).get_model_version("ltae", "1").tags["ltae.run_id"] == run_id


def test_mlflow_config_key(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[mlflow]\nenabled = true\ntracking_uri = "sqlite:///x.db"\nmodel_name = "brand"\n')
    cfg = build_config(f)
    assert cfg.mlflow.enabled and cfg.mlflow.tracking_uri == "sqlite:///x.db" and cfg.mlflow.model_name == "brand"
    f.write_text("[mlflow]\nenable = true\n")
    with pytest.raises(Exception, match="mlflow.enable"):
        build_config(f)
    # not part of any step key: turning it on does not refit anything
    a, b = build_config(None), build_config(None, {"mlflow": {"enabled": True}})
    assert b.mlflow.enabled and a.step_key("short_term", "h") == b.step_key("short_term", "h")
    assert a.step_key("bvar", "h", "u") == b.step_key("bvar", "h", "u")


@pytest.mark.slow
def test_mlflow_models_serve(registered, run_dir, uri, plan):
    """`mlflow models serve` (this environment) answers /invocations with the run's numbers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    bindir = str(Path(sys.executable).parent)  # the venv's uvicorn, as in an activated environment
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.Popen([mlflow_bin, "models", "serve", "-m", registered, "--env-manager", "local", "--host",
                             "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.5)
        def split(df):  # exact floats (json.dumps writes repr; pandas' to_json rounds to 10 digits)
            return {"dataframe_split": {"columns": list(df.columns), "data": df.astype(object).values.tolist()}}

        body = split(plan)
        r = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=120)
        assert r.status_code == 200, r.text
        got = pd.DataFrame(r.json()["predictions"])
        want = run_scenario(run_dir, plan).returns()
        np.testing.assert_allclose(got["total_mean"], want["total_mean"], rtol=1e-12)
        bad = plan.copy()
        bad.loc[1, "Google"] = -1.0
        r = httpx.post(f"http://127.0.0.1:{port}/invocations",
                       json=split(bad), timeout=60)
        assert r.status_code == 400 and "negative" in r.text
    finally:
        proc.terminate()
        proc.wait(30)
