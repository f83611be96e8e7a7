"""Loading: unusual but valid inputs just work; the MMMDataset API; load/merge/clean."""

from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd
import pytest
from data_cases import N_WEEKS, edit, make_folder, read, write

from ltae.data import (
    DataValidationError,
    MMMDataset,
    clean_data,
    load_data,
    load_dataset,
    merge_data,
    write_prepared,
)

FILES = ("sales.csv", "marketing_spend.csv", "brand_metrics.csv", "competitor_activity.csv",
         "macroeconomic_indicators.csv")


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "data")


@pytest.fixture
def base(folder):
    return load_dataset(folder)


def values_equal(a: MMMDataset, b: MMMDataset) -> None:
    fa, fb = a.to_frame(), b.to_frame()
    np.testing.assert_allclose(fa.iloc[:, 1:].to_numpy(), fb.iloc[:, 1:].to_numpy())


# ---- the reference dataset -----------------------------------------------------------------


def test_folder_loads_with_spec_defaults(base):
    assert base.n_weeks == N_WEEKS
    assert base.target_name == "revenue"
    assert base.channels == ("Content", "Events", "Google", "LinkedIn")
    assert base.control_names == ("Competitor_A_Spend", "GDP_Growth", "Unemployment_Rate", "Consumer_Confidence")
    assert base.brand_names == ("Awareness", "Consideration")
    assert base.dates.is_monotonic_increasing and base.dates.is_unique
    assert base.dates.freqstr == "W-MON"
    assert base.target.dtype == np.float64 and (base.spend.dtypes == np.float64).all()
    assert (base.spend.to_numpy() >= 0).all()
    assert base.notices == ()
    cols = list(base.to_frame().columns)
    assert cols == ["Date", "revenue", *base.channels, *base.control_names, *base.brand_names]


def test_values_match_the_generator():
    from ltae.data import generate_synthetic_data

    data = generate_synthetic_data(n_weeks=N_WEEKS, seed=3)
    ds = MMMDataset.from_frame(
        data.sales.merge(data.spend_wide.reset_index(), on="Date"), target="revenue",
        channels=data.params.channels,
    )
    np.testing.assert_allclose(ds.target.to_numpy(), data.sales["revenue"].to_numpy())
    np.testing.assert_allclose(ds.spend.to_numpy(), data.spend_wide.to_numpy())


# ---- unusual but valid input -----------------------------------------------------------------


def test_unsorted_rows(folder, base):
    rng = np.random.default_rng(0)
    for name in FILES:
        edit(folder, name, lambda df: df.iloc[rng.permutation(len(df))])
    ds = load_dataset(folder)
    # channels keep the order in which they first appear in the file
    assert set(ds.channels) == set(base.channels)
    ordered = MMMDataset.from_frame(ds.to_frame(), "revenue", base.channels, ds.control_names, ds.brand_names)
    assert ordered.data_hash() == base.data_hash()


def test_utf8_bom(folder, base):
    for name in FILES:
        p = folder / name
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    assert load_dataset(folder).data_hash() == base.data_hash()


def test_whitespace_and_case_in_headers(folder, base):
    edit(folder, "sales.csv", lambda df: df.rename(columns={"Date": "  date ", "revenue": " Revenue  "}))
    edit(folder, "marketing_spend.csv", lambda df: df.rename(columns={"Channel": " CHANNEL", "Spend": "spend "}))
    edit(folder, "brand_metrics.csv", lambda df: df.rename(columns={"Awareness": "Awareness   "}))
    ds = load_dataset(folder, channels=" google , content")
    assert ds.target_name == "Revenue" and ds.channels == ("Google", "Content")
    assert "Awareness" in ds.brand_names
    np.testing.assert_allclose(ds.target.to_numpy(), base.target.to_numpy())
    np.testing.assert_allclose(ds.spend.to_numpy(), base.spend[["Google", "Content"]].to_numpy())


def test_non_ascii_channel_names(tmp_path):
    folder = make_folder(tmp_path / "d", channels=["Télé", "新闻", "Radio"])
    # the file may hold decomposed unicode (NFD); names are normalised to NFC
    edit(folder, "marketing_spend.csv",
         lambda df: df.assign(Channel=df["Channel"].map(lambda s: unicodedata.normalize("NFD", s))))
    ds = load_dataset(folder)
    assert ds.channels == ("Télé", "新闻", "Radio")
    ds2 = load_dataset(folder, channels="新闻,télé")
    assert ds2.channels == ("新闻", "Télé")


