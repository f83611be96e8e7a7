"""Command line: ``ltae generate | check | prepare | run | demo | optimize | scenario | dashboard | serve |
register | runs``.

* ``generate``: synthetic data with known truth; ``check``: validate data + quality report;
  ``prepare``: one weekly table + its roles; ``run``: the whole pipeline; ``demo``: generate + run
  and compare with the truth; ``optimize``: re-optimise a saved run's budget; ``scenario``: predict
  a spend plan from a saved run; ``dashboard``: the Streamlit dashboard; ``runs``: the results store.

Adding a command that reads data::

    @app.command()
    @handle_errors
    @data_role_options          # --target, --channels, ... from ltae.data.roles.DataRoles
    def mycommand(data: DataPath, roles: DataRoles | None = None):
        ds = load_dataset(data, roles)
        ...

``handle_errors`` turns :class:`~ltae.data.DataValidationError` into ``error: <message>`` on
stderr with exit code 2, and any other exception into ``error: ...`` with exit code 1; the
traceback is shown only with ``ltae --debug ...`` or ``LTAE_DEBUG=1``.

Names from the data (channels, columns, paths) can hold rich markup (``B[/x]``): print them with
:func:`esc` (or as ``rich.text.Text``), never inside a markup string unescaped.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from ltae import __version__
from ltae.data.roles import DataRoles

app = typer.Typer(
    name="ltae",
    help="Long-term ad effectiveness: two-step Bayesian marketing mix modelling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

EXIT_DATA_ERROR = 2
EXIT_UNEXPECTED = 1

_state = {"debug": False}


# --------------------------------------------------------------------------------------------
# consoles and error handling
# --------------------------------------------------------------------------------------------


def out_console():
    """A rich console for standard output (no automatic highlighting)."""
    from rich.console import Console

    return Console(highlight=False)


def err_console():
    """A rich console for standard error (no highlighting, no wrapping)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def debug_enabled() -> bool:
    """Whether tracebacks are shown (``--debug`` or ``LTAE_DEBUG=1``)."""
    return _state["debug"] or os.environ.get("LTAE_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def esc(value) -> str:
    """``str(value)`` with rich markup escaped, for names from the data inside printed markup/tables."""
    from rich.markup import escape

    return escape(str(value))


def print_error(message: str) -> None:
    """``error: <message>`` in red on stderr, on one line (no wrapping, no markup)."""
    from rich.text import Text

    err_console().print(Text(f"error: {' '.join(str(message).split())}", style="red"))


def ValidationError_():  # noqa: N802 - lazy import of pydantic's error class
    """pydantic's ``ValidationError`` class, imported on first use."""
    from pydantic import ValidationError

    return ValidationError


def StoreBusyError_():  # noqa: N802 - lazy import
    """The results store's ``StoreBusyError`` class, imported on first use."""
    from ltae.store.results import StoreBusyError

    return StoreBusyError


def handle_errors(func):
    """Decorator for commands: clean one-line errors, exit 2 for bad data, 1 for anything else."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from ltae.data.validate import DataValidationError

        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException, SystemExit):
            raise  # normal exits and usage errors (bad option values) keep click's handling
        except DataValidationError as e:
            if debug_enabled():
                traceback.print_exc()
            print_error(str(e))
            raise typer.Exit(EXIT_DATA_ERROR) from None
        except ValidationError_() as e:  # invalid configuration (file or options)
            from ltae.config import format_validation_error

            if debug_enabled():
                traceback.print_exc()
            print_error(f"configuration: {format_validation_error(e)}")
            raise typer.Exit(EXIT_DATA_ERROR) from None
        except StoreBusyError_() as e:  # the results store stayed locked: one clear line, exit 1
            if debug_enabled():
                traceback.print_exc()
            print_error(str(e))
            raise typer.Exit(EXIT_UNEXPECTED) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(130) from None
        except Exception as e:
            if debug_enabled():
                traceback.print_exc()
                print_error(f"{type(e).__name__}: {e}")
            else:
                print_error(f"{type(e).__name__}: {e} (run with --debug or LTAE_DEBUG=1 for the traceback)")
            raise typer.Exit(EXIT_UNEXPECTED) from None

    return wrapper


# --------------------------------------------------------------------------------------------
# reusable data options
# --------------------------------------------------------------------------------------------

DataPath = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="Folder with sales.csv + marketing_spend.csv (+ optional brand/competitor/macro CSVs), "
        "a wide .csv/.parquet file, or a DuckDB file (FILE.duckdb::TABLE or --table).",
        show_default=False,
    ),
]
def split_list(value: str | None) -> list[str] | None:
    """Comma-separated option value -> list (``None`` stays ``None``, ``""`` is an empty list)."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _role_option(name: str) -> inspect.Parameter:
    """The CLI option of one :class:`~ltae.data.roles.DataRoles` field (its flag and help live there).

    Every role option defaults to ``None`` (not given), so a configuration file's value or the
    field's default applies; lists are one comma-separated string on the command line."""
    import typing

    field = DataRoles.model_fields[name]
    typ = int if field.annotation is int else str
    help_text = field.description or ""
    if field.default is not None:
        help_text = f"{help_text.rstrip('.')} (default {field.default})."
    extra: dict = {"min": 1} if typ is int else {}
    choices = tuple(v for a in typing.get_args(field.annotation) if typing.get_origin(a) is typing.Literal
                    for v in typing.get_args(a))
    if choices:  # a closed set of values (--kpi-type revenue|non_revenue)
        typ = typing.Literal[choices]
        extra["case_sensitive"] = False
    opt = typer.Option(DataRoles.flag(name), help=help_text, show_default=False, **extra)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[typ | None, opt])


