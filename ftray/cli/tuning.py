"""`ftray tune` and `ftray compare`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from ftray.cli.base import ADDRESS_OPTION, JSON_OPTION, SET_OPTION, cli, emit, print_table, stdout

if TYPE_CHECKING:
    from ftray.results import ComparisonReport, TuneResult


@cli.command()
@click.argument("job", type=click.Path(dir_okay=False))
@SET_OPTION
@ADDRESS_OPTION
@click.option(
    "--resume", is_flag=True, help="Continue the newest unfinished tune experiment of this job."
)
@JSON_OPTION
@click.pass_context
def tune(
    ctx: click.Context,
    job: str,
    overrides: tuple[str, ...],
    address: str | None,
    resume: bool,
    as_json: bool,
) -> None:
    """Search JOB's `tune.search_space` with Ray Tune (ASHA by default); register the winner."""
    from ftray.spec import load_spec
    from ftray.tune import tune as run_tuning

    result = run_tuning(
        load_spec(job, overrides), address=address, resume=resume, verbose=ctx.obj["verbose"]
    )
    emit(result, as_json, render_tune_result)


def render_tune_result(result: TuneResult) -> None:
    keys = sorted({k for row in result.leaderboard for k in row.config})
    table = Table(
        "#",
        "trial",
        *keys,
        result.metric,
        "epochs",
        "stopped",
        "time",
        title=f"{result.experiment}: leaderboard ({result.mode} {result.metric})",
    )
    for place, row in enumerate(result.leaderboard, start=1):
        values = [
            f"{row.config[k]:.3g}"
            if isinstance(row.config.get(k), float)
            else str(row.config.get(k, ""))
            for k in keys
        ]
        best = f"{row.best:.4f}" if row.best is not None else "-"
        wall = f"{row.wall_s:.0f}s" if row.wall_s else "-"
        table.add_row(str(place), row.trial, *values, best, str(row.epochs), row.stopped, wall)
    print_table(table)
    stdout.print(
        f"{result.trials} trials, {result.stopped_by_scheduler} stopped by the scheduler, "
        f"{result.trial_epochs} trial-epochs in {result.wall_s:.0f}s"
    )
    if result.best is not None:
        stdout.print(f"best: trial {result.best.trial} -> {result.best.output_dir}")
    if result.registered is not None:
        registered = result.registered
        stdout.print(f"registered [bold]{registered['ref']}[/] in {registered['registry']}")


def comma_list(kind: type) -> Any:
    def parse(ctx: click.Context, param: click.Parameter, value: str) -> list:
        try:
            return [kind(item.strip()) for item in value.split(",") if item.strip()]
        except ValueError:
            raise click.BadParameter(f"expected a comma-separated list, got {value!r}") from None

    return parse


@cli.command()
@click.argument("job", type=click.Path(dir_okay=False))
@click.option(
    "--strategies",
    default="full,partial,adapter,prompt",
    show_default=True,
    callback=comma_list(str),
    help="Strategies to compare.",
)
@click.option(
    "--fractions",
    default="0.1,0.3,1.0",
    show_default=True,
    callback=comma_list(float),
    help="Fractions of the training data to train on.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Where compare.json, compare.md and compare.png go (default: beside the runs).",
)
@click.option(
    "--register",
    is_flag=True,
    help="Register each strategy's best run as <registry.register_as or name>-<strategy>.",
)
@SET_OPTION
@ADDRESS_OPTION
@JSON_OPTION
@click.pass_context
def compare(
    ctx: click.Context,
    job: str,
    strategies: list[str],
    fractions: list[float],
    out: str | None,
    register: bool,
    overrides: tuple[str, ...],
    address: str | None,
    as_json: bool,
) -> None:
    """Measure every strategy at several data fractions on JOB: cost, quality, data needs."""
    from ftray.compare import compare as run_comparison
    from ftray.spec import load_spec

    report = run_comparison(
        load_spec(job, overrides),
        strategies,
        fractions,
        out=out,
        register=register,
        address=address,
        verbose=ctx.obj["verbose"],
    )
    emit(report, as_json, render_comparison)


def render_comparison(report: ComparisonReport) -> None:
    from ftray.compare import headline

    quality = headline(report)
    table = Table(
        "strategy",
        "data",
        "trainable",
        quality,
        "F1",
        "worst slice F1",
        "train-val gap",
        "wall",
        "samples/s",
        "peak MB",
        "artefact",
        title=f"{report.experiment}",
    )
    for row in report.rows:
        table.add_row(
            row.strategy,
            f"{row.fraction:g}",
            f"{row.trainable_params:,} ({row.trainable_pct:.2f}%)",
            _fmt(row.score(quality)),
            _fmt(row.f1),
            _fmt(row.worst_slice_f1),
            _fmt(row.train_val_gap),
            _fmt(row.wall_s, 0) + "s",
            _fmt(row.samples_per_second, 0),
            _fmt(row.peak_memory_mb, 0),
            f"{row.artefact_bytes / 1e6:.2f} MB",
        )
    print_table(table)
    if report.majority_baseline is not None:
        stdout.print(f"majority-class baseline: {report.majority_baseline:.4f} {quality}")
    for failure in report.failed:
        stdout.print(f"[red]failed[/] {failure['config']}: {failure['error']}")
    stdout.print(f"written to {report.out} (compare.json, compare.md, compare.png)")


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
