"""Embedded results store (DuckDB): every run, its ROI table and its diagnostics, for listing and
comparing runs (``ltae runs``). Each run is written in one transaction.

Where: :func:`default_store` (``LTAE_STORE`` if set, else ``$XDG_DATA_HOME/ltae/ltae_runs.duckdb``,
by default ``~/.local/share/ltae/ltae_runs.duckdb``), for every command; ``--store`` overrides it.

Concurrency: DuckDB lets one process write a database file at a time, and a reader (read-only)
cannot open it while a writer holds it. Writers and readers here wait for the file with a bounded,
jittered backoff (``LTAE_STORE_TIMEOUT`` seconds, default 120) and then fail with
:class:`StoreBusyError` naming the store. Each connection is closed right after its transaction,
so a long-lived reader (an API, a dashboard) must open a connection per request, not hold one.
Readers never create the file or its tables.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pandas as pd

from ltae.store.artifacts import dumps_strict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, created TIMESTAMP, out_dir VARCHAR, data_hash VARCHAR, source VARCHAR,
    n_weeks INTEGER, n_channels INTEGER, sampler VARCHAR, draws INTEGER, chains INTEGER, seed INTEGER,
    total_s DOUBLE, checklist_pass INTEGER, checklist_total INTEGER, config JSON);
CREATE TABLE IF NOT EXISTS roi (
    run_id VARCHAR, channel VARCHAR, spend DOUBLE,
    short_term_roi_mean DOUBLE, short_term_roi_lower DOUBLE, short_term_roi_upper DOUBLE,
    long_term_roi_mean DOUBLE, long_term_roi_lower DOUBLE, long_term_roi_upper DOUBLE,
    total_roi_mean DOUBLE, total_roi_lower DOUBLE, total_roi_upper DOUBLE);
CREATE TABLE IF NOT EXISTS diagnostics (run_id VARCHAR, model VARCHAR, metric VARCHAR, value DOUBLE);
ALTER TABLE roi ADD COLUMN IF NOT EXISTS long_term_status VARCHAR;
ALTER TABLE roi ADD COLUMN IF NOT EXISTS total_includes_long_term BOOLEAN;
ALTER TABLE roi ADD COLUMN IF NOT EXISTS short_term_contraction DOUBLE;
ALTER TABLE roi ADD COLUMN IF NOT EXISTS short_term_prior_shift DOUBLE;
ALTER TABLE roi ADD COLUMN IF NOT EXISTS short_term_evidence VARCHAR;
ALTER TABLE roi ADD COLUMN IF NOT EXISTS market VARCHAR;
"""

DEFAULT_TIMEOUT_S = 120.0


class StoreBusyError(RuntimeError):
    """The store stayed locked by another process for longer than the timeout."""


def default_store() -> Path:
    """The results store every command uses unless given ``--store``."""
    env = os.environ.get("LTAE_STORE", "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME", "").strip() or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "ltae" / "ltae_runs.duckdb"