def data_role_options(func):
    """Decorator for commands that read data: adds one option per :class:`~ltae.data.roles.DataRoles`
    field (``--target``, ``--channels``, ...) and passes the command ``roles: DataRoles`` built
    from the options given (``DataRoles.model_fields_set`` tells which were). A new role is a new
    field of ``DataRoles``: every command gets its option."""
    names = list(DataRoles.model_fields)
    sig = inspect.signature(func, eval_str=True)
    if "roles" not in sig.parameters:
        raise TypeError(f"{func.__name__} needs a 'roles' parameter to use data_role_options")
    params = [p for p in sig.parameters.values() if p.name != "roles"]
    params += [_role_option(n) for n in names]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        given = {n: kwargs.pop(n, None) for n in names}
        kwargs["roles"] = DataRoles.model_validate({k: v for k, v in given.items() if v is not None})
        return func(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": sig.return_annotation}
    return wrapper


def kpi_text(kpi) -> str:
    """One line saying what the target measures (for the dataset summary)."""
    if kpi.converted:
        by = kpi.column if kpi.column else f"{kpi.revenue_per_kpi:g}"
        return f"revenue: {kpi.name} x {by} (currency); ROI in currency"
    if kpi.is_revenue:
        return "revenue (currency); ROI in currency per unit of spend"
    return (f"non-revenue: {kpi.unit}; results in {kpi.unit} per unit of spend and cost per incremental "
            f"{kpi.unit} (CPIK)")


def print_dataset(ds, console=None) -> None:
    """Print a dataset's summary (source, weeks, roles, what the target measures, data hash) and its
    notices; for data of several markets (:class:`~ltae.data.panel.PanelDataset`) also one row per
    market (weeks, spend per channel, population)."""
    from rich.table import Table

    from ltae.data.panel import PanelDataset
    from ltae.data.validate import fmt_date

    console = console or out_console()
    panel = isinstance(ds, PanelDataset)
    t = Table(title="Dataset" + (f" ({ds.n_markets} markets)" if panel else ""), show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    t.add_row("source", esc(ds.source))
    if panel:
        t.add_row("markets", esc(f"{ds.n_markets} (column '{ds.geo}'): {', '.join(ds.markets)}"))
    t.add_row("weeks", f"{ds.n_weeks} ({fmt_date(ds.dates[0])} to {fmt_date(ds.dates[-1])}, {ds.dates.freqstr})"
              + (" in every market" if panel else ""))
    t.add_row("target", esc(ds.target_name))
    t.add_row("KPI", esc(kpi_text(ds.kpi)))
    t.add_row("channels", esc(", ".join(ds.channels)))
    t.add_row("controls", esc(", ".join(ds.control_names) or "-"))
    t.add_row("brand", esc(", ".join(ds.brand_names) or "-"))
    if panel:
        t.add_row("population", esc(f"column '{ds.population_name}'") if ds.population else "-")
    t.add_row("data hash", ds.data_hash()[:16])
    console.print(t)
    if panel:
        ms = ds.market_summary()
        mt = Table(title="Markets (totals over the weeks)")
        mt.add_column("market")
        mt.add_column("weeks", justify="right")
        mt.add_column(esc(ds.target_name), justify="right")
        for c in ds.channels:
            mt.add_column(esc(f"spend {c}"), justify="right")
        mt.add_column("spend", justify="right")
        if ds.population:
            mt.add_column("population", justify="right")
        for r in ms.to_dict(orient="records"):
            cells = [esc(r["market"]), str(r["weeks"]), f"{r[ds.target_name]:,.0f}",
                     *(f"{r[f'spend_{c}']:,.0f}" for c in ds.channels), f"{r['spend']:,.0f}"]
            if ds.population:
                cells.append(f"{r['population']:,.0f}")
            mt.add_row(*cells)
        console.print(mt)
    for n in ds.notices:
        console.print(f"[cyan]note:[/cyan] {esc(n)}", highlight=False)


# --------------------------------------------------------------------------------------------
# app
# --------------------------------------------------------------------------------------------


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ltae {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of errors (also: LTAE_DEBUG=1).")
    ] = False,
) -> None:
    """Long-term ad effectiveness: two-step Bayesian marketing mix modelling."""
    import warnings

    _state["debug"] = debug
    if not debug:  # library chatter that a user cannot act on
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)


