"""`ftray eval`: a model's scores on any labelled file."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from ftray.cli.base import ADDRESS_OPTION, JSON_OPTION, SET_OPTION, cli, emit, print_table, stdout


@cli.command("eval")
@click.argument("target", metavar="REF_OR_RUN")
@click.argument("data_file", metavar="DATA", type=click.Path(dir_okay=False))
@SET_OPTION
@click.option("--registry", "registry_uri", default=None, help="Registry URI (default: local).")
@click.option("--record", is_flag=True, help="Append this evaluation to the registry version.")
@click.option("--errors", default=5, show_default=True, help="How many worst errors to list.")
@click.option(
    "--plot-dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where confusion_matrix.png goes (classification).",
)
@click.option(
    "--shards",
    type=int,
    default=None,
    help="Ray tasks to score in (default: 1, or one per cluster CPU over 20,000 rows).",
)
@ADDRESS_OPTION
@JSON_OPTION
def evaluate_command(
    target: str,
    data_file: str,
    overrides: tuple[str, ...],
    registry_uri: str | None,
    record: bool,
    errors: int,
    plot_dir: str,
    shards: int | None,
    address: str | None,
    as_json: bool,
) -> None:
    """Score REF_OR_RUN (NAME:VERSION, NAME@ALIAS or a run's output directory) on DATA, a
    labelled JSONL, CSV or Parquet file read with the model's job-spec field mapping."""
    from ftray.evaluate import evaluate

    result = evaluate(
        target,
        data_file,
        overrides=overrides,
        registry_uri=registry_uri,
        errors=errors,
        record=record,
        plot_dir=plot_dir,
        shards=shards,
        address=address,
    )
    emit(result.to_dict(), as_json, render_evaluation)


def render_evaluation(result: dict[str, Any]) -> None:
    metrics = result["metrics"]
    # The evaluator names its loss for training's validation; on a user's file it is the loss.
    shown = {"val_loss": "loss"}
    headline = ", ".join(
        f"{shown.get(k, k)} {metrics[k]:.4f}"
        for k in ("accuracy", "precision", "recall", "f1", "perplexity", "val_loss")
        if isinstance(metrics.get(k), float)
    )
    stdout.print(f"[bold]{result['model']}[/] on {result['data']} ({result['rows']} rows)")
    stdout.print(f"  {headline}")
    if isinstance(metrics.get("ece"), float):
        stdout.print(
            f"  calibration: ECE {metrics['ece']:.4f}, Brier {metrics['brier']:.4f} "
            f"(probabilities at temperature {metrics.get('temperature', 1.0):.3g})"
        )
    for note in result.get("notes", []):
        stdout.print(f"  [dim]{note}[/]")
    if metrics.get("per_class"):
        _per_class_table(metrics["per_class"], result["task"])
    if result.get("confusion"):
        _confusion_table(result["confusion"], result["labels"])
    if metrics.get("slices"):
        _slice_table(metrics)
    if result["errors"]:
        _errors_table(result["errors"])
    if result.get("plot"):
        stdout.print(f"confusion matrix: {result['plot']}")
    if result.get("recorded"):
        stdout.print(f"recorded in the registry: {result['recorded']}")


def _per_class_table(per_class: dict[str, dict], task: str) -> None:
    from ftray.tasks import get_task  # the CLI imports torch only for commands that need it

    title = f"per {get_task(task).class_noun}"
    table = Table(title=title)
    for column in ("", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="right" if column else "left")
    for name, scores in per_class.items():
        table.add_row(
            name,
            *(f"{scores[k]:.3f}" for k in ("precision", "recall", "f1")),
            str(scores["support"]),
        )
    print_table(table)


def _confusion_table(confusion: list[list[int]], labels: list[str]) -> None:
    table = Table(title="confusion (rows: true, columns: predicted)")
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    for label, row in zip(labels, confusion, strict=True):
        table.add_row(label, *(str(v) for v in row))
    print_table(table)


def _slice_table(metrics: dict[str, Any]) -> None:
    table = Table(title="per slice")
    table.add_column("slice")
    keys = [k for k in ("accuracy", "f1") if any(k in s for s in metrics["slices"].values())]
    for key in [*keys, "support"]:
        table.add_column(key, justify="right")
    for name, scores in metrics["slices"].items():
        table.add_row(name, *(f"{scores[k]:.3f}" for k in keys), str(scores["support"]))
    print_table(table)
    if "slice_gap" in metrics:
        flag = " [yellow](over data.max_slice_gap)[/]" if metrics["slice_gap_flagged"] else ""
        stdout.print(f"worst slice {metrics['worst_slice']}, gap {metrics['slice_gap']:.3f}{flag}")


def _errors_table(errors: list[dict[str, Any]]) -> None:
    table = Table(title="most confident errors")
    for column in ("row", "input", "expected", "predicted"):
        table.add_column(column)
    for error in errors:
        table.add_row(str(error["index"]), error["text"], error["expected"], error["predicted"])
    print_table(table)
