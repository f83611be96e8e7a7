"""Progress of `ltae run` where output is not a terminal (logs, CI, pipes): a line per step as it
starts and ends, with times, flushed at once."""

from __future__ import annotations

import io
import re
import subprocess
import sys

from rich.console import Console

from ltae.cli import _LogProgress, _progress_runner


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_log_lines_per_step_with_times():
    buf = io.StringIO()
    console = Console(file=buf, width=60)  # narrow: lines must not wrap
    assert not console.is_terminal
    ctx, cb = _progress_runner(console)
    assert isinstance(cb, _LogProgress)
    clock = _Clock()
    cb._clock, cb.t0 = clock, clock.t
    with ctx:
        cb("prepare", "start")
        assert buf.getvalue() == "[    0.0 s] validate + prepare data ...\n"  # written at once
        clock.t += 1.25
        cb("prepare", "done")
        cb("short_term", "start")
        clock.t += 12.0
        cb("short_term", "resumed")
        cb("short_term", "note: not reusing posteriors/short_term.nc: it was fitted with other data; fitting again")
        clock.t += 0.5
        cb("short_term", "done")
    assert buf.getvalue().splitlines() == [
        "[    0.0 s] validate + prepare data ...",
        "[    1.2 s] validate + prepare data: done in 1.2 s",
        "[    1.2 s] short-term model (MMM) ...",
        "[   13.2 s] short-term model (MMM): resumed from the saved posterior",
        "[   13.2 s] note: not reusing posteriors/short_term.nc: it was fitted with other data; fitting again",
        "[   13.8 s] short-term model (MMM): done in 12.5 s",
    ]


def test_piped_cli_run_prints_each_step_as_it_happens(tmp_path):
    """`ltae run` with stdout piped: the first step's lines arrive while the run is still going, and
    every step of the pipeline ends with a done line."""
    from ltae.data.synthetic import generate_synthetic_data, save_to_csv
    from ltae.pipeline import STEPS

    save_to_csv(generate_synthetic_data(n_weeks=80, seed=2), tmp_path / "data")  # the shape of the small run
    cmd = [sys.executable, "-m", "ltae", "run", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o"),
           "--draws", "60", "--tune", "60", "--chains", "2", "--store", str(tmp_path / "s.duckdb")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("[") and "validate + prepare data: done" in line:
                assert p.poll() is None  # streamed: the run has not finished yet
                break
        lines += p.stdout.read().splitlines()
    finally:
        p.wait(timeout=600)
    assert p.returncode == 0, "\n".join(lines[-30:])
    done = [ln for ln in lines if re.match(r"^\[\s*\d+\.\d s\] .+: done in \d+\.\d s$", ln)]
    assert len(done) == len(STEPS), lines
    assert lines[0] == "[    0.0 s] validate + prepare data ..."  # no progress bar before it