@app.command()
@handle_errors
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the CSV files to.", show_default=False)],
    weeks: Annotated[int, typer.Option("--weeks", min=4, help="Number of weeks.")] = 208,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 42,
    channels: Annotated[str, typer.Option("--channels", help="Comma-separated channel names.")] = (
        "Content,Events,Google,LinkedIn"
    ),
) -> None:
    """Write synthetic data with known truth: the five CSV files and truth.json."""
    from rich.table import Table

    from ltae.data.synthetic import generate_synthetic_data, save_to_csv

    names = split_list(channels)
    if not names:
        raise typer.BadParameter("give at least one channel", param_hint="--channels")
    if len(set(names)) != len(names):
        raise typer.BadParameter("channel names must be unique", param_hint="--channels")
    data = generate_synthetic_data(n_weeks=weeks, channels=names, seed=seed)
    folder = save_to_csv(data, out)
    console = out_console()
    t = Table(title=f"True ROIs ({weeks} weeks, seed {seed}; currency per currency unit of spend)")
    for c, j in (("channel", "left"), ("spend", "right"), ("short-term ROI", "right"),
                 ("long-term ROI", "right"), ("total ROI", "right")):
        t.add_column(c, justify=j)
    for ch, v in data.truth["channels"].items():
        t.add_row(esc(ch), f"{v['spend']:,.0f}", f"{v['short_term_roi']:.2f}", f"{v['long_term_roi']:.2f}",
                  f"{v['total_roi']:.2f}")
    console.print(t)
    console.print(f"wrote sales.csv, marketing_spend.csv, brand_metrics.csv, competitor_activity.csv, "
                  f"macroeconomic_indicators.csv and truth.json to {esc(folder)}", highlight=False)


@app.command()
@handle_errors
@data_role_options
def check(
    data: DataPath,
    roles: DataRoles | None = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON to this file.", show_default=False)
    ] = None,
) -> None:
    """Validate the input data and print a quality report (VIF, ADF, summary statistics).

    Data of several markets: the summary has one row per market, and the quality report is of the
    markets added up (target and spend summed, controls and brand averaged)."""
    from ltae.data import load_dataset
    from ltae.data.panel import PanelDataset
    from ltae.data.quality import print_quality_report, quality_report

    ds = load_dataset(data, roles)
    panel = isinstance(ds, PanelDataset)
    report = quality_report(ds.national() if panel else ds)
    console = out_console()
    print_dataset(ds, console)
    if panel:
        console.print(f"quality report of the {ds.n_markets} markets added up:", highlight=False)
    print_quality_report(report, console)
    if json_out is not None:
        from ltae.store.artifacts import atomic_write_json

        atomic_write_json(json_out, {"valid": True, "dataset": ds.summary(), "quality": report.to_dict()})
        console.print(f"wrote {esc(json_out)}", highlight=False)
    console.print("[green]data OK[/green]")


@app.command()
@handle_errors
@data_role_options
def prepare(
    data: DataPath,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write (a folder: "
                                      "FOLDER/prepared_data.csv).",
                                      show_default=False)],
    roles: DataRoles | None = None,
) -> None:
    """Validate the input and write one weekly table: Date, target, channels, controls, brand.

    A <stem>.roles.json written next to it records the column roles, so the file can be passed
    back as --data without role options."""
    from ltae.data import load_dataset
    from ltae.data.prepare import write_prepared

    if out.is_dir():
        out = out / "prepared_data.csv"
    ds = load_dataset(data, roles)
    csv_path, roles = write_prepared(ds, out)
    console = out_console()
    print_dataset(ds, console)
    size = f"{ds.n_weeks} weeks" + (f" x {len(ds)} markets" if hasattr(ds, "markets") else "")
    console.print(f"wrote {esc(csv_path)} ({size}) and {esc(roles.name)}", highlight=False)


# --------------------------------------------------------------------------------------------
# modelling commands
# --------------------------------------------------------------------------------------------

SamplerOpt = Annotated[str | None, typer.Option("--sampler", help="nutpie | nutpie_jax | pymc | numpyro | blackjax | advi.",
                                                show_default=False)]


STEP_LABELS = {"prepare": "validate + prepare data", "short_term": "short-term model (MMM)",
               "long_term": "long-term model (BVAR)", "roi": "ROI", "checklist": "validation checklist",
               "budget": "budget optimisation", "figures": "figures", "report": "report", "store": "results store",
               "registry": "MLflow registry"}


def _progress_runner(console):
    """The pipeline's progress display; returns (context, callback). On a terminal a rich progress
    bar; otherwise (a log file, CI, a pipe) plain lines, flushed as each step starts and ends, with
    the time since the run started and each step's duration (see :class:`_LogProgress`)."""
    if not console.is_terminal:
        import contextlib

        return contextlib.nullcontext(), _LogProgress(console)
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ltae.pipeline import STEPS

    prog = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[step]}"),
                    TimeElapsedColumn(), console=console, transient=False)
    task = prog.add_task("ltae run", total=len(STEPS), step="")
    labels = STEP_LABELS

    def callback(step: str, status: str) -> None:
        if status == "start":
            prog.update(task, step=labels.get(step, step) + " ...")
        elif status in ("done",):
            prog.advance(task)
        elif status == "resumed":
            prog.console.print(f"[cyan]resumed[/cyan] {labels.get(step, step)} from the saved posterior")
        elif status.startswith("note:"):
            prog.console.print(f"[cyan]note:[/cyan] {esc(status.removeprefix('note:').strip())}", highlight=False)

    return prog, callback


def _ci_label(config) -> str:
    """The run's credible-interval level as a percentage label ("95%"), from a RunConfig or its dict."""
    ci = config.get("credible_interval", 0.95) if isinstance(config, dict) else config.credible_interval
    return f"{float(ci):.0%}"


