"""The ltae HTTP API (FastAPI): ``ltae serve`` or ``uvicorn --factory ltae.serve.api:app_from_env``.

Routes (OpenAPI at ``/openapi.json``, interactive docs at ``/docs``):

* ``GET /health``: liveness (never needs the token);
* ``GET /runs``, ``GET /runs/{run_id}``: runs in the results store (read-only, a connection per
  request) and runs served from the model registry: ROI table, diagnostics, checklist;
  ``GET /runs/{run_id}/report`` (the HTML report), ``GET /runs/{run_id}/figures/{name}`` (only the
  figures the run's manifest lists);
* ``POST /predict_roi``: a run's short-, long- and total ROI per channel with intervals; with a spend
  plan (per channel, per week or in total) the incremental short-, long- and total sales response
  with intervals, from :func:`ltae.analysis.scenarios.run_scenario` (the numbers of ``ltae scenario``);
* ``POST /optimize_budget``: :func:`ltae.analysis.optimize.optimize_budget` on the run's posterior
  (the numbers of ``ltae optimize``);
* ``POST /runs``: fit new data (an upload, or a path inside the data root) as a background job;
  ``GET /jobs/{job_id}``, ``GET /jobs``: state, step, progress (:mod:`ltae.serve.jobs`).

Runs are opened with :func:`ltae.store.runs.open_run` (complete, consistent folders only) and kept
in a bounded LRU cache keyed by run id and the sha256 of the run's manifest, so a run replaced in its
folder is read again. Bad requests get a 4xx whose JSON body (:class:`ErrorBody`) names the field
and the reason; anything else is logged and answered 500 without internals.

Access: with ``LTAE_API_TOKEN`` set every route but ``/health`` needs ``Authorization: Bearer
<token>``; :func:`serve` refuses a non-loopback host without a token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import secrets
import threading
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

# requests run in threads side by side: one BLAS thread each (set before numpy loads its BLAS)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from fastapi import APIRouter, Depends, FastAPI, Query, Request  # noqa: E402
from fastapi import Path as PathParam  # noqa: E402
from fastapi.concurrency import run_in_threadpool  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import FileResponse, JSONResponse  # noqa: E402
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402

from ltae import __version__  # noqa: E402
from ltae.data.validate import DataValidationError, name_key  # noqa: E402
from ltae.serve import jobs as jobs_mod  # noqa: E402

log = logging.getLogger("ltae.serve.api")

MAX_SPEND = 1e15  # per week or in total, currency: beyond any real budget, far from overflow
MAX_PLAN_WEEKS = 260
EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(2200, 12, 31)
UPLOAD_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")
_UPLOAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,120}$")
_RUN_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_JOB_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$"
_FIGURE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


# ------------------------------------------------------------------------------------------------
# settings
# ------------------------------------------------------------------------------------------------


@dataclass
class ServeSettings:
    """What the server serves and how. ``token`` None: no authentication (loopback only)."""

    runs_root: Path = Path("ltae_runs")  # fits from POST /runs go to runs_root/<job id>/; jobs in .jobs/
    store: Path | None = None  # DuckDB results store (default: ltae.store.results.default_store())
    data_root: Path | None = None  # POST /runs may name files inside it (None: uploads only)
    token: str | None = None
    cache_size: int = 4  # runs kept loaded
    max_body_bytes: int = 1 << 20  # JSON requests
    max_upload_bytes: int = 200 << 20  # POST /runs uploads
    max_queue: int = 16
    resume: bool = True  # a fit the previous server left running: resume it (False: mark interrupted)
    models: list[str] = field(default_factory=list)  # registry models to serve: models:/NAME/VERSION
    model_runs: dict[str, Path] = field(default_factory=dict)  # model URI -> fetched run folder (fetch_models)
    mlflow_tracking_uri: str | None = None  # for `models` and for fits that ask to be registered
    store_timeout: float = 5.0  # seconds to wait for a busy store before answering 503
    start_worker: bool = True

    def resolved_store(self) -> Path:
        """The results store the server reads: ``store`` or the default store."""
        from ltae.store.results import default_store

        return Path(self.store) if self.store is not None else default_store()


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (localhost, 127.0.0.0/8, ::1)."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to expose the API beyond this machine without a token."""
    if not is_loopback(host) and not (token or "").strip():
        raise DataValidationError(f"--host {host} exposes the API beyond this machine without a token",
                                  hint="set LTAE_API_TOKEN (clients then send 'Authorization: Bearer <token>') "
                                       "or bind to 127.0.0.1")


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------


class ApiError(Exception):
    """A bad request: ``status`` (4xx), a message, and the field it is about."""

    def __init__(self, status: int, message: str, field: str | None = None, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.code, self.headers = status, message, field, code, headers


class ErrorItem(BaseModel):
    """One problem of a request: the field it concerns and the reason."""
    field: str | None = Field(None, description="The request field at fault (dotted path; [i] for list items)")
    reason: str


class ErrorBody(BaseModel):
    """The JSON body of every 4xx/5xx answer: an error code, a message and the problems by field."""
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "invalid_request", "message": "budget: must be greater than 0",
         "errors": [{"field": "budget", "reason": "must be greater than 0"}]}]})
    error: str = Field(description="A short code: invalid_request, malformed_json, not_found, unauthorized, "
                                   "conflict, too_large, unsupported_media_type, too_many_requests, "
                                   "busy, internal_error")
    message: str
    errors: list[ErrorItem] = []


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_request",
          429: "too_many_requests", 503: "busy"}


def _error(status: int, message: str, errors: list[dict] | None = None, code: str | None = None,
           headers: dict | None = None) -> JSONResponse:
    body = {"error": code or _CODES.get(status, "error"), "message": message, "errors": errors or []}
    return JSONResponse(body, status_code=status, headers=headers)


def _loc_to_field(loc) -> str | None:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or None


def _pydantic_errors(errors, prefix: str = "") -> list[dict]:
    items = []
    for e in errors:
        f = _loc_to_field(e.get("loc", ()))
        if prefix:
            f = prefix + (("." + f) if f and not f.startswith("[") else (f or ""))
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        items.append({"field": f, "reason": msg})
    return items


def _summary(items: list[dict]) -> str:
    return "; ".join(f"{i['field']}: {i['reason']}" if i.get("field") else i["reason"] for i in items)


# ------------------------------------------------------------------------------------------------
# request and response models
# ------------------------------------------------------------------------------------------------

Spend = Annotated[float, Field(ge=0, le=MAX_SPEND, allow_inf_nan=False)]
RunId = Annotated[str, Field(min_length=1, max_length=128, pattern=_RUN_ID,
                             description="A run id (GET /runs lists them)")]


