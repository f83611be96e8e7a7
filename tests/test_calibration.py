"""Lift tests (experiments): the exact likelihood term, the file reader and its errors, the check of each test
against the model, and behaviour on data with known truth."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ltae.analysis.calibration import (
    lift_test_check,
    lift_test_checklist_row,
    lift_tests_hash,
    lift_tests_within,
    predicted_lift_draws,
    read_lift_tests,
)
from ltae.data.synthetic import generate_synthetic_data, lift_test_truth, save_to_csv
from ltae.data.validate import DataValidationError
from ltae.models.mmm import MMMPriors, ShortTermMMM
from ltae.models.transforms import geometric_adstock_from_stack, hill


def _model(lift):
    data = generate_synthetic_data(n_weeks=40, seed=2, channels=["Google", "Events"])
    ctrl = data.competitor_activity.drop(columns="Date")
    dates = pd.to_datetime(data.sales.Date)
    return ShortTermMMM(data.sales.revenue.values, data.spend_wide.values, ctrl.values, data.params.channels,
                        list(ctrl.columns), priors=MMMPriors(noise_polar=False), dates=dates, lift_tests=lift), dates


def test_lift_tests_enter_the_marginal_likelihood_exactly():
    """With lift tests the likelihood is the dense Gaussian of [sales, lifts]: each lift = its ROI effect
    x the model's lift per unit of ROI + N(0, se^2), sharing the integrated-out ROI effects."""
    import pytensor
    from scipy import stats

    m0, dates = _model(None)
    lift = pd.DataFrame({"channel": ["Google", "Events"], "start": [dates[10], dates[20]], "end": [dates[15], dates[23]],
                         "measured_until": [dates[17], dates[23]], "spend_change": [-40_000.0, 30_000.0],
                         "lift": [-120_000.0, 40_000.0], "lift_se": [30_000.0, 20_000.0]})
    m, _ = _model(lift)
    model = m.build_model()
    point = {"adstock_alpha": np.array([0.3, 0.6]), "hill_kappa": np.array([0.7, 2.0]),
             "hill_lambda": np.array([0.8, 1.5]), "group_sigma": np.array([0.05, 0.2]), "sigma": 0.08,
             "sigma_level": 0.03}
    f = pytensor.function([model[k] for k in point], model["y_loglik"], on_unused_input="ignore",
                          mode="FAST_COMPILE")
    ours = f(*point.values())
    # dense reference
    p = m.priors
    d = m._design()
    T = len(d.y)
    sat = hill(geometric_adstock_from_stack(d.stack, point["adstock_alpha"], p.l_max, p.normalize_adstock),
               point["hill_kappa"], point["hill_lambda"])
    sd_g = point["group_sigma"][m.group_index]
    XL, offset = m._linear_blocks(sat, sd_g, d)
    t = np.arange(T)
    cov = (p.intercept_sd**2 + point["sigma_level"] ** 2 * np.minimum(t[:, None], t[None, :])
           + point["sigma"] ** 2 * np.eye(T))
    # the lifts, computed directly: contribution with the changed spend minus without, over the window
    rows, means = [], []
    for r in lift.itertuples():
        c = m.channels.index(r.channel)
        test = (dates >= r.start) & (dates <= r.end)
        window = (dates >= r.start) & (dates <= r.measured_until)
        x = m.spend[:, c].copy()
        x[test] += r.spend_change / test.sum()
        s2 = m.spend.copy()
        s2[:, c] = x
        from ltae.models.transforms import lag_stack

        st2 = lag_stack(s2 / m.spend_scale, p.l_max)
        sat2 = hill(geometric_adstock_from_stack(st2, point["adstock_alpha"], p.l_max, p.normalize_adstock),
                    point["hill_kappa"], point["hill_lambda"])
        # contribution per unit of rel_c is column c of XL's channel block / sd_g[c]; lift = difference
        unit = d.roi_weight[c] / sat[:, c].sum()
        a = unit * (sat2[window, c] - sat[window, c]).sum()
        G = len(m.group_names)
        row = np.zeros(XL.shape[1])
        row[m.group_index[c]] = a * p.roi_mu_sd
        row[G + c] = a * sd_g[c]
        rows.append(row)
        means.append(a * p.roi_mu_mean)
    X = np.vstack([XL, np.array(rows)])
    y = np.concatenate([d.y, lift.lift.to_numpy() / m.y_scale])
    mean = np.concatenate([1.0 + offset, means])
    full = np.zeros((T + 2, T + 2))
    full[:T, :T] = cov
    full[T:, T:] = np.diag((lift.lift_se.to_numpy() / m.y_scale) ** 2)
    ref = stats.multivariate_normal(mean, full + X @ X.T).logpdf(y)
    assert abs(ours - ref) < 1e-8 * abs(ref) + 1e-8
    # and the lift tests change it (they are really in the likelihood)
    f0 = pytensor.function([m0.build_model()[k] for k in point], m0.model["y_loglik"], on_unused_input="ignore",
                           mode="FAST_COMPILE")
    assert abs(f0(*point.values()) - ours) > 1.0