def _rich_table(title: str):
    from rich.table import Table

    return Table(title=esc(title))


class _LogProgress:
    """Progress as plain lines for logs, one as each step starts and one as it ends::

        [   0.0 s] validate + prepare data ...
        [   1.3 s] validate + prepare data: done in 1.3 s
        [   1.3 s] short-term model (MMM) ...
        [  10.9 s] short-term model (MMM): done in 9.6 s

    The bracket is the time since the run started; each line is flushed at once."""

    def __init__(self, console):
        import time

        self.console, self._clock = console, time.perf_counter
        self.t0 = self._clock()
        self.started: dict[str, float] = {}

    def _line(self, text: str) -> None:
        self.console.print(f"[{self._clock() - self.t0:7.1f} s] {text}", markup=False, highlight=False,
                           soft_wrap=True)
        self.console.file.flush()

    def __call__(self, step: str, status: str) -> None:
        label = STEP_LABELS.get(step, step)
        if status == "start":
            self.started[step] = self._clock()
            self._line(f"{label} ...")
        elif status == "done":
            took = self._clock() - self.started.pop(step, self._clock())
            self._line(f"{label}: done in {took:.1f} s")
        elif status == "resumed":
            self._line(f"{label}: resumed from the saved posterior")
        elif status.startswith("note:"):
            self._line(f"note: {status.removeprefix('note:').strip()}")


def _print_roi(result, console) -> None:
    from rich.table import Table

    kpi = (result.diagnostics or {}).get("kpi") or {}
    unit = (f"incremental {kpi.get('unit') or kpi.get('name')} per currency unit of spend: not money"
            if kpi.get("type") == "non_revenue" else "currency per currency unit of spend")
    where = " (national: all markets)" if getattr(result, "markets", None) else ""
    t = Table(title=esc(f"ROI per channel{where} ({unit}; mean [{_ci_label(result.config)} interval])"))
    for c in ("channel", "spend", "short term", "long term", "total"):
        t.add_column(c, justify="left" if c == "channel" else "right")
    for r in result.roi.itertuples():
        st = f"{r.short_term_roi_mean:.2f} [{r.short_term_roi_lower:.2f}, {r.short_term_roi_upper:.2f}]"
        if getattr(r, "short_term_evidence", "ok") == "weak":
            st += " weak*"
        lt_ok = getattr(r, "long_term_status", "estimated") == "estimated"
        lt = (f"{r.long_term_roi_mean:.2f} [{r.long_term_roi_lower:.2f}, {r.long_term_roi_upper:.2f}]"
              if r.long_term_roi_mean == r.long_term_roi_mean else "n/a") + ("" if lt_ok else " †")
        tot = f"{r.total_roi_mean:.2f} [{r.total_roi_lower:.2f}, {r.total_roi_upper:.2f}]" + ("" if lt_ok else " †")
        t.add_row(esc(r.channel), f"{r.spend:,.0f}", esc(st), esc(lt), esc(tot))
    console.print(t)
    roi = result.roi
    if "long_term_status" in roi and (roi.long_term_status != "estimated").any():
        console.print(f"[yellow]† long-term ROI {esc(str(roi.long_term_status[roi.long_term_status != 'estimated'].iloc[0]))}"
                      "; the total is the short-term ROI only[/yellow]")
    if "short_term_evidence" in roi and (roi.short_term_evidence == "weak").any():
        console.print("[yellow]* weak: the data moved this short-term ROI little from its prior; "
                      "do not move budget on it without an experiment[/yellow]")
    c = Table(title="Validation checklist")
    for col in ("check", "value", "threshold", "status"):
        c.add_column(col)
    colours = {"pass": "green", "warn": "yellow", "fail": "red"}
    for ck in result.checklist:
        v = ck["value"]
        c.add_row(esc(ck["check"]), "-" if v is None else f"{v:.3g}", esc(ck["threshold"]),
                  f"[{colours.get(ck['status'], 'white')}]{ck['status']}[/]")
    console.print(c)


def _run_pipeline(data, out, config, overrides: dict, store=None):
    from ltae.config import build_config
    from ltae.pipeline import run as run_pipeline
    from ltae.store.lock import check_free

    cfg = build_config(config, overrides)  # every configuration error now, before any work
    check_free(out)  # another run writing into --out: stop before showing progress
    console = out_console()
    prog, cb = _progress_runner(console)
    with prog:
        result = run_pipeline(data, out, cfg, progress=cb, store_path=store)
    _print_roi(result, console)
    console.print(f"report: {esc(Path(out) / 'report.html')}  ({result.timings.get('total_s', 0):.1f} s)",
                  highlight=False)
    if result.registry:
        console.print(f"registered {esc(result.registry['model_uri'])} in MLflow "
                      f"({esc(result.registry['tracking_uri'])})", highlight=False)
    return result


MlflowUriOpt = Annotated[str | None, typer.Option(
    "--mlflow-uri", help="MLflow tracking URI (implies --mlflow; default $MLFLOW_TRACKING_URI, else "
    "sqlite:///$XDG_DATA_HOME/ltae/mlflow/mlflow.db).", show_default=False)]

