"""Background fits for the API (``POST /runs``): one at a time, the others queued, every job's record
kept as JSON so that a restarted server knows what happened.

* A job is a call of :func:`ltae.pipeline.run` into ``<runs root>/<job id>/`` in this process (so a
  second fit of the same model shape reuses the compiled model held in memory by
  :mod:`ltae.models.compile_cache`), writing its record to the results store like ``ltae run``.
* Records live in ``<runs root>/.jobs/<job id>.json`` and are written atomically on every change
  (state, step, progress). Uploaded data are kept in ``<runs root>/.jobs/<job id>.data/`` until the
  job ends, so a job can run again after a restart.
* One server per runs root: :meth:`JobManager.start` takes an exclusive lock on
  ``.jobs/.server.lock`` (released by the operating system however the server ends).
* On start, jobs a previous server left queued are queued again; a job it left *running* (the server
  died mid-fit) is queued again when ``resume`` is on (the default: re-running into the same folder
  reuses the steps it finished, see :mod:`ltae.pipeline`) and marked ``interrupted`` otherwise.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ltae.data.validate import DataValidationError
from ltae.store import artifacts as art

log = logging.getLogger("ltae.serve.jobs")

JOBS_DIR = ".jobs"
STATES = ("queued", "running", "succeeded", "failed", "interrupted")
FINAL_STATES = ("succeeded", "failed", "interrupted")
# fields of a record that stay on the server (absolute paths)
_PRIVATE = ("data_path", "upload_dir")


class ServerBusy(DataValidationError):
    """Another server uses the runs root."""


class QueueFull(RuntimeError):
    """Too many jobs waiting."""


def check_free(runs_root: Path) -> None:
    """Raise :class:`ServerBusy` when a server runs on ``runs_root`` now (a look: takes nothing)."""
    lock = Path(runs_root) / JOBS_DIR / ".server.lock"
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ServerBusy(f"another ltae server uses the runs folder {runs_root}; stop it or pass another "
                         "--runs") from None
    finally:
        os.close(fd)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def new_job_id() -> str:
    """A new, unique job id (UTC time and random suffix)."""
    return f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def public(job: dict) -> dict:
    """A job record without the server's own paths."""
    return {k: v for k, v in job.items() if k not in _PRIVATE}


