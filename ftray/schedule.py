"""A run's step arithmetic and learning-rate schedule.

The driver (planning, Tune's ASHA rungs, compare's budgets) and the worker loop share these
numbers, so they live apart from the loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ftray.errors import FtrayError
from ftray.spec import TrainSpec


@dataclass(frozen=True)
class Schedule:
    micro_per_epoch: int  # micro-batches per worker per epoch (a partial accumulation dropped)
    steps_per_epoch: int  # optimizer steps
    total_steps: int
    evaluations: int  # how many times the run evaluates (and reports) if it is not stopped


def schedule_for(train: TrainSpec, examples: int, world: int) -> Schedule:
    """The run's step arithmetic; Tune's ASHA sizes its rungs with the same numbers."""
    accumulation = train.gradient_accumulation_steps
    batches = math.ceil(math.ceil(examples / world) / train.batch_size)
    micro_per_epoch = batches // accumulation * accumulation
    if micro_per_epoch == 0:
        raise FtrayError(
            f"train.batch_size: {examples} training examples over {world} workers are too "
            f"few for batches of {train.batch_size} x {accumulation} accumulation steps"
        )
    steps_per_epoch = micro_per_epoch // accumulation
    total = steps_per_epoch * train.epochs
    if train.max_steps:
        total = min(total, train.max_steps)
    every = train.eval_steps or steps_per_epoch  # the last step always evaluates too
    return Schedule(micro_per_epoch, steps_per_epoch, total, math.ceil(total / every))


def lr_schedule(kind: str, warmup: int, total: int) -> Callable[[int], float]:
    """Multiplier on the learning rate at each step: linear warm-up, then the chosen decay."""

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return 1.0

    return multiplier