StoreOpt = Annotated[Path | None, typer.Option(
    "--store", help="DuckDB results store (default: $LTAE_STORE, else "
    "$XDG_DATA_HOME/ltae/ltae_runs.duckdb, i.e. ~/.local/share/ltae/ltae_runs.duckdb).", show_default=False)]


@app.command("run")
@handle_errors
@data_role_options
def run_cmd(
    data: DataPath,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("ltae_output"),
    config: Annotated[Path | None, typer.Option("--config", help="TOML or YAML configuration file.",
                                                show_default=False)] = None,
    roles: DataRoles | None = None,
    draws: Annotated[int | None, typer.Option("--draws", help="Posterior draws per chain (default 1000).",
                                              show_default=False)] = None,
    tune: Annotated[int | None, typer.Option("--tune", help="Tuning steps per chain (default 500).",
                                             show_default=False)] = None,
    chains: Annotated[int | None, typer.Option("--chains", help="Chains (default 4).", show_default=False)] = None,
    sampler: SamplerOpt = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default 42).", show_default=False)] = None,
    horizon: Annotated[int | None, typer.Option("--horizon", help="Long-term horizon in weeks (default 24).",
                                                show_default=False)] = None,
    budget: Annotated[float | None, typer.Option("--budget", help="Total budget over the modelled window "
                                                 "(default: current spend).", show_default=False)] = None,
    holdout: Annotated[int | None, typer.Option("--holdout", help="Score the last N weeks out of sample "
                                                "(refits).", show_default=False)] = None,
    prior_sensitivity: Annotated[bool, typer.Option("--prior-sensitivity", help="Refit with priors halved and "
                                                    "doubled.")] = False,
    lift_tests: Annotated[Path | None, typer.Option(
        "--lift-tests", help="CSV of experiments (columns channel, start, end, spend_change, lift, lift_se; "
        "optional measured_until, spread, name) that calibrate the short-term model.", show_default=False)] = None,
    backtest: Annotated[int | None, typer.Option(
        "--backtest", min=0, help="Rolling-origin backtest: K refits on the first N - 4k weeks, each scored on "
        "its next 4 weeks (out-of-sample MAPE and coverage).", show_default=False)] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Where independent fits (backtest folds, markets) run: serial, or a Dask scheduler "
        "address (default: a Dask LocalCluster on this machine).", show_default=False)] = None,
    store: StoreOpt = None,
    mlflow: Annotated[bool, typer.Option("--mlflow", help="Log the finished run to MLflow and register a model "
                                         "version (the registry extra; default tracking URI: "
                                         "$MLFLOW_TRACKING_URI, else a local SQLite store).")] = False,
    mlflow_uri: MlflowUriOpt = None,
) -> None:
    """Run the two-step pipeline: short-term MMM, long-term BVAR, ROI, checklist, budget, report."""
    overrides = {
        "data": roles.model_dump(exclude_unset=True),
        "sampling": {"draws": draws, "tune": tune, "chains": chains, "sampler": sampler, "seed": seed},
        "horizon": horizon, "budget": budget, "holdout_weeks": holdout,
        "prior_sensitivity": prior_sensitivity or None,
        "lift_tests": str(lift_tests) if lift_tests is not None else None, "backtest_folds": backtest,
        "scheduler": scheduler,
        "mlflow": {"enabled": True if (mlflow or mlflow_uri) else None, "tracking_uri": mlflow_uri},
    }
    _run_pipeline(data, out, config, overrides, store)


@app.command()
@handle_errors
def refresh(
    run_dir: Annotated[Path, typer.Option("--run", help="Output folder of the finished run to refresh.",
                                          show_default=False)],
    data: Annotated[str, typer.Option("--data", "-d", help="The previous weeks plus the new ones (same layout and "
                                      "roles as the previous run's data).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="New output folder (the previous run stays).",
                                      show_default=False)],
    widen: Annotated[float, typer.Option("--widen", help="Prior sd = this x the previous posterior sd of each "
                                         "response-curve parameter.")] = 2.0,
    accept_history_changes: Annotated[bool, typer.Option("--accept-history-changes", help="Refresh even when the "
                                                          "new data change previous weeks (the changes are "
                                                          "recorded).")] = False,
    draws: Annotated[int | None, typer.Option("--draws", help="Posterior draws per chain (default: the previous "
                                              "run's).", show_default=False)] = None,
    tune: Annotated[int | None, typer.Option("--tune", help="Tuning steps per chain (default: the previous "
                                             "run's).", show_default=False)] = None,
    store: StoreOpt = None,
) -> None:
    """Refresh a run with new weeks: the previous posterior of the response curves is the new prior
    (widened), the sampler starts from it, and the report compares each ROI before and after."""
    from ltae.refresh import refresh as do_refresh
    from ltae.store.lock import check_free

    check_free(out)
    console = out_console()
    prog, cb = _progress_runner(console)
    with prog:
        result = do_refresh(run_dir, data, out, widen=widen, accept_history_changes=accept_history_changes,
                            overrides={"sampling": {"draws": draws, "tune": tune}}, progress=cb, store_path=store)
    _print_roi(result, console)
    r = result.diagnostics["refresh"]
    t = _rich_table(f"ROI before and after the refresh ({r['new_weeks']} new weeks; move in previous widths)")
    for c in ("channel", "term", "before", "after", "move"):
        t.add_column(c, justify="left" if c in ("channel", "term") else "right")
    for x in r["comparison"]:
        t.add_row(esc(x["channel"]), x["term"], f"{x['previous_mean']:.2f}", f"{x['new_mean']:.2f}",
                  "-" if x["move_in_widths"] is None else f"{x['move_in_widths']:.2f}")
    console.print(t)
    console.print(f"report: {esc(Path(out) / 'report.html')}", highlight=False)


