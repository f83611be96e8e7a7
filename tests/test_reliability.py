"""Reliability (issue 17): runs that share a store or a folder, resume that cannot mix posteriors,
run completeness, hostile names, configuration errors, strict JSON, private compile cache.

The expensive scenarios (a pipeline run killed with SIGKILL at a step, a swapped posterior) use
small draws on the 80-week data set of tests/test_pipeline.py, whose model structure is compiled
once per machine; the kill at every step is parametrised, two steps in the default run, the
others marked slow.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ltae import pipeline
from ltae.cli import app
from ltae.data.synthetic import generate_synthetic_data, save_to_csv
from ltae.store import artifacts as art
from ltae.store import lock as runlock
from ltae.store.results import StoreBusyError, list_runs, record_run
from ltae.store.runs import RunFolderError, open_run, posterior_attrs

CFG = {"sampling": {"draws": 100, "tune": 100, "chains": 2, "seed": 5}, "replicates": 2}
TMP = ".ltae-tmp-"


def strict_json(text: str):
    """json.loads that rejects NaN / Infinity (RFC 8259)."""
    def bad(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=bad)


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(f"{TMP}*")]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    save_to_csv(generate_synthetic_data(n_weeks=80, seed=4), d)
    return d


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """An uninterrupted run: (result, folder)."""
    out = tmp_path_factory.mktemp("ref") / "r"
    res = pipeline.run(data_dir, out, CFG, store_path=out.parent / "store.duckdb")
    return res, out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --------------------------------------------------------------------------------------------
# kill -9 at every step, then a re-run: the same roi.csv
# --------------------------------------------------------------------------------------------

KILL_AT_STEP = textwrap.dedent("""
    import json, os, signal, sys
    from ltae import pipeline

    data, out, store, step, cfg = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])

    def progress(s, status):
        if s == step and status == "start":
            os.kill(os.getpid(), signal.SIGKILL)

    pipeline.run(data, out, cfg, progress=progress, store_path=store)
""")


@pytest.mark.parametrize("step", [
    pytest.param("short_term", marks=pytest.mark.slow),  # MMM fit
    "long_term",                                          # BVAR fit
    pytest.param("figures", marks=pytest.mark.slow),
    pytest.param("report", marks=pytest.mark.slow),
    "store",
])
def test_kill_at_step_then_rerun_gives_the_same_roi(step, data_dir, reference, tmp_path):
    ref, ref_out = reference
    out, store = tmp_path / "k", tmp_path / "s.duckdb"
    p = subprocess.Popen([sys.executable, "-c", KILL_AT_STEP, str(data_dir), str(out), str(store), step,
                          json.dumps(CFG)], stderr=subprocess.PIPE, text=True)
    _, err = p.communicate(timeout=600)
    assert p.returncode == -signal.SIGKILL, err[-2000:]
    # the killed run left an incomplete folder: refused, and a stale lock nobody holds
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "running"
    with pytest.raises(RunFolderError, match="incomplete"):
        open_run(out)
    assert (out / runlock.LOCK_NAME).exists() and runlock.owner(out) is None
    assert (out / "roi.csv").exists() == (step == "store")
    if step == "store":
        assert not store.exists() or list_runs(store).empty
    notes = []
    res = pipeline.run(data_dir, out, CFG, store_path=store,
                       progress=lambda s, status: notes.append(status) if status.startswith("note:") else None)
    assert any("took over a stale lock" in n and f"pid {p.pid}" in n for n in notes), notes
    after_fit = STEP_ORDER.index(step) > STEP_ORDER.index("short_term")
    assert res.diagnostics["short_term"]["resumed"] is after_fit
    assert res.diagnostics["long_term"]["resumed"] is (STEP_ORDER.index(step) > STEP_ORDER.index("long_term"))
    assert (out / "roi.csv").read_text() == (ref_out / "roi.csv").read_text()
    saved = open_run(out)
    assert saved.run_id == res.run_id and saved.manifest["status"] == "complete"
    assert list_runs(store).run_id.tolist() == [res.run_id]
    assert not leftovers(out) and not (out / runlock.LOCK_NAME).exists()


STEP_ORDER = list(pipeline.STEPS)


# --------------------------------------------------------------------------------------------
# resume never reuses another run's posterior
# --------------------------------------------------------------------------------------------

def test_swapped_posterior_is_refused_on_resume(data_dir, reference, tmp_path):
    """The issue's case: a 100-draw run, a 150-draw run of the same data, the second's short-term
    posterior copied into the first's folder, the first command run again."""
    ref, ref_out = reference
    a = copy_run(ref_out, tmp_path / "a")
    b_cfg = {**CFG, "sampling": {**CFG["sampling"], "draws": 150}}
    pipeline.run(data_dir, tmp_path / "b", b_cfg, store_path=tmp_path / "s.duckdb")
    shutil.copy(tmp_path / "b" / "posteriors" / "short_term.nc", a / "posteriors" / "short_term.nc")
    # the folder is now mixed: every loader refuses it
    with pytest.raises(RunFolderError, match="mixed run folder: posteriors/short_term.nc"):
        open_run(a)
    r = CliRunner().invoke(app, ["optimize", "--run", str(a)])
    assert r.exit_code == 2 and "mixed run folder" in r.output
    # and resume does not reuse the foreign posterior: it refits with 100 draws
    notes = []
    res = pipeline.run(data_dir, a, CFG, store_path=tmp_path / "s.duckdb",
                       progress=lambda s, status: notes.append(status) if status.startswith("note:") else None)
    assert res.diagnostics["short_term"]["resumed"] is False
    # the refit short-term posterior has the key the long-term one was fitted on: that one is reused
    assert res.diagnostics["long_term"]["resumed"] is True
    assert any("not reusing posteriors/short_term.nc" in n for n in notes), notes
    post = open_run(a).posterior("short_term")["posterior"]
    assert post.sizes["draw"] == 100 and post.sizes["chain"] == 2
    assert (a / "roi.csv").read_text() == (ref_out / "roi.csv").read_text()


