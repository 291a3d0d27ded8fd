"""`sequence-classification`: one label per text (sentiment, topic, intent...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from transformers import AutoModelForSequenceClassification

from ftray import metrics
from ftray.evaluation import Calibration, Evaluator, ScoredRow
from ftray.fields import label_value, text_value
from ftray.pooling import checkpoint_pooling, use_mean_pooling
from ftray.tasks.base import Task

if TYPE_CHECKING:
    from ftray.inference import Predictor
    from ftray.spec import DataSpec


class ClassificationEvaluator(Evaluator):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        n = len(self.labels)
        self.cm = torch.zeros(n, n, dtype=torch.long)
        self.group_cm = torch.zeros(len(self.groups), n, n, dtype=torch.long)
        self.calibration = Calibration()

    @property
    def confusion(self) -> list[list[int]]:
        return self.cm.tolist()

    def _add(self, logits, batch):
        preds, targets = logits.argmax(dim=-1), batch["labels"]
        self.cm += metrics.confusion_matrix(preds, targets, len(self.labels))
        self.calibration.add(logits, targets, self.probability_temperature)
        for g in range(len(self.groups)):
            rows = batch["group"] == g
            self.group_cm[g] += metrics.confusion_matrix(
                preds[rows], targets[rows], len(self.labels)
            )

    def _counts(self):
        return [self.loss, self.cm, self.group_cm, *self.calibration.counts()]

    def _compute(self):
        result = metrics.classification_metrics(self.cm, self.labels)
        result.update(self.calibration.report(self.probability_temperature))
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


class SequenceClassification(Task):
    name = "sequence-classification"
    metrics: ClassVar[dict[str, str]] = {
        "f1": "max",
        "accuracy": "max",
        "precision": "max",
        "recall": "max",
        "val_loss": "min",
        "worst_slice_f1": "max",
        "ece": "min",
        "brier": "min",
    }
    fields = ("text_field", "label_field")
    peft_task_type = "SEQ_CLS"
    stratify_by = "label"
    structure_checks = ("label_balance",)
    content_checks = ("shortcuts",)

    def model_class(self) -> Any:
        return AutoModelForSequenceClassification

    def adapt_model(self, model: Any, path: str, config: Any) -> None:
        # Sentence-transformers checkpoints were trained to be read through mean pooling.
        if checkpoint_pooling(path, config) == "mean":
            use_mean_pooling(model)

    def read_example(self, row: dict[str, Any], data: DataSpec, at: str) -> dict[str, Any]:
        return {
            "text": text_value(row, data.text_field, at),
            "label": label_value(row, data.label_field, at),
        }

    def example_labels(self, example: dict[str, Any]) -> list[str]:
        return [example["label"]]

    def encode(self, examples, tokenizer, labels, max_length):
        label_index = {label: i for i, label in enumerate(labels)}
        batch = tokenizer([e["text"] for e in examples], truncation=True, max_length=max_length)
        return [
            {**{k: batch[k][i] for k in batch}, "labels": label_index[e["label"]]}
            for i, e in enumerate(examples)
        ]

    def evaluator(self, labels: list[str], groups: list[str], max_slice_gap: float) -> Evaluator:
        return ClassificationEvaluator(self.loss, labels, groups, max_slice_gap)

    def scored_rows(self, labels, examples, logits, gold, first_row) -> list[ScoredRow]:
        rows = []
        for i, probabilities in enumerate(logits.softmax(dim=-1)):
            example, best = examples[i], int(probabilities.argmax())
            predicted = labels[best]
            confidence = float(probabilities[best])
            wrong = predicted != example["label"]
            rows.append(
                ScoredRow(
                    first_row + i, example["text"], example["label"], predicted, confidence, wrong
                )
            )
        return rows

    def predict(
        self, predictor: Predictor, inputs: list[str], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        batch = predictor.tokenizer(
            inputs,
            truncation=True,
            max_length=predictor.max_length,
            padding=True,
            return_tensors="pt",
        )
        probabilities = predictor.probabilities(batch)
        labels = predictor.labels
        results = []
        for row in probabilities.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            results.append({"label": labels[best], "scores": dict(zip(labels, row, strict=True))})
        return results

    def text(self, example: dict[str, Any], joiner: str = " ") -> str:
        return example["text"]

    def target(self, example: dict[str, Any]) -> str:
        return example["label"]


TASK = SequenceClassification()