@app.command()
@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo_output"),
    quick: Annotated[bool, typer.Option("--quick", help="Small draws (a minute, not production).")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for data and sampler.")] = 42,
    sampler: SamplerOpt = None,
    store: StoreOpt = None,
) -> None:
    """Generate synthetic data with known truth and run the whole pipeline on it."""
    import json

    from rich.table import Table

    from ltae.data.synthetic import generate_synthetic_data, save_to_csv
    from ltae.store.lock import check_free

    check_free(out)  # another run in this folder: stop before rewriting its data
    data_dir = out / "data"
    save_to_csv(generate_synthetic_data(seed=seed), data_dir)
    sampling = {"seed": seed, "sampler": sampler}
    if quick:
        sampling.update({"draws": 300, "tune": 300})
    result = _run_pipeline(data_dir, out, None, {"sampling": sampling}, store)
    truth = json.loads((data_dir / "truth.json").read_text())["channels"]
    t = Table(title="Known truth vs estimate (total ROI)")
    for c in ("channel", "truth", "estimate", f"{_ci_label(result.config)} interval", "covered"):
        t.add_column(c)
    covered = 0
    for r in result.roi.itertuples():
        tv = truth[r.channel]["total_roi"]
        ok = r.total_roi_lower <= tv <= r.total_roi_upper
        covered += ok
        t.add_row(esc(r.channel), f"{tv:.2f}", f"{r.total_roi_mean:.2f}",
                  esc(f"[{r.total_roi_lower:.2f}, {r.total_roi_upper:.2f}]"), "yes" if ok else "[red]no[/red]")
    out_console().print(t)
    out_console().print(f"total-ROI intervals covering the truth: {covered}/{len(result.roi)}")


@app.command()
@handle_errors
def optimize(
    run_dir: Annotated[Path, typer.Option("--run", help="Output folder of a finished `ltae run`.")],
    budget: Annotated[float | None, typer.Option("--budget", help="Total budget over the modelled window.",
                                                 show_default=False)] = None,
    bounds: Annotated[str, typer.Option("--bounds", help="Multiplier bounds low,high for every channel.")] = "0.5,1.5",
    risk_quantile: Annotated[float | None, typer.Option("--risk-quantile", help="Maximise this quantile of the "
                                                        "return instead of its mean (e.g. 0.1).",
                                                        show_default=False)] = None,
    include_long_term: Annotated[bool, typer.Option("--include-long-term/--short-term-only",
                                                    help="Count the long-term (brand) return of spend.")] = True,
    out: Annotated[Path | None, typer.Option("--out", help="CSV to write (default RUN/budget_<budget>.csv).",
                                             show_default=False)] = None,
) -> None:
    """Re-optimise the budget of a saved run without refitting."""
    from rich.table import Table

    from ltae.analysis.optimize import optimize_budget
    from ltae.config import check_bounds
    from ltae.data.validate import DataValidationError
    from ltae.pipeline import load_saved_run
    from ltae.store.artifacts import atomic_write_csv
    from ltae.store.runs import open_run

    try:
        lo, hi = (float(v) for v in bounds.split(","))
        check_bounds(lo, hi)
    except ValueError as exc:
        msg = str(exc) if "bound" in str(exc) else "use two numbers, e.g. 0.5,1.5"
        raise typer.BadParameter(msg, param_hint="--bounds") from exc
    if risk_quantile is not None and not 0 < risk_quantile < 1:
        raise typer.BadParameter("must be between 0 and 1, e.g. 0.1", param_hint="--risk-quantile")
    if budget is not None and not budget > 0:
        raise typer.BadParameter("must be a positive amount", param_hint="--budget")
    saved = open_run(run_dir)  # refuses an incomplete or mixed folder
    resp, channels = load_saved_run(saved)
    ci = saved.config.credible_interval
    try:
        df = optimize_budget(resp, budget, channels, (lo, hi), risk_quantile, include_long_term=include_long_term,
                             credible_interval=ci)
    except ValueError as exc:
        raise DataValidationError(str(exc), file=str(run_dir)) from exc
    path = out or run_dir / f"budget_{int(df.attrs['budget'])}.csv"
    atomic_write_csv(path, df)
    what = "short + long term" if include_long_term else "short term only"
    t = Table(title=f"Budget {df.attrs['budget']:,.0f} ({what}): expected uplift {df.attrs['uplift_mean']:,.0f} "
              f"[{df.attrs['uplift_lower']:,.0f}, {df.attrs['uplift_upper']:,.0f}] ({ci:.0%} interval)")
    for c in ("channel", "current", "optimal", "change"):
        t.add_column(c, justify="right")
    for r in df.itertuples():
        t.add_row(esc(r.channel), f"{r.current_spend:,.0f}", f"{r.optimal_spend:,.0f}", f"{r.change_pct:+.1f}%")
    out_console().print(t)
    out_console().print(f"wrote {esc(path)}", highlight=False)