# ---- the lift-test file: reader and errors ----------------------------------------------------------------
HEADER = "channel,start,end,measured_until,spend_change,spread,lift,lift_se"
GOOD = "Google,2021-12-20,2022-02-07,2022-02-21,-100000,even,-300000,40000"
WEEKS, SEED = 80, 4  # the data of conftest's small_run: the no-test fit shares its compiled model


@pytest.fixture(scope="module")
def data80(tmp_path_factory):
    from ltae.data import load_dataset

    d = tmp_path_factory.mktemp("lift_data")
    data = generate_synthetic_data(n_weeks=WEEKS, seed=SEED)
    save_to_csv(data, d)
    return d, load_dataset(d), data


def _write(tmp_path, *rows, header=HEADER):
    p = tmp_path / "lift.csv"
    p.write_text("\n".join([header, *rows]) + "\n")
    return p


def test_reader_reads_a_good_file(data80, tmp_path):
    _, ds, _ = data80
    p = _write(tmp_path, GOOD, "google , 2021-12-20, 2022-02-07,,-100000,,-250000,30000",
               header="Channel,Start,End,Measured_Until,Spend_Change,Spread,Lift,Lift_SE")
    t = read_lift_tests(p, ds)
    # day-first dates: 07/02/2022 is read as 7 February (a week of the data), not 2 July (a Saturday)
    dmy = _write(tmp_path, "Google,20/12/2021,07/02/2022,21/02/2022,-100000,even,-300000,40000")
    assert read_lift_tests(dmy, ds).iloc[0].equals(t.iloc[0])
    assert list(t.channel) == ["Google", "Google"]  # the data's spelling, any case
    assert (t.start == pd.Timestamp("2021-12-20")).all() and (t.end == pd.Timestamp("2022-02-07")).all()
    assert t.measured_until.tolist() == [pd.Timestamp("2022-02-21"), pd.Timestamp("2022-02-07")]  # default: end
    assert t.spread.tolist() == ["even", "even"] and t.lift_se.tolist() == [40000.0, 30000.0]
    assert t.name[1] == "Google 2021-12-20..2022-02-07"
    # a frame reads the same; the hash is of the content (not the file's spelling)
    frame = pd.DataFrame([GOOD.split(",")], columns=HEADER.split(","))
    assert lift_tests_hash(read_lift_tests(frame, ds)) == lift_tests_hash(t.iloc[:1])
    assert lift_tests_hash(t.iloc[:1]) != lift_tests_hash(t.iloc[1:]) and lift_tests_hash(None) is None
    # tests kept for a fit on fewer weeks: only those measured inside them
    assert lift_tests_within(t, ds.dates[:57]) is None and len(lift_tests_within(t, ds.dates[:58])) == 1
    assert len(lift_tests_within(t, ds.dates[:60])) == 2 and len(lift_tests_within(t, ds.dates)) == 2