_BEARER = HTTPBearer(auto_error=False, description="the server's LTAE_API_TOKEN")
BearerCreds = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
RunIdPath = Annotated[str, PathParam(min_length=1, max_length=128, pattern=_RUN_ID,
                                     description="A run id (GET /runs lists them)")]
FigureName = Annotated[str, PathParam(min_length=1, max_length=128, pattern=_FIGURE,
                                      description="A figure's file name (GET /runs/{run_id} lists them)")]
JobIdPath = Annotated[str, PathParam(min_length=1, max_length=80, pattern=_JOB_ID)]


class Interval(BaseModel):
    """A posterior mean with the lower and upper ends of its credible interval."""
    mean: float | None
    lower: float | None
    upper: float | None


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _iv(m, lo, hi) -> dict:
    return {"mean": _num(m), "lower": _num(lo), "upper": _num(hi)}


def _plain(v):
    from ltae.store.artifacts import strict_json_value

    return strict_json_value(v)


class RoiRow(BaseModel):
    """One channel's spend and short-, long- and total ROI with intervals (the run's roi.csv row)."""
    model_config = ConfigDict(extra="allow")
    channel: str
    spend: float | None = Field(description="Spend over the modelled window (currency of spend)")
    short_term: Interval = Field(description="Short-term ROI (currency of sales per unit of spend)")
    long_term: Interval
    total: Interval


class CheckItem(BaseModel):
    """One row of the validation checklist (check, value, threshold, status, action)."""
    model_config = ConfigDict(extra="allow")
    check: str
    value: float | None = None
    threshold: str | None = None
    status: str
    action: str | None = None


class RunSummary(BaseModel):
    """One run as listed by GET /runs (from the results store)."""
    run_id: str
    created: str | None = None
    source: Literal["store", "registry"] = "store"
    status: str = Field(description="complete, running, incomplete or missing (the folder's manifest)")
    n_weeks: int | None = None
    n_channels: int | None = None
    sampler: str | None = None
    draws: int | None = None
    chains: int | None = None
    seed: int | None = None
    total_s: float | None = None
    checks: str | None = Field(None, description="passed/total checklist items")


class RunList(BaseModel):
    """The runs of the store, newest first."""
    runs: list[RunSummary]
    total: int


class RunDetail(BaseModel):
    """One run: its ROI table, diagnostics, checklist and the names of its figures."""
    run_id: str
    created: str | None
    channels: list[str]
    target: str | None
    credible_interval: float
    dataset: dict[str, Any]
    config: dict[str, Any]
    roi: list[RoiRow]
    budget: list[dict[str, Any]]
    diagnostics: dict[str, Any]
    checklist: list[CheckItem]
    timings: dict[str, Any]
    fit_info: dict[str, Any] = Field(description="Per fitted step: sampler, draws, compile and wall seconds")
    figures: list[str]
    report: str = Field(description="Path of the HTML report")


class PlanIn(BaseModel):
    """Spend per channel, per week (``weekly``) or in total (``total``, spread evenly over ``weeks``
    weeks). Weeks start at ``start`` (default: the week after the data) and are 7 days apart; channels
    left out keep the reference's spend. Channel names match the run's ignoring case and spaces."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"weekly": {"LinkedIn": [20000, 20000, 20000, 20000], "Events": [0, 0, 0, 0]}},
        {"total": {"Google": 150000}, "weeks": 13, "start": "2025-01-06"}]})
    start: dt.date | None = Field(None, description="First planned week (a date on the run's weekday, after the "
                                                    "data); default: the week after the data")
    weekly: dict[str, Annotated[list[Spend], Field(min_length=1, max_length=MAX_PLAN_WEEKS)]] | None = Field(
        None, description="channel -> spend per week (currency), every list the same length")
    total: dict[str, Spend] | None = Field(None, description="channel -> total spend over the plan's weeks")
    weeks: int | None = Field(None, ge=1, le=MAX_PLAN_WEEKS, description="Weeks of a `total` plan (default 13)")

    @field_validator("start")
    @classmethod
    def _start(cls, v):
        if v is not None and not EARLIEST <= v <= LATEST:
            raise ValueError(f"must be between {EARLIEST} and {LATEST}")
        return v

    @model_validator(mode="after")
    def _shape(self):
        if (self.weekly is None) == (self.total is None):
            raise ValueError("give exactly one of 'weekly' (spend per week) and 'total' (spend in total)")
        spend = self.weekly if self.weekly is not None else self.total
        if not spend:
            raise ValueError("name at least one channel")
        for k in spend:
            if not str(k).strip() or name_key(k) == "date":
                raise ValueError(f"'{k}' is not a channel name")
        if self.weekly is not None:
            if self.weeks is not None:
                raise ValueError("'weeks' goes with 'total'; a weekly plan's length is its lists' length")
            lengths = {len(v) for v in self.weekly.values()}
            if len(lengths) > 1:
                raise ValueError(f"every channel's weekly list must have the same length (got {sorted(lengths)})")
        return self


class PredictRoiRequest(BaseModel):
    """POST /predict_roi: a run and, optionally, a spend plan (per channel and week, or totals) and a reference plan."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"run_id": "20250101T120000Z-1a2b3c4d-0f0f0f"},
        {"run_id": "20250101T120000Z-1a2b3c4d-0f0f0f",
         "plan": {"weekly": {"LinkedIn": [20000] * 8, "Events": [0] * 8}}}]})
    run_id: RunId
    plan: PlanIn | None = Field(None, description="A spend plan; without one only the run's ROI is returned")
    reference: PlanIn | None = Field(None, description="The plan to compare with (default: the recent average "
                                                       "spend every week; {'total': {...: 0}} gives the "
                                                       "plan's whole response)")
    recent_weeks: int = Field(13, ge=1, le=520, description="Weeks of data behind the recent average")
    draws: int = Field(2000, ge=10, le=10000, description="Posterior draws used (thinned evenly)")
    include_weekly: bool = Field(False, description="Also return the weekly path")


class ScenarioReturn(BaseModel):
    """A plan's incremental return (short, long, total with intervals) for one channel or all."""
    channel: str = Field(description="A channel, or 'all'")
    extra_spend: float | None = Field(description="Plan minus reference spend over the window")
    short_term: Interval = Field(description="Incremental short-term sales response (currency of sales)")
    long_term: Interval
    total: Interval
    roi: Interval | None = Field(description="Total response per extra unit of spend (null where the spend "
                                             "does not change, or for a reallocation)")
    prob_positive: float | None = Field(description="Probability that the total response is positive")


