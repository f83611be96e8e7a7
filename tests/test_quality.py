"""quality_report: VIF, ADF, summary statistics and their degenerate cases."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from ltae.data import MMMDataset, QualityReport, generate_synthetic_data, quality_report


def _frame(n=104, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "Date": pd.date_range("2021-01-04", periods=n, freq="7D"),
        "y": 1000 + np.cumsum(rng.normal(0, 10, n)),  # random walk: not stationary
        "tv": rng.uniform(0, 100, n),  # white noise: stationary
        "radio": rng.uniform(0, 50, n),
        "gdp": rng.normal(2, 0.1, n),
    })


@pytest.fixture(scope="module")
def synth_report() -> tuple[MMMDataset, QualityReport]:
    data = generate_synthetic_data(n_weeks=104, seed=5)
    df = data.sales.merge(data.spend_wide.reset_index(), on="Date").merge(data.macroeconomic_indicators, on="Date")
    df = df.merge(data.brand_metrics, on="Date")
    ds = MMMDataset.from_frame(df, "revenue", data.params.channels,
                               controls=["GDP_Growth", "Unemployment_Rate"], brand=["Awareness"])
    return ds, quality_report(ds)


def test_report_covers_every_series(synth_report):
    ds, rep = synth_report
    assert [r.name for r in rep.vif] == [*ds.channels, *ds.control_names]
    assert [r.name for r in rep.adf] == [ds.target_name, *ds.channels, *ds.control_names, *ds.brand_names]
    assert [r.role for r in rep.summary][:2] == ["target", "channel"]
    assert all(1.0 <= r.vif < 10 for r in rep.vif)
    assert rep.n_weeks == 104 and rep.start == "2021-01-04"
    events = next(r for r in rep.summary if r.name == "Events")
    assert events.zero_share == pytest.approx(float((ds.spend["Events"] == 0).mean()))
    assert events.min == 0.0 and events.max == pytest.approx(ds.spend["Events"].max())


def test_to_dict_is_strict_json_and_frames(synth_report):
    _, rep = synth_report
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert set(d) >= {"vif", "adf", "summary", "warnings", "n_weeks"}
    frames = rep.to_frames()
    assert list(frames) == ["vif", "adf", "summary"]
    assert len(frames["adf"]) == len(rep.adf) and "p_value" in frames["adf"].columns


def test_rich_tables_render(synth_report):
    from rich.console import Console

    from ltae.data.quality import print_quality_report

    _, rep = synth_report
    buf = io.StringIO()
    print_quality_report(rep, Console(file=buf, width=120))
    text = buf.getvalue()
    assert "VIF" in text and "ADF" in text and "Google" in text


def test_adf_tells_random_walk_from_noise():
    ds = MMMDataset.from_frame(_frame(), "y", ["tv", "radio"], controls=["gdp"])
    rep = quality_report(ds)
    adf = {r.name: r for r in rep.adf}
    assert adf["tv"].stationary is True and adf["tv"].p_value < 0.05
    assert adf["y"].stationary is False
    assert any("not stationary" in w and "y" in w for w in rep.warnings)


def test_collinear_and_constant_regressors():
    df = _frame()
    df["tv_copy"] = 2 * df["tv"] + 5  # perfectly collinear
    df["near"] = df["radio"] + np.random.default_rng(1).normal(0, 0.5, len(df))  # VIF > 10
    df["flat"] = 3.0  # constant control
    ds = MMMDataset.from_frame(df, "y", ["tv", "radio"], controls=["tv_copy", "near", "flat"])
    rep = quality_report(ds)
    vif = {r.name: r for r in rep.vif}
    assert math.isinf(vif["tv"].vif) and math.isinf(vif["tv_copy"].vif) and vif["tv"].high
    assert vif["tv"].note == "perfectly collinear"
    assert 10 < vif["radio"].vif < math.inf and vif["near"].high
    assert math.isinf(vif["flat"].vif) and vif["flat"].note == "constant"
    adf = {r.name: r for r in rep.adf}
    assert adf["flat"].stationary is None and adf["flat"].note == "constant"
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert next(r for r in d["vif"] if r["name"] == "tv")["vif"] is None
    assert set(rep.high_vif) >= {"tv", "tv_copy", "radio", "near", "flat"}


def test_single_channel_no_controls_short_series():
    df = _frame(n=10)
    ds = MMMDataset.from_frame(df, "y", ["tv"])
    rep = quality_report(ds)
    assert [r.vif for r in rep.vif] == [1.0]
    assert all(r.stationary is None and r.note == "too short" for r in rep.adf)
    json.dumps(rep.to_dict(), allow_nan=False)
