"""One roles object (DataRoles) from the CLI and the configuration file to the loaders."""

from __future__ import annotations

import pytest
from data_cases import make_folder
from typer.testing import CliRunner

from ltae.cli import app
from ltae.config import DataConfig, RunConfig, build_config
from ltae.data import DataRoles, load_dataset


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("roles") / "data")


def test_every_role_is_an_option_of_every_data_command():
    """The CLI builds its data options from DataRoles: each field's flag is on check, prepare and
    run, with the help text declared on the field."""
    runner = CliRunner()
    for cmd in ("check", "prepare", "run"):
        out = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "200"}).output
        for name, field in DataRoles.model_fields.items():
            assert DataRoles.flag(name) in out, (cmd, name)
            assert field.description.split()[0] in out


def test_roles_object_and_keywords_are_the_same(folder):
    roles = DataRoles(channels="google, content", controls="", brand=["Awareness"])
    a = load_dataset(folder, roles)
    b = load_dataset(folder, channels=["Google", "Content"], controls=[], brand="awareness")
    assert a.data_hash() == b.data_hash()
    assert a.channels == ("Google", "Content") and a.control_names == () and a.brand_names == ("Awareness",)
    # keywords override the object's fields
    c = load_dataset(folder, roles, channels="LinkedIn")
    assert c.channels == ("LinkedIn",) and c.control_names == ()
    # the dataset's resolved roles load it again
    assert load_dataset(folder, a.data_roles).data_hash() == a.data_hash()
    with pytest.raises(TypeError, match="chanels"):
        load_dataset(folder, chanels="Google")


def test_names_are_normalised_once():
    r = DataRoles(target=" revenue ", channels=" a ,, b ", controls=("x",), table="")
    assert r.target == "revenue" and r.channels == ["a", "b"] and r.controls == ["x"] and r.table is None
    assert DataRoles(controls="").controls == []  # '' on the command line: no controls
    assert DataRoles().controls is None  # not given: the default controls


def test_config_data_section_is_the_roles_plus_the_path(tmp_path, folder):
    assert set(DataConfig.model_fields) == set(DataRoles.model_fields) | {"path"}
    (tmp_path / "c.toml").write_text('[data]\nchannels = "Google, LinkedIn"\ncontrols = []\nmin_weeks = 30\n')
    cfg = build_config(tmp_path / "c.toml", {"data": {"brand": ["Consideration"]}})
    assert cfg.data.roles == DataRoles(channels=["Google", "LinkedIn"], controls=[], brand=["Consideration"],
                                       min_weeks=30)
    ds = load_dataset(folder, cfg.data.roles)
    assert ds.channels == ("Google", "LinkedIn") and ds.brand_names == ("Consideration",)
    assert RunConfig.model_validate({"data": {"path": "x", **ds.roles}}).data.roles.channels == list(ds.channels)


def test_dataset_roles_keep_the_data_hash_stable():
    """Roles that are unset are left out of MMMDataset.roles (which the data hash covers), so a new
    optional role does not change the hash of existing data."""
    import numpy as np
    import pandas as pd

    from ltae.data import MMMDataset

    dates = pd.date_range("2021-01-04", periods=60, freq="W-MON")
    df = pd.DataFrame({"Date": dates, "revenue": np.linspace(100, 200, 60), "tv": 1.0})
    ds = MMMDataset.from_frame(df, target="revenue", channels=["tv"])
    assert ds.roles == {"target": "revenue", "date_col": "Date", "channels": ["tv"], "controls": [], "brand": []}
    # the market roles (geo, population) are unset for one market
    assert set(ds.roles) == set(DataRoles.column_role_names()) - {"geo", "population"}
    # the hash this frame had before the market and KPI roles were added
    assert ds.data_hash() == "dffce98fbe2e33aa61c50c207d93e46a340df152a8e8edfa6a75c5dd4df0af37"


def test_run_command_carries_its_role_options_to_the_loader(folder, tmp_path):
    """`ltae run --channels` reaches the loader through the config: an unknown channel stops the
    run before any fit, naming the option, with nothing written."""
    r = CliRunner().invoke(app, ["run", "--data", str(folder), "--channels", "Google,Radio",
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert "Radio" in r.output and "--channels" in r.output
    assert not (tmp_path / "o").exists()