class ScenarioWeek(BaseModel):
    """One week of a plan's predicted sales path (plan, reference and their difference with intervals)."""
    date: str
    phase: str
    plan_spend: dict[str, float | None]
    reference_spend: dict[str, float | None]
    plan_sales: Interval
    reference_sales: Interval
    incremental_short_term: Interval
    incremental_long_term: Interval
    incremental_total: Interval


class ScenarioOut(BaseModel):
    """The scenario of a spend plan: incremental returns per channel and the weekly path."""
    plan_start: str
    plan_end: str
    window_start: str
    window_end: str
    reference: str
    horizon: int
    n_draws: int
    returns: list[ScenarioReturn]
    plan_sales: Interval = Field(description="Predicted sales over the window with the plan")
    reference_sales: Interval
    weekly: list[ScenarioWeek] | None = None


class PredictRoiResponse(BaseModel):
    """ROI per channel with intervals and, with a plan, its predicted response."""
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "run_id": "20250101T120000Z-1a2b3c4d-0f0f0f", "channels": ["Google", "LinkedIn"], "credible_interval": 0.95,
        "roi": [{"channel": "Google", "spend": 2500000.0, "short_term": {"mean": 3.9, "lower": 3.1, "upper": 4.8},
                 "long_term": {"mean": 1.2, "lower": -0.4, "upper": 2.9},
                 "total": {"mean": 5.1, "lower": 3.2, "upper": 7.1}}],
        "scenario": {"plan_start": "2025-01-06", "plan_end": "2025-02-24", "window_start": "2024-12-30",
                     "window_end": "2025-08-04", "reference": "recent average", "horizon": 24, "n_draws": 2000,
                     "returns": [{"channel": "all", "extra_spend": 84360.0,
                                  "short_term": {"mean": 142017.0, "lower": 70195.0, "upper": 239742.0},
                                  "long_term": {"mean": 452057.0, "lower": -161317.0, "upper": 1153862.0},
                                  "total": {"mean": 594074.0, "lower": -32224.0, "upper": 1302544.0},
                                  "roi": {"mean": 7.04, "lower": -0.38, "upper": 15.44}, "prob_positive": 0.97}],
                     "plan_sales": {"mean": 31500000.0, "lower": 29100000.0, "upper": 33900000.0},
                     "reference_sales": {"mean": 30900000.0, "lower": 28500000.0, "upper": 33300000.0},
                     "weekly": None}}]})
    run_id: str
    channels: list[str]
    credible_interval: float
    roi: list[RoiRow]
    scenario: ScenarioOut | None


class Bounds(BaseModel):
    """Spend bounds of one channel as multipliers of its current spend (low <= high)."""
    model_config = ConfigDict(extra="forbid")
    low: float = Field(ge=0, le=1e6, allow_inf_nan=False, description="Lowest multiplier of current spend")
    high: float = Field(gt=0, le=1e6, allow_inf_nan=False, description="Highest multiplier of current spend")

    @model_validator(mode="after")
    def _order(self):
        if self.low > self.high:
            raise ValueError(f"the low bound {self.low:g} is above the high bound {self.high:g}")
        return self


class OptimizeRequest(BaseModel):
    """POST /optimize_budget: total budget, bounds, long-term toggle and risk quantile."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"run_id": "20250101T120000Z-1a2b3c4d-0f0f0f", "budget": 15000000, "bounds": {"low": 0.5, "high": 1.5},
         "include_long_term": True, "risk_quantile": None}]})
    run_id: RunId
    budget: float | None = Field(None, gt=0, le=MAX_SPEND, allow_inf_nan=False,
                                 description="Total budget over the modelled window (default: current spend)")
    bounds: Bounds = Field(Bounds(low=0.5, high=1.5), description="Multiplier bounds for every channel")
    channel_bounds: dict[str, Bounds] | None = Field(None, description="Per-channel bounds (override `bounds`)")
    include_long_term: bool = Field(True, description="Count the long-term (brand) return of spend")
    risk_quantile: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False,
                                        description="Maximise this quantile of the return instead of its mean")


class Allocation(BaseModel):
    """One channel's current and optimal spend, the change and the expected return."""
    channel: str
    current_spend: float | None
    optimal_spend: float | None
    change_pct: float | None
    expected_return_current: float | None
    expected_return: Interval


class OptimizeResponse(BaseModel):
    """The optimal split of the budget with the expected return and its interval."""
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "run_id": "20250101T120000Z-1a2b3c4d-0f0f0f", "budget": 15000000.0, "include_long_term": True, "risk_quantile": None,
        "success": True, "message": "Optimization terminated successfully",
        "allocation": [{"channel": "Google", "current_spend": 5000000.0, "optimal_spend": 6400000.0,
                        "change_pct": 28.0, "expected_return_current": 19500000.0,
                        "expected_return": {"mean": 23100000.0, "lower": 18200000.0, "upper": 28600000.0}}],
        "total_return_current": 52000000.0,
        "total_return": {"mean": 54100000.0, "lower": 44800000.0, "upper": 64900000.0},
        "uplift": {"mean": 2100000.0, "lower": 600000.0, "upper": 3900000.0}}]})
    run_id: str
    budget: float
    include_long_term: bool
    risk_quantile: float | None
    success: bool
    message: str
    allocation: list[Allocation]
    total_return_current: float | None
    total_return: Interval
    uplift: Interval


class RunSubmit(BaseModel):
    """POST /runs (JSON): a data path inside the data root and configuration overrides."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"data_path": "brand_x/2025", "config": {"sampling": {"draws": 1000}}}]})
    data_path: str = Field(min_length=1, max_length=1024,
                           description="A folder or file inside the server's data root (relative to it)")
    config: dict[str, Any] | None = Field(None, description="Run settings (ltae.config.RunConfig), without "
                                                            "data.path")


class JobOut(BaseModel):
    """A fit job: its state, step, progress, and the run it produced."""
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "id": "20250101T120000Z-9f8e7d6c", "state": "running", "created": "2025-01-01T12:00:00.000+00:00",
        "started": "2025-01-01T12:00:00.100+00:00", "finished": None, "step": "short_term", "steps_done": 1,
        "steps_total": 9, "progress": 0.1111, "data": "brand_x/2025", "run_id": None, "error": None,
        "notes": [], "attempts": 1}]})
    id: str
    state: Literal["queued", "running", "succeeded", "failed", "interrupted"]
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    step: str | None = None
    steps_done: int = 0
    steps_total: int = 0
    progress: float = 0.0
    data: str | None = None
    run_id: str | None = None
    error: str | None = None
    notes: list[str] = []
    attempts: int = 0


class JobList(BaseModel):
    """The server's fit jobs, newest first."""
    jobs: list[JobOut]