def _interval(m: float, lo: float, hi: float) -> str:
    import math

    if not all(math.isfinite(v) for v in (m, lo, hi)):
        return "-"
    return f"{m:,.0f} [{lo:,.0f}, {hi:,.0f}]"


@app.command()
@handle_errors
def scenario(
    run_dir: Annotated[Path, typer.Option("--run", help="Output folder of a finished `ltae run`.")],
    plan: Annotated[Path, typer.Option("--plan", help="CSV of weekly spend for weeks after the data: Date plus "
                                       "one column per channel, or Date,Channel,Spend. Channels left out and "
                                       "weeks before its first week keep the reference's spend.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for scenario.csv and scenario.png.")],
    reference: Annotated[Path | None, typer.Option("--reference", help="CSV of the plan to compare with "
                                                   "(default: the recent average spend every week).",
                                                   show_default=False)] = None,
    recent_weeks: Annotated[int, typer.Option("--recent-weeks", min=1, help="Weeks of data behind the recent "
                                              "average spend.")] = 13,
    draws: Annotated[int, typer.Option("--draws", min=10, help="Posterior draws used (thinned evenly).")] = 2000,
) -> None:
    """Predict a future spend plan against a reference: weekly sales with intervals and the incremental
    return (short term, long term, total) per channel, counting effects up to the long-term horizon."""
    from rich.table import Table

    from ltae.analysis.scenarios import run_scenario
    from ltae.data.validate import DataValidationError
    from ltae.report.scenario import fig_scenario, write_scenario_figure
    from ltae.store.artifacts import atomic_write_csv

    if out.exists() and not out.is_dir():
        raise DataValidationError("--out must be a folder, not a file", file=str(out))
    res = run_scenario(run_dir, plan, reference, recent_weeks=recent_weeks, max_draws=draws)
    frame = res.to_frame()
    fig_scenario(res)  # drawn before anything is written: a failure leaves no half output
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out / "scenario.csv", frame)
    write_scenario_figure(res, out / "scenario.png")
    console = out_console()
    ci = f"{res.credible_interval:.0%}"
    span = res.dates[res.phase == "plan"]
    console.print(f"plan {res.plan_name}: {len(span)} weeks ({span[0]:%Y-%m-%d} to {span[-1]:%Y-%m-%d}) against "
                  f"{res.reference_name}; window to {res.dates[-1]:%Y-%m-%d} (long-term horizon {res.horizon} "
                  f"weeks); {res.n_draws} draws", highlight=False)
    t = Table(title=f"Incremental return of the plan vs {res.reference_name} (currency of sales; mean [{ci} "
              f"interval])")
    for c in ("channel", "extra spend", "short term", "long term", "total", "return per extra unit", "P(total > 0)"):
        t.add_column(c, justify="left" if c == "channel" else "right")
    for r in res.returns().itertuples():
        roi = "-" if r.roi_mean != r.roi_mean else f"{r.roi_mean:.2f} [{r.roi_lower:.2f}, {r.roi_upper:.2f}]"
        t.add_row(f"[bold]{r.channel}[/bold]" if r.channel == "all" else str(r.channel), f"{r.extra_spend:,.0f}",
                  _interval(r.short_term_mean, r.short_term_lower, r.short_term_upper),
                  _interval(r.long_term_mean, r.long_term_lower, r.long_term_upper),
                  _interval(r.total_mean, r.total_lower, r.total_upper), roi,
                  "-" if r.prob_positive != r.prob_positive else f"{r.prob_positive:.0%}")
    console.print(t)
    console.print(f"wrote {out / 'scenario.csv'} and {out / 'scenario.png'}", highlight=False)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command()
