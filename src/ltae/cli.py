"""Command line: ``ltae generate | check | prepare`` (more commands plug in the same way).

Adding a command::

    @app.command()
    @handle_errors
    def run(data: DataPath, target: TargetOpt = None, ..., min_weeks: MinWeeksOpt = 52):
        ds = load_from_options(data, target=target, ...)   # or load_dataset(data, **data_kwargs(...))
        ...

``handle_errors`` turns :class:`~ltae.data.DataValidationError` into ``error: <message>`` on
stderr with exit code 2, and any other exception into ``error: ...`` with exit code 1; the
traceback is shown only with ``ltae --debug ...`` or ``LTAE_DEBUG=1``.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from ltae import __version__

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
    from rich.console import Console

    return Console(highlight=False)


def err_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def debug_enabled() -> bool:
    return _state["debug"] or os.environ.get("LTAE_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def print_error(message: str) -> None:
    """``error: <message>`` in red on stderr, on one line (no wrapping, no markup)."""
    from rich.text import Text

    err_console().print(Text(f"error: {' '.join(str(message).split())}", style="red"))


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
TargetOpt = Annotated[
    str | None, typer.Option("--target", help="Target column (default: 'revenue').", show_default=False)
]
DateColOpt = Annotated[
    str | None, typer.Option("--date-col", help="Date column (default: 'Date', any case).", show_default=False)
]
ChannelsOpt = Annotated[
    str | None,
    typer.Option("--channels", help="Comma-separated channels / spend columns (default: all in the "
                 "spend file; required for a single table).", show_default=False),
]
ControlsOpt = Annotated[
    str | None,
    typer.Option("--controls", help="Comma-separated control columns (default: competitor + macro "
                 "columns; '' for none).", show_default=False),
]
BrandOpt = Annotated[
    str | None,
    typer.Option("--brand", help="Comma-separated brand-metric columns (default: all of "
                 "brand_metrics.csv; '' for none).", show_default=False),
]
TableOpt = Annotated[str | None, typer.Option("--table", help="Table name in a DuckDB file.", show_default=False)]
MinWeeksOpt = Annotated[int, typer.Option("--min-weeks", min=1, help="Fewest weeks accepted.")]


def split_list(value: str | None) -> list[str] | None:
    """Comma-separated option value -> list (``None`` stays ``None``, ``""`` is an empty list)."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def data_kwargs(
    *,
    target: str | None = None,
    date_col: str | None = None,
    channels: str | None = None,
    controls: str | None = None,
    brand: str | None = None,
    table: str | None = None,
    min_weeks: int = 52,
) -> dict:
    """Keyword arguments for :func:`ltae.data.load_dataset` from the CLI's role options."""
    return {
        "target": target or None,
        "date_col": date_col or None,
        "channels": split_list(channels),
        "controls": split_list(controls),
        "brand": split_list(brand),
        "table": table or None,
        "min_weeks": min_weeks,
    }


def load_from_options(data: str, **options):
    """``load_dataset(data, **data_kwargs(**options))``."""
    from ltae.data import load_dataset

    return load_dataset(data, **data_kwargs(**options))


def print_dataset(ds, console=None) -> None:
    from rich.table import Table

    from ltae.data.validate import fmt_date

    console = console or out_console()
    t = Table(title="Dataset", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    t.add_row("source", ds.source)
    t.add_row("weeks", f"{ds.n_weeks} ({fmt_date(ds.dates[0])} to {fmt_date(ds.dates[-1])}, {ds.dates.freqstr})")
    t.add_row("target", ds.target_name)
    t.add_row("channels", ", ".join(ds.channels))
    t.add_row("controls", ", ".join(ds.control_names) or "-")
    t.add_row("brand", ", ".join(ds.brand_names) or "-")
    t.add_row("data hash", ds.data_hash()[:16])
    console.print(t)
    for n in ds.notices:
        console.print(f"[cyan]note:[/cyan] {n}", highlight=False)


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
    _state["debug"] = debug


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
        t.add_row(ch, f"{v['spend']:,.0f}", f"{v['short_term_roi']:.2f}", f"{v['long_term_roi']:.2f}",
                  f"{v['total_roi']:.2f}")
    console.print(t)
    console.print(f"wrote sales.csv, marketing_spend.csv, brand_metrics.csv, competitor_activity.csv, "
                  f"macroeconomic_indicators.csv and truth.json to {folder}", highlight=False)


@app.command()
@handle_errors
def check(
    data: DataPath,
    target: TargetOpt = None,
    date_col: DateColOpt = None,
    channels: ChannelsOpt = None,
    controls: ControlsOpt = None,
    brand: BrandOpt = None,
    table: TableOpt = None,
    min_weeks: MinWeeksOpt = 52,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON to this file.", show_default=False)
    ] = None,
) -> None:
    """Validate the input data and print a quality report (VIF, ADF, summary statistics)."""
    from ltae.data.quality import print_quality_report, quality_report

    ds = load_from_options(data, target=target, date_col=date_col, channels=channels, controls=controls,
                           brand=brand, table=table, min_weeks=min_weeks)
    report = quality_report(ds)
    console = out_console()
    print_dataset(ds, console)
    print_quality_report(report, console)
    if json_out is not None:
        from ltae.store.artifacts import atomic_write_json

        atomic_write_json(json_out, {"valid": True, "dataset": ds.summary(), "quality": report.to_dict()})
        console.print(f"wrote {json_out}", highlight=False)
    console.print("[green]data OK[/green]")


@app.command()
@handle_errors
def prepare(
    data: DataPath,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write (a folder: "
                                      "FOLDER/prepared_data.csv).",
                                      show_default=False)],
    target: TargetOpt = None,
    date_col: DateColOpt = None,
    channels: ChannelsOpt = None,
    controls: ControlsOpt = None,
    brand: BrandOpt = None,
    table: TableOpt = None,
    min_weeks: MinWeeksOpt = 52,
) -> None:
    """Validate the input and write one weekly table: Date, target, channels, controls, brand.

    A <stem>.roles.json written next to it records the column roles, so the file can be passed
    back as --data without role options."""
    from ltae.data.prepare import write_prepared

    if out.is_dir():
        out = out / "prepared_data.csv"
    ds = load_from_options(data, target=target, date_col=date_col, channels=channels, controls=controls,
                           brand=brand, table=table, min_weeks=min_weeks)
    csv_path, roles = write_prepared(ds, out)
    console = out_console()
    print_dataset(ds, console)
    console.print(f"wrote {csv_path} ({ds.n_weeks} weeks) and {roles.name}", highlight=False)


def run() -> None:  # pragma: no cover - console entry for `python -m ltae`
    app(prog_name="ltae")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