class Health(BaseModel):
    """GET /health: the server is up (no token needed)."""
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ok", "version": "0.1.0", "runs_loaded": 1, "jobs_queued": 0, "fit_running": False,
         "auth": True}]})
    status: Literal["ok"] = "ok"
    version: str
    runs_loaded: int
    jobs_queued: int
    fit_running: bool
    auth: bool


# ------------------------------------------------------------------------------------------------
# runs: where they are, and the loaded ones
# ------------------------------------------------------------------------------------------------


class Entry:
    """One opened run: the SavedRun, and the LoadedRun built on first use."""

    def __init__(self, saved, sha: str):
        self.saved, self.sha = saved, sha
        self._loaded = None
        self._lock = threading.Lock()
        self._roi: list[dict] | None = None

    def loaded(self):
        """The run loaded for predictions (response model and impulse responses), built once."""
        with self._lock:
            if self._loaded is None:
                from ltae.analysis.scenarios import load_run

                run = load_run(self.saved)
                run.response  # noqa: B018 - build the optimiser's response model once, now
                self._loaded = run
            return self._loaded

    def roi_rows(self) -> list[dict]:
        """The run's ROI table as API rows, built once."""
        if self._roi is None:
            rows = []
            for r in self.saved.roi().to_dict("records"):
                row = {"channel": str(r["channel"]), "spend": _num(r.get("spend"))}
                for term in ("short_term", "long_term", "total"):
                    row[term] = _iv(r.get(f"{term}_roi_mean"), r.get(f"{term}_roi_lower"), r.get(f"{term}_roi_upper"))
                known = {"channel", "spend"} | {f"{t}_roi_{s}" for t in ("short_term", "long_term", "total")
                                                for s in ("mean", "lower", "upper")}
                row.update({str(k): _plain(v) for k, v in r.items() if k not in known})
                rows.append(row)
            self._roi = rows
        return self._roi


class Runs:
    """Run ids -> folders (the store, registry models) and a bounded LRU of opened runs."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.store = settings.resolved_store()
        self._folders: dict[str, Path] = {}
        self._extra: dict[str, tuple[Path, str]] = {}  # runs not in the store (registry)
        self._cache: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def add(self, run_id: str, folder: Path, source: str = "store") -> None:
        """Remember where a run's folder is (from the store, the runs root or the registry)."""
        with self._lock:
            self._folders[run_id] = Path(folder)
            if source != "store":
                self._extra[run_id] = (Path(folder), source)

    def __len__(self) -> int:
        return len(self._cache)

    def folder(self, run_id: str, field: str = "run_id") -> Path:
        """The folder of a known run; 404 for an unknown one."""
        with self._lock:
            f = self._folders.get(run_id)
        if f is not None:
            return f
        from ltae.store.results import run_record

        rec = run_record(self.store, run_id, timeout=self.settings.store_timeout)
        if rec is None:
            raise ApiError(404, f"no run '{run_id}'", field=field)
        f = Path(str(rec["out_dir"]))
        with self._lock:
            self._folders[run_id] = f
        return f

    def entry(self, run_id: str, field: str = "run_id") -> Entry:
        """The run, opened through open_run and kept in the bounded cache (reloaded when its manifest changes)."""
        from ltae.store.runs import RunFolderError, open_run

        folder = self.folder(run_id, field)
        try:
            raw = (folder / "manifest.json").read_bytes()
        except OSError:
            raise ApiError(404, f"run '{run_id}': its folder no longer holds a run", field=field) from None
        key = (run_id, hashlib.sha256(raw).hexdigest())
        with self._lock:
            e = self._cache.get(key)
            if e is not None:
                self._cache.move_to_end(key)
                return e
            load_lock = self._loading.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                e = self._cache.get(key)
            if e is None:
                try:
                    saved = open_run(folder)
                except RunFolderError as exc:
                    raise ApiError(409, f"run '{run_id}' cannot be used now: {exc}", field=field) from None
                if saved.run_id != run_id:
                    raise ApiError(404, f"run '{run_id}' was replaced in its folder by run '{saved.run_id}'",
                                   field=field)
                e = Entry(saved, key[1])
                with self._lock:
                    self._cache[key] = e
                    while len(self._cache) > max(1, self.settings.cache_size):
                        self._cache.popitem(last=False)
        with self._lock:
            self._loading.pop(key, None)
        return e

    def listing(self) -> list[dict]:
        """Every run the server knows, for GET /runs."""
        from ltae.store.results import list_runs
        from ltae.store.runs import read_manifest

        rows = []
        df = list_runs(self.store, timeout=self.settings.store_timeout)
        seen = set()
        for r in df.to_dict("records"):
            rid = str(r["run_id"])
            seen.add(rid)
            rows.append({"run_id": rid, "created": _iso(r.get("created")), "source": "store",
                         "folder": Path(str(r.get("out_dir"))),
                         **{k: _plain(r.get(k)) for k in ("n_weeks", "n_channels", "sampler", "draws", "chains",
                                                           "seed", "total_s", "checks")}})
        with self._lock:
            extra = dict(self._extra)
        for rid, (folder, source) in extra.items():
            if rid in seen:
                continue
            man = _quiet(read_manifest, folder) or {}
            cfg = man.get("config") or {}
            ds = man.get("dataset") or {}
            rows.append({"run_id": rid, "created": man.get("created"), "source": source, "folder": folder,
                         "n_weeks": ds.get("n_weeks"), "n_channels": len(ds.get("channels") or []) or None,
                         "sampler": (cfg.get("sampling") or {}).get("sampler"),
                         "draws": (cfg.get("sampling") or {}).get("draws"),
                         "chains": (cfg.get("sampling") or {}).get("chains"),
                         "seed": (cfg.get("sampling") or {}).get("seed")})
        for row in rows:
            folder = row.pop("folder")
            man = _quiet(read_manifest, folder)
            row["status"] = "missing" if man is None else (
                "complete" if man.get("status") == "complete" and man.get("run_id") == row["run_id"] else
                "running" if man.get("status") == "running" else "incomplete")
        return rows


def _quiet(fn, *a):
    try:
        return fn(*a)
    except Exception:  # noqa: BLE001 - an unreadable manifest: reported as a status, not an error
        return None


def _iso(v) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    try:
        return pd.Timestamp(v).isoformat()
    except (TypeError, ValueError):
        return str(v)


# ------------------------------------------------------------------------------------------------
# plans, scenarios, optimisation
# ------------------------------------------------------------------------------------------------


