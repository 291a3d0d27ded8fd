"""`ftray compare`: the fine-tuning approaches table, measured on the user's own task.

Every strategy x data fraction is one grid trial of `ftray.tune` (FIFO, so a cluster runs them in
parallel), with the same epochs, batch and seed; each strategy trains at its own default learning
rate (prompt tuning needs ~100x LoRA's) and with the job's knobs when the job uses that strategy.
The table reads each trial's best exported model and the evaluation recorded with it: trainable
parameters, wall time, throughput, peak memory, artefact size, accuracy/precision/recall/F1,
worst-slice F1 and the slice gap, and the train-validation gap (an overfitting signal).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftray import storage, tracking
from ftray.checkpointing import EVAL_FILE, MODEL_DIR
from ftray.data import Splits, load_splits
from ftray.errors import FtrayError
from ftray.results import ComparisonReport, ComparisonRow, TrialRow, TuneResult
from ftray.runs import best_exported_checkpoint, run_uri, trial_run
from ftray.schedule import schedule_for
from ftray.spec import JobSpec
from ftray.strategies import STRATEGIES
from ftray.tasks import get_task
from ftray.train import register_result
from ftray.tune import export_winner, tune

COMPARE_JSON, COMPARE_MD, COMPARE_PNG = "compare.json", "compare.md", "compare.png"
WEIGHT_SUFFIXES = (".safetensors",)


def compare(
    spec: JobSpec,
    strategies: list[str] | tuple[str, ...] = ("full", "partial", "adapter", "prompt"),
    fractions: list[float] | tuple[float, ...] = (0.1, 0.3, 1.0),
    *,
    out: str | Path | None = None,
    register: bool = False,
    address: str | None = None,
    verbose: bool = False,
    progress: bool = True,
) -> ComparisonReport:
    """Run the comparison; returns what compare.json holds."""

    grid = comparison_spec(spec, strategies, fractions)
    splits = load_splits(grid)
    with tracking.tracked(grid, f"{grid.name}-compare", kind="compare") as parent:
        result = tune(
            grid, address=address, verbose=verbose, progress=progress, kind="compare",
            tracker=parent,
        )  # fmt: skip
        report = comparison_report(grid, result, splits, list(strategies), list(fractions))
        directory = Path(out) if out else default_out(grid, result.experiment)
        directory.mkdir(parents=True, exist_ok=True)
        if register:
            report.registered = register_strategies(
                spec, grid, result, report.rows, splits.labels, directory, export_winner
            )
        write_outputs(report, directory)
        report.out = str(directory)
        for name in (COMPARE_JSON, COMPARE_MD, COMPARE_PNG):
            parent.log_artifact(directory / name)
        parent.set_tags({"ftray.experiment": result.experiment})
    return report


def comparison_report(
    grid: JobSpec,
    result: TuneResult,
    splits: Splits,
    strategies: list[str],
    fractions: list[float],
) -> ComparisonReport:
    """The table's rows (each trial's best model, scored on the test split when there is one)."""
    experiment_uri = run_uri(grid, result.experiment)
    rows = [
        comparison_row(row, trial_run(experiment_uri, row.trial))
        for row in result.leaderboard
        if row.best is not None
    ]
    if splits.test:
        for row in rows:
            scores = test_scores(grid, row, result.experiment, splits, export_winner)
            row.test_accuracy, row.test_f1, row.test_perplexity = scores
    rows.sort(key=lambda r: (strategies.index(r.strategy), r.fraction))
    failed = [row for row in result.leaderboard if row.best is None]
    return ComparisonReport(
        experiment=result.experiment,
        task=grid.model.task,
        metric=grid.metric,
        strategies=strategies,
        fractions=fractions,
        majority_baseline=majority_baseline(grid.model.task, splits),
        rows=rows,
        failed=[{"config": r.config, "error": r.error} for r in failed],
        wall_s=result.wall_s,
    )


def comparison_spec(
    spec: JobSpec,
    strategies: list[str] | tuple[str, ...],
    fractions: list[float] | tuple[float, ...],
) -> JobSpec:
    """The job as a grid over strategy x fraction, checked before any trial starts."""

    for kind in strategies:
        if kind not in STRATEGIES:
            raise FtrayError(f"--strategies: {kind!r} is not one of {', '.join(STRATEGIES)}")
    if not strategies or not fractions:
        raise FtrayError("--strategies and --fractions need at least one value each")
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise FtrayError(f"--fractions: {fraction} is outside (0, 1]")
    grid = spec.model_copy(deep=True)
    grid.train.learning_rate = None  # each strategy's own default
    grid.registry.register_as = None  # the comparison registers per strategy, on request
    for fraction in fractions:
        trial = grid.model_copy(deep=True)
        trial.data.fraction = fraction
        try:
            splits = load_splits(trial)
            schedule_for(trial.train, len(splits.train), trial.scaling.num_workers)
        except FtrayError as exc:
            raise FtrayError(f"--fractions: {fraction}: {exc}") from None
    grid.tune.search_space = {
        "strategy.kind": {"grid": list(strategies)},
        "data.fraction": {"grid": list(fractions)},
    }
    grid.tune.searcher, grid.tune.num_samples, grid.tune.scheduler.kind = "grid", 1, "fifo"
    grid.tune.metric, grid.tune.mode = None, None
    return grid


def majority_baseline(task: str, splits: Splits) -> float | None:
    """Validation accuracy of always answering the most frequent training label."""
    key = get_task(task).stratify_by  # the key of a single label per example, if there is one
    if key is None:
        return None
    majority = Counter(e[key] for e in splits.train).most_common(1)[0][0]
    return sum(e[key] == majority for e in splits.validation) / len(splits.validation)


def comparison_row(row: TrialRow, trial_run: str) -> ComparisonRow:
    checkpoint = best_exported_checkpoint(trial_run)
    if checkpoint is None:
        raise FtrayError(f"{trial_run} holds no exported model")
    model_uri = storage.join(checkpoint, MODEL_DIR)
    evaluation = json.loads(storage.read_text(storage.join(model_uri, EVAL_FILE)))
    strategy = row.config["strategy.kind"]
    trainable, total = evaluation["trainable_params"], evaluation["total_params"]
    weights = sum(
        size
        for name, size in storage.file_sizes(model_uri).items()
        if name.endswith(WEIGHT_SUFFIXES)
    )
    # A partial version stores only the tensors it changed (the trainable ones): their share of
    # the exported full weights.
    artefact = round(weights * trainable / total) if strategy == "partial" else weights
    accuracy, train_accuracy = evaluation.get("accuracy"), evaluation.get("train_accuracy")
    return ComparisonRow(
        strategy=strategy,
        fraction=row.config["data.fraction"],
        trial=row.trial,
        trainable_params=trainable,
        trainable_pct=round(100 * trainable / total, 4),
        wall_s=row.wall_s,
        train_s=evaluation.get("worker_elapsed_s"),
        samples_per_second=evaluation.get("samples_per_second"),
        peak_memory_mb=evaluation.get("peak_memory_mb"),
        artefact_bytes=artefact,
        accuracy=accuracy,
        precision=evaluation.get("precision"),
        recall=evaluation.get("recall"),
        f1=evaluation.get("f1"),
        perplexity=evaluation.get("perplexity"),
        worst_slice=evaluation.get("worst_slice"),
        worst_slice_f1=evaluation.get("worst_slice_f1"),
        slice_gap=evaluation.get("slice_gap"),
        train_val_gap=(train_accuracy - accuracy)
        if accuracy is not None and train_accuracy is not None
        else None,
        epochs=row.epochs,
        best_step=evaluation.get("best_step"),
        config=row.config,
    )


def test_scores(
    grid: JobSpec, row: ComparisonRow, experiment: str, splits: Splits, export: Any
) -> tuple[float | None, float | None, float | None]:
    """The row's best model scored on the test split, after every choice was made on
    validation: a copy of it is exported to a scratch directory and scored there."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ftray-compare-") as scratch:
        winner = TrialRow(
            trial=row.trial,
            config=row.config,
            strategy=row.strategy,
            best=None,
            epochs=row.epochs,
            steps=0,
            evaluations=0,
            stopped="completed",
            wall_s=row.wall_s,
            error=None,
        )
        exported = export(
            grid, experiment, winner, splits.labels, Path(scratch) / "model", test=splits.test
        )
        scores = exported.test_metrics or {}
    return scores.get("accuracy"), scores.get("f1"), scores.get("perplexity")


