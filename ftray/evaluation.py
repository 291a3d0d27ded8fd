"""Validation-set evaluators: each accumulates counts over its rank's batches, all-reduces them,
and turns the totals into metrics (see `ftray.metrics`) — overall and per data slice. Each task
brings its own (`Task.evaluator`); this is what they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ftray import metrics

Loss = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, int]]


@dataclass
class ScoredRow:
    """One example's outcome, for the error list: what it was, what the model said, how sure."""

    index: int  # 1-based row in the file
    text: str
    expected: str
    predicted: str
    confidence: float  # of the predicted label (classification) or 1 - token accuracy (NER)
    wrong: bool


class Calibration:
    """The counts behind `ece`, `brier` and the fitted `temperature`, over a classifier's
    predictions (rows, or labelled token positions): sums, so shards all-reduce and merge."""

    def __init__(self) -> None:
        self.bins = torch.zeros(metrics.CALIBRATION_BINS, 3, dtype=torch.float64)
        self.brier = torch.zeros((), dtype=torch.float64)
        self.nll = torch.zeros(len(metrics.TEMPERATURES), dtype=torch.float64)

    def add(self, logits: torch.Tensor, targets: torch.Tensor, served_at: float | None) -> None:
        """logits [predictions, classes] and targets [predictions]. ECE and Brier are of the
        probabilities at `served_at` (a scored version's; None: training's, 1); the fit is of
        the logits as they are."""
        probabilities = (logits / (served_at or 1.0)).softmax(dim=-1)
        self.bins += metrics.calibration_counts(probabilities, targets)
        self.brier += metrics.brier_sum(probabilities, targets)
        self.nll += metrics.nll_sums(logits, targets)

    def counts(self) -> list[torch.Tensor]:
        return [self.bins, self.brier, self.nll]

    def report(self, served_at: float | None) -> dict:
        """ECE, Brier and the temperature: a scored version's own, or (training) the fit."""
        if not self.bins[:, 0].sum():
            return {}
        temperature = served_at or metrics.fitted_temperature(self.nll)
        return {**metrics.calibration_metrics(self.bins, self.brier), "temperature": temperature}


class Evaluator(ABC):
    # A scored version's calibration temperature: classifiers' calibration measures are of the
    # probabilities it serves, and it is the temperature reported. None while training, which
    # fits one. The loss stays the model's own, comparable with validation's.
    probability_temperature: float | None = None

    def __init__(
        self, loss: Loss, labels: list[str], groups: list[str], max_slice_gap: float
    ) -> None:
        self.task_loss = loss  # the task's own: evaluation and training share one definition
        self.labels, self.groups, self.max_slice_gap = labels, groups, max_slice_gap
        self.loss = torch.zeros(2, dtype=torch.float64)  # summed loss, positions

    def add(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        logits, batch = logits.detach().float().cpu(), {k: v.cpu() for k, v in batch.items()}
        loss, count = self.task_loss(logits, batch["labels"])
        self.loss += torch.tensor([float(loss), count], dtype=torch.float64)
        self._add(logits, batch)

    def all_reduce(self) -> None:
        """Sum every count across workers so each rank holds the whole validation set's totals."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        tensors = self._counts()
        flat = torch.cat([t.reshape(-1).double() for t in tensors])
        dist.all_reduce(flat)
        offset = 0
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].reshape(t.shape).to(t.dtype))
            offset += t.numel()

    def merge(self, other: Evaluator) -> None:
        """Add another evaluator's counts (a shard scored elsewhere) to this one's."""
        for mine, theirs in zip(self._counts(), other._counts(), strict=True):
            mine += theirs

    @property
    def confusion(self) -> list[list[int]] | None:
        """[true, predicted] counts, for tasks that have them."""
        return None

    def compute(self) -> dict:
        loss_sum, count = self.loss.tolist()
        result = {"val_loss": loss_sum / count if count else float("nan")}
        result.update(self._compute())
        return result

    @abstractmethod
    def _add(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> None: ...

    @abstractmethod
    def _counts(self) -> list[torch.Tensor]:
        """Every accumulator, the loss included, as tensors updated in place by all_reduce."""

    @abstractmethod
    def _compute(self) -> dict: ...