BAD = [
    ("missing", "channel,start,end,spend_change,lift\nGoogle,2021-12-20,2022-02-07,-100,-300",
     ["lift.csv", "column 'lift_se'", "line 1", "missing column 'lift_se'"]),
    ("channel", "TV,2021-12-20,2022-02-07,,-100000,,-300000,40000",
     ["lift.csv", "column 'channel'", "line 3", "'TV' is not a channel", "Google"]),
    ("outside", "Google,2021-12-20,2030-02-04,,-100000,,-300000,40000",
     ["column 'end'", "line 3", "outside the data's weeks (2021-01-04 to 2022-07-11)"]),
    ("weekday", "Google,2021-12-22,2022-02-07,,-100000,,-300000,40000",
     ["column 'start'", "line 3", "is a Wednesday", "Mondays", "2021-12-20"]),
    ("order", "Google,2022-02-07,2021-12-20,,-100000,,-300000,40000",
     ["column 'start'", "line 3", "start 2022-02-07 is after end 2021-12-20"]),
    ("until", "Google,2021-12-20,2022-02-07,2022-01-31,-100000,,-300000,40000",
     ["column 'measured_until'", "measured_until 2022-01-31 is before end 2022-02-07"]),
    ("se0", "Google,2021-12-20,2022-02-07,,-100000,,-300000,0", ["column 'lift_se'", "standard error is 0", "> 0"]),
    ("se_neg", "Google,2021-12-20,2022-02-07,,-100000,,-300000,-5", ["column 'lift_se'", "standard error is -5.0"]),
    ("text", "Google,2021-12-20,2022-02-07,,-100000,,lots,40000", ["column 'lift'", "line 3", "'lots' is not a number"]),
    ("inf", "Google,2021-12-20,2022-02-07,,-100000,,inf,40000", ["column 'lift'", "the lift is inf"]),
    ("empty", "Google,2021-12-20,2022-02-07,,-100000,,,40000", ["column 'lift'", "the lift is missing"]),
    ("zero", "Google,2021-12-20,2022-02-07,,0,,-300000,40000", ["column 'spend_change'", "spend change is 0"]),
    ("negative", "Google,2021-12-20,2022-02-07,,-5000000,,-300000,40000",
     ["column 'spend_change'", "makes the spend negative in the week of", "proportional"]),
    ("negative_prop", "Google,2021-12-20,2022-02-07,,-5000000,proportional,-300000,40000",
     ["column 'spend_change'", "makes the spend negative", "a cut can be at most"]),
    ("spread", "Google,2021-12-20,2022-02-07,,-100000,sometimes,-300000,40000",
     ["column 'spread'", "'sometimes' is not one of even, proportional"]),
    ("date", "Google,soon,2022-02-07,,-100000,,-300000,40000", ["column 'start'", "cannot read date 'soon'"]),
]


@pytest.mark.parametrize("body, expect", [(b, e) for _, b, e in BAD], ids=[i for i, _, _ in BAD])
def test_reader_errors_name_file_column_and_row(data80, tmp_path, body, expect):
    _, ds, _ = data80
    p = _write(tmp_path, GOOD, body) if body.count("\n") == 0 else tmp_path / "lift.csv"
    if body.count("\n"):
        p.write_text(body + "\n")
    with pytest.raises(DataValidationError) as e:
        read_lift_tests(p, ds)
    msg = str(e.value)
    for part in expect:
        assert part in msg, (part, msg)
    assert "line 1" in msg or "line 3" in msg  # the header, or the second data row: the first one is good


def test_a_hold_out_may_cut_the_smallest_week_to_zero(data80, tmp_path):
    _, ds, _ = data80
    x = ds.spend["Google"].to_numpy()[50:58]
    ok = _write(tmp_path, f"Google,2021-12-20,2022-02-07,,{-8 * x.min()},,-300000,40000")
    assert read_lift_tests(ok, ds).spend_change[0] == pytest.approx(-8 * x.min())
    bad = _write(tmp_path, f"Google,2021-12-20,2022-02-07,,{-8 * x.min() - 1},,-300000,40000")
    with pytest.raises(DataValidationError, match="negative"):
        read_lift_tests(bad, ds)
    dark = _write(tmp_path, f"Google,2021-12-20,2022-02-07,,{-x.sum()},proportional,-300000,40000")  # a go-dark
    assert read_lift_tests(dark, ds).spread[0] == "proportional"


runner = CliRunner()


@pytest.mark.parametrize("args, expect", [
    (["--lift-tests", "{tmp}/lift.csv"], "lift.csv, column 'channel', line 3"),
    (["--lift-tests", "{tmp}/nowhere.csv"], "file not found"),
    (["--backtest", "8"], "'backtest_folds': 8 folds of 4 weeks leave 48 weeks"),
    (["--scheduler", "bogus"], "'scheduler'"),
])
def test_cli_exits_2_before_writing_anything(data80, tmp_path, args, expect):
    from ltae.cli import app

    d, _, _ = data80
    _write(tmp_path, GOOD, "TV,2021-12-20,2022-02-07,,-100000,,-300000,40000")
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", "--data", str(d), "--out", str(out), "--draws", "10",
                              *[a.format(tmp=tmp_path) for a in args]])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in res.output
    assert expect in err, err
    assert not out.exists()  # nothing half-written


