"""Embedded results store (DuckDB): every run, its ROI table and its diagnostics, for listing and
comparing runs (``ltae runs``). Each run is written in one transaction."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

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
"""

ROI_COLUMNS = ["channel", "spend", "short_term_roi_mean", "short_term_roi_lower", "short_term_roi_upper",
               "long_term_roi_mean", "long_term_roi_lower", "long_term_roi_upper", "total_roi_mean",
               "total_roi_lower", "total_roi_upper"]


def connect(path: str | Path):
    import duckdb

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute(_SCHEMA)
    return con


def record_run(path: str | Path, result) -> None:
    cfg = result.config
    diag_rows = []
    for model in ("short_term", "long_term", "fit"):
        for k, v in (result.diagnostics.get(model) or {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                diag_rows.append((result.run_id, model, k, float(v)))
    checks = result.checklist
    con = connect(path)
    try:
        con.execute("BEGIN TRANSACTION")
        for table in ("runs", "roi", "diagnostics"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [result.run_id])
        con.execute(
            "INSERT INTO runs VALUES (?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [result.run_id, str(Path(result.out_dir).resolve()), result.dataset_summary.get("data_hash"),
             str(result.dataset_summary.get("source")), int(result.short.sales.shape[0]), len(result.short.channels),
             cfg["sampling"]["sampler"], cfg["sampling"]["draws"], cfg["sampling"]["chains"], cfg["sampling"]["seed"],
             float(result.timings.get("total_s", float("nan"))), sum(c["status"] == "pass" for c in checks),
             len(checks), json.dumps(cfg)])
        roi = result.roi[ROI_COLUMNS].copy()
        roi.insert(0, "run_id", result.run_id)
        con.executemany("INSERT INTO roi VALUES (" + ",".join("?" * len(roi.columns)) + ")",
                        roi.astype(object).values.tolist())
        if diag_rows:
            con.executemany("INSERT INTO diagnostics VALUES (?, ?, ?, ?)", diag_rows)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def list_runs(path: str | Path) -> pd.DataFrame:
    if not Path(path).exists():
        return pd.DataFrame(columns=["run_id", "created", "out_dir", "n_weeks", "n_channels", "sampler", "total_s"])
    con = connect(path)
    try:
        return con.execute("SELECT run_id, created, out_dir, n_weeks, n_channels, sampler, draws, chains, seed, "
                           "round(total_s, 1) AS total_s, checklist_pass || '/' || checklist_total AS checks "
                           "FROM runs ORDER BY created DESC").df()
    finally:
        con.close()


def run_roi(path: str | Path, run_id: str) -> pd.DataFrame:
    con = connect(path)
    try:
        return con.execute("SELECT * FROM roi WHERE run_id = ? ORDER BY channel", [run_id]).df()
    finally:
        con.close()