@pytest.mark.parametrize("shift, freq", [(-1, "W-SUN"), (3, "W-THU")])
def test_weeks_on_any_weekday(folder, base, shift, freq):
    for name in FILES:
        edit(folder, name, lambda df: df.assign(
            Date=(pd.to_datetime(df["Date"]) + pd.Timedelta(days=shift)).dt.strftime("%Y-%m-%d")))
    ds = load_dataset(folder)
    assert ds.dates.freqstr == freq
    values_equal(ds, base)


def test_thousands_separators_and_semicolons(folder, base):
    df = read(folder, "sales.csv")
    df["revenue"] = [f"{float(v):,.2f}" for v in df["revenue"]]
    assert "," in df["revenue"].iloc[0]
    (folder / "sales.csv").write_text(df.to_csv(index=False, sep=";"), encoding="utf-8")
    values_equal(load_dataset(folder), base)


def test_other_date_format(folder, base):
    for name in FILES:
        edit(folder, name, lambda df: df.assign(Date=pd.to_datetime(df["Date"]).dt.strftime("%d/%m/%Y")))
    assert load_dataset(folder).data_hash() == base.data_hash()


def test_wide_spend_file(folder, base):
    long = read(folder, "marketing_spend.csv")
    wide = long.pivot(index="Date", columns="Channel", values="Spend").reset_index()
    write(folder, "marketing_spend.csv", wide[["Date", "LinkedIn", "Google", "Events", "Content"]])
    ds = load_dataset(folder)
    assert ds.channels == ("LinkedIn", "Google", "Events", "Content")
    np.testing.assert_allclose(ds.spend[list(base.channels)].to_numpy(), base.spend.to_numpy())


def test_long_spend_with_omitted_zero_rows(folder, base):
    edit(folder, "marketing_spend.csv", lambda df: df[df["Spend"].astype(float) != 0])
    ds = load_dataset(folder)
    assert ds.data_hash() == base.data_hash()


def test_missing_spend_weeks_are_zero_with_notice(folder, base):
    edit(folder, "marketing_spend.csv", lambda df: df[df["Date"] != df["Date"].iloc[40]])
    ds = load_dataset(folder)
    assert (ds.spend.iloc[10] == 0).all()
    assert any("no spend rows for 1 of 60 weeks" in n for n in ds.notices)


def test_optional_files_missing(folder):
    for name in FILES[2:]:
        (folder / name).unlink()
    ds = load_dataset(folder)
    assert ds.controls.shape == (N_WEEKS, 0) and ds.brand.shape == (N_WEEKS, 0)
    assert list(ds.to_frame().columns) == ["Date", "revenue", *ds.channels]


def test_no_controls_no_brand_options(folder):
    ds = load_dataset(folder, controls=[], brand="")
    assert ds.control_names == () and ds.brand_names == ()
    ds = load_dataset(folder, controls="gdp_growth, lead_quantity")
    assert ds.control_names == ("GDP_Growth", "lead_quantity")


def test_monthly_brand_metrics_are_forward_filled(folder, base):
    def monthly(df):
        d = pd.to_datetime(df["Date"])
        m = df.groupby(d.dt.to_period("M")).first().reset_index(drop=True)
        m["Date"] = pd.to_datetime(m["Date"]).dt.to_period("M").dt.start_time.dt.strftime("%Y-%m-%d")
        return m

    edit(folder, "brand_metrics.csv", monthly)
    src = read(folder, "brand_metrics.csv")
    ds = load_dataset(folder)
    month_start = pd.to_datetime(src["Date"])
    aw = src["Awareness"].astype(float).to_numpy()
    for d, v in ds.brand["Awareness"].items():
        assert v == aw[(month_start <= d).sum() - 1]  # the value of the month the week is in
    assert any("brand_metrics.csv: values carried onto the weekly dates" in n for n in ds.notices)
    values_equal_cols = ["revenue", *base.channels]
    np.testing.assert_allclose(ds.to_frame()[values_equal_cols], base.to_frame()[values_equal_cols])


