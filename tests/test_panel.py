"""Data of several markets (PanelDataset): every layout loads without hand editing and gives the
generator's numbers; round trip through prepare; every per-market problem names the market."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from panel_cases import (
    CHANNELS,
    N_MARKETS,
    N_WEEKS,
    geo_folder,
    make_geo,
    pymc_frame,
    read,
    sales_line,
    wide_frame,
    write,
)

from ltae.data import DataValidationError, MMMDataset, PanelDataset, load_dataset, write_prepared
from ltae.data.panel import market_sort_key
from ltae.data.synthetic_geo import market_datasets, meridian_frame


@pytest.fixture(scope="module")
def data():
    return make_geo()


@pytest.fixture
def folder(tmp_path, data):
    return geo_folder(tmp_path / "geo", data)


def same_values(a: MMMDataset, b: MMMDataset) -> None:
    fa, fb = a.to_frame(), b.to_frame()
    assert list(fa.columns) == list(fb.columns)
    assert (fa["Date"] == fb["Date"]).all()
    np.testing.assert_allclose(fa.iloc[:, 1:].to_numpy(float), fb.iloc[:, 1:].to_numpy(float), rtol=1e-12)


# ---- layouts ---------------------------------------------------------------------------------------


def test_five_csv_folder_with_a_geo_column(folder, data):
    """save_geo's folder (a Geo column in every file) loads as a panel, found without --geo (the
    dates repeat) with a notice, and every market is the generator's data of that market."""
    p = load_dataset(folder)
    assert isinstance(p, PanelDataset) and p.markets == tuple(data.markets) and len(p) == N_MARKETS
    assert p.geo == "Geo" and p.n_weeks == N_WEEKS and p.channels == CHANNELS
    assert p.brand_names == ("Awareness", "Consideration") and p.population is None
    assert any("read as markets (--geo Geo)" in n for n in p.notices)
    ref = market_datasets(data)
    for m in p.markets:
        same_values(p[m], ref[m])
    # named with --geo: the same data, no notice about finding the column
    q = load_dataset(folder, geo="geo")
    assert q.data_hash() == p.data_hash() and not any("read as markets" in n for n in q.notices)
    # what pipeline_geo reads: the arrays of the generator
    np.testing.assert_allclose(p.arrays()["target"], data.panel()["sales"])
    np.testing.assert_allclose(p.arrays()["spend"], data.panel()["spend"])


def test_the_lead_geo_model_takes_the_panel(folder, data):
    from ltae.config import RunConfig
    from ltae.pipeline_geo import geo_model

    geo = geo_model(load_dataset(folder), RunConfig())
    assert geo.markets == data.markets and geo.channels == list(CHANNELS)
    np.testing.assert_allclose(geo.sales, data.panel()["sales"])


def test_a_file_without_the_market_column_applies_to_every_market(folder, data):
    """National macro indicators (no Geo column) are every market's controls; brand metrics
    without Geo are national too."""
    first = data.markets[0]
    for name in ("macroeconomic_indicators.csv", "brand_metrics.csv"):
        df = read(folder, name)
        write(folder, name, df[df.Geo == first].drop(columns="Geo"))
    p = load_dataset(folder, geo="Geo")
    nat = market_datasets(data)[first]
    for m in p.markets:
        np.testing.assert_allclose(p[m].controls[["GDP_Growth", "Consumer_Confidence"]].to_numpy(),
                                   nat.controls[["GDP_Growth", "Consumer_Confidence"]].to_numpy())
        np.testing.assert_allclose(p[m].brand.to_numpy(), nat.brand.to_numpy())
        # the competitor file keeps its Geo column: per market
        np.testing.assert_allclose(p[m].controls["Competitor_A_Spend"].to_numpy(),
                                   market_datasets(data)[m].controls["Competitor_A_Spend"].to_numpy())