@handle_errors
def dashboard(
    runs_dir: Annotated[Path, typer.Option("--runs", help="Folder searched for run folders (two levels deep).")] = (
        Path(".")),
    store: Annotated[Path | None, typer.Option("--store", help="DuckDB results store whose runs are listed too "
                                               "(default: $LTAE_STORE or ltae_runs.duckdb in --runs).",
                                               show_default=False)] = None,
    run_dir: Annotated[Path | None, typer.Option("--run", help="Run folder to open first.",
                                                 show_default=False)] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind; anything but loopback needs "
                                      "LTAE_DASHBOARD_TOKEN.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8501,
) -> None:
    """Interactive dashboard (Streamlit): runs, ROI and checklist, budget allocation, scenario planner."""
    import subprocess

    from ltae.data.validate import DataValidationError

    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise DataValidationError("Streamlit is not installed", hint="pip install 'ltae[dashboard]'") from None
    if not _is_loopback(host) and not os.environ.get("LTAE_DASHBOARD_TOKEN", "").strip():
        raise DataValidationError(f"--host {host} exposes the dashboard beyond this machine without a token",
                                  hint="set LTAE_DASHBOARD_TOKEN (the page then asks for it) or bind to 127.0.0.1")
    if not runs_dir.is_dir():
        raise DataValidationError("folder not found", file=str(runs_dir), hint="--runs takes a folder of runs")
    import ltae.serve

    script = Path(ltae.serve.__file__).parent / "dashboard.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", host,
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--client.toolbarMode", "viewer",
           "--", "--runs", str(runs_dir.resolve())]
    if store is not None:
        cmd += ["--store", str(store.resolve())]
    if run_dir is not None:
        cmd += ["--run", str(run_dir.resolve())]
    out_console().print(f"dashboard on http://{host}:{port} (Ctrl+C stops it)", highlight=False)
    raise typer.Exit(subprocess.call(cmd))


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind; anything but loopback needs "
                                      "LTAE_API_TOKEN.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8000,
    runs_dir: Annotated[Path, typer.Option("--runs", help="Folder for fits made through the API (POST /runs) "
                                           "and their job records.")] = Path("ltae_runs"),
    store: StoreOpt = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", help="Folder whose files POST /runs may name "
                                                   "(default: uploads only).", show_default=False)] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="Also serve a registered model, e.g. "
                                                    "models:/ltae/3 (repeatable).", show_default=False)] = None,
    mlflow_uri: Annotated[str | None, typer.Option(
        "--mlflow-uri", help="MLflow tracking URI for --model and for fits that ask to be registered (default "
        "$MLFLOW_TRACKING_URI, else sqlite:///$XDG_DATA_HOME/ltae/mlflow/mlflow.db).", show_default=False)] = None,
    cache_size: Annotated[int, typer.Option("--cache-size", min=1, help="Runs kept loaded in memory.")] = 4,
    max_upload_mb: Annotated[int, typer.Option("--max-upload-mb", min=1, help="Largest upload.")] = 200,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Resume fits a stopped server left running "
                                         "(else mark them interrupted).")] = True,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """The HTTP API (FastAPI): runs, ROI, spend-plan predictions, budget optimisation, background fits.

    With LTAE_API_TOKEN set, every route but /health needs 'Authorization: Bearer <token>'."""
    from ltae.data.validate import DataValidationError

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise DataValidationError("FastAPI and uvicorn are not installed", hint="pip install 'ltae[serve]'") from None
    from ltae.serve.api import ServeSettings, check_exposure
    from ltae.serve.api import serve as serve_api

    token = os.environ.get("LTAE_API_TOKEN", "").strip() or None
    check_exposure(host, token)
    if data_root is not None and not data_root.is_dir():
        raise DataValidationError("folder not found", file=str(data_root), hint="--data-root takes a folder")
    if runs_dir.exists() and not runs_dir.is_dir():
        raise DataValidationError("not a folder", file=str(runs_dir), hint="--runs takes a folder")
    settings = ServeSettings(runs_root=runs_dir.resolve(), store=store, data_root=data_root.resolve() if data_root
                             else None, token=token, cache_size=cache_size, max_upload_bytes=max_upload_mb << 20,
                             resume=resume, models=list(model or []), mlflow_tracking_uri=mlflow_uri)
    out_console().print(f"ltae API on http://{host}:{port} (docs: /docs; Ctrl+C stops it)"
                        + ("; bearer token required" if token else ""), highlight=False)
    serve_api(settings, host=host, port=port, log_level=log_level)


@app.command()
@handle_errors
def register(
    run_dir: Annotated[Path, typer.Option("--run", help="Output folder of a finished `ltae run`.")],
    mlflow_uri: MlflowUriOpt = None,
    experiment: Annotated[str, typer.Option("--experiment", help="MLflow experiment.")] = "ltae",
    model_name: Annotated[str, typer.Option("--model-name", help="Registered model name.")] = "ltae",
) -> None:
    """Log a finished run to MLflow (params, metrics, artefacts) and register it as a model version."""
    from ltae.store.registry import log_run

    info = log_run(run_dir, tracking_uri=mlflow_uri, experiment=experiment, model_name=model_name)
    out_console().print(f"registered {esc(info['model_uri'])} (MLflow run {info['mlflow_run_id']}, "
                        f"{esc(info['tracking_uri'])})", highlight=False)


@app.command()
@handle_errors
def runs(
    store: StoreOpt = None,
    run_id: Annotated[str | None, typer.Option("--show", help="Show the ROI table of one run.",
                                               show_default=False)] = None,
) -> None:
    """List recorded runs (or show one run's ROI). Opens the store read-only."""
    from rich.table import Table

    from ltae.data.validate import DataValidationError
    from ltae.store.results import default_store, list_runs, run_roi

    store = store or default_store()
    df = run_roi(store, run_id) if run_id else list_runs(store)
    if run_id and df.empty:
        raise DataValidationError(f"no run '{run_id}' in the store", file=str(store),
                                  hint="`ltae runs` lists the recorded runs")
    if not run_id:
        df = df[[c for c in ("run_id", "created", "n_weeks", "n_channels", "sampler", "total_s", "checks")
                 if c in df.columns]]
    t = Table(title=esc(f"{'ROI of ' + run_id if run_id else 'Runs'} ({store})"))
    for c in df.columns:
        t.add_column(esc(c), no_wrap=c in ("run_id", "channel", "created"))
    for row in df.itertuples(index=False):
        t.add_row(*[f"{v:.3g}" if isinstance(v, float) else esc(v) for v in row])
    out_console().print(t)
    if not run_id and df.empty:
        out_console().print(f"no runs recorded in {esc(store)}", highlight=False)


def run() -> None:  # pragma: no cover - console entry for `python -m ltae`
    """Console entry point (``python -m ltae``)."""
    app(prog_name="ltae")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
