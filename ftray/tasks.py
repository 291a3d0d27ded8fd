"""The three tasks ftray fine-tunes for, and the validation metrics each one reports."""

from __future__ import annotations

from typing import Literal

Task = Literal["sequence-classification", "token-classification", "causal-lm"]

# Each task's metrics, with the direction that is better; the first is the default objective.
TASK_METRICS: dict[str, dict[str, str]] = {
    "sequence-classification": {
        "f1": "max",
        "accuracy": "max",
        "precision": "max",
        "recall": "max",
        "val_loss": "min",
        "worst_slice_f1": "max",
    },
    "token-classification": {
        "f1": "max",
        "precision": "max",
        "recall": "max",
        "accuracy": "max",
        "val_loss": "min",
        "worst_slice_f1": "max",
    },
    "causal-lm": {"perplexity": "min", "val_loss": "min", "accuracy": "max"},
}


def default_metric(task: str) -> str:
    return next(iter(TASK_METRICS[task]))


def metric_mode(metric: str) -> str:
    for metrics in TASK_METRICS.values():
        if metric in metrics:
            return metrics[metric]
    return "max"
