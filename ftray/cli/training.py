"""`ftray train` and `ftray data check`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from ftray.cli.base import ADDRESS_OPTION, JSON_OPTION, SET_OPTION, cli, emit, print_table, stdout

if TYPE_CHECKING:
    from ftray.results import ModelResult


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


def render_train_result(result: ModelResult) -> None:
    metrics, test = result.metrics, result.test_metrics
    table = Table(title=f"{result.run} ({result.strategy})")
    table.add_column("")
    table.add_column(f"validation ({result.validation_examples})", justify="right")
    if test:
        table.add_column(f"test ({result.test_examples})", justify="right")
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
            cells = [_cell(metrics[key])] + ([_cell(test.get(key, ""))] if test else [])
            table.add_row(key, *cells)
    table.add_row("best step", f"{metrics.get('step')} (epoch {metrics.get('epoch')})")
    table.add_row("stopped early", str(result.stopped_early))
    if result.resumed_from:
        table.add_row("resumed from", f"step {result.resumed_from['step']}")
    table.add_row("trainable params", f"{result.trainable_params:,} ({result.trainable_pct:.2f}%)")
    timings = result.timings
    table.add_row(
        "time",
        f"{timings.total_s or 0:.1f}s total, {timings.samples_per_second or 0:.0f} samples/s, "
        f"{timings.tokens_per_second or 0:.0f} tokens/s",
    )
    table.add_row("model", result.output_dir)
    for tracker, link in (result.tracking or {}).items():
        table.add_row(tracker, link.get("url") or link.get("run_id") or link.get("log_dir", ""))
    print_table(table)
    if metrics.get("slice_gap_flagged"):
        stdout.print(
            f"[yellow]slice gap {metrics['slice_gap']:.3f}: '{metrics['worst_slice']}' lags the "
            "best slice by more than data.max_slice_gap[/]"
        )


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@cli.command()
@click.argument("target", metavar="RUN_OR_EXPERIMENT", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Where report.png goes.")
@JSON_OPTION
def report(target: str, out: str | None, as_json: bool) -> None:
    """Draw a run's curves (losses, selection metric, slices, learning rate) or an
    experiment's trials into report.png; TARGET is a run, model or experiment directory."""
    from dataclasses import asdict

    from ftray.report import report as draw

    drawn = draw(target, out)
    emit(
        {**asdict(drawn), "png": str(drawn.png)},
        as_json,
        lambda r: stdout.print(f"{r['kind']} {r['name']}: {r['evaluations']} points -> {r['png']}"),
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
    if report.get("test_examples"):
        sizes += f" / {report['test_examples']} test"
    table = Table(title=f"data check: {sizes}")
    table.add_column("check")
    table.add_column("level")
    table.add_column("finding")
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    for finding in report["findings"]:
        level = finding["level"]
        table.add_row(finding["check"], f"[{colours[level]}]{level}[/]", finding["message"])
    print_table(table)
