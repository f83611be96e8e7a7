"""MLflow model registry: log a finished run, register it as a model version, fetch it back.

    info = log_run("results/r1")                    # params, metrics, artefacts, a new model version
    folder = fetch_model_run("models:/ltae/1", dest)  # the registered run folder, verified

What :func:`log_run` logs for a run folder (opened with :func:`ltae.store.runs.open_run`, so only a
complete, consistent run):

* **params**: the run's configuration, flattened (``sampling.draws``, ``horizon``...), and its id;
* **metrics**: the numeric diagnostics (``short_term.max_rhat``, ``fit.one_step_mape``...), the
  checklist's passes, and each channel's short-, long- and total ROI mean
  (``roi.total.<channel>``; characters MLflow does not allow in names become ``_``);
* **artifacts**: roi.csv, budget.csv, diagnostics.json, quality.json, report.html, manifest.json,
  ``posteriors/`` and ``figures/``;
* **a model**: an MLflow ``pyfunc`` (:class:`ltae.store.mlflow_pyfunc.LtaeRunModel`, logged *as code*:
  nothing is pickled) whose artifacts are the run folder's files; ``load_context`` opens them with
  ``open_run`` (sha256 of every file checked) and ``predict`` takes a spend plan and returns the
  incremental short-, long- and total response, the numbers of ``ltae scenario``. The model is
  registered as a new version of ``model_name``, tagged with the ltae run id.

Tracking URI: the one given, else ``$MLFLOW_TRACKING_URI``, else a local SQLite store in ltae's
data folder (``$XDG_DATA_HOME/ltae/mlflow/mlflow.db``): :func:`default_tracking_uri`. For a SQLite
store the experiment ltae creates keeps its artifacts next to the database (``artifacts/``), not in
the current folder. MLflow is imported only when needed (it takes seconds).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

from ltae.data.validate import DataValidationError

_LOCK = threading.RLock()  # mlflow's tracking URI is process-wide state
ARTIFACT_FILES = ("roi.csv", "budget.csv", "diagnostics.json", "quality.json", "report.html", "manifest.json")
MODEL_ARTIFACT = "run"  # the key of the run folder in the pyfunc's artifacts
MODEL_NAME_IN_RUN = "model"


class RegistryError(DataValidationError):
    """MLflow is missing, unreachable, or has no such model."""


def data_dir() -> Path:
    """ltae's data folder ($XDG_DATA_HOME/ltae, default ~/.local/share/ltae)."""
    base = os.environ.get("XDG_DATA_HOME", "").strip() or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "ltae" / "mlflow"


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else a SQLite store in ltae's data folder."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{data_dir() / 'mlflow.db'}"


def _mlflow():
    try:
        import mlflow
    except ImportError:
        raise RegistryError("MLflow is not installed", hint="pip install 'ltae[registry]'") from None
    return mlflow


@contextlib.contextmanager
def _tracking(uri: str | None):
    """Point mlflow at ``uri`` (default :func:`default_tracking_uri`) for the block."""
    mlflow = _mlflow()
    uri = uri or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        before = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)
        try:
            yield mlflow, uri
        finally:
            mlflow.set_tracking_uri(before)


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", str(s))[:250]


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            text = v if isinstance(v, str) else json.dumps(v, default=str)
            out[_safe_name(key)] = text[:6000]
    return out