def _plan_frame(p: PlanIn, run) -> pd.DataFrame:
    start = pd.Timestamp(p.start) if p.start is not None else run.last_date + pd.Timedelta(days=7)
    if p.weekly is not None:
        n = len(next(iter(p.weekly.values())))
        cols = {k: [float(x) for x in v] for k, v in p.weekly.items()}
    else:
        n = p.weeks or 13
        cols = {k: [float(v) / n] * n for k, v in p.total.items()}
    df = pd.DataFrame({"Date": pd.date_range(start, periods=n, freq="7D")})
    for k, v in cols.items():
        df[k] = v
    return df


def _plan_field(exc: DataValidationError, req: PredictRoiRequest) -> str:
    which = "reference" if exc.file == "reference" else "plan"
    p = req.reference if which == "reference" else req.plan
    if exc.column is None:
        return which
    if name_key(exc.column) == "date":
        return f"{which}.start"
    kind = "weekly" if p is not None and p.weekly is not None else "total"
    f = f"{which}.{kind}.{exc.column}"
    if kind == "weekly" and exc.row is not None:
        f += f"[{exc.row - 1}]"
    return f


def _scenario_out(res, include_weekly: bool) -> dict:
    q = (1 - res.credible_interval) / 2

    def tot(x):
        s = x.sum(axis=1)
        return _iv(s.mean(), np.quantile(s, q), np.quantile(s, 1 - q))

    returns = []
    for r in res.returns().to_dict("records"):
        roi = _iv(r["roi_mean"], r["roi_lower"], r["roi_upper"])
        returns.append({"channel": str(r["channel"]), "extra_spend": _num(r["extra_spend"]),
                        "short_term": _iv(r["short_term_mean"], r["short_term_lower"], r["short_term_upper"]),
                        "long_term": _iv(r["long_term_mean"], r["long_term_lower"], r["long_term_upper"]),
                        "total": _iv(r["total_mean"], r["total_lower"], r["total_upper"]),
                        "roi": roi if roi["mean"] is not None else None,
                        "prob_positive": _num(r["prob_positive"])})
    span = res.dates[res.phase == "plan"]
    out = {"plan_start": f"{span[0]:%Y-%m-%d}", "plan_end": f"{span[-1]:%Y-%m-%d}",
           "window_start": f"{res.dates[0]:%Y-%m-%d}", "window_end": f"{res.dates[-1]:%Y-%m-%d}",
           "reference": res.reference_name, "horizon": int(res.horizon), "n_draws": int(res.n_draws),
           "returns": returns, "plan_sales": tot(res.sales_plan), "reference_sales": tot(res.sales_reference),
           "weekly": None}
    if include_weekly:
        wk = res.weekly()
        rows = []
        for r in wk.to_dict("records"):
            row = {"date": f"{pd.Timestamp(r['Date']):%Y-%m-%d}", "phase": str(r["phase"]),
                   "plan_spend": {c: _num(r[f"plan_spend_{c}"]) for c in res.channels},
                   "reference_spend": {c: _num(r[f"reference_spend_{c}"]) for c in res.channels}}
            for name in ("plan_sales", "reference_sales", "incremental_short_term", "incremental_long_term",
                         "incremental_total"):
                row[name] = _iv(r[f"{name}_mean"], r[f"{name}_lower"], r[f"{name}_upper"])
            rows.append(row)
        out["weekly"] = rows
    return out


def predict_roi(runs: Runs, req: PredictRoiRequest) -> dict:
    """The body of POST /predict_roi: ROI per channel and, with a plan, ltae.analysis.scenarios.run_scenario."""
    from ltae.analysis.scenarios import run_scenario

    entry = runs.entry(req.run_id)
    saved = entry.saved
    out = {"run_id": saved.run_id, "channels": [r["channel"] for r in entry.roi_rows()],
           "credible_interval": float(saved.config.credible_interval), "roi": entry.roi_rows(), "scenario": None}
    if req.plan is None:
        if req.reference is not None:
            raise ApiError(422, "a reference needs a plan to compare with it", field="reference")
        return out
    run = entry.loaded()
    plan = _plan_frame(req.plan, run)
    ref = _plan_frame(req.reference, run) if req.reference is not None else None
    try:
        res = run_scenario(run, plan, ref, recent_weeks=req.recent_weeks, max_draws=req.draws, plan_name="plan",
                           reference_name="reference")
    except DataValidationError as exc:
        raise ApiError(422, str(exc), field=_plan_field(exc, req)) from None
    out["scenario"] = _scenario_out(res, req.include_weekly)
    return out


def optimize(runs: Runs, req: OptimizeRequest) -> dict:
    """The body of POST /optimize_budget: ltae.analysis.optimize.optimize_budget, as `ltae optimize`."""
    from ltae.analysis.optimize import optimize_budget

    entry = runs.entry(req.run_id)
    run = entry.loaded()
    channels = run.channels
    bounds: tuple | dict = (req.bounds.low, req.bounds.high)
    if req.channel_bounds:
        keys = {name_key(c): c for c in channels}
        per = {}
        for k, b in req.channel_bounds.items():
            ch = keys.get(name_key(k))
            if ch is None:
                raise ApiError(422, f"unknown channel '{k}'; the run's channels are {', '.join(channels)}",
                               field=f"channel_bounds.{k}")
            if ch in per:
                raise ApiError(422, f"two entries name the channel '{ch}'", field=f"channel_bounds.{k}")
            per[ch] = (b.low, b.high)
        bounds = {c: per.get(c, (req.bounds.low, req.bounds.high)) for c in channels}
    try:
        df = optimize_budget(run.response, req.budget, channels, bounds, req.risk_quantile,
                             include_long_term=req.include_long_term)
    except ValueError as exc:
        msg = str(exc).split(";")[0]
        raise ApiError(422, f"{msg}; widen the bounds or change the budget", field="budget") from None
    a = df.attrs
    alloc = [{"channel": str(r["channel"]), "current_spend": _num(r["current_spend"]),
              "optimal_spend": _num(r["optimal_spend"]), "change_pct": _num(r["change_pct"]),
              "expected_return_current": _num(r["expected_return_current"]),
              "expected_return": _iv(r["expected_return_mean"], r["expected_return_lower"],
                                     r["expected_return_upper"])}
             for r in df.to_dict("records")]
    return {"run_id": run.run_id, "budget": float(a["budget"]), "include_long_term": req.include_long_term,
            "risk_quantile": req.risk_quantile, "success": bool(a["success"]), "message": str(a["message"]),
            "allocation": alloc, "total_return_current": _num(a["total_return_current"]),
            "total_return": _iv(a["total_return_optimal"], a.get("total_return_optimal_lower"),
                                a.get("total_return_optimal_upper")),
            "uplift": _iv(a["uplift_mean"], a["uplift_lower"], a["uplift_upper"])}