# ---- the check: predicted against measured lift ------------------------------------------------------------
def _fake_posterior(m, draws: dict):
    """Give ``m`` a posterior of a few hand-made draws (chain 1), without sampling."""
    import xarray as xr

    dims = {"adstock_alpha": "channel", "hill_kappa": "channel", "hill_lambda": "channel", "roi": "channel",
            "group_sigma": "group", "sigma": None, "sigma_level": None}
    data = {k: (("chain", "draw") + ((dims[k],) if dims[k] else ()), np.asarray(v, float)[None])
            for k, v in draws.items()}
    post = xr.Dataset(data, coords={"channel": m.channels, "group": m.group_names})
    m.idata = xr.DataTree.from_dict({"posterior": post})
    return m


def test_predicted_lift_is_the_likelihood_rows_lift():
    """The lift the check predicts (contribution with the changed spend minus without) is exactly ROI effect
    x the lift per unit of ROI of the tests' likelihood rows, for even and proportional spreads."""
    _, dates = _model(None)
    lift = pd.DataFrame({"channel": ["Google", "Events"], "start": [dates[10], dates[20]], "end": [dates[15], dates[23]],
                         "measured_until": [dates[17], dates[23]], "spend_change": [-40_000.0, 30_000.0],
                         "spread": ["proportional", "even"], "lift": [-120_000.0, 40_000.0],
                         "lift_se": [30_000.0, 20_000.0]})
    m, _ = _model(lift)
    rng = np.random.default_rng(0)
    S = 3
    draws = {"adstock_alpha": rng.uniform(0.2, 0.7, (S, 2)), "hill_kappa": rng.uniform(0.8, 2.5, (S, 2)),
             "hill_lambda": rng.uniform(0.5, 1.5, (S, 2)), "roi": rng.uniform(0.5, 4.0, (S, 2)),
             "group_sigma": rng.uniform(0.05, 0.2, (S, len(m.group_names))), "sigma": np.full(S, 0.05),
             "sigma_level": np.full(S, 0.02)}
    _fake_posterior(m, draws)
    got = predicted_lift_draws(m, m.lift_tests)
    d = m._design()
    lt = m._lift_design()
    lt["roi_weight"] = d.roi_weight
    sd_g = draws["group_sigma"][:, m.group_index]
    Z, _ = m._lift_rows(m._saturation(), draws["adstock_alpha"], draws["hill_kappa"], draws["hill_lambda"], sd_g, lt)
    G = len(m.group_names)
    for i, c in enumerate(lt["channel"]):
        a = Z[:, i, G + c] * lt["se"][i] / sd_g[:, c]  # lift per unit of ROI / r0 (scaled)
        want = draws["roi"][:, c] / d.roi_ref * a * m.y_scale
        np.testing.assert_allclose(got[:, i], want, rtol=1e-9)
    assert (got[:, 0] < 0).all() and (got[:, 1] > 0).all()  # a cut loses sales, extra spend adds


def test_checklist_row_names_the_tests_that_disagree():
    ok = {"name": "A", "agrees": True, "lift": -1e5, "lift_se": 1e4, "predicted_mean": -1e5, "predicted_sd": 1e4,
          "without_tests_mean": -1.1e5, "without_tests_sd": 2e4}
    bad = {**ok, "name": "Search go-dark", "agrees": False, "lift": -4e5, "predicted_mean": -3.8e5,
           "without_tests_mean": -1.5e5}
    assert lift_test_checklist_row([ok])["status"] == "pass"
    row = lift_test_checklist_row([ok, bad])
    assert row["status"] == "warn" and row["value"] == 1
    assert row["action"].startswith("The data and the experiment disagree: Search go-dark")
    assert "-150,000" in row["action"] and "A (" not in row["action"]
    assert lift_test_checklist_row(None)["status"] == "not run"