def default_out(spec: JobSpec, experiment: str) -> Path:
    if "://" in spec.checkpoint.storage_path:
        return Path.cwd() / experiment
    return Path(spec.checkpoint.storage_path) / experiment / "compare"


def register_strategies(
    spec: JobSpec,
    grid: JobSpec,
    result: TuneResult,
    rows: list[ComparisonRow],
    labels: list[str],
    directory: Path,
    export: Any,
) -> list[dict[str, Any]]:
    """Register each strategy's best run as `<register_as or job name>-<strategy>`."""

    prefix = spec.registry.register_as or spec.name
    registered = []
    leaderboard = {row.trial: row for row in result.leaderboard}
    for strategy in dict.fromkeys(row.strategy for row in rows):
        best = max(
            (r for r in rows if r.strategy == strategy),
            key=lambda r: leaderboard[r.trial].best or 0.0,
        )
        winner = leaderboard[best.trial]
        model_dir = directory / "models" / strategy
        export(grid, result.experiment, winner, labels, model_dir)
        target = grid.model_copy(deep=True)
        target.registry.register_as = f"{prefix}-{strategy}"
        target.registry.aliases = list(spec.registry.aliases)
        lineage = {
            "experiment": result.experiment,
            "trial": winner.trial,
            "config": winner.config,
        }
        registered.append({"strategy": strategy, **register_result(target, model_dir, lineage)})
    return registered