def test_market_order_is_natural_and_row_order_does_not_matter(tmp_path, data):
    df = wide_frame(data)
    names = {m: n for m, n in zip(data.markets, ["Geo10", "Geo2", "Geo1"], strict=True)}
    df["Market"] = df["Market"].map(names)
    df.to_csv(tmp_path / "a.csv", index=False)
    df.sample(frac=1.0, random_state=3).to_csv(tmp_path / "b.csv", index=False)
    kw = {"channels": "TV,Search", "controls": "GDP_Growth", "brand": "Awareness"}
    a, b = load_dataset(tmp_path / "a.csv", **kw), load_dataset(tmp_path / "b.csv", **kw)
    assert a.markets == ("Geo1", "Geo2", "Geo10") and a.data_hash() == b.data_hash()
    assert sorted(["M10", "M2", "m1", "M1b"], key=market_sort_key) == ["m1", "M1b", "M2", "M10"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "duckdb"])
def test_one_wide_table_with_a_market_column(tmp_path, data, fmt):
    df = wide_frame(data)
    if fmt == "csv":
        path = tmp_path / "w.csv"
        df.assign(Date=df.Date.dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    elif fmt == "parquet":
        path = tmp_path / "w.parquet"
        df.to_parquet(path)
    else:
        import duckdb

        path = tmp_path / "w.duckdb"
        con = duckdb.connect(str(path))
        con.register("df", df)
        con.execute("CREATE TABLE weekly AS SELECT * FROM df")
        con.close()
    p = load_dataset(path, geo="Market", channels=["TV", "Search"], controls=["GDP_Growth"], brand=["Awareness"])
    assert p.markets == tuple(data.markets) and p.geo == "Market"
    ref = market_datasets(data)
    for m in p.markets:
        np.testing.assert_allclose(p[m].target.to_numpy(), ref[m].target.to_numpy())
        np.testing.assert_allclose(p[m].spend.to_numpy(), ref[m].spend[list(CHANNELS)].to_numpy())
        np.testing.assert_allclose(p[m].controls["GDP_Growth"].to_numpy(), ref[m].controls["GDP_Growth"].to_numpy())


def test_meridian_geo_layout_is_recognised(tmp_path, data):
    """geo, time, *_impression, *_control, *_spend, conversions, revenue_per_conversion, population
    (plus the unnamed index column of Meridian's example files) load with no option: channels are
    the *_spend columns, controls the *_control ones, and conversions x revenue_per_conversion is
    the generator's revenue, week by week."""
    path = tmp_path / "geo_media.csv"
    meridian_frame(data).to_csv(path)  # with the pandas index, as Meridian's example CSVs
    p = load_dataset(path)
    assert isinstance(p, PanelDataset) and p.markets == ("Geo0", "Geo1", "Geo2") and p.geo == "geo"
    assert p.channels == ("TV_spend", "Search_spend")
    assert p.control_names == ("competitor_sales_control", "sentiment_score_control")
    assert p.population == {"Geo0": 100_000.0, "Geo1": 200_000.0, "Geo2": 300_000.0}
    assert p.target_name == "conversions_revenue"
    assert (p.kpi_type, p.revenue_per_kpi) == ("revenue", "revenue_per_conversion")
    assert p.kpi.to_dict() == {"type": "revenue", "name": "conversions", "target": "conversions_revenue",
                               "unit": "currency", "revenue_per_kpi": None, "column": "revenue_per_conversion",
                               "detected": False, "converted": True}
    for k, m in enumerate(data.markets):
        d = data.per_market[m]
        np.testing.assert_allclose(p[f"Geo{k}"].target.to_numpy(), d.sales.revenue.to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(p[f"Geo{k}"].spend["TV_spend"].to_numpy(), d.spend_wide["TV"].to_numpy())
    text = " | ".join(p.notices)
    assert "Meridian's layout" in text and "TV_impression" in text and "dropped the first column" in text
    # --geo geo and --date-col time say what was found anyway
    assert load_dataset(path, geo="geo", date_col="time").data_hash() == p.data_hash()
    # the KPI kept as conversions: the revenue per conversion is not used, and says so
    q = load_dataset(path, kpi_type="non_revenue")
    assert q.target_name == "conversions" and q.kpi.type == "non_revenue" and q.kpi.unit == "conversions"
    assert any("'revenue_per_conversion' not used" in n for n in q.notices)
    np.testing.assert_allclose(q["Geo1"].target.to_numpy(), meridian_frame(data).query("geo == 'Geo1'")
                               ["conversions"].to_numpy())


def test_meridian_layout_without_revenue_per_conversion_is_a_non_revenue_kpi(tmp_path, data):
    path = tmp_path / "m.csv"
    meridian_frame(data, revenue_per_conversion=False).to_csv(path, index=False)
    p = load_dataset(path)
    assert p.kpi.type == "non_revenue" and p.kpi.detected and p.target_name == "conversions"
    assert any("does not look like money" in n for n in p.notices)
    # a number converts it: 2.5 per conversion
    q = load_dataset(path, revenue_per_kpi=2.5)
    np.testing.assert_allclose(q["Geo0"].target.to_numpy(), 2.5 * p["Geo0"].target.to_numpy())
    assert q.kpi.revenue_per_kpi == 2.5 and q.kpi.is_revenue


def test_pymc_marketing_multidimensional_layout(tmp_path, data):
    path = tmp_path / "mmm_multidimensional.csv"
    pymc_frame(data).to_csv(path, index=False)
    p = load_dataset(path, geo="geo", channels="x1,x2", target="y")
    assert p.markets == tuple(f"geo_{m.lower()}" for m in data.markets) and p.channels == ("x1", "x2")
    assert p.control_names == () and p.kpi.type == "non_revenue"  # "y" does not say money
    np.testing.assert_allclose(p[f"geo_{data.markets[1].lower()}"].target.to_numpy(),
                               data.per_market[data.markets[1]].sales.revenue.to_numpy())
    q = load_dataset(path, geo="geo", channels="x1,x2", target="y", controls="event_1,event_2,dayofyear",
                     kpi_type="revenue")
    assert q.control_names == ("event_1", "event_2", "dayofyear") and q.kpi.type == "revenue"
    assert not any("look like money" in n for n in q.notices)
    # without --geo the geo column is found (the dates repeat)
    assert load_dataset(path, channels="x1,x2", target="y").data_hash() == p.data_hash()


# ---- round trip ------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["folder", "meridian"])
def test_prepare_round_trip(tmp_path, data, layout):
    """write_prepared writes the panel long (Date, market column, ...) with its roles; reading the
    file back without options gives the same data (hash), markets, population and KPI, and a KPI
    converted to currency is not converted twice."""
    if layout == "folder":
        p = load_dataset(geo_folder(tmp_path / "geo", data))
    else:
        meridian_frame(data).to_csv(tmp_path / "m.csv", index=False)
        p = load_dataset(tmp_path / "m.csv")
    csv, roles = write_prepared(p, tmp_path / "out" / "prepared_data.csv")
    head = pd.read_csv(csv, nrows=2)
    assert list(head.columns[:3]) == ["Date", p.geo, p.target_name]
    q = load_dataset(csv)
    assert isinstance(q, PanelDataset) and q.markets == p.markets and q.data_hash() == p.data_hash()
    assert q.population == p.population and q.kpi == p.kpi
    for m in p.markets:
        same_values(q[m], p[m])
    pd.testing.assert_frame_equal(q.to_frame(), p.to_frame())


def test_panel_dataset_object(folder, data):
    p = load_dataset(folder)
    with pytest.raises(AttributeError):
        p.geo = "x"
    with pytest.raises(KeyError, match="M01"):
        p["nowhere"]
    assert dict(p.items()).keys() == set(data.markets)
    f = p.to_frame()
    assert list(f.columns[:2]) == ["Date", "Geo"] and len(f) == N_MARKETS * N_WEEKS
    nat = p.national()
    np.testing.assert_allclose(nat.target.to_numpy(), data.panel()["sales"].sum(0))
    np.testing.assert_allclose(nat.spend.to_numpy(), data.panel()["spend"].sum(0))
    np.testing.assert_allclose(nat.brand.to_numpy(), data.panel()["brand"].mean(0))
    sub = p.subset(0, 52)
    assert sub.n_weeks == 52 and sub.markets == p.markets
    s = p.summary()
    assert s["n_markets"] == N_MARKETS and s["geo"] == "Geo" and s["kpi"]["type"] == "revenue"
    assert [r["market"] for r in s["per_market"]] == list(data.markets)
    np.testing.assert_allclose([r["spend_TV"] for r in s["per_market"]], data.panel()["spend"][:, :, 0].sum(1))
    # building one by hand validates that the markets fit together
    a, b = p[data.markets[0]], p[data.markets[1]]
    with pytest.raises(ValueError, match="dates"):
        PanelDataset({"A": a, "B": b.subset(1, N_WEEKS)})
    with pytest.raises(ValueError, match="population"):
        PanelDataset({"A": a, "B": b}, population={"A": 1.0})


# ---- per-market problems: the market is named ------------------------------------------------------


def _edit(folder, name, fn):
    df = read(folder, name)
    out = fn(df)
    write(folder, name, df if out is None else out)


def test_missing_week_in_one_market(folder, data):
    m = data.markets[1]
    line = sales_line(data, m, 20)
    _edit(folder, "sales.csv", lambda df: df.drop(index=line - 2))
    with pytest.raises(DataValidationError) as e:
        load_dataset(folder)
    assert e.value.market == m and e.value.file == "sales.csv" and e.value.row == line  # the next week, moved up
    assert f"market '{m}'" in str(e.value) and "missing" in str(e.value)


def test_too_few_weeks_in_one_market(folder, data):
    m = data.markets[2]
    _edit(folder, "sales.csv", lambda df: df[~((df.Geo == m) & (pd.to_datetime(df.Date) > "2021-09-01"))])
    with pytest.raises(DataValidationError) as e:
        load_dataset(folder, min_weeks=52)
    assert e.value.market == m and "at least 52" in str(e.value) and f"market '{m}'" in str(e.value)


def test_dates_that_differ_between_markets(folder, data):
    m = data.markets[0]
    first = read(folder, "sales.csv").Date.iloc[0]
    # market M01 starts two weeks late: two weeks of the others are missing in it
    _edit(folder, "sales.csv", lambda df: df[~((df.Geo == m) & (df.Date <= "2021-01-11"))])
    with pytest.raises(DataValidationError) as e:
        load_dataset(folder, min_weeks=10)
    msg = str(e.value)
    assert e.value.market == m and f"week {first} and 1 more missing" in msg and "the other markets 60" in msg
    # a market with a week the others do not have: that row is named
    geo_folder(folder, data)
    m2 = data.markets[1]

    def extra(df):
        row = df[df.Geo == m2].iloc[[-1]].copy()
        row["Date"] = (pd.Timestamp(row.Date.iloc[0]) + pd.Timedelta(days=7)).strftime("%Y-%m-%d")
        return pd.concat([df, row], ignore_index=True)

    _edit(folder, "sales.csv", extra)
    with pytest.raises(DataValidationError) as e:
        load_dataset(folder, min_weeks=10)
    assert e.value.market == m2 and e.value.row == 2 + N_MARKETS * N_WEEKS
    assert "is not one of the weeks of the other markets" in str(e.value)


def test_a_channel_without_spend_in_one_market_is_a_notice(folder, data):
    m = data.markets[1]

    def zero(df, markets):
        df.loc[df.Geo.isin(markets) & (df.Channel == "Search"), "Spend"] = "0"

    _edit(folder, "marketing_spend.csv", lambda df: zero(df, [m]))
    p = load_dataset(folder)
    assert float(p[m].spend["Search"].sum()) == 0.0
    assert any(f"'Search' has no spend in 1 of {N_MARKETS} markets ({m})" in n for n in p.notices)
    # in every market: the one-market error, naming the channel
    _edit(folder, "marketing_spend.csv", lambda df: zero(df, data.markets))
    with pytest.raises(DataValidationError, match="spend for channel 'Search' is 0 in all 60 weeks") as e:
        load_dataset(folder)
    assert "every market" in str(e.value) and e.value.file == "marketing_spend.csv"


def test_negative_spend_in_one_market_names_market_file_and_line(folder, data):
    m = data.markets[2]
    df = read(folder, "marketing_spend.csv")
    idx = df.index[(df.Geo == m) & (df.Channel == "TV")][7]
    df.loc[idx, "Spend"] = "-50"
    write(folder, "marketing_spend.csv", df)
    with pytest.raises(DataValidationError) as e:
        load_dataset(folder)
    assert (e.value.market, e.value.file, e.value.column, e.value.row) == (m, "marketing_spend.csv", "Spend", idx + 2)
    assert str(e.value).startswith(f"marketing_spend.csv, column 'Spend', market '{m}', line {idx + 2} (Date ")
    assert "negative spend -50.0" in str(e.value)
    import pickle  # errors cross process boundaries (Dask) whole

    back = pickle.loads(pickle.dumps(e.value))
    assert (back.market, str(back)) == (m, str(e.value))


@pytest.mark.parametrize("case", ["nan_target", "duplicate", "unknown_market", "market_without_brand",
                                  "non_weekly", "empty_market"])
def test_other_per_market_problems(folder, data, case):
    m = data.markets[1]
    line = sales_line(data, m, 30)
    if case == "nan_target":
        _edit(folder, "sales.csv", lambda df: df.__setitem__("revenue", df.revenue.where(df.index != line - 2, "")))
        want = {"market": m, "file": "sales.csv", "row": line, "column": "revenue"}
    elif case == "duplicate":
        _edit(folder, "sales.csv", lambda df: pd.concat([df, df.iloc[[line - 2]]], ignore_index=True))
        want = {"file": "sales.csv", "row": 2 + N_MARKETS * N_WEEKS, "column": "Date"}
    elif case == "unknown_market":
        _edit(folder, "marketing_spend.csv", lambda df: df.__setitem__("Geo", df.Geo.replace(m, "M2")))
        want = {"file": "marketing_spend.csv", "column": "Geo"}
    elif case == "market_without_brand":
        _edit(folder, "brand_metrics.csv", lambda df: df[df.Geo != m])
        want = {"market": m, "file": "brand_metrics.csv"}
    elif case == "non_weekly":
        def shift(df):
            d = pd.to_datetime(df.loc[line - 2, "Date"]) + pd.Timedelta(days=3)
            df.loc[line - 2, "Date"] = d.strftime("%Y-%m-%d")
        _edit(folder, "sales.csv", shift)
        want = {"market": m, "file": "sales.csv", "row": line, "column": "Date"}
    else:
        _edit(folder, "sales.csv", lambda df: df.__setitem__("Geo", df.Geo.where(df.index != line - 2, "")))
        want = {"file": "sales.csv", "row": line, "column": "Geo"}
    with pytest.raises(DataValidationError) as e:
        load_dataset(folder, geo="Geo")
    for k, v in want.items():
        assert getattr(e.value, k) == v, (k, str(e.value))
    if "market" in want:
        assert f"market '{m}'" in str(e.value)


def test_population_column_and_file(tmp_path, data):
    df = wide_frame(data)
    pops = {m: 1000.0 * (k + 1) for k, m in enumerate(data.markets)}
    df["pop"] = df.Market.map(pops)
    df.to_csv(tmp_path / "w.csv", index=False)
    kw = {"channels": "TV,Search", "geo": "Market"}
    p = load_dataset(tmp_path / "w.csv", population="pop", **kw)
    assert p.population == pops and p.population_name == "pop"
    assert "pop" in p.to_frame().columns
    # not a control: the population is not among the data columns of a market
    assert "pop" not in p[data.markets[0]].to_frame().columns
    # a zero population is named with its market and row
    df.loc[5, "pop"] = 0
    df.to_csv(tmp_path / "w.csv", index=False)
    with pytest.raises(DataValidationError, match="population 0.0 is not a positive number") as e:
        load_dataset(tmp_path / "w.csv", population="pop", **kw)
    assert e.value.market == data.markets[0] and e.value.row == 7
    # population.csv next to the five files
    folder = geo_folder(tmp_path / "geo", data)
    write(folder, "population.csv", pd.DataFrame({"Geo": data.markets, "population": ["5", "6", "7"]}))
    assert load_dataset(folder).population == dict(zip(data.markets, [5.0, 6.0, 7.0], strict=True))
    write(folder, "population.csv", pd.DataFrame({"Geo": data.markets[:2], "population": ["5", "6"]}))
    with pytest.raises(DataValidationError, match="no population") as e:
        load_dataset(folder)
    assert e.value.market == data.markets[2] and e.value.file == "population.csv"
    # one market: --population does not apply
    one = df[df.Market == data.markets[0]].drop(columns="Market")
    one.to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(DataValidationError, match="--population applies to data of several markets"):
        load_dataset(tmp_path / "one.csv", channels="TV,Search", population="pop")


# ---- the command line --------------------------------------------------------------------------


def _invoke(*args):
    from typer.testing import CliRunner

    from ltae.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_check_prints_one_row_per_market_and_the_notices(tmp_path, data):
    folder = geo_folder(tmp_path / "geo", data)
    _edit(folder, "marketing_spend.csv",
          lambda df: df.__setitem__("Spend", df.Spend.where(~((df.Geo == "M02") & (df.Channel == "TV")), "0")))
    _edit(folder, "sales.csv", lambda df: df.__setitem__("Geo", df.Geo.replace("M03", "[bold]M3[/bold]")))
    for name in ("marketing_spend.csv", "brand_metrics.csv", "competitor_activity.csv",
                 "macroeconomic_indicators.csv"):
        _edit(folder, name, lambda df: df.__setitem__("Geo", df.Geo.replace("M03", "[bold]M3[/bold]")))
    r = _invoke("check", "--data", folder, "--geo", "Geo", "--json", tmp_path / "q.json")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "Dataset (3 markets)" in out and "Markets (totals over the weeks)" in out and "data OK" in out
    assert "[bold]M3[/bold]" in out  # a market name is printed as it is, not as markup
    assert "'TV' has no spend in 1 of 3 markets (M02)" in out
    tv = data.per_market["M01"].spend_wide["TV"].sum()
    assert f"{tv:,.0f}" in out  # M01's TV spend in the per-market table
    import json

    rep = json.loads((tmp_path / "q.json").read_text())
    assert rep["dataset"]["markets"] == ["[bold]M3[/bold]", "M01", "M02"]  # natural order of the names
    assert rep["dataset"]["per_market"][2]["spend_TV"] == 0.0 and rep["quality"]["n_weeks"] == N_WEEKS


@pytest.mark.parametrize("cmd", ["prepare", "run"])
def test_bad_panel_exits_2_naming_the_market_and_writes_nothing(tmp_path, data, cmd):
    folder = geo_folder(tmp_path / "geo", data)
    m = data.markets[1]
    df = read(folder, "marketing_spend.csv")
    idx = df.index[df.Geo == m][5]
    df.loc[idx, "Spend"] = "-3"
    write(folder, "marketing_spend.csv", df)
    out = tmp_path / "out"
    args = ["--out", out / "p.csv"] if cmd == "prepare" else ["--out", out]
    r = _invoke(cmd, "--data", folder, "--geo", "Geo", *args)
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert err.startswith("error: marketing_spend.csv, column 'Spend', market 'M02', line ") and len(err.splitlines()) == 1
    assert "Traceback" not in r.output and not out.exists()


def test_prepare_writes_the_panel_long(tmp_path, data):
    folder = geo_folder(tmp_path / "geo", data)
    r = _invoke("prepare", "--data", folder, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    assert f"({N_WEEKS} weeks x {N_MARKETS} markets)" in r.stdout
    df = pd.read_csv(tmp_path / "prepared_data.csv")
    assert len(df) == N_MARKETS * N_WEEKS and list(df.Geo.unique()) == data.markets
    assert load_dataset(tmp_path / "prepared_data.csv").data_hash() == load_dataset(folder).data_hash()
