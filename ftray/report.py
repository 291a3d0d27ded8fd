"""`ftray report`: a picture of a run or an experiment, drawn from its result file alone.

A training run's history holds one row per evaluation (losses, the selection metric, the
learning rate, each slice's score), so over- or under-fitting shows at a glance without any
tracker: validation loss turning up while training loss falls, a metric that never moved, a
slice that trails. An experiment (`ftray tune`, `ftray compare`) draws each trial's metric and
validation loss against its steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftray.errors import FtrayError
from ftray.results import RESULT_FILE, TUNE_RESULT, ModelResult, TuneResult

REPORT_PNG = "report.png"


@dataclass
class Report:
    kind: str  # "run" or "experiment"
    name: str
    png: Path
    evaluations: int  # points drawn per curve (a run) or in all (an experiment)


def report(target: str | Path, out: str | Path | None = None) -> Report:
    """Draw the run or experiment whose result is in `target` (a run directory, a model's
    output directory, or an experiment directory) into `<out or target>/report.png`."""
    directory = Path(target).expanduser()
    destination = Path(out).expanduser() if out else directory
    if (directory / TUNE_RESULT).is_file():  # before model/: an experiment's winner is there
        experiment = TuneResult.model_validate_json((directory / TUNE_RESULT).read_text())
        return _experiment_report(experiment, destination)
    for candidate in (directory, directory / "model"):
        if (candidate / RESULT_FILE).is_file():
            result = ModelResult.model_validate_json((candidate / RESULT_FILE).read_text())
            return _run_report(result, destination)
    raise FtrayError(
        f"{directory}: no {RESULT_FILE} or {TUNE_RESULT} here; give a run, model or experiment "
        "directory"
    )


def _run_report(result: ModelResult, destination: Path) -> Report:
    history = result.history
    if not history:
        raise FtrayError(f"run {result.run}: its result has no evaluation history to draw")
    plt = _pyplot()
    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (losses, metric), (slices, rate) = axes
    steps = [row["step"] for row in history]
    for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        _curve(losses, history, key, label)
    losses.set(title="loss", xlabel="step")
    selected = result.metric or "accuracy"
    for key in dict.fromkeys((selected, "accuracy", "f1", "train_accuracy")):
        _curve(metric, history, key, key.replace("_", " "))
    metric.set(title=f"selection metric: {selected} ({result.mode})", xlabel="step")
    names = sorted({name for row in history for name in row.get("slices", {})})
    for name in names:
        values = [
            (row["step"], row["slices"][name]) for row in history if name in row.get("slices", {})
        ]
        slices.plot(*zip(*values, strict=True), marker="o", label=name)
    slices.set(title="per slice" if names else "per slice (no data.group_field)", xlabel="step")
    _curve(rate, history, "lr", "learning rate")
    rate.set(title="learning rate (at each evaluation)", xlabel="step")
    for axis in (losses, metric, slices, rate):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.suptitle(f"{result.run}: {result.strategy}, {result.task}, {len(steps)} evaluations")
    return Report("run", result.run or "run", _save(figure, destination, plt), len(steps))


def _experiment_report(experiment: TuneResult, destination: Path) -> Report:
    plt = _pyplot()
    figure, (metric, loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    points = 0
    for row in experiment.leaderboard:
        label = f"{row.trial} " + " ".join(
            f"{k.split('.')[-1]}={_short(v)}" for k, v in row.config.items()
        )
        drawn = _curve(metric, row.history, experiment.metric, label)
        _curve(loss, row.history, "val_loss", label)
        points += drawn
    metric.set(title=f"{experiment.metric} per trial ({experiment.mode})", xlabel="step")
    loss.set(title="validation loss per trial", xlabel="step")
    for axis in (metric, loss):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.suptitle(f"{experiment.experiment}: {experiment.trials} trials")
    return Report("experiment", experiment.experiment, _save(figure, destination, plt), points)


def _curve(axis: Any, history: list[dict[str, Any]], key: str, label: str) -> int:
    values = [(row["step"], row[key]) for row in history if isinstance(row.get(key), (int, float))]
    if values:
        axis.plot(*zip(*values, strict=True), marker="o", markersize=3, label=label)
    return len(values)


def _save(figure: Any, destination: Path, plt: Any) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    path = destination / REPORT_PNG
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _short(value: Any) -> str:
    return (
        f"{value:.3g}"
        if isinstance(value, float)
        else json.dumps(value)
        if isinstance(value, (list, dict))
        else str(value)
    )
