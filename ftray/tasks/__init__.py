"""The tasks ftray fine-tunes for, one module per task.

Every module in this package (other than `base`) exports `TASK`; adding a task to ftray is
adding one file. A task defined elsewhere joins with `register_task`: `model.task` then accepts
its name, and `ftray.plugins` carries it to the Ray workers and Serve replicas a job starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftray.discovery import add, discover
from ftray.errors import FtrayError
from ftray.evaluation import Evaluator
from ftray.tasks.base import Task

TASKS: dict[str, Task] = {task.name: task for task in discover(__name__, __path__, "TASK")}


def register_task(task: Task) -> Task:
    """Make `task` available to job specs, training, evaluation, data checks and serving."""
    return add(TASKS, task.name, task, __name__, "task")


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise FtrayError(f"model.task: {name!r} is not one of {', '.join(TASKS)}") from None


def default_metric(task: str) -> str:
    return next(iter(get_task(task).metrics))


def metric_mode(metric: str) -> str:
    for task in TASKS.values():
        if metric in task.metrics:
            return task.metrics[metric]
    return "max"


def encode(
    examples: Sequence[dict[str, Any]],
    task: str,
    tokenizer: Any,
    labels: list[str],
    groups: list[str],
    max_length: int,
) -> list[dict[str, Any]]:
    """The task's features of every example, with its slice index when the data is grouped."""
    features = get_task(task).encode(examples, tokenizer, labels, max_length)
    if groups:
        group_index = {g: i for i, g in enumerate(groups)}
        for feature, example in zip(features, examples, strict=True):
            feature["group"] = group_index[example["group"]]
    return features


def make_evaluator(
    task: str, labels: list[str], groups: list[str], max_slice_gap: float
) -> Evaluator:
    return get_task(task).evaluator(labels, groups, max_slice_gap)


__all__ = [
    "TASKS",
    "Task",
    "default_metric",
    "encode",
    "get_task",
    "make_evaluator",
    "metric_mode",
    "register_task",
]
