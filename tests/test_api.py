"""The HTTP API (`ltae serve`) against a real server: uvicorn on a free loopback port, every route,
auth on and off, the numbers of `ltae scenario` and `ltae optimize`, bad requests (4xx naming the
field), background fits end to end, a restart that finds finished and interrupted jobs, and a
schemathesis fuzz of the OpenAPI schema that must find no server error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from apiserver import LiveServer  # noqa: E402
from conftest import SMALL_RUN_CFG  # noqa: E402

from ltae.analysis.optimize import optimize_budget  # noqa: E402
from ltae.analysis.scenarios import load_run  # noqa: E402
from ltae.cli import app  # noqa: E402
from ltae.serve.api import ServeSettings, check_exposure, create_app, is_loopback  # noqa: E402

runner = CliRunner()
TOKEN = "s3cret-token"
TINY = {"sampling": {"draws": 20, "tune": 20, "chains": 1, "seed": 3}, "replicates": 1}


@pytest.fixture(scope="module")
def run_dir(small_run):
    return small_run[0]


@pytest.fixture(scope="module")
def run_id(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())["run_id"]


@pytest.fixture(scope="module")
def store(run_dir):
    return run_dir.parent / "ltae_runs.duckdb"


@pytest.fixture(scope="module")
def loaded(run_dir):
    return load_run(run_dir)


@pytest.fixture(scope="module")
def server(tmp_path_factory, store):
    root = tmp_path_factory.mktemp("api")
    settings = ServeSettings(runs_root=root / "runs", store=store, data_root=root / "data_root")
    (root / "data_root").mkdir()
    with LiveServer(settings) as srv:
        yield srv


def err(resp) -> tuple[int, list]:
    body = resp.json()
    assert set(body) == {"error", "message", "errors"}, body
    return resp.status_code, [e["field"] for e in body["errors"]]


# ---- service, runs, report, figures ---------------------------------------------------------------


def test_health_and_openapi(server):
    h = server.client.get("/health")
    assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["auth"] is False
    spec = server.client.get("/openapi.json").json()
    for path in ("/health", "/runs", "/runs/{run_id}", "/runs/{run_id}/report", "/runs/{run_id}/figures/{name}",
                 "/predict_roi", "/optimize_budget", "/jobs/{job_id}"):
        assert path in spec["paths"], path
    assert set(spec["paths"]["/runs"]) == {"get", "post"}
    body = spec["paths"]["/runs"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    schemas = spec["components"]["schemas"]
    assert body["application/json"]["schema"]["examples"]
    for name in ("PredictRoiRequest", "OptimizeRequest", "PlanIn", "ErrorBody", "PredictRoiResponse",
                 "OptimizeResponse", "JobOut", "Health"):
        assert schemas[name].get("examples"), name
    assert "422" in spec["paths"]["/predict_roi"]["post"]["responses"]
    assert server.client.get("/docs").status_code == 200


def test_runs_list_and_detail(server, run_id, run_dir, loaded):
    runs = server.client.get("/runs").json()
    row = next(r for r in runs["runs"] if r["run_id"] == run_id)
    assert row["status"] == "complete" and row["source"] == "store" and row["n_channels"] == 4
    d = server.client.get(f"/runs/{run_id}").json()
    assert d["channels"] == loaded.channels
    roi = pd.read_csv(run_dir / "roi.csv").set_index("channel")
    for r in d["roi"]:
        for term in ("short_term", "long_term", "total"):
            got = [r[term][k] for k in ("mean", "lower", "upper")]
            want = roi.loc[r["channel"], [f"{term}_roi_{k}" for k in ("mean", "lower", "upper")]].to_numpy(float)
            np.testing.assert_allclose(got, want, rtol=1e-12)
    assert [c["check"] for c in d["checklist"]] == [c["check"] for c in loaded.checklist]
    man = json.loads((run_dir / "manifest.json").read_text())
    assert sorted(d["figures"]) == sorted(Path(n).name for n in man["artifacts"] if n.startswith("figures/"))
    assert d["diagnostics"]["short_term"]["max_rhat"] == pytest.approx(loaded.diagnostics["short_term"]["max_rhat"])
    assert len(d["budget"]) == 4 and d["report"] == f"/runs/{run_id}/report"


def test_report_and_figures_no_traversal(server, run_id, run_dir):
    rep = server.client.get(f"/runs/{run_id}/report")
    assert rep.status_code == 200 and rep.headers["content-type"].startswith("text/html")
    assert rep.content == (run_dir / "report.html").read_bytes()
    names = server.client.get(f"/runs/{run_id}").json()["figures"]
    assert names
    for n in names:
        f = server.client.get(f"/runs/{run_id}/figures/{n}")
        assert f.status_code == 200 and f.headers["content-type"] == "image/png"
        assert f.content == (run_dir / "figures" / n).read_bytes()
    secret = (run_dir / "manifest.json").read_bytes()
    for bad in ("manifest.json", "..%2Fmanifest.json", "%2E%2E%2Fmanifest.json", "..%2F..%2Fltae_runs.duckdb",
                "nope.png", "%2Fetc%2Fpasswd", "figures%2F..%2Fmanifest.json"):
        r = server.client.get(f"/runs/{run_id}/figures/{bad}")
        assert r.status_code in (404, 422), (bad, r.status_code)
        assert r.content != secret
    assert err(server.client.get("/runs/no-such-run")) == (404, ["run_id"])
    assert err(server.client.get("/runs/no-such-run/report")) == (404, ["run_id"])


# ---- predict_roi ---------------------------------------------------------------------------------


def test_predict_roi_without_plan_is_the_runs_roi(server, run_id, run_dir):
    r = server.client.post("/predict_roi", json={"run_id": run_id})
    assert r.status_code == 200
    body = r.json()
    assert body["scenario"] is None and body["credible_interval"] == 0.95
    roi = pd.read_csv(run_dir / "roi.csv").set_index("channel")
    for row in body["roi"]:
        assert row["total"]["mean"] == pytest.approx(roi.loc[row["channel"], "total_roi_mean"], rel=1e-12)
        assert row["spend"] == pytest.approx(roi.loc[row["channel"], "spend"], rel=1e-12)


def _cli_scenario(run_dir, plan: pd.DataFrame, folder: Path) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    plan.to_csv(folder / "plan.csv", index=False, date_format="%Y-%m-%d")
    res = runner.invoke(app, ["scenario", "--run", str(run_dir), "--plan", str(folder / "plan.csv"),
                              "--out", str(folder / "out")])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(folder / "out" / "scenario.csv")
    return df[(df.scenario == "plan - reference") & (df.phase == "total")].set_index(["channel", "metric"])


def test_predict_roi_plan_gives_the_numbers_of_ltae_scenario(server, run_id, run_dir, loaded, tmp_path):
    start = loaded.last_date + pd.Timedelta(days=14)  # a one-week gap first
    c = float(round(loaded.recent_spend()[loaded.channels.index("Content")]))
    weekly = {"Content": [2 * c, 3 * c, 0.0, c], "events": [0.0, 0.0, 0.0, 0.0]}  # names: any case
    plan = pd.DataFrame({"Date": pd.date_range(start, periods=4, freq="7D"), **weekly})
    tidy = _cli_scenario(run_dir, plan, tmp_path / "cli")
    r = server.client.post("/predict_roi", json={"run_id": run_id, "include_weekly": True,
                                                 "plan": {"start": f"{start:%Y-%m-%d}", "weekly": weekly}})
    assert r.status_code == 200, r.text
    sc = r.json()["scenario"]
    assert sc["plan_start"] == f"{start:%Y-%m-%d}" and sc["reference"] == "recent average"
    assert [x["channel"] for x in sc["returns"]] == [*loaded.channels, "all"]
    for x in sc["returns"]:
        ch = x["channel"]
        for key, metric in (("short_term", "short_term"), ("long_term", "long_term"), ("total", "total_return")):
            want = tidy.loc[(ch, metric), ["mean", "lower", "upper"]].to_numpy(float)
            np.testing.assert_allclose([x[key][k] for k in ("mean", "lower", "upper")], want, rtol=1e-12)
        want_roi = tidy.loc[(ch, "roi"), "mean"]
        if np.isnan(want_roi):
            assert x["roi"] is None
        else:
            assert x["roi"]["mean"] == pytest.approx(want_roi, rel=1e-12)
    # the plan raises Content and cuts Events: a positive and a negative extra spend
    ret = {x["channel"]: x for x in sc["returns"]}
    assert ret["Content"]["extra_spend"] > 0 > ret["Events"]["extra_spend"]
    assert ret["Google"]["extra_spend"] == 0 and ret["Google"]["total"]["mean"] == 0
    assert len(sc["weekly"]) == len(pd.date_range(sc["window_start"], sc["window_end"], freq="7D"))
    assert sc["weekly"][0]["phase"] == "gap"


def test_total_plan_equals_the_same_weekly_plan(server, run_id):
    a = server.client.post("/predict_roi", json={"run_id": run_id, "plan": {"total": {"Google": 52000}, "weeks": 4}})
    b = server.client.post("/predict_roi", json={"run_id": run_id, "plan": {"weekly": {"Google": [13000.0] * 4}}})
    assert a.status_code == b.status_code == 200
    assert a.json()["scenario"] == b.json()["scenario"]
    # against no spend on Google for those weeks: the plan's whole response, positive
    c = server.client.post("/predict_roi", json={"run_id": run_id, "plan": {"total": {"Google": 52000}, "weeks": 4},
                                                 "reference": {"total": {"Google": 0}, "weeks": 4}})
    g = next(x for x in c.json()["scenario"]["returns"] if x["channel"] == "Google")
    assert g["extra_spend"] == pytest.approx(52000) and g["short_term"]["lower"] > 0


@pytest.mark.parametrize("plan, field", [
    ({"weekly": {"TV": [1000.0]}}, "plan.weekly.TV"),
    ({"weekly": {"Content": [1000.0, -5.0]}}, "plan.weekly.Content[1]"),
    ({"weekly": {"Content": [1.0, 2.0], "Google": [1.0]}}, "plan"),
    ({"weekly": {"Content": []}}, "plan.weekly.Content"),
    ({"weekly": {"Content": [1.0]}, "total": {"Content": 1.0}}, "plan"),
    ({"total": {"Content": 1.0}, "weeks": 0}, "plan.weeks"),
    ({"total": {"Content": 1.0}, "weeks": 261}, "plan.weeks"),
    ({"total": {"Content": 1.0}, "start": "2001-01-02"}, "plan.start"),
    ({"total": {"Content": 1.0}, "start": "9999-12-31"}, "plan.start"),
    ({"total": {"Content": 1.0}, "start": "not a date"}, "plan.start"),
    ({"total": {"Content": 1e300}}, "plan.total.Content"),
    ({"total": {}}, "plan"),
    ({"total": {"Content": 1.0}, "extra": 1}, "plan.extra"),
])
def test_predict_roi_bad_plans_name_the_field(server, run_id, plan, field):
    status, fields = err(server.client.post("/predict_roi", json={"run_id": run_id, "plan": plan}))
    assert status == 422 and fields[0] == field, fields


def test_predict_roi_bad_requests(server, run_id, loaded):
    c = server.client
    last = loaded.last_date
    wrong_day = f"{last + pd.Timedelta(days=9):%Y-%m-%d}"
    assert err(c.post("/predict_roi", json={"run_id": run_id, "plan": {"start": wrong_day, "total": {"Google": 1}}})) \
        == (422, ["plan.start"])
    before = f"{last - pd.Timedelta(days=7):%Y-%m-%d}"
    assert err(c.post("/predict_roi", json={"run_id": run_id, "plan": {"start": before, "total": {"Google": 1}}})) \
        == (422, ["plan.start"])
    assert err(c.post("/predict_roi", json={"run_id": run_id, "reference": {"total": {"Google": 1}}})) \
        == (422, ["reference"])
    assert err(c.post("/predict_roi", json={"run_id": "nope"})) == (404, ["run_id"])
    assert err(c.post("/predict_roi", json={"run_id": run_id, "draws": 5})) == (422, ["draws"])
    # NaN and infinity are not numbers a plan can hold (Python's JSON reader accepts the literals)
    for lit in ("NaN", "Infinity", "-Infinity"):
        raw = f'{{"run_id": "{run_id}", "plan": {{"weekly": {{"Google": [1000, {lit}]}}}}}}'
        assert err(c.post("/predict_roi", content=raw, headers={"content-type": "application/json"})) \
            == (422, ["plan.weekly.Google[1]"])
    assert err(c.post("/predict_roi", json={"plan": {}})) == (422, ["run_id", "plan"])


# ---- optimize_budget -----------------------------------------------------------------------------


@pytest.mark.parametrize("budget, bounds, risk, long_term", [
    (None, (0.5, 1.5), None, True),
    (1.1, (0.6, 1.4), None, False),
    (0.9, (0.5, 1.5), 0.25, True),
])
def test_optimize_budget_gives_the_numbers_of_ltae_optimize(server, run_id, run_dir, loaded, tmp_path,
                                                            budget, bounds, risk, long_term):
    amount = None if budget is None else float(round(loaded.response.current.sum() * budget))
    args = ["optimize", "--run", str(run_dir), "--bounds", f"{bounds[0]},{bounds[1]}", "--out",
            str(tmp_path / "b.csv")]
    args += [] if amount is None else ["--budget", repr(amount)]
    args += [] if risk is None else ["--risk-quantile", str(risk)]
    args += [] if long_term else ["--short-term-only"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    cli = pd.read_csv(tmp_path / "b.csv").set_index("channel")
    body = {"run_id": run_id, "bounds": {"low": bounds[0], "high": bounds[1]}, "include_long_term": long_term}
    if amount is not None:
        body["budget"] = amount
    if risk is not None:
        body["risk_quantile"] = risk
    r = server.client.post("/optimize_budget", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["success"] and [a["channel"] for a in out["allocation"]] == list(cli.index)
    for a in out["allocation"]:
        row = cli.loc[a["channel"]]
        np.testing.assert_allclose([a["current_spend"], a["optimal_spend"], a["change_pct"],
                                    a["expected_return"]["mean"], a["expected_return"]["lower"],
                                    a["expected_return"]["upper"]],
                                   row[["current_spend", "optimal_spend", "change_pct", "expected_return_mean",
                                        "expected_return_lower", "expected_return_upper"]].to_numpy(float),
                                   rtol=1e-12)
    assert sum(a["optimal_spend"] for a in out["allocation"]) == pytest.approx(out["budget"], rel=1e-6)
    t = out["total_return"]
    assert t["lower"] <= t["mean"] <= t["upper"]


def test_optimize_budget_channel_bounds(server, run_id, loaded):
    bounds = {"Content": (0.9, 1.0), "Google": (1.0, 1.2)}
    want = optimize_budget(loaded.response, None, loaded.channels,
                           {c: bounds.get(c, (0.5, 1.5)) for c in loaded.channels})
    r = server.client.post("/optimize_budget", json={
        "run_id": run_id, "channel_bounds": {"content": {"low": 0.9, "high": 1.0}, "Google": {"low": 1.0, "high": 1.2}}})
    assert r.status_code == 200, r.text
    got = {a["channel"]: a["optimal_spend"] for a in r.json()["allocation"]}
    for row in want.itertuples():
        assert got[row.channel] == pytest.approx(row.optimal_spend, rel=1e-12)
    cur = {a["channel"]: a["current_spend"] for a in r.json()["allocation"]}
    assert 0.9 * cur["Content"] - 1e-6 <= got["Content"] <= cur["Content"] + 1e-6


@pytest.mark.parametrize("body, status, field", [
    ({"budget": -1}, 422, "budget"),
    ({"budget": 0}, 422, "budget"),
    ({"budget": "lots"}, 422, "budget"),
    ({"budget": 1.0}, 422, "budget"),  # below what the bounds allow
    ({"bounds": {"low": 2, "high": 1}}, 422, "bounds"),
    ({"bounds": {"low": -0.5, "high": 1}}, 422, "bounds.low"),
    ({"channel_bounds": {"TV": {"low": 0.5, "high": 1}}}, 422, "channel_bounds.TV"),
    ({"risk_quantile": 1.5}, 422, "risk_quantile"),
    ({"risk_quantile": 0}, 422, "risk_quantile"),
    ({"unknown": 1}, 422, "unknown"),
])
def test_optimize_budget_bad_requests(server, run_id, body, status, field):
    assert err(server.client.post("/optimize_budget", json={"run_id": run_id, **body})) == (status, [field])


def test_malformed_oversized_and_odd_bodies(server, run_id):
    c = server.client
    j = {"content-type": "application/json"}
    assert err(c.post("/optimize_budget", content=b'{"run_id": ', headers=j))[0] == 400
    assert c.post("/optimize_budget", content=b'{"run_id": ', headers=j).json()["error"] == "malformed_json"
    for lit in (b"NaN", b"Infinity", b"1e999"):
        assert err(c.post("/optimize_budget", content=b'{"run_id": "%s", "budget": %s}' % (run_id.encode(), lit),
                          headers=j)) == (422, ["budget"])
    big = b'{"run_id": "' + b"x" * (2 << 20) + b'"}'
    r = c.post("/optimize_budget", content=big, headers=j)
    assert r.status_code == 413 and r.json()["error"] == "too_large"

    def chunks():  # no Content-Length: the limit is counted as the body streams in
        for _ in range(40):
            yield b" " * 65536
    r = c.post("/predict_roi", content=chunks(), headers=j)
    assert r.status_code == 413
    assert err(c.post("/optimize_budget", content=b"[]", headers=j))[0] == 422
    assert err(c.post("/optimize_budget", content=b"run_id=x", headers={"content-type": "text/plain"}))[0] == 422
    assert c.get("/nope").status_code == 404 and c.delete("/runs").status_code == 405


# ---- access ----------------------------------------------------------------------------------------


def test_token_required_on_every_route_but_health(tmp_path, store, run_id):
    settings = ServeSettings(runs_root=tmp_path / "runs", store=store, token=TOKEN)
    with LiveServer(settings, token=TOKEN) as srv:
        anon = httpx.Client(base_url=srv.url, timeout=60)
        wrong = httpx.Client(base_url=srv.url, timeout=60, headers={"Authorization": "Bearer nope"})
        assert anon.get("/health").status_code == 200 and anon.get("/health").json()["auth"] is True
        calls = [("get", "/runs", None), ("get", f"/runs/{run_id}", None), ("get", f"/runs/{run_id}/report", None),
                 ("get", f"/runs/{run_id}/figures/roi_comparison.png", None), ("get", "/jobs", None),
                 ("get", "/jobs/x", None), ("get", "/openapi.json", None), ("get", "/docs", None),
                 ("post", "/predict_roi", {"run_id": run_id}), ("post", "/optimize_budget", {"run_id": run_id}),
                 ("post", "/runs", {"data_path": "x"})]
        for method, path, body in calls:
            for cl in (anon, wrong):
                r = getattr(cl, method)(path, **({"json": body} if body is not None else {}))
                assert r.status_code == 401, (path, r.status_code)
                assert r.headers["www-authenticate"] == "Bearer" and r.json()["errors"][0]["field"] == "Authorization"
        ok = srv.client  # sends the token
        assert ok.get("/runs").status_code == 200
        assert ok.get(f"/runs/{run_id}/report").status_code == 200
        assert ok.post("/predict_roi", json={"run_id": run_id}).status_code == 200
        assert ok.get("/openapi.json").json()["components"]["securitySchemes"]
        anon.close()
        wrong.close()


def test_exposed_host_needs_a_token(tmp_path, monkeypatch):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.com")
    with pytest.raises(Exception, match="LTAE_API_TOKEN"):
        check_exposure("0.0.0.0", None)
    check_exposure("0.0.0.0", TOKEN)  # allowed with a token
    monkeypatch.delenv("LTAE_API_TOKEN", raising=False)
    res = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--runs", str(tmp_path / "r")])
    assert res.exit_code == 2 and "LTAE_API_TOKEN" in res.output
    assert not (tmp_path / "r").exists()  # refused before anything started


def test_ltae_serve_subprocess(tmp_path, store, run_id):
    """`ltae serve` as a user starts it: a new process on a free port; then a second server on the same
    runs folder is refused."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "LTAE_API_TOKEN": ""}
    cmd = [sys.executable, "-m", "ltae", "serve", "--port", str(port), "--runs", str(tmp_path / "runs"),
           "--store", str(store), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "ltae serve did not answer"
            time.sleep(0.3)
        assert httpx.get(f"http://127.0.0.1:{port}/runs/{run_id}", timeout=60).status_code == 200
        res = runner.invoke(app, ["serve", "--port", str(port + 1), "--runs", str(tmp_path / "runs")])
        assert res.exit_code == 2 and "another ltae server" in res.output
    finally:
        proc.terminate()
        proc.wait(30)


# ---- fits: POST /runs and jobs --------------------------------------------------------------------


def _files(folder: Path) -> list:
    return [("files", (p.name, p.read_bytes(), "text/csv")) for p in sorted(folder.glob("*.csv"))]


def test_fit_job_end_to_end_and_restart(tmp_path, small_run):
    """An uploaded data folder fitted in the background (small draws); a restarted server finds it."""
    data = small_run[0].parent.parent / "data"
    settings = ServeSettings(runs_root=tmp_path / "runs", store=tmp_path / "store.duckdb")
    with LiveServer(settings) as srv:
        a = srv.client.post("/runs", files=_files(data), data={"config": json.dumps({**TINY, "horizon": 12})})
        assert a.status_code == 202, a.text
        assert a.headers["location"] == f"/jobs/{a.json()['id']}" and a.json()["state"] == "queued"
        seen: list = []
        job = srv.wait_job(a.json()["id"], seen=seen)
        assert job["state"] == "succeeded", job
        assert job["progress"] == 1.0 and job["steps_done"] == job["steps_total"] == 9
        assert {j["step"] for j in seen if j["state"] == "running"} - {None}  # steps were reported
        d = srv.client.get(f"/runs/{job['run_id']}").json()
        assert d["config"]["horizon"] == 12 and d["config"]["sampling"]["draws"] == TINY["sampling"]["draws"]
        assert not list((tmp_path / "runs" / ".jobs").glob("*.data"))  # the upload is removed once fitted
        r = srv.client.post("/predict_roi", json={"run_id": job["run_id"], "plan": {"total": {"Google": 1e4}}})
        assert r.status_code == 200
    with LiveServer(settings) as srv:  # a restarted server
        again = srv.client.get(f"/jobs/{job['id']}").json()
        assert again["state"] == "succeeded" and again["run_id"] == job["run_id"]
        assert srv.client.get(f"/runs/{job['run_id']}").status_code == 200
        assert [j["id"] for j in srv.client.get("/jobs").json()["jobs"]] == [job["id"]]


def test_one_fit_at_a_time_and_records_survive(tmp_path):
    """The job queue itself, with a stand-in for the pipeline: jobs run one after the other in
    submission order, every state change is on disk, a failing fit is a failed job (the worker goes
    on), and a new manager on the same folder reads the records back."""
    import threading

    from ltae.data.validate import DataValidationError
    from ltae.serve.jobs import JobManager, ServerBusy

    running, overlaps, order = [], [], []
    lock = threading.Lock()

    class Result:
        def __init__(self, rid):
            self.run_id = rid

    def fit(data_path, out, cfg, progress, store_path):
        with lock:
            running.append(out.name)
            overlaps.append(len(running))
            order.append(out.name)
        try:
            for step in ("prepare", "short_term"):
                progress(step, "start")
                time.sleep(0.05)
                progress(step, "done")
            if str(data_path).endswith("bad"):
                raise DataValidationError("column 'x' is odd", file=str(tmp_path / "bad"))
            if str(data_path).endswith("bug"):
                raise RuntimeError("a bug")
            return Result(f"run-{out.name}")
        finally:
            with lock:
                running.remove(out.name)

    done = []
    m = JobManager(tmp_path, tmp_path / "s.duckdb", fit=fit, on_success=lambda rid, out: done.append(rid))
    m.start()
    with pytest.raises(ServerBusy):
        JobManager(tmp_path, tmp_path / "s.duckdb").start()
    ids = [f"job-{i}" for i in range(4)]
    for i, d in zip(ids, ("a", "bad", "bug", "b"), strict=True):
        m.submit(i, tmp_path / d, d, {}, steps_total=2)
    deadline = time.monotonic() + 30
    while any(m.get(i)["state"] in ("queued", "running") for i in ids):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    m.stop(wait=5)
    assert max(overlaps) == 1 and order == ids
    states = [m.get(i)["state"] for i in ids]
    assert states == ["succeeded", "failed", "failed", "succeeded"]
    assert m.get("job-1")["error"] == "bad: column 'x' is odd."  # the server's folder is not shown
    assert "internal error (RuntimeError)" in m.get("job-2")["error"]
    assert done == ["run-job-0", "run-job-3"] and m.get("job-3")["progress"] == 1.0
    m2 = JobManager(tmp_path, tmp_path / "s.duckdb", fit=fit)
    m2.start()
    try:
        assert [m2.get(i)["state"] for i in ids] == states
        assert json.loads((tmp_path / ".jobs" / "job-0.json").read_text())["run_id"] == "run-job-0"
    finally:
        m2.stop()


@pytest.mark.slow
def test_two_real_fits_queue_upload_and_data_root(tmp_path, small_run):
    """Two real fits, an upload and a data-root path: the second waits for the first."""
    data = small_run[0].parent.parent / "data"
    root = tmp_path / "data_root"
    shutil.copytree(data, root / "brand" / "2025")
    settings = ServeSettings(runs_root=tmp_path / "runs", store=tmp_path / "store.duckdb", data_root=root)
    with LiveServer(settings) as srv:
        a = srv.client.post("/runs", files=_files(data), data={"config": json.dumps(TINY)})
        b = srv.client.post("/runs", json={"data_path": "brand/2025", "config": {**TINY, "horizon": 12}})
        assert a.status_code == b.status_code == 202, (a.text, b.text)
        assert b.json()["state"] == "queued" and b.json()["data"] == "brand/2025"
        ids = (a.json()["id"], b.json()["id"])
        deadline = time.monotonic() + 300
        while True:  # both polled together until both end: never both running
            ja, jb = (srv.client.get(f"/jobs/{i}").json() for i in ids)
            assert not (ja["state"] == "running" and jb["state"] == "running")
            if ja["state"] in ("succeeded", "failed") and jb["state"] in ("succeeded", "failed"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert ja["state"] == jb["state"] == "succeeded" and jb["started"] >= ja["finished"]
        assert srv.client.get(f"/runs/{jb['run_id']}").json()["config"]["horizon"] == 12


def _crashed_job(runs_root: Path, job_id: str, small_run) -> None:
    """A job record a server left "running" when it died, and the run folder it was writing (a copy of a
    finished run whose manifest says running, as after a crash between the fits and the end)."""
    run_dir, _ = small_run
    out = runs_root / job_id
    shutil.copytree(run_dir, out)
    man = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({"status": "running", "run_id": man["run_id"],
                                                   "started": man["created"]}))
    from ltae.config import RunConfig

    rec = {"id": job_id, "state": "running", "created": "2025-01-01T00:00:00+00:00",
           "started": "2025-01-01T00:00:01+00:00", "finished": None, "step": "figures", "steps_done": 6,
           "steps_total": 9, "progress": 0.67, "data": "data", "run_id": None, "out_dir": job_id, "error": None,
           "notes": [], "attempts": 1, "config": RunConfig.model_validate(SMALL_RUN_CFG).model_dump(mode="json"),
           "data_path": str(run_dir.parent.parent / "data"), "upload_dir": None}
    (runs_root / ".jobs").mkdir(parents=True, exist_ok=True)
    (runs_root / ".jobs" / f"{job_id}.json").write_text(json.dumps(rec))


def test_restart_resumes_or_marks_interrupted_jobs(tmp_path, small_run):
    resumed_root, marked_root = tmp_path / "a", tmp_path / "b"
    _crashed_job(resumed_root, "job-resume", small_run)
    _crashed_job(marked_root, "job-mark", small_run)
    store = tmp_path / "store.duckdb"
    with LiveServer(ServeSettings(runs_root=marked_root, store=store, resume=False)) as srv:
        job = srv.client.get("/jobs/job-mark").json()
        assert job["state"] == "interrupted" and "stopped during the fit" in job["error"]
        assert srv.client.get("/health").json()["jobs_queued"] == 0
    with LiveServer(ServeSettings(runs_root=resumed_root, store=store)) as srv:
        job = srv.wait_job("job-resume")
        assert job["state"] == "succeeded", job
        assert any("queued again" in n for n in job["notes"]) and job["attempts"] == 2
        detail = srv.client.get(f"/runs/{job['run_id']}").json()
        # the fits were reused from the folder, not refitted
        assert detail["diagnostics"]["short_term"]["resumed"] is True
        assert detail["diagnostics"]["long_term"]["resumed"] is True


def test_fit_requests_that_are_refused(tmp_path, small_run):
    data = small_run[0].parent.parent / "data"
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(data, root / "ok")
    outside = tmp_path / "outside"
    shutil.copytree(data, outside)
    (root / "escape").symlink_to(outside)
    (root / "mixed").mkdir()
    (root / "mixed" / "sales.csv").symlink_to(outside / "sales.csv")
    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    lines = (bad / "sales.csv").read_text().splitlines()
    date, _, rest = lines[5].split(",", 2)
    lines[5] = f"{date},lots,{rest}"  # the target (revenue) on line 6
    (bad / "sales.csv").write_text("\n".join(lines) + "\n")
    with LiveServer(ServeSettings(runs_root=tmp_path / "runs", store=tmp_path / "s.duckdb", data_root=root,
                                  start_worker=False)) as srv:
        c = srv.client
        for path in ("../outside", "ok/../../outside", str(outside), "escape", "mixed", "nope", "/etc/passwd", ""):
            status, fields = err(c.post("/runs", json={"data_path": path}))
            assert status == 422 and fields == ["data_path"], (path, status)
        assert err(c.post("/runs", json={"data_path": "ok", "config": {"sampling": {"draws": 1}}})) \
            == (422, ["config.sampling.draws"])
        assert err(c.post("/runs", json={"data_path": "ok", "config": {"data": {"path": "/etc"}}})) \
            == (422, ["config.data.path"])
        assert err(c.post("/runs", json={"data_path": "ok", "config": {"mlflow": {"enabled": True,
                                                                                  "tracking_uri": "sqlite:////x"}}})) \
            == (422, ["config.mlflow.tracking_uri"])
        assert err(c.post("/runs", json={"data_path": "ok", "config": {"holdout_weeks": 500}}))[0] == 422
        # a bad upload names the file, column and line; nothing is queued and the upload is removed
        r = c.post("/runs", files=_files(bad))
        status, fields = err(r)
        assert status == 422 and fields == ["files"]
        assert "sales.csv" in r.json()["message"] and "line 6" in r.json()["message"]
        assert str(tmp_path) not in r.json()["message"]
        assert err(c.post("/runs", files=[("files", ("x.exe", b"MZ", "application/octet-stream"))])) \
            == (422, ["files[0]"])
        assert err(c.post("/runs", files=_files(data), data={"config": "{not json"})) == (422, ["config"])
        assert err(c.post("/runs", files=_files(data), data={"config": "[1]"})) == (422, ["config"])
        assert err(c.post("/runs", data={"config": "{}"}, files=[]))[0] in (415, 422)
        assert err(c.post("/runs", content=b"x", headers={"content-type": "text/csv"})) == (415, ["Content-Type"])
        assert c.get("/jobs").json()["jobs"] == []
        assert not list((tmp_path / "runs" / ".jobs").glob("*.data"))
        ok = c.post("/runs", json={"data_path": "ok", "config": TINY})  # accepted and queued (no worker here)
        assert ok.status_code == 202 and ok.json()["state"] == "queued"
        assert err(c.get("/jobs/nope")) == (404, ["job_id"])
    with LiveServer(ServeSettings(runs_root=tmp_path / "runs2", store=tmp_path / "s.duckdb")) as srv:
        assert err(srv.client.post("/runs", json={"data_path": "ok"})) == (422, ["data_path"])  # no data root


# ---- fuzz -------------------------------------------------------------------------------------------


def test_openapi_fuzz_finds_no_server_error(tmp_path, store, run_id):
    """Property-based requests from the OpenAPI schema (schemathesis; bounded examples per operation,
    half of them aimed at the real run): no response may be a 5xx, and every response must match the
    schema (status code, content type, body)."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    empty = tmp_path / "data_root"
    empty.mkdir()
    cfg = ServeSettings(runs_root=tmp_path / "runs", store=store, data_root=empty, token=TOKEN)
    spec = create_app(cfg).openapi()
    schema = schemathesis.openapi.from_dict(spec)
    failures: list = []
    calls: list = []
    with LiveServer(cfg, token=TOKEN) as srv:
        for op in schema.get_all_operations():
            operation = op.ok()

            @settings(max_examples=20, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                                  operation.as_strategy(GenerationMode.NEGATIVE)))
            def check(case):
                if isinstance(case.body, dict) and "run_id" in case.body and len(str(case.body["run_id"])) % 2:
                    case.body["run_id"] = run_id
                if case.path_parameters and "run_id" in case.path_parameters and \
                        len(str(case.path_parameters["run_id"])) % 2:
                    case.path_parameters["run_id"] = run_id
                resp = case.call(base_url=srv.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
                calls.append((case.method, case.operation.path, resp.status_code))
                if resp.status_code >= 500:
                    failures.append((case.method, case.formatted_path, case.body, resp.status_code, resp.text))
                for chk in (not_a_server_error, status_code_conformance, content_type_conformance,
                            response_schema_conformance):
                    try:
                        case.validate_response(resp, checks=[chk])
                    except FailureGroup as exc:  # collected, reported below
                        failures.append((case.method, case.formatted_path, case.body, resp.status_code,
                                         str(exc)[:500]))

            check()
    assert not failures, failures[:5]
    assert len(calls) >= 150 and {c[2] for c in calls if c[1] == "/predict_roi"} >= {200, 422}


def test_plan_and_budget_fuzz_finds_no_server_error(server, run_id, loaded):
    """Hypothesis aimed at the numbers: plans and budgets around the run's own (its channels in any
    case, unknown names, zero, tiny, huge and fractional spend, starts near the data end, references),
    bounds and risk levels. Every answer is a 200 with finite or null numbers, or a 4xx naming a field."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    last = loaded.last_date.date()
    names = st.sampled_from([*loaded.channels, *(c.upper() for c in loaded.channels), " google ", "TV", "Date"])
    spend = st.one_of(st.floats(0, 1e15, allow_nan=False), st.sampled_from([0.0, 1e-9, 1.0, 5e4, 1e12, -1.0]))
    weeks = st.integers(1, 30)
    start = st.one_of(st.none(), st.integers(-1, 40).map(lambda k: 7 * k), st.integers(-3, 2000)).map(
        lambda d: None if d is None else str(last + pd.Timedelta(days=d).to_pytimedelta()))

    @st.composite
    def plans(draw):
        n = draw(weeks)
        chans = draw(st.lists(names, min_size=1, max_size=4, unique=True))
        p: dict = {"start": draw(start)}
        if draw(st.booleans()):
            p["weekly"] = {c: draw(st.lists(spend, min_size=n, max_size=n)) for c in chans}
        else:
            p["total"] = {c: draw(spend) for c in chans}
            p["weeks"] = draw(st.one_of(st.none(), weeks))
        return {k: v for k, v in p.items() if v is not None}

    def finite_or_null(x):
        if isinstance(x, dict):
            return all(finite_or_null(v) for v in x.values())
        if isinstance(x, list):
            return all(finite_or_null(v) for v in x)
        return x is None or not isinstance(x, float) or np.isfinite(x)

    seen: list = []

    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(plan=plans(), ref=st.one_of(st.none(), plans()), draws=st.integers(10, 300),
           recent=st.integers(1, 100))
    def predict(plan, ref, draws, recent):
        body = {"run_id": run_id, "plan": plan, "draws": draws, "recent_weeks": recent}
        if ref is not None:
            body["reference"] = ref
        r = server.client.post("/predict_roi", json=body)
        seen.append(("predict", r.status_code))
        assert r.status_code in (200, 422), (body, r.status_code, r.text)
        if r.status_code == 422:
            assert r.json()["errors"][0]["field"].startswith(("plan", "reference")), r.json()
        else:
            assert finite_or_null(r.json())

    cur = float(loaded.response.current.sum())

    @settings(max_examples=30, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(budget=st.one_of(st.none(), st.floats(0.3, 2.0).map(lambda f: f * cur), st.floats(1e-3, 1e15)),
           low=st.floats(0, 2), width=st.floats(0, 2), risk=st.one_of(st.none(), st.floats(0.01, 0.99)),
           lt=st.booleans(), per=st.dictionaries(names, st.tuples(st.floats(0, 1.5), st.floats(0, 1.5)), max_size=2))
    def optimise(budget, low, width, risk, lt, per):
        body = {"run_id": run_id, "budget": budget, "bounds": {"low": low, "high": low + width},
                "risk_quantile": risk, "include_long_term": lt,
                "channel_bounds": {k: {"low": min(v), "high": max(v)} for k, v in per.items()}}
        r = server.client.post("/optimize_budget", json=body)
        seen.append(("optimize", r.status_code))
        assert r.status_code in (200, 422), (body, r.status_code, r.text)
        if r.status_code == 200:
            out = r.json()
            assert finite_or_null(out)
            assert sum(a["optimal_spend"] for a in out["allocation"]) == pytest.approx(out["budget"], rel=1e-4)

    predict()
    optimise()
    assert {(k, s) for k in ("predict", "optimize") for s in (200, 422)} <= set(seen)


def test_run_cache_is_bounded_and_follows_the_folder(tmp_path, run_dir, run_id):
    """A run is read again when its manifest changes; a folder being rewritten is a 409 saying why;
    a folder now holding another run is a 404; at most cache_size runs stay loaded."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(run_dir, a)
    shutil.copytree(run_dir, b)
    man_b = json.loads((b / "manifest.json").read_text())
    man_b["run_id"] = "other-run"
    (b / "manifest.json").write_text(json.dumps(man_b))
    settings = ServeSettings(runs_root=tmp_path / "runs", store=tmp_path / "none.duckdb", cache_size=1)
    with LiveServer(settings) as srv:
        runs = srv.app.state.runs
        runs.add(run_id, a, source="registry")
        runs.add("other-run", b, source="registry")
        assert srv.client.get(f"/runs/{run_id}").status_code == 200
        assert srv.client.get("/runs/other-run").status_code == 200
        assert len(runs) == 1  # the first was dropped
        first = runs.entry("other-run")
        man_b["created"] = "2030-01-01T00:00:00+00:00"  # the folder's manifest changes: read again
        (b / "manifest.json").write_text(json.dumps(man_b))
        assert runs.entry("other-run") is not first
        (a / "manifest.json").write_text(json.dumps({"status": "running", "run_id": "x", "started": "now"}))
        r = srv.client.get(f"/runs/{run_id}")
        assert r.status_code == 409 and "incomplete run folder" in r.json()["message"]
        man_a = json.loads((run_dir / "manifest.json").read_text())
        (a / "manifest.json").write_text(json.dumps({**man_a, "run_id": "newer"}))
        r = srv.client.get(f"/runs/{run_id}")
        assert r.status_code == 404 and "replaced" in r.json()["message"]
        shutil.rmtree(b)
        assert err(srv.client.get("/runs/other-run")) == (404, ["run_id"])
        listed = {r["run_id"]: r["status"] for r in srv.client.get("/runs").json()["runs"]}
        assert listed == {run_id: "incomplete", "other-run": "missing"}