def test_resume_checks_the_posteriors_own_key_and_shape(reference, tmp_path):
    """A posterior whose embedded key matches but whose draws do not (a forged or stale key) is
    not reused; neither is one of another step, nor a file without a key (older versions)."""
    import xarray as xr

    _, ref_out = reference
    post = ref_out / "posteriors" / "short_term.nc"
    attrs = posterior_attrs(post)
    key = attrs["ltae_key"]
    expect = {"chain": 2, "draw": 100}
    ok, why = pipeline._saved_posterior(post, "short_term", key, expect)
    assert ok is not None and why is None
    assert pipeline._saved_posterior(post, "short_term", key, {"chain": 2, "draw": 150}) == (
        None, "has 100 draws, this run needs 150")
    assert pipeline._saved_posterior(post, "long_term", key, expect)[0] is None
    assert "other data or settings" in pipeline._saved_posterior(post, "short_term", "0" * 16, expect)[1]
    tree = xr.open_datatree(post, engine="h5netcdf").load()
    tree.attrs = {}
    art.write_netcdf(tmp_path / "old.nc", tree)
    assert "key none" in pipeline._saved_posterior(tmp_path / "old.nc", "short_term", key, expect)[1]
    (tmp_path / "bad.nc").write_bytes(b"not a netcdf file")
    assert "cannot be read" in pipeline._saved_posterior(tmp_path / "bad.nc", "short_term", key, expect)[1]
    # the long-term posterior names its upstream: the short-term key of the same run
    lt = posterior_attrs(ref_out / "posteriors" / "long_term.nc")
    assert lt["ltae_upstream_key"] == key and lt["ltae_data_hash"] == attrs["ltae_data_hash"]
    assert json.loads(lt["ltae_fit_info"])["draws"] == 100


def test_long_term_key_covers_the_short_term_step():
    from ltae.config import RunConfig

    cfg = RunConfig()
    assert cfg.step_key("bvar", "d", upstream="a") != cfg.step_key("bvar", "d", upstream="b")


# --------------------------------------------------------------------------------------------
# run completeness: open_run and the folders it refuses
# --------------------------------------------------------------------------------------------