def test_check_z_scores_against_known_draws(monkeypatch):
    """z = |measured - predicted mean| / sqrt(se² + predicted sd²), with and without the tests."""
    tests = pd.DataFrame({"name": ["t"], "channel": ["c"], "start": [pd.Timestamp("2021-01-04")],
                          "end": [pd.Timestamp("2021-01-11")], "measured_until": [pd.Timestamp("2021-01-11")],
                          "spend_change": [-10.0], "spread": ["even"], "lift": [-100.0], "lift_se": [3.0]})
    rng = np.random.default_rng(1)
    with_d, alone_d = -98 + 4 * rng.standard_normal(20_000), -60 + 4 * rng.standard_normal(20_000)
    import ltae.analysis.calibration as cal

    m1, m0 = SimpleNamespace(lift_tests=tests), SimpleNamespace()
    fake = {id(m1): with_d, id(m0): alone_d}
    monkeypatch.setattr(cal, "predicted_lift_draws", lambda m, t: fake[id(m)][:, None])
    (r,) = lift_test_check(m1, m0)
    (r_lenient,) = lift_test_check(m1, None)
    assert r["z"] == pytest.approx(2 / 5, abs=0.02) and r["without_tests_z"] == pytest.approx(40 / 5, abs=0.1)
    assert not r["agrees"] and r_lenient["agrees"] and r_lenient["without_tests_mean"] is None
    assert r["measured_roi"] == 10.0


# ---- behaviour on known truth: the pipeline with an experiment ------------------------------------------------
CFG = {"sampling": {"draws": 100, "tune": 100, "chains": 2, "seed": 5}, "replicates": 2}


def _go_dark(ds, data, factor=1.0, se_share=0.12, seed=0):
    """A go-dark of Google over 8 weeks, measured 2 more weeks, with the generator's true lift (x factor)
    plus N(0, se²) noise, se = se_share x |true lift|."""
    s, e = 50, 57
    x = ds.spend["Google"].to_numpy()[s:e + 1]
    truth = lift_test_truth(data, "Google", s, e, -x.sum(), e + 2, "proportional")["short_term"]
    se = se_share * abs(truth)
    lift = factor * truth + se * np.random.default_rng(seed).standard_normal()
    return pd.DataFrame({"name": ["Google go-dark"], "channel": ["Google"], "start": [ds.dates[s]],
                         "end": [ds.dates[e]], "measured_until": [ds.dates[e + 2]], "spend_change": [-x.sum()],
                         "spread": ["proportional"], "lift": [lift], "lift_se": [se]}), truth


@pytest.fixture(scope="module")
def lift_run(data80, tmp_path_factory):
    from ltae import pipeline

    d, ds, data = data80
    tests, _ = _go_dark(ds, data)
    root = tmp_path_factory.mktemp("lift_run")
    tests.to_csv(root / "lift.csv", index=False)
    res = pipeline.run(d, root / "run", {**CFG, "lift_tests": str(root / "lift.csv")},
                       store_path=root / "store.duckdb")
    return root / "run", res


def test_a_run_with_a_lift_test_writes_the_check(lift_run, data80):
    out, res = lift_run
    diag = json.loads((out / "diagnostics.json").read_text())
    (t,) = diag["lift_tests"]["tests"]
    assert t["name"] == "Google go-dark" and t["agrees"] and t["z"] < 2 and t["without_tests_z"] < 2
    assert t["predicted_lower"] < t["predicted_mean"] < t["predicted_upper"] < 0
    (row,) = [c for c in diag["checklist"] if c["check"] == "Lift tests"]
    assert row["status"] == "pass" and row["value"] == 0
    man = json.loads((out / "manifest.json").read_text())
    assert "lift_tests.csv" in man["files"] and "posteriors/short_term_without_lift_tests.nc" in man["files"]
    assert pd.read_csv(out / "lift_tests.csv").channel.tolist() == ["Google"]
    # the key of the refit without tests is the one of a run without tests; the run's own key differs
    from ltae.config import RunConfig

    rc = RunConfig.model_validate(res.config)
    assert man["keys"]["short_term_without_lift_tests"] == rc.step_key("short_term", man["data_hash"])
    assert man["keys"]["short_term"] != man["keys"]["short_term_without_lift_tests"]
    assert rc.lift_tests.endswith("lift.csv")
    html = (out / "report.html").read_text()
    assert "Experiments (lift tests)" in html and "Google go-dark" in html