def run_detail(runs: Runs, run_id: str) -> dict:
    """The body of GET /runs/{id}."""
    entry = runs.entry(run_id)
    s = entry.saved
    man = s.manifest
    diag = s.diagnostics()
    figures = sorted(Path(n).name for n in man.get("artifacts", {}) if n.startswith("figures/"))
    ds = man.get("dataset") or {}
    return {"run_id": s.run_id, "created": man.get("created"), "channels": [r["channel"] for r in entry.roi_rows()],
            "target": ds.get("target"), "credible_interval": float(s.config.credible_interval),
            "dataset": _plain(ds), "config": _plain(man.get("config") or {}), "roi": entry.roi_rows(),
            "budget": _plain(s.budget().to_dict("records")),
            "diagnostics": _plain({k: v for k, v in diag.items() if k != "checklist"}),
            "checklist": _plain(diag.get("checklist") or []), "timings": _plain(man.get("timings") or {}),
            "fit_info": _plain({step: _quiet(s.fit_info, step) for step in ("short_term", "long_term")}),
            "figures": figures, "report": f"/runs/{s.run_id}/report"}


# ------------------------------------------------------------------------------------------------
# POST /runs: data from an upload or the data root
# ------------------------------------------------------------------------------------------------


def resolve_data_path(root: Path | None, given: str) -> tuple[Path, str | None]:
    """A path inside ``root`` (folder or file, ``FILE.duckdb::TABLE`` too) -> (resolved path, table).
    Refuses '..', absolute paths outside the root and symlinks that lead out of it."""
    if root is None:
        raise ApiError(422, "this server has no data root: upload the data (multipart/form-data) instead",
                       field="data_path")
    table = None
    m = re.match(r"^(.*\.(?:duckdb|db|ddb))::(.+)$", given, flags=re.IGNORECASE)
    if m:
        given, table = m.group(1), m.group(2)
    if "\x00" in given or not given.strip():
        raise ApiError(422, "not a path", field="data_path")
    p = Path(given)
    if ".." in p.parts:
        raise ApiError(422, "must not contain '..'", field="data_path")
    root_real = root.resolve()
    cand = p if p.is_absolute() else root_real / p
    try:
        real = cand.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ApiError(422, f"no such file or folder in the data root: {given}", field="data_path") from None
    if not real.is_relative_to(root_real):
        raise ApiError(422, "must be inside the server's data root (symlinks leading out of it are refused)",
                       field="data_path")
    if real.is_dir():
        for child in real.iterdir():
            try:
                inside = child.resolve(strict=True).is_relative_to(root_real)
            except (OSError, RuntimeError):
                inside = False
            if not inside:
                raise ApiError(422, f"'{child.name}' in the folder leads outside the data root",
                               field="data_path")
    elif not real.is_file():
        raise ApiError(422, "not a file or folder", field="data_path")
    return real, table


def _run_config(config: dict | None, tracking_uri: str | None) -> Any:
    from ltae.config import RunConfig

    config = dict(config or {})
    data = config.get("data")
    if isinstance(data, dict) and data.get("path"):
        raise ApiError(422, "give the data as data_path or an upload, not in the configuration",
                       field="config.data.path")
    if config.get("lift_tests"):  # a path on the server: not a client's to choose
        raise ApiError(422, "lift tests are not taken through the API; run `ltae run --lift-tests FILE` on the "
                       "server", field="config.lift_tests")
    sched = config.get("scheduler")
    if isinstance(sched, str) and sched.strip() != "serial":
        raise ApiError(422, "the server decides where fits run (leave scheduler out, or \"serial\")",
                       field="config.scheduler")
    ml = config.get("mlflow")
    if isinstance(ml, dict) and ml.get("tracking_uri"):
        raise ApiError(422, "the server decides where runs are registered (ltae serve --mlflow-uri)",
                       field="config.mlflow.tracking_uri")
    try:
        cfg = RunConfig.model_validate(config)
    except ValidationError as exc:
        items = _pydantic_errors(exc.errors(), prefix="config")
        raise _Invalid(items) from None
    if cfg.mlflow.enabled and tracking_uri:
        cfg = cfg.model_copy(update={"mlflow": cfg.mlflow.model_copy(update={"tracking_uri": tracking_uri})})
    return cfg


class _Invalid(Exception):
    def __init__(self, items: list[dict]):
        super().__init__(_summary(items))
        self.items = items


def _check_data(path: Path, table: str | None, cfg, hide: list[Path], field: str):
    """Load and validate the data now (errors are the client's: 422 naming file, column, line)."""
    from ltae.config import check_against_data
    from ltae.data import load_dataset

    d = cfg.data
    try:
        ds = load_dataset(str(path) + (f"::{table}" if table else ""), target=d.target, date_col=d.date_col,
                          channels=d.channels, controls=d.controls, brand=d.brand, table=d.table,
                          min_weeks=d.min_weeks)
        check_against_data(cfg, ds)
    except DataValidationError as exc:
        raise ApiError(422, jobs_mod.clean_message(str(exc), hide), field=field) from None
    return ds


# ------------------------------------------------------------------------------------------------
# middleware: body size
# ------------------------------------------------------------------------------------------------


class _BodyLimit:
    """413 for a body over the limit: at once from Content-Length, or while it streams in."""

    def __init__(self, app, settings: ServeSettings):
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope.get("method") == "POST" and scope.get("path", "").rstrip("/") == "/runs"
        limit = self.settings.max_upload_bytes if upload else self.settings.max_body_bytes
        msg = f"the request body is over the limit of {limit:,} bytes"
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    n = 0
                if n > limit:
                    return await _error(413, msg)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413, msg)
            return message

        return await self.app(scope, limited, send)


# ------------------------------------------------------------------------------------------------
# the app
# ------------------------------------------------------------------------------------------------

