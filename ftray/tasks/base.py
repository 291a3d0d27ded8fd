"""The one interface every task implements, from data rows to the answers a served model gives.

A task says which fields a row has (`read_example`), how examples become token ids and labels
(`encode`), which model head it trains (`model_class`, `model_options`), its loss, its
validation evaluator and metrics, the rows `ftray eval` lists (`scored_rows`), what a served
model answers (`predict`) and what the data checks compare (`text`, `target`). The loop,
`ftray eval`, the data checks and serving call these; none of them branches on a task's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ftray.losses import argmax_hits, cross_entropy

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ftray.evaluation import Evaluator, ScoredRow
    from ftray.inference import Predictor
    from ftray.spec import DataSpec


class Task(ABC):
    name: ClassVar[str]
    # Each validation metric the task reports, with the direction that is better; the first is
    # the default objective (early stopping, best checkpoint, tuning).
    metrics: ClassVar[dict[str, str]]
    # The `data.*_field` settings naming the fields every row must have.
    fields: ClassVar[tuple[str, ...]]
    peft_task_type: ClassVar[str]  # PEFT's TaskType, which also makes PEFT train the task head
    labelled: ClassVar[bool] = True  # a fixed label set, inferred from the data or declared
    generates: ClassVar[bool] = False  # answers OpenAI completion requests
    packs: ClassVar[bool] = False  # examples can share a row (`train.packing`)
    headline_metric: ClassVar[str] = "accuracy"  # what comparison tables and plots lead with
    class_noun: ClassVar[str] = "class"  # what a per-class table's rows are
    per_token: ClassVar[bool] = False  # logits per position (a prompt strategy's prefix shows)
    new_head: ClassVar[bool] = True  # the head starts untrained, so every strategy trains it
    stratify_by: ClassVar[str | None] = None  # the example key a seeded split keeps balanced
    # `ftray data check`'s task-specific checks, by name: structure first, content last.
    structure_checks: ClassVar[tuple[str, ...]] = ()
    content_checks: ClassVar[tuple[str, ...]] = ()

    # ---- model

    @abstractmethod
    def model_class(self) -> Any:
        """The transformers auto class whose head this task trains."""

    def model_options(self, labels: list[str]) -> dict[str, Any]:
        """Config overrides for the head (label count and names)."""
        if not labels:
            return {}
        return {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }

    def adapt_model(self, model: Any, path: str, config: Any) -> None:  # noqa: B027
        """Changes to the loaded model a checkpoint asks for (e.g. its pooling); none here."""

    # ---- data

    @abstractmethod
    def read_example(self, row: dict[str, Any], data: DataSpec, at: str) -> dict[str, Any]:
        """The task's fields of one row, checked; errors name `at` (file and row) and the field."""

    def row_fields(self, row: dict[str, Any], data: DataSpec) -> list[str]:
        """The fields `row` must have (named as `data` maps them)."""
        return [getattr(data, setting) for setting in self.fields]

    def example_labels(self, example: dict[str, Any]) -> list[str]:
        """The labels an example uses (checked against the model's label set)."""
        return []

    def order_labels(self, seen: set[str]) -> list[str]:
        return sorted(seen)

    # ---- training

    @abstractmethod
    def encode(
        self,
        examples: Sequence[dict[str, Any]],
        tokenizer: PreTrainedTokenizerBase,
        labels: list[str],
        max_length: int,
    ) -> list[dict[str, Any]]:
        """Token ids, attention mask and labels of every example."""

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Summed loss and the number of positions (or rows) it covers."""
        return cross_entropy(logits, labels)

    def correct_predictions(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
        """(correct, counted) predictions: training accuracy; (0, 0) where it means nothing."""
        return argmax_hits(logits, labels)

    # ---- evaluation

    @abstractmethod
    def evaluator(self, labels: list[str], groups: list[str], max_slice_gap: float) -> Evaluator:
        """A fresh evaluator of the task's validation metrics."""

    def scored_rows(
        self,
        labels: list[str],
        examples: Sequence[dict[str, Any]],
        logits: torch.Tensor,
        gold: torch.Tensor,
        first_row: int,
    ) -> list[ScoredRow]:
        """Each example's outcome, for `ftray eval --errors`; none by default."""
        return []

    # ---- serving

    @abstractmethod
    def predict(
        self, predictor: Predictor, inputs: list[str], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """What a served model answers for each input."""

    def stream(
        self, predictor: Predictor, text: str, options: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """A generating task's answer to one input, piece by piece (`generates` tasks)."""
        raise NotImplementedError(f"{self.name} does not generate text")

    # ---- data checks

    @abstractmethod
    def text(self, example: dict[str, Any], joiner: str = " ") -> str:
        """An example's input as one string (for duplicate, leakage and diversity checks)."""

    def target(self, example: dict[str, Any]) -> str:
        """An example's expected output as one string (for conflicting duplicates)."""
        return ""

    def diversity_details(self, train: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Task-specific numbers for the diversity finding."""
        return {}