def test_an_informative_experiment_narrows_the_roi_and_covers_the_truth(lift_run, data80):
    """Known truth: a go-dark measured to 12% narrows Google's short-term ROI interval, which still covers
    the generator's ROI; channels without a test barely move."""
    out, _ = lift_run
    _, _, data = data80
    lt = json.loads((out / "diagnostics.json").read_text())["lift_tests"]
    truth = data.truth["channels"]["Google"]["short_term_roi"]
    w, wo = lt["roi_with_tests"]["Google"], lt["roi_without_tests"]["Google"]
    assert w["upper"] - w["lower"] < 0.8 * (wo["upper"] - wo["lower"])
    assert w["lower"] <= truth <= w["upper"]


def test_a_contradicting_experiment_moves_the_roi_and_is_flagged(lift_run, data80):
    """A test claiming 2.5x the true lift with a 8% standard error pulls the ROI up, and the check (the data
    alone against the test) says they disagree."""
    from ltae.store.runs import load_posterior

    out, _ = lift_run
    _, ds, data = data80
    tests, truth = _go_dark(ds, data, factor=2.5, se_share=0.08)
    alone = ShortTermMMM.from_dataset(ds)
    alone.idata = load_posterior(out / "posteriors" / "short_term_without_lift_tests.nc")
    m = ShortTermMMM.from_dataset(ds, lift_tests=read_lift_tests(tests, ds))
    m.fit(**{k: CFG["sampling"][k] for k in ("draws", "tune", "chains", "seed")})
    (r,) = lift_test_check(m, alone)
    g = list(ds.channels).index("Google")
    assert m.short_term_roi_draws()[:, g].mean() > 1.5 * alone.short_term_roi_draws()[:, g].mean()
    assert not r["agrees"] and r["without_tests_z"] > 3
    assert lift_test_checklist_row([r])["status"] == "warn"


def test_the_api_refuses_server_paths_and_schedulers_in_a_config():
    pytest.importorskip("fastapi")
    from ltae.serve.api import ApiError, _run_config

    for cfg, field in (({"lift_tests": "/etc/passwd"}, "config.lift_tests"),
                       ({"scheduler": "tcp://10.0.0.1:8786"}, "config.scheduler")):
        with pytest.raises(ApiError) as e:
            _run_config(cfg, None)
        assert e.value.status == 422 and e.value.field == field
    assert _run_config({"scheduler": "serial", "backtest_folds": 2}, None).backtest_folds == 2


def test_resume_refits_when_the_tests_change(lift_run, tmp_path):
    """The tests' content is part of the short-term step key: the same tests (re-saved with other quoting
    and spelling) resume, a changed standard error refits the calibrated model, while the fit without
    tests resumes either way."""
    import shutil

    from ltae import pipeline

    out, res = lift_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    tests = pd.read_csv(out / "lift_tests.csv")
    cfg = {**CFG, "lift_tests": str(tmp_path / "t.csv")}
    data = res.config["data"]["path"]

    def again(frame):
        frame.rename(columns=str.upper).to_csv(tmp_path / "t.csv", index=False, quoting=1)
        events = []
        pipeline.run(data, run, cfg, progress=lambda s, st: events.append((s, st)),
                     store_path=tmp_path / "s.duckdb")
        return {s for s, st in events if st == "resumed"}

    assert {"short_term", "long_term", "short_term_without_lift_tests"} <= again(tests.assign(channel="google"))
    changed = again(tests.assign(lift_se=tests.lift_se * 2))
    assert "short_term" not in changed and "long_term" not in changed
    assert "short_term_without_lift_tests" in changed
    assert json.loads((run / "manifest.json").read_text())["keys"]["short_term_without_lift_tests"] == \
        json.loads((out / "manifest.json").read_text())["keys"]["short_term_without_lift_tests"]
    assert pd.read_csv(run / "lift_tests.csv").lift_se[0] == pytest.approx(2 * tests.lift_se[0])


def test_lift_tests_and_backtests_refuse_data_of_several_markets(tmp_path):
    from ltae.config import ConfigError, RunConfig, check_against_data
    from ltae.data.panel import PanelDataset
    from ltae.data.synthetic_geo import generate_geo, market_datasets

    panel = PanelDataset(market_datasets(generate_geo(n_markets=2, n_weeks=60, seed=1)))
    p = _write(tmp_path, GOOD)
    with pytest.raises(DataValidationError, match="this run has 2 markets"):
        read_lift_tests(p, panel)
    with pytest.raises(ConfigError, match="'backtest_folds': backtests are of one market"):
        check_against_data(RunConfig(backtest_folds=2), panel)