def _timeout() -> float:
    try:
        return float(os.environ.get("LTAE_STORE_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def _is_lock_error(exc: Exception) -> bool:
    msg = str(exc)
    return "Could not set lock" in msg or "Conflicting lock" in msg


def _open(path: Path, read_only: bool, timeout: float | None):
    """duckdb.connect with bounded, jittered exponential backoff on the file lock."""
    import duckdb

    timeout = _timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.ConnectionException as exc:
            # this process already has the file open read-write: share that instance
            if read_only and "different configuration" in str(exc):
                return duckdb.connect(str(path))
            raise
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreBusyError(
                    f"results store {path} is locked by another process and stayed locked for {timeout:.0f} s "
                    f"({exc}); retry later, raise LTAE_STORE_TIMEOUT, or pass another --store") from None
            time.sleep(min(left, delay * (0.5 + random.random())))
            delay = min(delay * 2, 1.0)


def connect(path: str | Path, read_only: bool = False, timeout: float | None = None):
    """A connection to the store; read-write creates the file and tables, read-only never does."""
    path = Path(path)
    if read_only:
        return _open(path, True, timeout)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, False, timeout)
    con.execute(_SCHEMA)
    return con


ROI_COLUMNS = ["channel", "spend", "short_term_roi_mean", "short_term_roi_lower", "short_term_roi_upper",
               "long_term_roi_mean", "long_term_roi_lower", "long_term_roi_upper", "total_roi_mean",
               "total_roi_lower", "total_roi_upper", "long_term_status", "total_includes_long_term",
               "short_term_contraction", "short_term_prior_shift", "short_term_evidence", "market"]


def record_run(path: str | Path, result, timeout: float | None = None) -> None:
    """Write one run (replacing a record of the same run id) in one transaction, waiting up to
    ``timeout`` seconds (default ``LTAE_STORE_TIMEOUT`` or 120) for another writer or reader."""
    cfg = result.config
    diag_rows = []
    for model in ("short_term", "long_term", "fit"):
        for k, v in (result.diagnostics.get(model) or {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                diag_rows.append((result.run_id, model, k, _finite(v)))
    checks = result.checklist
    con = connect(path, timeout=timeout)
    try:
        con.execute("BEGIN TRANSACTION")
        for table in ("runs", "roi", "diagnostics"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [result.run_id])
        con.execute(
            "INSERT INTO runs VALUES (?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [result.run_id, str(Path(result.out_dir).resolve()), result.dataset_summary.get("data_hash"),
             str(result.dataset_summary.get("source")), int(result.short.sales.shape[0]), len(result.short.channels),
             cfg["sampling"]["sampler"], cfg["sampling"]["draws"], cfg["sampling"]["chains"], cfg["sampling"]["seed"],
             _finite(result.timings.get("total_s")), sum(c["status"] == "pass" for c in checks),
             len(checks), dumps_strict(cfg)])
        roi = (result.markets["roi"] if getattr(result, "markets", None) else result.roi).reindex(
            columns=ROI_COLUMNS).copy()
        roi.insert(0, "run_id", result.run_id)
        rows = [[None if isinstance(v, float) and v != v else v for v in r] for r in roi.astype(object).values.tolist()]
        con.executemany(f"INSERT INTO roi ({', '.join(roi.columns)}) VALUES (" + ",".join("?" * len(roi.columns)) + ")",
                        rows)
        if diag_rows:
            con.executemany("INSERT INTO diagnostics VALUES (?, ?, ?, ?)", diag_rows)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _finite(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


_RUN_COLUMNS = ["run_id", "created", "out_dir", "n_weeks", "n_channels", "sampler", "draws", "chains", "seed",
                "total_s", "checks"]


def _read(path: str | Path, sql: str, params: list, empty_columns: list[str],
          timeout: float | None = None) -> pd.DataFrame:
    """Run a query read-only; a missing store or table gives an empty frame (nothing is created)."""
    import duckdb

    if not Path(path).is_file():
        return pd.DataFrame(columns=empty_columns)
    con = connect(path, read_only=True, timeout=timeout)
    try:
        return con.execute(sql, params).df()
    except duckdb.CatalogException:
        return pd.DataFrame(columns=empty_columns)
    finally:
        con.close()


def list_runs(path: str | Path, timeout: float | None = None) -> pd.DataFrame:
    """The recorded runs, newest first (read-only)."""
    return _read(path, "SELECT run_id, created, out_dir, n_weeks, n_channels, sampler, draws, chains, seed, "
                       "round(total_s, 1) AS total_s, checklist_pass || '/' || checklist_total AS checks "
                       "FROM runs ORDER BY created DESC, run_id DESC", [], _RUN_COLUMNS, timeout)


def run_roi(path: str | Path, run_id: str, timeout: float | None = None) -> pd.DataFrame:
    """The ROI table of one recorded run (read-only)."""
    return _read(path, f"SELECT run_id, {', '.join(ROI_COLUMNS)} FROM roi WHERE run_id = ? ORDER BY market NULLS FIRST, channel", [run_id],
                 ["run_id", *ROI_COLUMNS], timeout)


def run_record(path: str | Path, run_id: str, timeout: float | None = None) -> dict | None:
    """One run's row of the ``runs`` table as a dict (``out_dir``, ``created``, ...), or None when the
    store, its table or the run is missing. Read-only, like :func:`list_runs`."""
    df = _read(path, "SELECT run_id, created, out_dir, n_weeks, n_channels, sampler, draws, chains, seed, "
                     "total_s, checklist_pass, checklist_total FROM runs WHERE run_id = ?", [run_id], [], timeout)
    if df.empty:
        return None
    return df.iloc[0].to_dict()