_ERRORS = {s: {"model": ErrorBody} for s in (400, 401, 404, 409, 413, 415, 422, 429, 503)}


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The API for ``settings`` (see :class:`ServeSettings`). Starts the fit worker, and fetches the
    registry models, when the app starts (its lifespan)."""
    settings = settings or ServeSettings()
    token = (settings.token or "").strip() or None
    runs = Runs(settings)
    runs_root = Path(settings.runs_root)
    jobs = jobs_mod.JobManager(runs_root, runs.store, resume=settings.resume, max_queue=settings.max_queue,
                               on_success=lambda rid, out: runs.add(rid, out),
                               hide=tuple(p for p in (settings.data_root,) if p is not None))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runs_root.mkdir(parents=True, exist_ok=True)
        if set(settings.models) - set(settings.model_runs):
            await run_in_threadpool(fetch_models, settings)
        for uri, folder in settings.model_runs.items():
            from ltae.store.runs import open_run

            saved = open_run(folder)
            runs.add(saved.run_id, folder, source="registry")
            log.info("serving %s as run %s", uri, saved.run_id)
        if settings.start_worker:
            jobs.start()
        try:
            yield
        finally:
            jobs.stop()

    app = FastAPI(
        title="ltae API", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
        description="Two-step Bayesian marketing mix models (short- and long-term ROI) as a service: "
                    "runs, ROI, spend-plan predictions, budget optimisation and background fits. "
                    "Errors are JSON (`ErrorBody`) naming the field and the reason.",
        responses=_ERRORS)
    app.state.settings, app.state.runs, app.state.jobs = settings, runs, jobs
    def require_token(creds: BearerCreds) -> None:
        if token is None:
            return
        if creds is None or not hmac.compare_digest(creds.credentials.encode("utf-8", "replace"),
                                                    token.encode("utf-8")):
            raise ApiError(401, "missing or wrong bearer token (Authorization: Bearer <LTAE_API_TOKEN>)",
                           field="Authorization", headers={"WWW-Authenticate": "Bearer"})

    # ---- errors ----
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        items = [{"field": exc.field, "reason": exc.message}]
        return _error(exc.status, exc.message if not exc.field else f"{exc.field}: {exc.message}", items,
                      exc.code, exc.headers)

    @app.exception_handler(_Invalid)
    async def _invalid(request: Request, exc: _Invalid):
        return _error(422, _summary(exc.items), exc.items)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errs = list(exc.errors())
        bad_json = [e for e in errs if e.get("type") == "json_invalid"]
        if bad_json:
            ctx = bad_json[0].get("ctx") or {}
            reason = f"the body is not valid JSON ({ctx.get('error', 'malformed')})"
            return _error(400, reason, [{"field": None, "reason": reason}], "malformed_json")
        items = _pydantic_errors(errs)
        return _error(422, _summary(items), items)

    @app.exception_handler(DataValidationError)
    async def _data_error(request: Request, exc: DataValidationError):
        return _error(422, str(exc), [{"field": None, "reason": str(exc)}])

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        from ltae.store.results import StoreBusyError

        if isinstance(exc, StoreBusyError):
            return _error(503, "the results store is busy; retry in a few seconds", headers={"Retry-After": "5"})
        ref = secrets.token_hex(4)
        log.error("internal error %s on %s %s", ref, request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal server error (reference {ref} in the server log)", code="internal_error")

    app.add_middleware(_BodyLimit, settings=settings)

    # ---- routes ----
    @app.get("/health", response_model=Health, tags=["service"], summary="Liveness (no token needed)")
    def health() -> dict:
        return {"version": __version__, "runs_loaded": len(runs), "jobs_queued": jobs.queued(),
                "fit_running": any(j["state"] == "running" for j in jobs.list()), "auth": token is not None}

    api = APIRouter(dependencies=[Depends(require_token)] if token else [])

    @api.get("/openapi.json", include_in_schema=False)
    def openapi_json():
        return JSONResponse(app.openapi())

    @api.get("/docs", include_in_schema=False)
    def docs():
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/openapi.json", title="ltae API")

    @api.get("/runs", response_model=RunList, tags=["runs"], summary="Runs in the results store and the registry")
    def list_runs(limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> dict:
        rows = runs.listing()
        return {"runs": rows[offset:offset + limit], "total": len(rows)}

    @api.get("/runs/{run_id}", response_model=RunDetail, tags=["runs"],
             summary="One run: ROI table, budget, diagnostics and checklist")
    def get_run(run_id: RunIdPath) -> dict:
        return run_detail(runs, run_id)

    @api.get("/runs/{run_id}/report", tags=["runs"], summary="The run's HTML report",
             response_class=FileResponse, responses={200: {"content": {"text/html": {}}}})
    def get_report(run_id: RunIdPath):
        entry = runs.entry(run_id)
        return FileResponse(entry.saved.file("report.html"), media_type="text/html",
                            headers={"X-Content-Type-Options": "nosniff"})

    @api.get("/runs/{run_id}/figures/{name}", tags=["runs"], summary="A figure the run's manifest lists",
             response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
    def get_figure(run_id: RunIdPath, name: FigureName):
        entry = runs.entry(run_id)
        rel = f"figures/{name}"
        if rel not in entry.saved.manifest.get("artifacts", {}):
            raise ApiError(404, f"run '{run_id}' has no figure '{name}'", field="name")
        path = entry.saved.file(rel)
        if not path.resolve().is_relative_to(entry.saved.path.resolve()):
            raise ApiError(404, f"run '{run_id}' has no figure '{name}'", field="name")
        media = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}.get(path.suffix.lower(),
                                                                                      "application/octet-stream")
        return FileResponse(path, media_type=media, headers={"X-Content-Type-Options": "nosniff"})

    @api.post("/predict_roi", response_model=PredictRoiResponse, tags=["models"],
              summary="ROI per channel; with a spend plan, its short-, long- and total response")
    def post_predict(req: PredictRoiRequest) -> dict:
        return predict_roi(runs, req)

    @api.post("/optimize_budget", response_model=OptimizeResponse, tags=["models"],
              summary="Best split of a budget (the numbers of `ltae optimize`)")
    def post_optimize(req: OptimizeRequest) -> dict:
        return optimize(runs, req)

    submit_schema = RunSubmit.model_json_schema()
    upload_schema = {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1, "maxItems": 8,
                  "description": "One wide CSV/Parquet file, or the CSV files of a data folder (sales.csv, "
                                 "marketing_spend.csv, ...)"},
        "config": {"type": "string", "description": "Run settings as a JSON object (optional)"}}}

    @api.post("/runs", response_model=JobOut, status_code=202, tags=["jobs"],
              summary="Fit new data in the background (an upload, or a path in the data root)",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": submit_schema},
                  "multipart/form-data": {"schema": upload_schema}}}})
    async def post_run(request: Request) -> dict:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        job_id = jobs_mod.new_job_id()
        upload_dir = None
        hide = [p for p in (settings.data_root, runs_root) if p is not None]
        if ctype == "multipart/form-data":
            upload_dir = jobs.upload_dir(job_id)
            try:
                data_path, label, config = await _read_upload(request, upload_dir)
                table = None
                hide = [upload_dir, *hide]
                field_name = "files"
            except BaseException:
                import shutil

                shutil.rmtree(upload_dir, ignore_errors=True)
                raise
        elif ctype in ("application/json", ""):
            raw = await request.body()
            try:
                body = json.loads(raw or b"null")
            except (ValueError, UnicodeDecodeError) as exc:
                reason = f"the body is not valid JSON ({exc})"
                return _error(400, reason, [{"field": None, "reason": reason}], "malformed_json")
            try:
                sub = RunSubmit.model_validate(body)
            except ValidationError as exc:
                raise _Invalid(_pydantic_errors(exc.errors())) from None
            data_path, table = resolve_data_path(settings.data_root, sub.data_path)
            label, config, field_name = sub.data_path, sub.config, "data_path"
        else:
            raise ApiError(415, "send JSON ({'data_path': ...}) or multipart/form-data (files)",
                           field="Content-Type")
        try:
            if jobs.queued() >= settings.max_queue:
                raise ApiError(429, f"{settings.max_queue} fits are already waiting; try again later",
                               headers={"Retry-After": "60"})
            cfg = _run_config(config, settings.mlflow_tracking_uri)
            if table:
                cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"table": table})})
            await run_in_threadpool(_check_data, data_path, None, cfg, hide, field_name)
            from ltae.pipeline import STEPS

            steps_total = len(STEPS) + (1 if cfg.mlflow.enabled else 0)
            job = jobs.submit(job_id, data_path, label, cfg.model_dump(mode="json"), upload_dir=upload_dir,
                              steps_total=steps_total)
        except jobs_mod.QueueFull as exc:
            if upload_dir is not None:
                import shutil

                shutil.rmtree(upload_dir, ignore_errors=True)
            raise ApiError(429, str(exc), headers={"Retry-After": "60"}) from None
        except BaseException:
            if upload_dir is not None:
                import shutil

                shutil.rmtree(upload_dir, ignore_errors=True)
            raise
        return JSONResponse(jobs_mod.public(job), status_code=202, headers={"Location": f"/jobs/{job_id}"})

    @api.get("/jobs", response_model=JobList, tags=["jobs"], summary="Fit jobs, newest first")
    def list_jobs() -> dict:
        return {"jobs": [jobs_mod.public(j) for j in jobs.list()]}

    @api.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], summary="A fit job: state, step, progress")
    def get_job(job_id: JobIdPath) -> dict:
        job = jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"no job '{job_id}'", field="job_id")
        return jobs_mod.public(job)

    app.include_router(api)
    return app


async def _read_upload(request: Request, folder: Path) -> tuple[Path, str, dict | None]:
    """Save the uploaded files (names checked) into ``folder``; -> (data path, label, config)."""
    from starlette.datastructures import UploadFile

    form = await request.form(max_files=8, max_fields=8, max_part_size=1 << 20)
    try:
        files = form.getlist("files")
        if not files:
            raise ApiError(422, "upload at least one data file", field="files")
        unknown = [k for k in form.keys() if k not in ("files", "config")]
        if unknown:
            raise ApiError(422, f"unknown form field '{unknown[0]}' (use 'files' and 'config')", field=unknown[0])
        names = []
        for i, f in enumerate(files):
            if not isinstance(f, UploadFile):
                raise ApiError(422, "must be a file upload", field=f"files[{i}]")
            name = Path((f.filename or "").replace("\\", "/")).name
            suffix = Path(name).suffix.lower()
            if not _UPLOAD_NAME.match(name) or not (suffix in UPLOAD_SUFFIXES or name.lower().endswith(".roles.json")):
                raise ApiError(422, f"file name '{f.filename}' is not allowed: use letters, digits, '.', '_', '-' "
                                    f"and one of {', '.join(UPLOAD_SUFFIXES)} (or <name>.roles.json)",
                               field=f"files[{i}]")
            if name.lower() in (n.lower() for n in names):
                raise ApiError(422, f"two files are named '{name}'", field=f"files[{i}]")
            names.append(name)
        folder.mkdir(parents=True, exist_ok=True)
        for f, name in zip(files, names, strict=True):
            with open(folder / name, "wb") as out:
                while chunk := await f.read(1 << 20):
                    out.write(chunk)
        config = None
        raw = form.get("config")
        if raw is not None:
            if not isinstance(raw, str):
                raise ApiError(422, "must be a JSON object (text), not a file", field="config")
            try:
                config = json.loads(raw) if raw.strip() else None
            except ValueError as exc:
                raise ApiError(422, f"not valid JSON ({exc})", field="config") from None
            if config is not None and not isinstance(config, dict):
                raise ApiError(422, "must be a JSON object of settings", field="config")
    finally:
        await form.close()
    data_files = [n for n in names if not n.lower().endswith(".roles.json")]
    if len(data_files) == 1 and all(n == data_files[0] or n.lower() == Path(data_files[0]).stem.lower() + ".roles.json"
                                    for n in names):
        return folder / data_files[0], data_files[0], config
    return folder, "upload: " + ", ".join(names), config


# ------------------------------------------------------------------------------------------------
# running it
# ------------------------------------------------------------------------------------------------


def settings_from_env() -> ServeSettings:
    """Settings from ``LTAE_API_*`` variables (for ``uvicorn --factory ltae.serve.api:app_from_env``)."""
    env = os.environ.get
    return ServeSettings(
        runs_root=Path(env("LTAE_API_RUNS", "ltae_runs")),
        store=Path(env("LTAE_STORE")) if env("LTAE_STORE") else None,
        data_root=Path(env("LTAE_API_DATA_ROOT")) if env("LTAE_API_DATA_ROOT") else None,
        token=env("LTAE_API_TOKEN") or None,
        cache_size=int(env("LTAE_API_CACHE_SIZE", "4")),
        models=[m for m in env("LTAE_API_MODELS", "").split(",") if m.strip()],
        mlflow_tracking_uri=env("MLFLOW_TRACKING_URI") or None)


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory``: settings from LTAE_* environment variables."""
    return create_app(settings_from_env())


def fetch_models(settings: ServeSettings) -> None:
    """Download the registry models of ``settings.models`` (once) into ``<runs root>/.registry/``."""
    from ltae.store.registry import fetch_model_run

    for uri in settings.models:
        if uri not in settings.model_runs:
            settings.model_runs[uri] = fetch_model_run(uri, Path(settings.runs_root) / ".registry",
                                                       tracking_uri=settings.mlflow_tracking_uri)


def serve(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the API with uvicorn (blocking). Refuses a non-loopback host without a token, a runs folder
    that another server uses, and registry models it cannot fetch, before it listens."""
    import uvicorn

    check_exposure(host, settings.token)
    jobs_mod.check_free(Path(settings.runs_root))
    fetch_models(settings)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, proxy_headers=False,
                server_header=False, timeout_graceful_shutdown=5)
