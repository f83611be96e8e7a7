"""The weekly ltae job as a Prefect flow, or as plain Python when Prefect is not installed.

Each week: check the data (bad data stop the job, nothing is written), then refresh the latest complete
run with the new weeks (``ltae refresh``: the last posterior as the prior) into a dated folder, or, with
no earlier run or an ltae without ``refresh``, fit from scratch (``ltae run``); the run is recorded in
the results store (``--store``, default ``$LTAE_STORE``) and, with ``--mlflow``, registered in MLflow
(``ltae register``).

Without Prefect (plain Python, e.g. from cron or any scheduler)::

    python examples/weekly_flow.py --data /data/mmm/latest --runs /data/mmm/runs [--store S] [--mlflow]
    python examples/weekly_flow.py --data ... --runs ... --dry-run     # print the commands only

With Prefect installed (``pip install prefect``) the same command runs the steps as a Prefect flow
(``--no-prefect`` runs them plainly); to schedule it every Monday at 06:00 on a Prefect server::

    from weekly_flow import weekly_flow
    weekly_flow.serve(name="ltae-weekly", cron="0 6 * * 1",
                      parameters={"data": "/data/mmm/latest", "runs": "/data/mmm/runs"})

Airflow: one ``BashOperator`` running ``python examples/weekly_flow.py --data ... --runs ... --no-prefect``
on a ``"0 6 * * 1"`` schedule does the same.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

try:  # Prefect is optional: without it the same steps run as plain Python
    from prefect import flow, task
except ImportError:
    flow = task = None


def ltae_command() -> list[str]:
    """The ltae of this Python interpreter (``python -m ltae``)."""
    return [sys.executable, "-m", "ltae"]


def has_refresh() -> bool:
    """Whether the installed ltae has the ``refresh`` command."""
    try:
        import typer

        from ltae.cli import app
    except ImportError:
        return False
    return "refresh" in typer.main.get_command(app).commands


def previous_run(runs: Path, today: str) -> Path | None:
    """The latest dated folder (YYYY-MM-DD) in ``runs`` before ``today`` whose run completed."""
    runs = Path(runs)
    if not runs.is_dir():
        return None
    for d in sorted(runs.iterdir(), reverse=True):
        try:
            dt.date.fromisoformat(d.name)
        except ValueError:
            continue
        if d.name >= today:
            continue
        try:
            if json.loads((d / "manifest.json").read_text()).get("status") == "complete":
                return d
        except (OSError, ValueError):
            continue
    return None


def plan(data: str, runs: str, today: str | None = None, config: str | None = None, store: str | None = None,
         mlflow: bool = False, ltae: Sequence[str] | None = None, refresh: bool | None = None) -> list[list[str]]:
    """The week's commands, in order (nothing is run)."""
    ltae = list(ltae or ltae_command())
    today = today or dt.date.today().isoformat()
    out = str(Path(runs) / today)
    store_opt = ["--store", str(store)] if store else []
    steps = [[*ltae, "check", "--data", str(data)]]
    prev = previous_run(Path(runs), today)
    if prev is not None and (has_refresh() if refresh is None else refresh):
        steps.append([*ltae, "refresh", "--run", str(prev), "--data", str(data), "--out", out, *store_opt])
    else:
        steps.append([*ltae, "run", "--data", str(data), "--out", out,
                      *(["--config", str(config)] if config else []), *store_opt])
    if mlflow:
        steps.append([*ltae, "register", "--run", out])
    return steps


def run_step(cmd: list[str], dry_run: bool = False) -> int:
    """Run one command (print it first); a failing command stops the job."""
    print("+ " + shlex.join(cmd), flush=True)
    if dry_run:
        return 0
    rc = subprocess.run(cmd, check=False).returncode
    if rc != 0:
        raise RuntimeError(f"{shlex.join(cmd[:4])} ... exited with {rc}")
    return rc


def _steps(runner: Callable, data, runs, today=None, config=None, store=None, mlflow=False, dry_run=False):
    cmds = plan(data, runs, today, config, store, mlflow)
    for cmd in cmds:
        runner(cmd, dry_run)
    return cmds


def weekly(data: str, runs: str, today: str | None = None, config: str | None = None, store: str | None = None,
           mlflow: bool = False, dry_run: bool = False) -> list[list[str]]:
    """The weekly job as plain Python; returns the commands it ran (or would run)."""
    return _steps(run_step, data, runs, today, config, store, mlflow, dry_run)


if flow is not None:
    run_step_task = task(name="ltae command")(run_step)

    @flow(name="ltae-weekly")
    def weekly_flow(data: str, runs: str, today: str | None = None, config: str | None = None,
                    store: str | None = None, mlflow: bool = False, dry_run: bool = False) -> list[list[str]]:
        """The weekly job as a Prefect flow: one task per command."""
        return _steps(run_step_task, data, runs, today, config, store, mlflow, dry_run)
else:
    weekly_flow = None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the example (see the module docstring)."""
    ap = argparse.ArgumentParser(description="Weekly ltae refresh (or run) into a dated folder.")
    ap.add_argument("--data", required=True, help="this week's data (all weeks so far)")
    ap.add_argument("--runs", required=True, help="folder of dated run folders")
    ap.add_argument("--date", default=None, help="the run's date, YYYY-MM-DD (default today)")
    ap.add_argument("--config", default=None, help="configuration file of a full run")
    ap.add_argument("--store", default=None, help="DuckDB results store")
    ap.add_argument("--mlflow", action="store_true", help="register the run in MLflow")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--no-prefect", action="store_true", help="run plainly even when Prefect is installed")
    a = ap.parse_args(argv)
    job = weekly_flow if (weekly_flow is not None and not a.no_prefect and not a.dry_run) else weekly
    try:
        job(a.data, a.runs, a.date, a.config, a.store, a.mlflow, a.dry_run)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