def write_outputs(report: ComparisonReport, directory: Path) -> None:
    (directory / COMPARE_JSON).write_text(report.model_dump_json(indent=2))
    (directory / COMPARE_MD).write_text(markdown_table(report))
    plot(report, directory / COMPARE_PNG)


def headline(report: ComparisonReport) -> str:
    return get_task(report.task).headline_metric


def markdown_table(report: ComparisonReport) -> str:
    quality = headline(report)
    columns: dict[str, Callable[[ComparisonRow], str]] = {
        "strategy": lambda r: r.strategy,
        "data": lambda r: f"{r.fraction:g}",
        "trainable params": lambda r: f"{r.trainable_params:,} ({r.trainable_pct:.2f}%)",
        quality: lambda r: _num(r.score(quality)),
        "precision": lambda r: _num(r.precision),
        "recall": lambda r: _num(r.recall),
        "F1": lambda r: _num(r.f1),
        "worst-slice F1": lambda r: _num(r.worst_slice_f1),
        "slice gap": lambda r: _num(r.slice_gap),
        "train-val gap": lambda r: _num(r.train_val_gap),
        "wall s": lambda r: _num(r.wall_s, 0),
        "samples/s": lambda r: _num(r.samples_per_second, 0),
        "peak MB": lambda r: _num(r.peak_memory_mb, 0),
        "artefact": lambda r: _bytes(r.artefact_bytes),
    }
    if any(row.score(f"test_{quality}") is not None for row in report.rows):
        columns[f"test {quality}"] = lambda r: _num(r.score(f"test_{quality}"))
    baseline = report.majority_baseline
    lines = [
        f"# Fine-tuning approaches: {report.experiment}",
        "",
        f"Task: {report.task}; quality is validation {quality} (test {quality}: the held-out "
        "test split, scored once on each row's chosen model)"
        + (
            f"; the majority-class baseline scores {baseline:.4f}." if baseline is not None else "."
        ),
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(cell(row) for cell in columns.values()) + " |" for row in report.rows),
    ]
    lines += [f"\nFailed: {failure['config']}: {failure['error']}" for failure in report.failed]
    return "\n".join(lines) + "\n"


def plot(report: ComparisonReport, path: Path) -> None:
    """The data-efficiency curve (quality against data fraction, a line per strategy) beside
    cost against quality (wall time and trainable parameters at the largest fraction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality = headline(report)
    figure, (curve, cost) = plt.subplots(1, 2, figsize=(11, 4.2))
    for strategy in report.strategies:
        points = sorted(
            (r.fraction, r.score(quality)) for r in report.rows if r.strategy == strategy
        )
        if points:
            curve.plot(*zip(*points, strict=True), marker="o", label=strategy)
    if report.majority_baseline:
        curve.axhline(
            report.majority_baseline, color="grey", linestyle="--", label="majority class"
        )
    curve.set(
        xlabel="fraction of training data", ylabel=f"validation {quality}", title="data efficiency"
    )
    curve.legend()
    largest = max(report.fractions)
    for row in (r for r in report.rows if r.fraction == largest):
        cost.scatter(row.wall_s, row.score(quality), s=40 + 260 * row.trainable_pct / 100)
        cost.annotate(
            f"{row.strategy} ({row.trainable_pct:.3g}% trainable)",
            (row.wall_s, row.score(quality)),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    cost.set(
        xlabel="wall time per run (s)",
        ylabel=f"validation {quality}",
        title=f"cost against quality (data fraction {largest:g})",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _bytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"
