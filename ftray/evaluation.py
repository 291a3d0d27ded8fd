"""Validation-set evaluators: each accumulates counts over its rank's batches, all-reduces them,
and turns the totals into metrics (see `ftray.metrics`) — overall and per data slice."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.distributed as dist

from ftray import metrics
from ftray.encoding import IGNORE
from ftray.losses import task_loss


class Evaluator(ABC):
    def __init__(self, labels: list[str], groups: list[str], max_slice_gap: float) -> None:
        self.labels, self.groups, self.max_slice_gap = labels, groups, max_slice_gap
        self.loss = torch.zeros(2, dtype=torch.float64)  # summed loss, positions

    def add(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        logits, batch = logits.detach().float().cpu(), {k: v.cpu() for k, v in batch.items()}
        loss, count = task_loss(logits, batch["labels"], self.task)
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

    def compute(self) -> dict:
        loss_sum, count = self.loss.tolist()
        result = {"val_loss": loss_sum / count if count else float("nan")}
        result.update(self._compute())
        return result

    task: str

    @abstractmethod
    def _add(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> None: ...

    @abstractmethod
    def _counts(self) -> list[torch.Tensor]:
        """Every accumulator, the loss included, as tensors updated in place by all_reduce."""

    @abstractmethod
    def _compute(self) -> dict: ...


class ClassificationEvaluator(Evaluator):
    task = "sequence-classification"

    def __init__(self, labels: list[str], groups: list[str], max_slice_gap: float) -> None:
        super().__init__(labels, groups, max_slice_gap)
        n = len(labels)
        self.cm = torch.zeros(n, n, dtype=torch.long)
        self.group_cm = torch.zeros(len(groups), n, n, dtype=torch.long)

    def _add(self, logits, batch):
        preds, targets = logits.argmax(dim=-1), batch["labels"]
        self.cm += metrics.confusion_matrix(preds, targets, len(self.labels))
        for g in range(len(self.groups)):
            rows = batch["group"] == g
            self.group_cm[g] += metrics.confusion_matrix(
                preds[rows], targets[rows], len(self.labels)
            )

    def _counts(self):
        return [self.loss, self.cm, self.group_cm]

    def _compute(self):
        result = metrics.classification_metrics(self.cm, self.labels)
        if self.groups:
            per_slice = {}
            for g, name in enumerate(self.groups):
                scores = metrics.classification_metrics(self.group_cm[g], self.labels)
                per_slice[name] = {
                    "accuracy": scores["accuracy"],
                    "f1": scores["f1"],
                    "support": int(self.group_cm[g].sum()),
                }
            result.update(metrics.slice_report(per_slice, self.max_slice_gap, "f1"))
        return result


class EntityEvaluator(Evaluator):
    """NER: entity-level precision/recall/F1 over word-level BIO tags (first sub-word of each
    word, as labelled by `ftray.encoding`), plus token accuracy."""

    task = "token-classification"

    def __init__(self, labels: list[str], groups: list[str], max_slice_gap: float) -> None:
        super().__init__(labels, groups, max_slice_gap)
        self.types = metrics.entity_types(labels)
        self.entities = torch.zeros(len(self.types), 3, dtype=torch.long)
        self.group_entities = torch.zeros(len(groups), len(self.types), 3, dtype=torch.long)
        self.tokens = torch.zeros(2, dtype=torch.long)  # correct, labelled

    def _add(self, logits, batch):
        preds, labels = logits.argmax(dim=-1), batch["labels"]
        keep = labels != IGNORE
        self.tokens += torch.tensor([int((preds[keep] == labels[keep]).sum()), int(keep.sum())])
        for row in range(labels.shape[0]):
            mask = keep[row]
            predicted = [self.labels[i] for i in preds[row][mask].tolist()]
            gold = [self.labels[i] for i in labels[row][mask].tolist()]
            counts = metrics.entity_counts([predicted], [gold], self.types)
            self.entities += counts
            if self.groups:
                self.group_entities[int(batch["group"][row])] += counts

    def _counts(self):
        return [self.loss, self.entities, self.group_entities, self.tokens]

    def _compute(self):
        correct, labelled = self.tokens.tolist()
        result = metrics.entity_metrics(self.entities, self.types)
        result["accuracy"] = correct / labelled if labelled else 0.0
        if self.groups:
            per_slice = {}
            for g, name in enumerate(self.groups):
                scores = metrics.entity_metrics(self.group_entities[g], self.types)
                support = int(self.group_entities[g][:, [0, 2]].sum())
                per_slice[name] = {"f1": scores["f1"], "support": support}
            result.update(metrics.slice_report(per_slice, self.max_slice_gap, "f1"))
        return result


class LanguageModelEvaluator(Evaluator):
    """Causal LM: loss and perplexity over completion tokens, and next-token accuracy."""

    task = "causal-lm"

    def __init__(self, labels: list[str], groups: list[str], max_slice_gap: float) -> None:
        super().__init__(labels, groups, max_slice_gap)
        self.correct = torch.zeros(1, dtype=torch.long)
        self.group_tokens = torch.zeros(len(groups), 2, dtype=torch.long)  # correct, total

    def _add(self, logits, batch):
        preds, labels = logits[:, :-1].argmax(dim=-1), batch["labels"][:, 1:]
        keep = labels != IGNORE
        hits = (preds == labels) & keep
        self.correct += int(hits.sum())
        for g in range(len(self.groups)):
            rows = batch["group"] == g
            self.group_tokens[g] += torch.tensor([int(hits[rows].sum()), int(keep[rows].sum())])

    def _counts(self):
        return [self.loss, self.correct, self.group_tokens]

    def _compute(self):
        loss_sum, tokens = self.loss.tolist()
        result = metrics.language_model_metrics(loss_sum, int(tokens), int(self.correct))
        if self.groups:
            per_slice = {
                name: {
                    "accuracy": int(c) / int(n) if n else 0.0,
                    "support": int(n),
                }
                for name, (c, n) in zip(self.groups, self.group_tokens.tolist(), strict=True)
            }
            result.update(metrics.slice_report(per_slice, self.max_slice_gap, "accuracy"))
        return result


EVALUATORS: dict[str, type[Evaluator]] = {
    e.task: e for e in (ClassificationEvaluator, EntityEvaluator, LanguageModelEvaluator)
}


def make_evaluator(
    task: str, labels: list[str], groups: list[str], max_slice_gap: float
) -> Evaluator:
    return EVALUATORS[task](labels, groups, max_slice_gap)