def test_open_run_gives_a_small_saved_run(reference):
    res, out = reference
    saved = open_run(out)
    assert saved.run_id == res.run_id and saved.config.sampling.draws == 100
    assert saved.dataset.data_hash() == saved.data_hash == res.dataset_summary["data_hash"]
    assert set(saved.keys) == {"data", "short_term", "long_term"}
    roi = saved.roi()
    assert list(roi.channel) == list(res.roi.channel)
    assert np.allclose(roi.total_roi_mean, res.roi.total_roi_mean)
    assert saved.roi_draws().shape[1] == 3 * len(roi)
    assert saved.posterior("long_term")["posterior"].sizes["chain"] == 2
    assert saved.fit_info("short_term")["draws"] == 100
    assert saved.paths["roi.csv"] == out / "roi.csv" and "posteriors/short_term.nc" in saved.paths
    assert saved.diagnostics()["short_term"]["resumed"] is False
    for name, digest in saved.manifest["artifacts"].items():
        assert art.sha256_file(out / name) == digest


def test_open_run_refuses_missing_unfinished_changed_and_busy_folders(reference, tmp_path):
    _, out = reference
    with pytest.raises(RunFolderError, match="no such run folder"):
        open_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="no manifest.json"):
        open_run(tmp_path / "empty")
    old = copy_run(out, tmp_path / "old")  # written by an older ltae: no status
    man = json.loads((old / "manifest.json").read_text())
    man.pop("status")
    (old / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(RunFolderError, match="older ltae"):
        open_run(old)
    changed = copy_run(out, tmp_path / "changed")
    roi = pd.read_csv(changed / "roi.csv")
    roi.loc[0, "total_roi_mean"] += 1
    roi.to_csv(changed / "roi.csv", index=False)
    with pytest.raises(RunFolderError, match="mixed run folder: roi.csv"):
        open_run(changed)
    open_run(changed, verify=False)  # the cheap check (keys only) does not read every byte
    gone = copy_run(out, tmp_path / "gone")
    (gone / "budget.csv").unlink()
    with pytest.raises(RunFolderError, match="budget.csv is missing"):
        open_run(gone)
    busy = copy_run(out, tmp_path / "busy")
    with runlock.RunLock(busy, "someone"):
        with pytest.raises(RunFolderError, match="a run is writing into this folder now"):
            open_run(busy)
    open_run(busy)


def test_rerun_that_fails_part_way_leaves_a_folder_optimize_refuses(reference, tmp_path):
    """New data into a finished run's folder, failing before the fit: new prepared data beside old
    posteriors; the manifest says running, so optimize and open_run refuse it."""
    _, out = reference
    folder = copy_run(out, tmp_path / "f")
    other = tmp_path / "other_data"
    save_to_csv(generate_synthetic_data(n_weeks=80, seed=9), other)

    def fail(step, status):
        if step == "short_term" and status == "start":
            raise RuntimeError("simulated failure")

    with pytest.raises(RuntimeError, match="simulated"):
        pipeline.run(other, folder, CFG, progress=fail, store_path=tmp_path / "s.duckdb")
    assert json.loads((folder / "manifest.json").read_text())["status"] == "running"
    assert not (folder / runlock.LOCK_NAME).exists()  # released on the error
    r = CliRunner().invoke(app, ["optimize", "--run", str(folder), "--budget", "1000000"])
    assert r.exit_code == 2 and "incomplete run folder" in r.output and "Traceback" not in r.output
    with pytest.raises(RunFolderError, match="incomplete"):
        pipeline.load_saved_run(folder)
    assert not list((folder).glob("budget_*.csv"))


# --------------------------------------------------------------------------------------------
# one run per folder
# --------------------------------------------------------------------------------------------

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from ltae.store.lock import RunLock
    RunLock(sys.argv[1], "holder").acquire()
    print("held", flush=True)
    time.sleep(120)
""")


def test_second_run_into_a_folder_is_refused_before_any_work(reference, data_dir, tmp_path):
    _, out = reference
    folder = copy_run(out, tmp_path / "busy")
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.name != runlock.LOCK_NAME}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t = time.perf_counter()
        r = CliRunner().invoke(app, ["run", "--data", str(data_dir), "--out", str(folder), "--draws", "100",
                                     "--tune", "100", "--chains", "2", "--store", str(tmp_path / "s.duckdb")])
        assert r.exit_code == 2, r.output
        assert f"pid {holder.pid}" in r.output and "in use by another ltae run" in r.output
        assert time.perf_counter() - t < 10  # at once, not after a fit
        with pytest.raises(runlock.RunFolderBusy):  # the Python API too
            pipeline.run(data_dir, folder, CFG, store_path=tmp_path / "s.duckdb")
    finally:
        holder.kill()
        holder.wait()
    after = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.name != runlock.LOCK_NAME}
    assert after == before  # nothing written
    assert not (tmp_path / "s.duckdb").exists()
    open_run(folder)  # still the complete first run
    # the holder is gone (killed): its lock is stale and the next run takes it over
    lk = runlock.RunLock(folder).acquire()
    try:
        assert lk.notices and f"pid {holder.pid}" in lk.notices[0]
    finally:
        lk.release()
    assert not (folder / runlock.LOCK_NAME).exists()


def test_lock_is_exclusive_and_released(tmp_path):
    a = runlock.RunLock(tmp_path / "x", "run-a").acquire()
    info = runlock.owner(tmp_path / "x")
    assert info["pid"] == os.getpid() and info["run_id"] == "run-a"
    with pytest.raises(runlock.RunFolderBusy, match="run-a"):
        runlock.RunLock(tmp_path / "x", "run-b").acquire()
    a.release()
    assert runlock.owner(tmp_path / "x") is None and not (tmp_path / "x" / runlock.LOCK_NAME).exists()
    with runlock.RunLock(tmp_path / "x", "run-b") as b:
        assert not b.notices  # released cleanly: nothing stale to take over


@pytest.mark.slow
def test_two_concurrent_cli_runs_into_one_folder(data_dir, tmp_path):
    code = ("import sys; from ltae.cli import app; sys.argv = ['ltae'] + sys.argv[1:]; app()")
    args = ["run", "--data", str(data_dir), "--out", str(tmp_path / "o"), "--draws", "100", "--tune", "100",
            "--chains", "2", "--store", str(tmp_path / "s.duckdb")]
    procs = [subprocess.Popen([sys.executable, "-c", code, *args, "--seed", str(s)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    assert "in use by another ltae run" in "".join(e for _, e in outs)
    saved = open_run(tmp_path / "o")
    assert list_runs(tmp_path / "s.duckdb").run_id.tolist() == [saved.run_id]


@pytest.mark.slow
def test_two_concurrent_cli_runs_into_one_store_both_land(data_dir, tmp_path):
    code = ("import sys; from ltae.cli import app; sys.argv = ['ltae'] + sys.argv[1:]; app()")
    procs = [subprocess.Popen([sys.executable, "-c", code, "run", "--data", str(data_dir), "--out",
                               str(tmp_path / f"o{s}"), "--draws", "100", "--tune", "100", "--chains", "2",
                               "--seed", str(s), "--store", str(tmp_path / "s.duckdb")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ids = {open_run(tmp_path / f"o{s}").run_id for s in (1, 2)}
    assert set(list_runs(tmp_path / "s.duckdb").run_id) == ids


# --------------------------------------------------------------------------------------------
# the results store
# --------------------------------------------------------------------------------------------

FAKE_RESULT = textwrap.dedent("""
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd


    def fake_result(run_id, out_dir="/tmp/x"):
        # the parts of a RunResult that record_run reads
        roi = pd.DataFrame({"channel": ["a", "b"], "spend": [1.0, 2.0]})
        for term in ("short_term", "long_term", "total"):
            for s in ("mean", "lower", "upper"):
                roi[f"{term}_roi_{s}"] = 1.0
        return SimpleNamespace(
            run_id=run_id, out_dir=out_dir, roi=roi, timings={"total_s": 1.0},
            config={"sampling": {"sampler": "nutpie", "draws": 10, "chains": 1, "seed": 1}},
            diagnostics={"short_term": {"max_rhat": float("nan"), "min_ess_bulk": 10.0}}, checklist=[],
            dataset_summary={"data_hash": "h", "source": "s"},
            short=SimpleNamespace(sales=np.zeros(5), channels=["a", "b"]))
""")
_ns: dict = {}
exec(FAKE_RESULT, _ns)
fake_result = _ns["fake_result"]

WRITER = FAKE_RESULT + textwrap.dedent("""
    import sys
    from ltae.store.results import record_run
    for i in range(int(sys.argv[2])):
        record_run(sys.argv[1], fake_result(f"{sys.argv[3]}-{i}"))
""")

HOLD_STORE = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
""")


