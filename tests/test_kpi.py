"""What the target measures (ltae.data.kpi): detection from the name, conversion to currency with
a number or a column (known numbers), the options' errors, and the ROI table in KPI units."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from data_cases import make_folder
from typer.testing import CliRunner

from ltae.analysis.roi import kpi_columns, kpi_labels
from ltae.cli import app
from ltae.config import ConfigError, build_config
from ltae.data import KPI, DataValidationError, MMMDataset, load_dataset, write_prepared
from ltae.data.kpi import kpi_type_of_name

N = 60


def frame(n: int = N, freq: str = "W-MON", target: str = "conversions") -> pd.DataFrame:
    rng = np.random.default_rng(1)
    dates = pd.date_range("2021-01-04", periods=n, freq=freq)
    return pd.DataFrame({"Date": dates, target: 1000 + rng.random(n) * 100, "tv": 50 + rng.random(n) * 10,
                         "price": 2.0 + rng.random(n)})


@pytest.mark.parametrize("name,kind", [
    ("revenue", "revenue"), ("Sales", "revenue"), ("net_turnover", "revenue"), ("GMV_EUR", "revenue"),
    ("netRevenue", "revenue"), ("total sales value", "revenue"), ("income", "revenue"),
    ("conversions", "non_revenue"), ("sales_units", "non_revenue"), ("unit_sales", "non_revenue"),
    ("orders", "non_revenue"), ("y", "non_revenue"), ("kpi", "non_revenue"), ("Leads", "non_revenue"),
    ("sales_volume", "non_revenue")])
def test_kpi_type_from_the_name(name, kind):
    assert kpi_type_of_name(name) == kind


def test_detected_non_revenue_kpi_says_so_and_options_override():
    df = frame()
    ds = MMMDataset.from_frame(df, "conversions", ["tv"])
    assert ds.kpi == KPI("non_revenue", "conversions", "conversions", "conversions", detected=True)
    assert any("does not look like money" in n and "--kpi-type revenue" in n for n in ds.notices)
    assert ds.summary()["kpi"]["type"] == "non_revenue"
    r = MMMDataset.from_frame(df, "conversions", ["tv"], kpi_type="revenue")
    assert r.kpi.is_revenue and not r.kpi.detected and r.notices == ()
    np.testing.assert_array_equal(r.target.to_numpy(), ds.target.to_numpy())  # a label, not a conversion
    assert r.data_hash() == ds.data_hash()
    money = MMMDataset.from_frame(df.rename(columns={"conversions": "revenue"}), "revenue", ["tv"])
    assert money.kpi.is_revenue and money.kpi.detected and money.notices == ()


def test_conversion_with_a_number():
    df = frame()
    ds = MMMDataset.from_frame(df, "conversions", ["tv"], revenue_per_kpi=2.5)
    assert ds.target_name == "conversions_revenue"
    np.testing.assert_allclose(ds.target.to_numpy(), 2.5 * df["conversions"].to_numpy())
    assert ds.kpi.to_dict() == {"type": "revenue", "name": "conversions", "target": "conversions_revenue",
                                "unit": "currency", "revenue_per_kpi": 2.5, "column": None, "detected": False,
                                "converted": True}
    assert any("converted to currency" in n for n in ds.notices)
    assert (ds.kpi_type, ds.revenue_per_kpi) == ("revenue", 2.5)
    np.testing.assert_array_equal(ds.spend["tv"].to_numpy(), df["tv"].to_numpy())  # spend untouched


def test_conversion_with_a_column_is_row_by_row_before_daily_rows_are_summed():
    """Daily conversions x daily revenue per conversion, then summed to weeks: not the weekly sum of
    conversions x an average price."""
    df = frame(n=7 * 60, freq="D")
    ds = MMMDataset.from_frame(df, "conversions", ["tv"], revenue_per_kpi="price")
    assert ds.kpi.column == "price" and ds.kpi.revenue_per_kpi is None and ds.revenue_per_kpi == "price"
    daily = (df["conversions"] * df["price"]).to_numpy()
    np.testing.assert_allclose(ds.target.to_numpy(), daily.reshape(60, 7).sum(1))
    assert "price" not in ds.to_frame().columns  # used, not a control


@pytest.mark.parametrize("case", ["contradiction", "negative", "empty", "missing_column", "zero_number",
                                  "name_taken"])
def test_kpi_option_errors(case):
    df = frame()
    kw: dict = {"revenue_per_kpi": "price"}
    if case == "contradiction":
        kw["kpi_type"] = "non_revenue"
        match = "--kpi-type cannot be non_revenue"
    elif case == "negative":
        df.loc[9, "price"] = -1.0
        match = r"row 10 .*negative revenue per KPI -1.0"
    elif case == "empty":
        df.loc[12, "price"] = np.nan
        match = r"column 'price', row 13 .*revenue per KPI is empty where 'conversions' has a value"
    elif case == "missing_column":
        kw["revenue_per_kpi"] = "rpc"
        match = r"revenue per KPI column 'rpc' not found.*--revenue-per-kpi"
    elif case == "name_taken":
        df["conversions_revenue"] = 1.0
        match = "would be called 'conversions_revenue'"
    else:
        with pytest.raises(ValueError, match="positive number"):
            MMMDataset.from_frame(df, "conversions", ["tv"], revenue_per_kpi=0)
        return
    with pytest.raises(DataValidationError, match=match):
        MMMDataset.from_frame(df, "conversions", ["tv"], **kw)


def test_kpi_survives_prepare(tmp_path):
    """The prepared file keeps what the target measures: an explicit non-revenue type of a column
    called revenue, and a converted KPI (not converted twice)."""
    folder = make_folder(tmp_path / "data")
    ds = load_dataset(folder, kpi_type="non_revenue")
    csv, _ = write_prepared(ds, tmp_path / "p.csv")
    back = load_dataset(csv)
    assert back.kpi == ds.kpi and back.kpi.type == "non_revenue" and back.data_hash() == ds.data_hash()
    conv = load_dataset(folder, revenue_per_kpi=3.0)
    csv, _ = write_prepared(conv, tmp_path / "c.csv")
    back = load_dataset(csv)
    assert back.kpi == conv.kpi and back.target_name == "revenue_revenue"
    np.testing.assert_allclose(back.target.to_numpy(), 3.0 * ds.target.to_numpy())
    # an option given when reading back wins over the saved KPI
    assert load_dataset(csv, kpi_type="non_revenue").kpi.type == "non_revenue"


def test_kpi_columns_on_known_numbers():
    roi = pd.DataFrame({
        "channel": ["a", "b", "c"], "spend": [100.0, 50.0, 10.0],
        "short_term_roi_mean": [2.0, 0.5, -0.1], "short_term_roi_lower": [1.0, -0.5, -0.4],
        "short_term_roi_upper": [4.0, 1.25, 0.2],
        "long_term_roi_mean": [0.5, float("nan"), 0.0], "long_term_roi_lower": [0.25, float("nan"), -0.1],
        "long_term_roi_upper": [1.0, float("nan"), 0.1],
        "total_roi_mean": [2.5, 0.5, -0.1], "total_roi_lower": [1.25, -0.5, -0.4], "total_roi_upper": [5.0, 1.25, 0.2]})
    kpi = KPI.non_revenue("conversions")
    out = kpi_columns(roi, kpi)
    pd.testing.assert_frame_equal(out[roi.columns], roi)  # the ROI columns keep their numbers and names
    np.testing.assert_allclose(out.short_term_cpik, [0.5, 2.0, math.inf])
    np.testing.assert_allclose(out.short_term_cpik_lower, [0.25, 0.8, 5.0])
    np.testing.assert_allclose(out.short_term_cpik_upper, [1.0, math.inf, math.inf])
    np.testing.assert_allclose(out.long_term_cpik, [2.0, np.nan, math.inf])
    np.testing.assert_allclose(out.total_cpik_lower, [0.2, 0.8, 5.0])
    assert (out.return_unit == "conversions per currency unit of spend").all()
    assert out.attrs["labels"]["cost_name"] == "CPIK (cost per incremental conversions)"
    assert out.attrs["kpi"]["type"] == "non_revenue"
    # CPIK = spend / incremental KPI: channel a, 100 spend and 200 incremental conversions -> 0.5
    assert out.spend[0] / (out.short_term_roi_mean[0] * out.spend[0]) == out.short_term_cpik[0]
    # a revenue KPI: the table as it is, labelled; the dict form (from a manifest) works too
    rev = kpi_columns(roi, KPI.revenue("revenue").to_dict())
    pd.testing.assert_frame_equal(rev, roi)
    assert rev.attrs["labels"]["return_name"] == "ROI" and kpi_labels({"type": "revenue"})["cost_name"] is None
    with pytest.raises(ValueError, match="KPI type"):
        kpi_labels({"type": "money"})


def test_kpi_options_on_the_command_line_and_in_the_configuration(tmp_path):
    df = frame()
    df.to_csv(tmp_path / "w.csv", index=False)
    runner = CliRunner()
    r = runner.invoke(app, ["check", "--data", str(tmp_path / "w.csv"), "--channels", "tv", "--target",
                            "conversions", "--revenue-per-kpi", "price", "--min-weeks", "10"],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "conversions x price" in r.stdout and "conversions_revenue" in r.stdout
    r = runner.invoke(app, ["check", "--data", str(tmp_path / "w.csv"), "--channels", "tv", "--target",
                            "conversions", "--kpi-type", "money"])
    assert r.exit_code == 2 and "--kpi-type" in r.output
    r = runner.invoke(app, ["check", "--data", str(tmp_path / "w.csv"), "--channels", "tv", "--target",
                            "conversions", "--kpi-type", "non_revenue", "--revenue-per-kpi", "2"])
    assert r.exit_code == 2 and "cannot be non_revenue" in r.stderr and "Traceback" not in r.output
    (tmp_path / "c.toml").write_text('[data]\nkpi_type = "non_revenue"\nrevenue_per_kpi = "price"\ngeo = "Market"\n')
    cfg = build_config(tmp_path / "c.toml")
    assert (cfg.data.kpi_type, cfg.data.revenue_per_kpi, cfg.data.geo) == ("non_revenue", "price", "Market")
    (tmp_path / "d.toml").write_text("[data]\nrevenue_per_kpi = -2\n")
    with pytest.raises(ConfigError, match="'data.revenue_per_kpi'"):
        build_config(tmp_path / "d.toml")