def test_brand_and_macro_gaps_are_forward_filled(folder, base):
    edit(folder, "macroeconomic_indicators.csv", lambda df: df.drop(index=[0, 1, 30, 31, 32]))
    ds = load_dataset(folder)
    gdp, ref = ds.controls["GDP_Growth"].to_numpy(), base.controls["GDP_Growth"].to_numpy()
    assert gdp[0] == gdp[1] == ref[2]  # back-filled at the start
    assert gdp[30] == gdp[31] == gdp[32] == ref[29]  # forward-filled in the gap
    assert any("back-filled" in n for n in ds.notices)


def test_future_weeks_without_target_are_dropped(folder):
    def fn(df):
        df.loc[len(df) - 3 :, "revenue"] = ""

    edit(folder, "sales.csv", fn)
    ds = load_dataset(folder)
    assert ds.n_weeks == N_WEEKS - 3
    assert any("dropped 3 trailing" in n for n in ds.notices)


def test_daily_data_is_aggregated_to_weeks(tmp_path):
    rng = np.random.default_rng(1)
    n = 7 * 60 + 3  # 3 days before the first complete week
    days = pd.date_range("2021-01-01", periods=n, freq="D")
    rev = rng.uniform(1e4, 2e4, n).round(2)
    sp = {"TV": rng.uniform(0, 500, n).round(2), "Radio": rng.uniform(0, 100, n).round(2)}
    aw = rng.normal(30, 1, n).round(3)
    folder = tmp_path / "daily"
    folder.mkdir()
    write(folder, "sales.csv", pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "revenue": rev}))
    write(folder, "marketing_spend.csv", pd.DataFrame(
        {"Date": np.repeat(days.strftime("%Y-%m-%d"), 2), "Channel": ["TV", "Radio"] * n,
         "Spend": np.column_stack([sp["TV"], sp["Radio"]]).ravel()}))
    write(folder, "brand_metrics.csv", pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Awareness": aw}))
    ds = load_dataset(folder)
    assert ds.n_weeks == 60
    assert ds.dates[-1] == days[-1] and ds.dates.freqstr == f"W-{days[-1].day_name()[:3].upper()}"
    blocks = lambda x: x[3:].reshape(60, 7)  # noqa: E731
    np.testing.assert_allclose(ds.target.to_numpy(), blocks(rev).sum(axis=1))
    np.testing.assert_allclose(ds.spend["TV"].to_numpy(), blocks(sp["TV"]).sum(axis=1))
    np.testing.assert_allclose(ds.brand["Awareness"].to_numpy(), blocks(aw).mean(axis=1))
    assert any("daily data aggregated to weekly" in n for n in ds.notices)
    assert any("incomplete first week" in n for n in ds.notices)


def test_daily_gap_is_an_error(tmp_path):
    days = pd.date_range("2021-01-04", periods=400, freq="D").delete(100)
    df = pd.DataFrame({"Date": days, "revenue": np.arange(400 - 1.0), "tv": 1.0})
    with pytest.raises(DataValidationError, match="day 2021-04-14 missing") as info:
        MMMDataset.from_frame(df, target="revenue", channels=["tv"])
    assert info.value.row == 101 and info.value.row_kind == "row"


# ---- other sources ---------------------------------------------------------------------------


def test_single_wide_csv_parquet_and_duckdb(tmp_path, base):
    import duckdb

    frame = base.to_frame()
    csv_path, pq_path, db_path = tmp_path / "w.csv", tmp_path / "w.parquet", tmp_path / "w.duckdb"
    frame.to_csv(csv_path, index=False)
    frame.to_parquet(pq_path)
    con = duckdb.connect(str(db_path))
    con.register("frame_view", frame)
    con.execute("CREATE TABLE weekly AS SELECT * FROM frame_view")
    con.execute("CREATE TABLE other AS SELECT 1 AS x")
    con.close()
    roles = dict(channels=",".join(base.channels), controls=list(base.control_names), brand=base.brand_names)
    for ds in (
        load_dataset(csv_path, **roles),
        load_dataset(pq_path, **roles),
        load_dataset(db_path, table="weekly", **roles),
        load_dataset(f"{db_path}::weekly", **roles),
    ):
        assert ds.data_hash() == base.data_hash()
    with pytest.raises(DataValidationError, match="2 tables"):
        load_dataset(db_path, **roles)
    with pytest.raises(DataValidationError, match="table 'nope' not found"):
        load_dataset(db_path, table="nope", **roles)


def test_prepared_file_reloads_without_role_options(tmp_path, base):
    out, roles = write_prepared(base, tmp_path / "prepared_data.csv")
    assert roles.name == "prepared_data.roles.json"
    again = load_dataset(out)
    assert again.data_hash() == base.data_hash()
    assert again.dates.equals(base.dates)


# ---- MMMDataset API ------------------------------------------------------------------------


def test_from_frame_round_trip_and_subset(base):
    frame = base.to_frame()
    ds = MMMDataset.from_frame(frame.sample(frac=1, random_state=0), target="revenue",
                               channels=base.channels, controls=base.control_names,
                               brand=base.brand_names, source="memory")
    assert ds.data_hash() == base.data_hash()
    sub = base.subset(0, 52)
    hold = base.subset(52, base.n_weeks)
    assert sub.n_weeks == 52 and hold.n_weeks == N_WEEKS - 52
    assert sub.dates[-1] + pd.Timedelta(days=7) == hold.dates[0]
    assert hold.channels == base.channels and hold.dates.freqstr == "W-MON"
    assert base.subset(-8, base.n_weeks).n_weeks == 8
    with pytest.raises(ValueError):
        base.subset(10, 10)


def test_data_hash_is_stable_and_sensitive(base):
    assert base.data_hash() == base.data_hash() and len(base.data_hash()) == 64
    frame = base.to_frame()
    frame.loc[3, "Google"] += 0.01
    changed = MMMDataset.from_frame(frame, "revenue", base.channels, base.control_names, base.brand_names)
    assert changed.data_hash() != base.data_hash()
    # same numbers, different roles -> different hash
    moved = MMMDataset.from_frame(frame, "revenue", base.channels, base.control_names[:-1],
                                  (*base.brand_names, base.control_names[-1]))
    assert moved.data_hash() != changed.data_hash()


def test_dataset_is_frozen(base):
    with pytest.raises(AttributeError):
        base.source = "x"  # type: ignore[misc]
    assert "MMMDataset(60 weeks" in repr(base)


# ---- load_data / merge_data / clean_data -------------------------------------------------------


def test_load_data_returns_raw_tables(folder):
    (folder / "brand_metrics.csv").unlink()
    raw = load_data(folder)
    assert set(raw) == {"sales", "marketing", "brand", "competitor", "macro"}
    assert raw["brand"] is None
    assert list(raw["marketing"].columns) == ["Date", "Channel", "Spend"]
    assert raw["sales"].index.name == "line" and raw["sales"].index[0] == 2
    assert pd.api.types.is_datetime64_any_dtype(raw["sales"]["Date"])


def test_merge_data_fills_and_pivots():
    dates = pd.date_range("2021-01-04", periods=6, freq="7D")
    sales = pd.DataFrame({"Date": dates, "revenue": np.arange(6.0) + 10})
    spend = pd.DataFrame({"Date": [dates[0], dates[0], dates[2]], "Channel": ["B", "A", "B"],
                          "Spend": [1.0, 2.0, 3.0]})
    brand = pd.DataFrame({"Date": [pd.Timestamp("2021-01-15"), pd.Timestamp("2021-02-01")],
                          "Awareness": [30.0, 40.0]})
    macro = pd.DataFrame({"Date": [dates[1], dates[4]], "GDP": [1.0, 2.0]})
    m = merge_data(sales, spend, brand=brand, macro=macro)
    assert list(m.columns) == ["Date", "revenue", "B", "A", "GDP", "Awareness"]
    assert m["Date"].tolist() == list(dates)
    assert m["B"].tolist() == [1.0, 0.0, 3.0, 0.0, 0.0, 0.0]
    assert m["A"].tolist() == [2.0, 0, 0, 0, 0, 0]
    assert m["GDP"].tolist() == [1.0, 1.0, 1.0, 1.0, 2.0, 2.0]  # back-fill at start, then forward fill
    assert m["Awareness"].tolist() == [30.0, 30.0, 30.0, 30.0, 40.0, 40.0]


def test_clean_data_never_invents_target():
    df = pd.DataFrame({"Date": pd.date_range("2021-01-04", periods=6, freq="7D")[::-1],
                       "revenue": [np.nan, 5.0, np.nan, 3.0, 2.0, np.nan], "tv": ["1", "2", "3", "4", "5", "6"]})
    out = clean_data(df)
    assert out["Date"].is_monotonic_increasing
    assert len(out) == 4  # leading and trailing empty targets dropped
    assert np.isnan(out["revenue"].iloc[2])  # inner gap left for validation to report
    assert out["tv"].dtype == np.float64