def test_concurrent_writers_all_land_their_records(tmp_path):
    store = tmp_path / "s.duckdb"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store), "15", f"w{k}"],
                              stderr=subprocess.PIPE, text=True) for k in range(3)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    ids = set(list_runs(store).run_id)
    assert ids == {f"w{k}-{i}" for k in range(3) for i in range(15)}
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT count(*) FROM roi").fetchone()[0] == 90
    assert con.execute("SELECT count(*) FROM diagnostics WHERE value IS NULL").fetchone()[0] == 45  # NaN R-hat
    con.close()


def test_writer_waits_for_a_held_store_and_times_out_clearly(tmp_path):
    store = tmp_path / "s.duckdb"
    record_run(store, fake_result("first"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_STORE, str(store), "2"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t = time.perf_counter()
        record_run(store, fake_result("waited"))  # waits for the holder instead of failing
        assert time.perf_counter() - t > 0.5
    finally:
        holder.wait()
    assert set(list_runs(store).run_id) == {"first", "waited"}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_STORE, str(store), "20"], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusyError, match=f"results store {store} is locked"):
            record_run(store, fake_result("late"), timeout=1)
        with pytest.raises(StoreBusyError):  # readers wait the same way
            list_runs(store, timeout=0.5)
        os.environ["LTAE_STORE_TIMEOUT"] = "0.5"
        try:
            r = CliRunner().invoke(app, ["runs", "--store", str(store)])
        finally:
            del os.environ["LTAE_STORE_TIMEOUT"]
        assert r.exit_code == 1 and "is locked by another process" in r.output and "Traceback" not in r.output
    finally:
        holder.kill()
        holder.wait()


