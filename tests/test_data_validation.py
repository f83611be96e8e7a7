"""DataValidationError: attributes and one-sentence messages, for every bad-input case."""

from __future__ import annotations

import pickle

import pytest
from data_cases import BAD_CASES, Case, cli_to_kwargs, make_folder

from ltae.data import DataValidationError, load_dataset


@pytest.mark.parametrize("case", BAD_CASES, ids=[c.id for c in BAD_CASES])
def test_bad_input_raises_with_location(tmp_path, case: Case):
    folder = make_folder(tmp_path / "data")
    args = case.mutate(folder)
    with pytest.raises(DataValidationError) as info:
        load_dataset(folder, **cli_to_kwargs(args))
    err = info.value
    if case.file is not None:
        assert err.file == case.file
    assert err.column == case.column
    assert err.row == case.row
    msg = str(err)
    assert "\n" not in msg and msg.endswith(".")
    if case.column is not None:
        assert f"column '{case.column}'" in msg
    if case.row is not None:
        assert f"line {case.row}" in msg
        assert err.line == case.row
    for w in case.words:
        assert w in msg, (w, msg)


def test_message_format_matches_the_documented_example():
    err = DataValidationError(
        "negative spend -120.0",
        file="marketing_spend.csv",
        column="Spend",
        row=17,
        context="Date 2021-04-26, Channel Google",
        hint="spend must be >= 0",
    )
    assert str(err) == (
        "marketing_spend.csv, column 'Spend', line 17 (Date 2021-04-26, Channel Google): "
        "negative spend -120.0; spend must be >= 0."
    )
    assert isinstance(err, ValueError)
    assert (err.file, err.column, err.row, err.line) == ("marketing_spend.csv", "Spend", 17, 17)


def test_negative_spend_message_has_date_and_channel(tmp_path):
    folder = make_folder(tmp_path / "data")
    import data_cases

    data_cases.set_cell("marketing_spend.csv", 15, "Spend", "-120")(folder)
    with pytest.raises(DataValidationError) as info:
        load_dataset(folder)
    # row 15 = week 3 (2021-01-25), channel 4 (LinkedIn)
    assert str(info.value) == (
        "marketing_spend.csv, column 'Spend', line 17 (Date 2021-01-25, Channel LinkedIn): "
        "negative spend -120.0; spend must be >= 0."
    )


def test_row_kind_for_tables_without_lines():
    err = DataValidationError("bad", file="x.parquet", column="a", row=3, row_kind="row")
    assert str(err) == "x.parquet, column 'a', row 3: bad."
    assert err.line is None and err.row == 3


def test_message_is_one_line_even_with_newlines_in_parts():
    err = DataValidationError("first\nsecond", file="f.csv", hint="do\nthis")
    assert str(err) == "f.csv: first second; do this."


def test_error_survives_pickling():
    err = DataValidationError("bad", file="f.csv", column="c", row=5, context="Date 2021-01-04", hint="fix")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.row == 5 and back.column == "c"


def test_parquet_errors_say_row(tmp_path):
    import pandas as pd

    df = pd.DataFrame(
        {
            "Date": pd.date_range("2021-01-03", periods=60, freq="7D"),
            "revenue": [1000.0 + i for i in range(60)],
            "tv": [10.0] * 60,
        }
    )
    df.loc[4, "tv"] = -1.0
    p = tmp_path / "d.parquet"
    df.to_parquet(p)
    with pytest.raises(DataValidationError) as info:
        load_dataset(p, channels="tv")
    err = info.value
    assert (err.file, err.column, err.row, err.row_kind) == ("d.parquet", "tv", 5, "row")
    assert "row 5 (Date 2021-01-31)" in str(err)


def test_wide_file_without_channels_names_the_options(tmp_path):
    folder = make_folder(tmp_path / "data")
    p = tmp_path / "wide.csv"
    (folder / "sales.csv").rename(p)
    with pytest.raises(DataValidationError) as info:
        load_dataset(p)
    msg = str(info.value)
    assert "--channels" in msg and "--target" in msg and "revenue" in msg


def test_roles_must_not_overlap():
    import pandas as pd

    from ltae.data import MMMDataset

    df = pd.DataFrame({"Date": pd.date_range("2021-01-04", periods=10, freq="7D"),
                       "y": range(10), "tv": [1.0] * 10})
    with pytest.raises(DataValidationError, match="both as channels and as controls"):
        MMMDataset.from_frame(df, target="y", channels=["tv"], controls=["TV"])


def test_ambiguous_target_asks_for_target(tmp_path):
    folder = make_folder(tmp_path / "data")
    import data_cases

    data_cases.edit(folder, "sales.csv", lambda df: df.rename(columns={"revenue": "sales_eur"}))
    with pytest.raises(DataValidationError, match="--target") as info:
        load_dataset(folder)
    assert "sales_eur" in str(info.value) and "lead_quantity" in str(info.value)
    ds = load_dataset(folder, target="sales_eur")
    assert ds.target_name == "sales_eur"


def test_spend_off_the_sales_weeks(tmp_path):
    folder = make_folder(tmp_path / "data")
    import data_cases

    data_cases.set_cell("marketing_spend.csv", 9, "Date", "2021-01-19")(folder)  # a Tuesday
    with pytest.raises(DataValidationError) as info:
        load_dataset(folder)
    assert info.value.row == 11 and "not one of the weeks of sales.csv" in str(info.value)


def test_not_utf8(tmp_path):
    folder = make_folder(tmp_path / "data")
    raw = (folder / "marketing_spend.csv").read_bytes().replace(b"Google", b"T\xe9l\xe9")
    (folder / "marketing_spend.csv").write_bytes(raw)
    with pytest.raises(DataValidationError, match="UTF-8") as info:
        load_dataset(folder)
    assert info.value.file == "marketing_spend.csv" and info.value.row == 4
