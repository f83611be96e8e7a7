"""Saved runs: the one way to open a finished run folder (CLI ``optimize``, the report, the API,
the dashboard).

    run = open_run("results/r1")          # raises RunFolderError unless complete and consistent
    run.run_id, run.config, run.manifest  # what was run
    run.roi()                             # roi.csv as a DataFrame (names as in the data)
    run.posterior("short_term")           # the saved posterior (xarray DataTree), loaded once

A run folder is *complete* when its ``manifest.json`` says ``"status": "complete"``: the pipeline
writes that as its very last step, after every artefact, with each artefact's sha256 and the keys of
the data and the fitted steps. A run that starts writing into a folder first marks it
``"running"``, so a run that stopped part-way (killed, failed) leaves a folder that
:func:`open_run` refuses. It also refuses a *mixed* folder: an artefact whose sha256 differs from
the manifest (replaced or changed since), or a posterior whose embedded step key (see
:data:`POSTERIOR_KEY_ATTR`) is not the manifest's. Every refusal is a :class:`RunFolderError` (a
:class:`~ltae.data.validate.DataValidationError`: the CLI exits 2 with the message).
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltae.data.validate import DataValidationError
from ltae.store import artifacts as art

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ltae.config import RunConfig
    from ltae.data.dataset import MMMDataset

MANIFEST = "manifest.json"
STEPS = ("short_term", "long_term")
# attributes every posterior netCDF carries in its root group (written by ltae.pipeline)
POSTERIOR_STEP_ATTR = "ltae_step"
POSTERIOR_KEY_ATTR = "ltae_key"
POSTERIOR_UPSTREAM_ATTR = "ltae_upstream_key"
POSTERIOR_DATA_ATTR = "ltae_data_hash"
POSTERIOR_FIT_INFO_ATTR = "ltae_fit_info"


class RunFolderError(DataValidationError):
    """A run folder that is missing, incomplete, in use or mixed."""


def posterior_path(run_dir: str | os.PathLike, step: str) -> Path:
    """``<run>/posteriors/<step>.nc``."""
    return Path(run_dir) / "posteriors" / f"{step}.nc"


def posterior_attrs(path: str | os.PathLike) -> dict:
    """The root attributes of a posterior netCDF (cheap: reads no data). Raises OSError/ValueError
    for a missing or unreadable file."""
    import h5netcdf

    with h5netcdf.File(str(path), "r") as f:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def load_posterior(path: str | os.PathLike):
    """A posterior netCDF as an xarray DataTree, fully loaded and the file closed."""
    import xarray as xr

    tree = xr.open_datatree(path, engine="h5netcdf")
    tree.load()
    tree.close()
    return tree


def read_manifest(run_dir: str | os.PathLike) -> dict | None:
    """The manifest, None when there is none; RunFolderError when it cannot be read."""
    p = Path(run_dir) / MANIFEST
    try:
        man = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RunFolderError(f"the run's manifest cannot be read ({e})", file=str(p)) from None
    if not isinstance(man, dict):
        raise RunFolderError("the run's manifest is not a JSON object", file=str(p))
    return man


class SavedRun:
    """A complete, consistent run folder (build with :func:`open_run`). Files are read on demand."""

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest
        self._posteriors: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"SavedRun({str(self.path)!r}, run_id={self.run_id!r})"

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.manifest["run_id"])

    @property
    def data_hash(self) -> str:
        """Hash of the data the run was fitted on."""
        return str(self.manifest.get("data_hash", ""))

    @property
    def keys(self) -> dict[str, str]:
        """Step keys: {"data": data hash, "short_term": ..., "long_term": ...}."""
        return dict(self.manifest.get("keys", {}))

    @property
    def paths(self) -> dict[str, Path]:
        """Every artefact of the run: relative name (e.g. ``roi.csv``, ``posteriors/short_term.nc``)
        -> absolute path."""
        return {name: self.path / name for name in self.manifest.get("artifacts", {})}

    def file(self, name: str) -> Path:
        """Path of one artefact by its relative name; RunFolderError if the run has no such file."""
        if name not in self.manifest.get("artifacts", {}):
            raise RunFolderError(f"the run has no artefact '{name}'", file=str(self.path))
        return self.path / name

    @cached_property
    def config(self) -> RunConfig:
        from ltae.config import RunConfig

        return RunConfig.model_validate(self.manifest["config"])

    @cached_property
    def dataset(self) -> MMMDataset:
        """The prepared data the run was fitted on (its hash is checked against the manifest)."""
        from ltae.data import load_dataset

        ds = load_dataset(self.file("prepared_data.csv"), min_weeks=1)
        if self.data_hash and ds.data_hash() != self.data_hash:
            raise RunFolderError("prepared_data.csv is not the data the run was fitted on (data hash differs "
                                 "from the manifest)", file=str(self.path))
        return ds

    def posterior(self, step: str):
        """The saved posterior of ``step`` ("short_term" or "long_term"), loaded once."""
        if step not in STEPS:
            raise ValueError(f"step must be one of {', '.join(STEPS)}")
        if step not in self._posteriors:
            self._posteriors[step] = load_posterior(self.file(f"posteriors/{step}.nc"))
        return self._posteriors[step]

    def fit_info(self, step: str) -> dict:
        """The sampler's fit information stored with a posterior (sampler, timings...)."""
        raw = posterior_attrs(self.file(f"posteriors/{step}.nc")).get(POSTERIOR_FIT_INFO_ATTR, "{}")
        return json.loads(raw)

    def roi(self) -> pd.DataFrame:
        """roi.csv: per channel spend and short-, long- and total ROI (mean, lower, upper)."""
        return art.read_csv(self.file("roi.csv"))

    def roi_draws(self) -> pd.DataFrame:
        """roi_draws.csv: columns ``total_<channel>``, ``short_<channel>``, ``long_<channel>``."""
        return art.read_csv(self.file("roi_draws.csv"))

    def budget(self) -> pd.DataFrame:
        """budget.csv."""
        return art.read_csv(self.file("budget.csv"))

    def diagnostics(self) -> dict:
        """diagnostics.json."""
        return json.loads(self.file("diagnostics.json").read_text(encoding="utf-8"))

    def quality(self) -> dict:
        """quality.json."""
        return json.loads(self.file("quality.json").read_text(encoding="utf-8"))