class JobManager:
    """The fit queue of one server: a single worker thread running one job at a time."""

    def __init__(self, runs_root: str | os.PathLike, store: str | os.PathLike, *, resume: bool = True,
                 max_queue: int = 16, on_success: Callable[[str, Path], None] | None = None,
                 fit: Callable | None = None, hide: tuple[str | os.PathLike, ...] = ()):
        self.root = Path(runs_root)
        self.dir = self.root / JOBS_DIR
        self.store = Path(store)
        self.resume = resume
        self.max_queue = max_queue
        self.on_success = on_success
        self._fit = fit  # for tests: a stand-in for ltae.pipeline.run
        self._hide = tuple(Path(h) for h in hide)  # folders not shown in error messages (the data root)
        self._lock = threading.RLock()
        self._jobs: dict[str, dict] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None

    # ---- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread (and pick up jobs a previous server left queued or running)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".server.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ServerBusy(f"another ltae server uses the runs folder {self.root} (its jobs are in "
                             f"{self.dir}); stop it or pass another --runs") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": _now()}).encode(), 0)
        self._lock_fd = fd
        self._recover()
        self._thread = threading.Thread(target=self._work, name="ltae-fit-worker", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """Stop taking jobs (a fit in progress goes on in its daemon thread until the process ends;
        its record then says "running" and the next server resumes it)."""
        self._queue.put(None)
        if self._thread is not None and wait:
            self._thread.join(wait)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _recover(self) -> None:
        found = []
        for p in sorted(self.dir.glob("*.json")):
            try:
                job = json.loads(p.read_text(encoding="utf-8"))
                if not isinstance(job, dict) or job.get("id") != p.stem or job.get("state") not in STATES:
                    raise ValueError("not a job record")
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable job record %s (%s)", p, exc)
                continue
            self._jobs[job["id"]] = job
            found.append(job)
        for job in sorted(found, key=lambda j: j.get("created") or ""):
            if job["state"] == "running":
                if self.resume:
                    job["state"] = "queued"
                    job["notes"] = [*job.get("notes", []), f"{_now()}: the server stopped during the fit; "
                                    "queued again (finished steps are reused)"]
                else:
                    job["state"] = "interrupted"
                    job["finished"] = _now()
                    job["error"] = ("the server stopped during the fit; submit the data again, or restart the "
                                    "server with resume on to continue it")
                    self._cleanup(job)
                self._save(job)
            if job["state"] == "queued":
                self._queue.put(job["id"])

    # ---- records -----------------------------------------------------------------------------
    def _save(self, job: dict) -> None:
        art.atomic_write_json(self.dir / f"{job['id']}.json", job)

    def get(self, job_id: str) -> dict | None:
        """One job's record; None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            return dict(job) if job is not None else None

    def list(self) -> list[dict]:
        """Every job's record, newest first."""
        with self._lock:
            return sorted((dict(j) for j in self._jobs.values()), key=lambda j: j.get("created") or "",
                          reverse=True)

    def queued(self) -> int:
        """How many jobs wait for the worker."""
        with self._lock:
            return sum(j["state"] == "queued" for j in self._jobs.values())

    def submit(self, job_id: str, data_path: Path, data_label: str, config: dict,
               upload_dir: Path | None = None, steps_total: int = 0) -> dict:
        """Queue a fit job (429 when the queue is full) and return its record."""
        with self._lock:
            if self.queued() >= self.max_queue:
                raise QueueFull(f"{self.max_queue} fits are already waiting; try again later")
            job = {"id": job_id, "state": "queued", "created": _now(), "started": None, "finished": None,
                   "step": None, "steps_done": 0, "steps_total": steps_total, "progress": 0.0,
                   "data": data_label, "config": config, "run_id": None, "out_dir": job_id, "error": None,
                   "notes": [], "attempts": 0, "data_path": str(data_path),
                   "upload_dir": str(upload_dir) if upload_dir else None}
            self._jobs[job_id] = job
            self._save(job)
        self._queue.put(job_id)
        return dict(job)

    def upload_dir(self, job_id: str) -> Path:
        """A private folder for one job's uploaded files, inside the runs root."""
        return self.dir / f"{job_id}.data"

    def _update(self, job: dict, **changes) -> None:
        with self._lock:
            job.update(changes)
            self._save(job)

    def _cleanup(self, job: dict) -> None:
        if job.get("upload_dir"):
            shutil.rmtree(job["upload_dir"], ignore_errors=True)

    # ---- the worker --------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            job = self._jobs.get(job_id)
            if job is None or job["state"] != "queued":
                continue
            try:
                self._run(job)
            except Exception:  # noqa: BLE001 - the worker must survive anything
                log.exception("job %s: unexpected error in the worker", job_id)

    def _run(self, job: dict) -> None:
        from ltae.config import RunConfig
        from ltae.pipeline import STEPS

        cfg = RunConfig.model_validate(job["config"])
        total = job.get("steps_total") or (len(STEPS) + (1 if cfg.mlflow.enabled else 0))
        self._update(job, state="running", started=_now(), attempts=job.get("attempts", 0) + 1, step=None,
                     steps_done=0, steps_total=total, progress=0.0, error=None)
        done: set[str] = set()

        def progress(step: str, status: str) -> None:
            if status == "start":
                self._update(job, step=step)
            elif status == "done":
                done.add(step)
                n = min(len(done), total)
                self._update(job, steps_done=n, progress=round(n / total, 4))
            elif status.startswith("note:"):
                self._update(job, notes=[*job.get("notes", []), status.removeprefix("note:").strip()])

        out = self.root / job["id"]
        t0 = time.perf_counter()
        fit = self._fit
        if fit is None:
            from ltae.pipeline import run as fit
        try:
            result = fit(job["data_path"], out, cfg, progress=progress, store_path=self.store)
        except DataValidationError as exc:
            hide = [Path(job["upload_dir"])] if job.get("upload_dir") else []
            self._update(job, state="failed", finished=_now(),
                         error=clean_message(str(exc), [*hide, *self._hide, self.root]))
        except Exception as exc:  # noqa: BLE001 - a bug: logged in full, the record says where to look
            log.exception("job %s failed", job["id"])
            self._update(job, state="failed", finished=_now(),
                         error=f"internal error ({type(exc).__name__}); the server log has the details")
        else:
            self._update(job, state="succeeded", finished=_now(), run_id=result.run_id, step=None,
                         steps_done=total, progress=1.0, wall_s=round(time.perf_counter() - t0, 3))
            if self.on_success is not None:
                self.on_success(result.run_id, out)
        finally:
            if job["state"] in FINAL_STATES:
                self._cleanup(job)


def clean_message(message: str, folders) -> str:
    """``message`` without the server's folders (paths in it become relative to them)."""
    for folder in folders:
        for p in dict.fromkeys((str(Path(folder).resolve()), str(folder))):
            message = message.replace(p + os.sep, "").replace(p, ".")
    return message
