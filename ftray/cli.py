"""The `ftray` command: a thin layer over the Python API.

Every command takes `--json` (its result as one JSON object on stdout), exits 0 on success, and
on bad input prints one line, `ftray: error: ...`, and exits non-zero (2 for usage errors).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ftray.errors import FtrayError

stdout = Console()
JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON object."
)
SET_OPTION = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a job-spec field (repeatable).",
)
ADDRESS_OPTION = click.option(
    "--address",
    default=None,
    metavar="RAY_ADDR",
    help="Ray cluster to join (default: a local Ray).",
)


def emit(result: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(result, default=str))
    else:
        render(result)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", is_flag=True, help="Show Ray's logs and full tracebacks.")
@click.version_option(package_name="ftray")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Fine-tune models on Ray, register them, serve them."""
    ctx.obj = {"verbose": verbose}
    if verbose:
        os.environ["FTRAY_VERBOSE"] = "1"


@cli.command()
@click.argument("job", type=click.Path(dir_okay=False))
@SET_OPTION
@ADDRESS_OPTION
@click.option("--resume", is_flag=True, help="Continue the newest unfinished run of this job.")
@JSON_OPTION
@click.pass_context
def train(
    ctx: click.Context,
    job: str,
    overrides: tuple[str, ...],
    address: str | None,
    resume: bool,
    as_json: bool,
) -> None:
    """Fine-tune the model described by JOB (a YAML job spec) on Ray Train."""
    from ftray.spec import load_spec
    from ftray.train import train as run_training

    spec = load_spec(job, overrides)
    result = run_training(spec, address=address, resume=resume, verbose=ctx.obj["verbose"])
    emit(result, as_json, render_train_result)


def render_train_result(result: dict[str, Any]) -> None:
    metrics = result["metrics"]
    table = Table(title=f"{result['run']} ({result['strategy']})", show_header=False)
    shown = [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "perplexity",
        "val_loss",
        "train_loss",
        "worst_slice",
        "slice_gap",
    ]
    for key in shown:
        if key in metrics:
            value = metrics[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    table.add_row("best step", f"{metrics.get('step')} (epoch {metrics.get('epoch')})")
    table.add_row("stopped early", str(result["stopped_early"]))
    if result.get("resumed_from"):
        table.add_row("resumed from", f"step {result['resumed_from']['step']}")
    table.add_row(
        "trainable params", f"{result['trainable_params']:,} ({result['trainable_pct']:.2f}%)"
    )
    timings = result["timings"]
    table.add_row(
        "time",
        f"{timings['total_s']:.1f}s total, {timings.get('samples_per_second') or 0:.0f} samples/s",
    )
    table.add_row("model", result["output_dir"])
    stdout.print(table)
    if metrics.get("slice_gap_flagged"):
        stdout.print(
            f"[yellow]slice gap {metrics['slice_gap']:.3f}: '{metrics['worst_slice']}' lags the "
            "best slice by more than data.max_slice_gap[/]"
        )


@cli.group()
def data() -> None:
    """Inspect a job's data."""


@data.command("check")
@click.argument("job", type=click.Path(dir_okay=False))
@SET_OPTION
@JSON_OPTION
def data_check(job: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Check JOB's data: balance, duplicates, leakage, groups, split sizes (exit 1 on a failure)."""
    from ftray.datacheck import check_data
    from ftray.spec import load_spec

    report = check_data(load_spec(job, overrides))
    emit(report.to_dict(), as_json, render_data_report)
    if report.failed:
        sys.exit(1)


def render_data_report(report: dict[str, Any]) -> None:
    sizes = f"{report['train_examples']} train / {report['validation_examples']} validation"
    table = Table(title=f"data check: {sizes}")
    table.add_column("check")
    table.add_column("level")
    table.add_column("finding")
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    for finding in report["findings"]:
        level = finding["level"]
        table.add_row(finding["check"], f"[{colours[level]}]{level}[/]", finding["message"])
    stdout.print(table)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the command and turns every failure into one line and an exit code."""
    try:
        code = cli.main(args=argv, prog_name="ftray", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        fail("interrupted", 130)
    except FtrayError as exc:
        fail(str(exc), 1)
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("FTRAY_VERBOSE"):
            traceback.print_exc()
        fail(
            f"{type(exc).__name__}: {exc} (rerun with --verbose for the traceback)".splitlines()[0],
            1,
        )


def fail(message: str, code: int) -> None:
    click.echo(f"ftray: error: {message}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