def open_run(run_dir: str | os.PathLike, verify: bool = True) -> SavedRun:
    """Open a finished run folder, or raise :class:`RunFolderError` saying why it cannot be used.

    Checks: the folder exists; no run is writing into it; ``manifest.json`` says complete; every
    artefact it lists exists and (``verify``, default) has the sha256 it lists; each posterior's
    embedded step key is the manifest's."""
    from ltae.store import lock

    path = Path(run_dir)
    if not path.is_dir():
        raise RunFolderError("no such run folder", file=str(path), hint="pass the --out folder of `ltae run`")
    info = lock.owner(path)
    if info is not None:
        raise RunFolderError(f"a run is writing into this folder now ({lock.describe(info) if info else 'starting'})",
                             file=str(path), hint="wait for it to finish")
    man = read_manifest(path)
    rerun = "run `ltae run` into it again with the same options (finished steps are reused)"
    if man is None:
        raise RunFolderError("not a finished ltae run (no manifest.json)", file=str(path),
                             hint="pass the --out folder of a finished `ltae run`")
    status = man.get("status")
    if status != "complete":
        if status is None:
            why = "written by an older ltae that did not mark runs complete"
        else:
            why = (f"a run ({man.get('run_id', '?')}, started {man.get('started', '?')}) stopped before it "
                   "finished, so its files may mix two runs")
        raise RunFolderError(f"incomplete run folder: {why}", file=str(path), hint=rerun)
    artifacts = man.get("artifacts")
    if not isinstance(artifacts, dict) or not artifacts or "run_id" not in man:
        raise RunFolderError("the manifest lists no artefacts", file=str(path), hint=rerun)
    for name, digest in artifacts.items():
        p = path / name
        if not p.is_file():
            raise RunFolderError(f"{name} is missing", file=str(path), hint=rerun)
        if verify and art.sha256_file(p) != digest:
            raise RunFolderError(f"mixed run folder: {name} is not the file run {man['run_id']} wrote "
                                 "(its sha256 differs from the manifest)", file=str(path), hint=rerun)
    keys = man.get("keys", {})
    for step in STEPS:
        name = f"posteriors/{step}.nc"
        if name not in artifacts:
            continue
        try:
            key = posterior_attrs(path / name).get(POSTERIOR_KEY_ATTR)
        except (OSError, ValueError) as e:
            raise RunFolderError(f"{name} cannot be read ({e})", file=str(path), hint=rerun) from None
        if key != keys.get(step):
            raise RunFolderError(f"mixed run folder: {name} was fitted for another run (step key {key}, "
                                 f"manifest {keys.get(step)})", file=str(path), hint=rerun)
    return SavedRun(path, man)