def _finite(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def run_params(saved) -> dict[str, str]:
    """The run's configuration flattened to MLflow params."""
    cfg = dict(saved.manifest.get("config") or {})
    cfg.pop("mlflow", None)  # where it is logged to is not a parameter of the model (and may hold secrets)
    params = _flatten(cfg)
    params["ltae_run_id"] = saved.run_id
    params["data_hash"] = saved.data_hash
    return params


def run_metrics(saved) -> dict[str, float]:
    """The run's diagnostics and ROI means as MLflow metrics."""
    diag = saved.diagnostics()
    out: dict[str, float] = {}
    for model in ("short_term", "long_term", "fit"):
        for k, v in (diag.get(model) or {}).items():
            f = _finite(v)
            if f is not None:
                out[_safe_name(f"{model}.{k}")] = f
    checks = diag.get("checklist") or []
    out["checklist.pass"] = float(sum(c.get("status") == "pass" for c in checks))
    out["checklist.total"] = float(len(checks))
    for row in saved.roi().to_dict("records"):
        for term in ("short_term", "long_term", "total"):
            f = _finite(row.get(f"{term}_roi_mean"))
            if f is not None:
                out[_safe_name(f"roi.{term}.{row['channel']}")] = f
    return out


def _experiment_id(mlflow, uri: str, name: str) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # keep the artifacts next to the database, not in the current folder
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def _signature(channels: list[str]):
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("string", "Date"), *[ColSpec("double", c, required=False) for c in channels]])
    cols = ["extra_spend"] + [f"{t}_{s}" for t in ("short_term", "long_term", "total", "roi")
                              for s in ("mean", "lower", "upper")] + ["prob_positive"]
    outputs = Schema([ColSpec("string", "channel"), *[ColSpec("double", c) for c in cols]])
    params = ParamSchema([ParamSpec("recent_weeks", "long", 13), ParamSpec("draws", "long", 2000)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, requires, version

    reqs = []
    try:
        reqs.append(f"ltae=={version('ltae')}")
        names = [re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0] for r in (requires("ltae") or []) if "extra ==" not in r]
    except PackageNotFoundError:
        names = []
    for n in [*names, "mlflow"]:
        try:
            reqs.append(f"{n}=={version(n)}")
        except PackageNotFoundError:
            continue
    return reqs


def _stage_run(saved, folder: Path) -> Path:
    """Copy the run's artefacts (the manifest's list) and manifest.json into ``folder``."""
    for name, src in saved.paths.items():
        dst = folder / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    shutil.copy2(saved.path / "manifest.json", folder / "manifest.json")
    return folder


def log_run(run_dir, *, tracking_uri: str | None = None, experiment: str = "ltae", model_name: str = "ltae",
            register: bool = True) -> dict:
    """Log a finished run folder to MLflow and (``register``) register it as a model version.

    Returns {"tracking_uri", "experiment_id", "mlflow_run_id", "model_uri", "registered_model",
    "version"}. Raises :class:`~ltae.store.runs.RunFolderError` for an unusable folder and
    :class:`RegistryError` when MLflow fails."""
    from ltae.store.runs import open_run

    saved = open_run(run_dir)
    channels = list(saved.roi()["channel"].astype(str))
    code = Path(__file__).with_name("mlflow_model_code.py")
    with _tracking(tracking_uri) as (mlflow, uri):
        try:
            exp_id = _experiment_id(mlflow, uri, experiment)
            with mlflow.start_run(experiment_id=exp_id, run_name=saved.run_id,
                                  tags={"ltae.run_id": saved.run_id, "ltae.data_hash": saved.data_hash}) as r:
                params = list(run_params(saved).items())
                for i in range(0, len(params), 100):
                    mlflow.log_params(dict(params[i:i + 100]))
                mlflow.log_metrics(run_metrics(saved))
                for name in ARTIFACT_FILES:
                    p = saved.path / name
                    if p.is_file():
                        mlflow.log_artifact(str(p))
                for name, p in saved.paths.items():
                    sub = Path(name).parent
                    if str(sub) in ("posteriors", "figures"):
                        mlflow.log_artifact(str(p), artifact_path=str(sub))
                with tempfile.TemporaryDirectory(prefix="ltae-mlflow-") as tmp:
                    stage = _stage_run(saved, Path(tmp) / MODEL_ARTIFACT)
                    info = mlflow.pyfunc.log_model(
                        name=MODEL_NAME_IN_RUN, python_model=str(code), artifacts={MODEL_ARTIFACT: str(stage)},
                        signature=_signature(channels), pip_requirements=_requirements(),
                        registered_model_name=model_name if register else None,
                        metadata={"ltae_run_id": saved.run_id, "channels": channels})
                version = getattr(info, "registered_model_version", None)
                if register and version is not None:
                    client = mlflow.MlflowClient()
                    client.set_model_version_tag(model_name, str(version), "ltae.run_id", saved.run_id)
        except DataValidationError:
            raise
        except Exception as exc:  # mlflow own
            raise RegistryError(f"logging to MLflow failed ({type(exc).__name__}: {exc})", file=uri,
                                hint="check the tracking URI (--mlflow-uri, MLFLOW_TRACKING_URI) and that "
                                     "the server is reachable") from None
    return {"tracking_uri": uri, "experiment_id": exp_id, "mlflow_run_id": r.info.run_id,
            "model_uri": f"models:/{model_name}/{version}" if register and version is not None else info.model_uri,
            "registered_model": model_name if register else None,
            "version": None if version is None else int(version)}


def fetch_model_run(model_uri: str, dest_root: str | os.PathLike, *, tracking_uri: str | None = None) -> Path:
    """Download a registered ltae model (``models:/NAME/VERSION``, ``models:/NAME@alias``, ``runs:/...``)
    and return its run folder, verified with ``open_run``, under ``dest_root/<ltae run id>``."""
    from ltae.store.runs import open_run

    dest_root = Path(dest_root)
    dest_root.mkdir(parents=True, exist_ok=True)
    with _tracking(tracking_uri) as (mlflow, uri):
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=dest_root))
        try:
            try:
                local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(tmp)))
            except Exception as exc:  # noqa: BLE001
                raise RegistryError(f"cannot fetch {model_uri} ({type(exc).__name__}: {exc})", file=uri,
                                    hint="check the model name and version (mlflow's UI lists them) and the "
                                         "tracking URI (--mlflow-uri, MLFLOW_TRACKING_URI)") from None
            found = sorted(p.parent for p in local.rglob("manifest.json"))
            if len(found) != 1:
                raise RegistryError(f"{model_uri} is not an ltae model (it holds {len(found)} run folders)",
                                    file=uri)
            saved = open_run(found[0])
            final = dest_root / saved.run_id
            if final.exists():
                try:
                    open_run(final)
                    return final
                except DataValidationError:
                    shutil.rmtree(final)
            os.replace(found[0], final)
            return final
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