def test_runs_is_read_only_and_never_creates(tmp_path):
    store = tmp_path / "none.duckdb"
    r = CliRunner().invoke(app, ["runs", "--store", str(store)])
    assert r.exit_code == 0 and "no runs recorded" in r.output and not store.exists()
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    r = CliRunner().invoke(app, ["runs", "--store", str(empty)])
    assert r.exit_code == 0
    con = duckdb.connect(str(empty), read_only=True)
    assert con.execute("SELECT count(*) FROM information_schema.tables").fetchone()[0] == 0  # no tables made
    con.close()
    r = CliRunner().invoke(app, ["runs", "--store", str(empty), "--show", "nope"])
    assert r.exit_code == 2 and "no run 'nope'" in r.output


def test_default_store_is_one_place_for_every_command(tmp_path, monkeypatch):
    from ltae.store.results import default_store

    monkeypatch.setenv("LTAE_STORE", str(tmp_path / "env.duckdb"))
    assert default_store() == tmp_path / "env.duckdb" and pipeline.default_store() == default_store()
    monkeypatch.delenv("LTAE_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store() == tmp_path / "xdg" / "ltae" / "ltae_runs.duckdb"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_store() == Path.home() / ".local" / "share" / "ltae" / "ltae_runs.duckdb"


def test_run_ids_are_unique_for_identical_runs_in_one_second(tmp_path):
    from ltae.config import RunConfig

    ids = {pipeline.new_run_id(RunConfig(), "h") for _ in range(50)}
    assert len(ids) == 50
    store = tmp_path / "s.duckdb"
    for rid in sorted(ids)[:2]:
        record_run(store, fake_result(rid))
    assert len(list_runs(store)) == 2


# --------------------------------------------------------------------------------------------
# stale temporaries: only ltae's own, only in the run folder and its two subfolders
# --------------------------------------------------------------------------------------------

def test_cleanup_touches_only_ltae_temporaries_of_dead_writers(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    root = tmp_path / "out"  # as with --out . : a folder holding other people's files
    for d in ("", "posteriors", "figures", "data", ".git"):
        (root / d).mkdir(parents=True, exist_ok=True)
    theirs = [root / ".notes.tmp", root / ".x.nc", root / ".git" / ".index.lock.tmp", root / "keep.csv",
              root / "data" / f"{TMP}{dead.pid}-sales.csv.abc.tmp",  # not a run subfolder
              root / f"{TMP}{os.getpid()}-roi.csv.live.tmp",  # a live writer's (another ltae command)
              root / ".ltae-tmp-notapid-x.tmp"]
    ours = [root / f"{TMP}{dead.pid}-roi.csv.k1.tmp", root / "posteriors" / f"{TMP}{dead.pid}-short_term.nc.k2.nc",
            root / "figures" / f"{TMP}{dead.pid}-irf.png.k3.png"]
    for p in theirs + ours:
        p.write_text("x")
    assert art.remove_stale_temporaries(root) == 3
    assert all(p.exists() for p in theirs) and not any(p.exists() for p in ours)


def test_atomic_writes_use_the_ltae_prefix(tmp_path):
    seen = []
    with art.atomic_path(tmp_path / "f.csv") as tmp:
        seen.append(tmp.name)
        tmp.write_text("a")
    assert seen[0].startswith(f"{TMP}{os.getpid()}-f.csv.") and (tmp_path / "f.csv").read_text() == "a"
    assert not leftovers(tmp_path)


# --------------------------------------------------------------------------------------------
# names from the data
# --------------------------------------------------------------------------------------------

HOSTILE = ["Content [/x] [red]", "=Events+1", '<b>Google</b> & "Ü"', "@LinkedIn $\\alpha$"]


def test_hostile_names_survive_generate_check_prepare_run_report(tmp_path, monkeypatch):
    """Rich markup, spreadsheet formulas, HTML, unicode and mathtext in channel names, through every
    command; also `ltae run --out res/r1 && ltae runs` with no --store (one default store)."""
    monkeypatch.delenv("LTAE_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    runner = CliRunner(env={"COLUMNS": "250"})  # wide tables: names are not wrapped
    data = tmp_path / "data"
    r = runner.invoke(app, ["generate", "--out", str(data), "--weeks", "80", "--seed", "4",
                            "--channels", ",".join(HOSTILE)])
    assert r.exit_code == 0, r.output
    for n in HOSTILE:
        assert n in r.output  # printed literally, not as markup
    spend = (data / "marketing_spend.csv").read_text()
    assert "\n2021-01-04,'=Events+1," in spend and "'@LinkedIn" in spend  # inert in a spreadsheet
    r = runner.invoke(app, ["check", "--data", str(data)])
    assert r.exit_code == 0 and "data OK" in r.output, r.output
    for n in HOSTILE:
        assert n in r.output
    r = runner.invoke(app, ["prepare", "--data", str(data), "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert "'=Events+1" in header and "'@LinkedIn" in header
    from ltae.data import load_dataset

    assert list(load_dataset(tmp_path / "p.csv").channels) == HOSTILE  # read back with the names
    out = tmp_path / "res" / "r1"
    r = runner.invoke(app, ["run", "--data", str(data), "--out", str(out), "--draws", "100", "--tune", "100",
                            "--chains", "2", "--seed", "5"])
    assert r.exit_code == 0, r.output
    for n in HOSTILE:
        assert n in r.output
    roi_text = (out / "roi.csv").read_text()
    assert "\n'=Events+1," in roi_text and "\n'@LinkedIn" in roi_text
    assert "\n'=" in (out / "budget.csv").read_text()
    assert "'=Events+1" in (out / "prepared_data.csv").read_text().splitlines()[0]
    saved = open_run(out)  # reads back the original names; data hash matches
    assert list(saved.roi().channel) == HOSTILE and list(saved.budget().channel) == HOSTILE
    assert list(saved.dataset.channels) == HOSTILE
    html = (out / "report.html").read_text()
    assert "&lt;b&gt;Google&lt;/b&gt; &amp; &quot;Ü&quot;" in html and "<b>Google</b>" not in html
    from ltae.report.figures import FIGURES

    # every figure of a one-market run drawn (mathtext escaped); the market heatmap is for panels only
    assert all(f"figures/{n}.png" in saved.paths for n in FIGURES if n != "market_roi")
    r = runner.invoke(app, ["optimize", "--run", str(out), "--budget", "6000000"])
    assert r.exit_code == 0, r.output
    assert all(n in r.output for n in HOSTILE)
    r = runner.invoke(app, ["runs"])  # the default store: the same one `run` used
    assert r.exit_code == 0 and saved.run_id[:15] in r.output, r.output
    assert (tmp_path / "xdg" / "ltae" / "ltae_runs.duckdb").is_file()
    r = runner.invoke(app, ["runs", "--show", saved.run_id])
    assert r.exit_code == 0 and all(n in r.output for n in HOSTILE), r.output
    for f in ("manifest.json", "diagnostics.json", "quality.json", "prepared_data.roles.json"):
        strict_json((out / f).read_text())


def test_csv_neutralisation_round_trip(tmp_path):
    from ltae.data.csvsafe import neutralize_cell, unneutralize_cell

    df = pd.DataFrame({"channel": ["=1+1", "+a", "-b", "@c", "\td", "\re", "plain", "'quoted", "-5"],
                       "=head": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, 7.0, 8.0, -9.0], "n": range(9)})
    art.atomic_write_csv(tmp_path / "x.csv", df)
    raw = pd.read_csv(tmp_path / "x.csv", dtype=str, keep_default_na=False)
    assert list(raw.columns) == ["channel", "'=head", "n"]
    assert all(v.startswith("'") for v in raw.channel[:6]) and raw.channel[6] == "plain"
    assert raw.channel[7] == "'quoted"  # not a formula: left as is
    assert raw["'=head"][0] == "-1.5"  # numbers stay numbers
    back = art.read_csv(tmp_path / "x.csv")
    assert back.columns.tolist() == df.columns.tolist() and back.channel.tolist() == df.channel.tolist()
    assert np.allclose(back["=head"], df["=head"])
    for v in ("=x", "'=x", "''-x", "x", 1, None, "'", "'a", "-"):
        assert unneutralize_cell(neutralize_cell(v)) == v


# --------------------------------------------------------------------------------------------
# configuration errors: up front, exit 2, file + key + reason
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, text, expect", [
    ("c.toml", 'horizon = 12\n[sampling\ndraws = 5\n', ["c.toml", "TOML syntax error", "line 2"]),
    ("c.yaml", "horizon: 12\nsampling: [1\n  draws: 5\n", ["c.yaml", "YAML syntax error", "line 3"]),
    ("c.toml", 'sampling = "x"\n', ["'sampling'", "valid dictionary", "'x'"]),
    ("c.toml", "credible_interval = 95\n", ["'credible_interval'", "use 0.95"]),
    ("c.toml", "risk_quantile = 1.5\n", ["'risk_quantile'", "between 0 and 1"]),
    ("c.toml", "budget_bounds = [1.5, 0.5]\n", ["'budget_bounds'", "low bound 1.5 is above"]),
    ("c.toml", "budget_bounds = [-0.5, 1.5]\n", ["'budget_bounds'", "negative"]),
    ("c.toml", "[bvar_priors]\nlag_variance = [1.0]\n", ["'bvar_priors'", "2 values, got 1"]),
    ("c.yaml", "- a\n- b\n", ["c.yaml", "table of settings"]),
    ("c.toml", 'credible_interval = 95\nhorizon = 0\n[sampling]\nsampler = "gibbs"\ndraws = "many"\n',
     ["4 invalid settings", "'credible_interval'", "'horizon'", "'sampling.sampler'", "'sampling.draws'"]),
])
def test_config_errors_are_reported_up_front(name, text, expect, data_dir, tmp_path):
    (tmp_path / name).write_text(text)
    r = CliRunner().invoke(app, ["run", "--data", str(data_dir), "--config", str(tmp_path / name),
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    msg = " ".join(r.output.split())
    for e in expect:
        assert e in msg, (e, msg)
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()


def test_option_errors_are_marked_and_data_dependent_settings_checked_before_fitting(data_dir, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["run", "--data", str(data_dir), "--out", str(tmp_path / "o"), "--draws", "5"])
    assert r.exit_code == 2 and "'sampling.draws'" in r.output and "command-line option" in r.output
    t = time.perf_counter()
    r = runner.invoke(app, ["run", "--data", str(data_dir), "--out", str(tmp_path / "o"), "--holdout", "80"])
    assert r.exit_code == 2 and "'holdout_weeks': 80 is not less than the data's 80 weeks" in r.output
    r = runner.invoke(app, ["run", "--data", str(data_dir), "--out", str(tmp_path / "o"), "--holdout", "40"])
    assert r.exit_code == 2 and "leaves 40 weeks to fit on, fewer than min_weeks (52)" in r.output
    (tmp_path / "g.toml").write_text('[channel_groups]\ndigital = ["Google", "Nope"]\n')
    r = runner.invoke(app, ["run", "--data", str(data_dir), "--out", str(tmp_path / "o"), "--config",
                            str(tmp_path / "g.toml")])
    assert r.exit_code == 2 and "'Nope' is not a channel" in r.output
    assert time.perf_counter() - t < 30 and not (tmp_path / "o").exists()  # no fit, nothing written
    from ltae.config import ConfigError

    with pytest.raises(ConfigError, match="holdout_weeks"):  # the Python API too
        pipeline.run(data_dir, tmp_path / "o", {**CFG, "holdout_weeks": 100})
    assert not (tmp_path / "o").exists()
    r = runner.invoke(app, ["optimize", "--run", str(tmp_path), "--bounds", "1.5,0.5"])
    assert r.exit_code == 2 and "low bound 1.5 is above" in r.output
    r = runner.invoke(app, ["optimize", "--run", str(tmp_path), "--risk-quantile", "10"])
    assert r.exit_code == 2 and "between 0 and 1" in r.output


# --------------------------------------------------------------------------------------------
# strict JSON, compile cache
# --------------------------------------------------------------------------------------------

def test_every_json_is_strict(reference, tmp_path):
    _, out = reference
    for p in out.rglob("*.json"):
        strict_json(p.read_text())
    art.atomic_write_json(tmp_path / "d.json", {"max_rhat": float("nan"), "x": np.float64("inf"),
                                                "a": np.array([1.0, np.nan]), "n": np.int64(3), "ok": 1.5})
    assert strict_json((tmp_path / "d.json").read_text()) == {"max_rhat": None, "x": None, "a": [1.0, None],
                                                               "n": 3, "ok": 1.5}


def test_rhat_of_one_chain_is_written_as_null(tmp_path):
    import xarray as xr

    from ltae.analysis.diagnostics import convergence_summary

    rng = np.random.default_rng(0)
    post = xr.Dataset({"a": (("chain", "draw"), rng.normal(size=(1, 200)))},
                      coords={"chain": [0], "draw": np.arange(200)})
    summ = convergence_summary(xr.DataTree.from_dict({"posterior": post}), var_names=["a"])
    assert not np.isfinite(summ["max_rhat"])
    art.atomic_write_json(tmp_path / "diag.json", {"short_term": summ})
    assert strict_json((tmp_path / "diag.json").read_text())["short_term"]["max_rhat"] is None


def test_compile_cache_folders_are_private(tmp_path):
    import stat

    from ltae.models.compile_cache import private_dir

    d = private_dir(tmp_path / "a" / "b" / "nutpie")
    assert d is not None
    for p in (tmp_path / "a", tmp_path / "a" / "b", d):
        assert stat.S_IMODE(p.stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)
    assert private_dir(loose) == loose and stat.S_IMODE(loose.stat().st_mode) == 0o700
    if os.getuid() == 0:  # a folder of another user is not trusted
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        os.chown(foreign, 65534, 65534)
        with pytest.warns(RuntimeWarning, match="another user"):
            assert private_dir(foreign) is None
