"""`token-classification`: a BIO tag per word (named entities).

Each word's tag sits on its first sub-word token; the other sub-words and special tokens carry
-100, which the loss and the metrics ignore. Metrics are entity-level (seqeval's definition).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from transformers import AutoModelForTokenClassification

from ftray import metrics
from ftray.encoding import IGNORE
from ftray.errors import FtrayError
from ftray.evaluation import Calibration, Evaluator, ScoredRow
from ftray.fields import string_list
from ftray.tasks.base import Task

if TYPE_CHECKING:
    from ftray.inference import Predictor
    from ftray.spec import DataSpec


class EntityEvaluator(Evaluator):
    """Entity-level precision/recall/F1 over word-level BIO tags, plus token accuracy."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.types = metrics.entity_types(self.labels)
        self.entities = torch.zeros(len(self.types), 3, dtype=torch.long)
        self.group_entities = torch.zeros(len(self.groups), len(self.types), 3, dtype=torch.long)
        self.tokens = torch.zeros(2, dtype=torch.long)  # correct, labelled
        self.calibration = Calibration()  # of each labelled token's tag

    def _add(self, logits, batch):
        preds, labels = logits.argmax(dim=-1), batch["labels"]
        keep = labels != IGNORE
        self.tokens += torch.tensor([int((preds[keep] == labels[keep]).sum()), int(keep.sum())])
        self.calibration.add(logits[keep], labels[keep], self.probability_temperature)
        for row in range(labels.shape[0]):
            mask = keep[row]
            predicted = [self.labels[i] for i in preds[row][mask].tolist()]
            gold = [self.labels[i] for i in labels[row][mask].tolist()]
            counts = metrics.entity_counts([predicted], [gold], self.types)
            self.entities += counts
            if self.groups:
                self.group_entities[int(batch["group"][row])] += counts

    def _counts(self):
        entity_counts = [self.entities, self.group_entities, self.tokens]
        return [self.loss, *entity_counts, *self.calibration.counts()]

    def _compute(self):
        correct, labelled = self.tokens.tolist()
        result = metrics.entity_metrics(self.entities, self.types)
        result["accuracy"] = correct / labelled if labelled else 0.0
        result.update(self.calibration.report(self.probability_temperature))
        if self.groups:
            per_slice = {}
            for g, name in enumerate(self.groups):
                scores = metrics.entity_metrics(self.group_entities[g], self.types)
                support = int(self.group_entities[g][:, [0, 2]].sum())
                per_slice[name] = {"f1": scores["f1"], "support": support}
            result.update(metrics.slice_report(per_slice, self.max_slice_gap, "f1"))
        return result


class TokenClassification(Task):
    name = "token-classification"
    metrics: ClassVar[dict[str, str]] = {
        "f1": "max",
        "precision": "max",
        "recall": "max",
        "accuracy": "max",
        "val_loss": "min",
        "worst_slice_f1": "max",
        "ece": "min",
        "brier": "min",
    }
    fields = ("tokens_field", "tags_field")
    peft_task_type = "TOKEN_CLS"
    per_token = True
    class_noun = "entity type"
    structure_checks = ("bio_validity",)
    content_checks = ("entity_overlap",)

    def model_class(self) -> Any:
        return AutoModelForTokenClassification

    def read_example(self, row: dict[str, Any], data: DataSpec, at: str) -> dict[str, Any]:
        tokens = string_list(row, data.tokens_field, at)
        tags = string_list(row, data.tags_field, at)
        if len(tokens) != len(tags):
            raise FtrayError(
                f"{at}: {len(tokens)} {data.tokens_field} but {len(tags)} {data.tags_field}"
            )
        return {"tokens": tokens, "tags": tags}

    def example_labels(self, example: dict[str, Any]) -> list[str]:
        return example["tags"]

    def order_labels(self, seen: set[str]) -> list[str]:
        """O first, then B-/I- pairs by entity type."""

        def key(tag: str) -> tuple:
            prefix, _, kind = tag.partition("-")
            return (tag != "O", kind, prefix)

        return sorted(seen, key=key)

    def encode(self, examples, tokenizer, labels, max_length):
        label_index = {label: i for i, label in enumerate(labels)}
        batch = tokenizer(
            [e["tokens"] for e in examples],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
        )
        features = []
        for i, example in enumerate(examples):
            aligned, previous = [], None
            for word in batch.word_ids(i):
                first_piece = word is not None and word != previous
                aligned.append(label_index[example["tags"][word]] if first_piece else IGNORE)
                previous = word
            features.append({**{k: batch[k][i] for k in batch}, "labels": aligned})
        return features

    def evaluator(self, labels: list[str], groups: list[str], max_slice_gap: float) -> Evaluator:
        return EntityEvaluator(self.loss, labels, groups, max_slice_gap)

    def scored_rows(self, labels, examples, logits, gold, first_row) -> list[ScoredRow]:
        return [
            tagged_row(labels, examples[i], logits[i], gold[i], first_row + i)
            for i in range(logits.shape[0])
        ]

    def predict(
        self, predictor: Predictor, inputs: list[str], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return entities(predictor, inputs)

    def text(self, example: dict[str, Any], joiner: str = " ") -> str:
        return " ".join(example["tokens"])

    def target(self, example: dict[str, Any]) -> str:
        return " ".join(example["tags"])

    def diversity_details(self, train):
        sequences = {" ".join(e["tags"]) for e in train}
        return {"distinct_tag_sequence_share": len(sequences) / len(train)}


def tagged_row(
    labels: list[str], example: dict, logits: torch.Tensor, gold: torch.Tensor, index: int
) -> ScoredRow:
    keep = gold != IGNORE
    predicted_tags = [labels[i] for i in logits.argmax(dim=-1)[keep].tolist()]
    gold_tags = example["tags"][: len(predicted_tags)]
    tokens = example["tokens"]

    def spans(tags: list[str]) -> str:
        found = sorted(metrics.bio_spans(tags), key=lambda s: s[1])
        return "; ".join(f"{kind}: {' '.join(tokens[a:b])}" for kind, a, b in found) or "-"

    wrong_tokens = sum(p != g for p, g in zip(predicted_tags, gold_tags, strict=True))
    return ScoredRow(
        index,
        " ".join(tokens),
        spans(gold_tags),
        spans(predicted_tags),
        wrong_tokens / max(len(gold_tags), 1),
        metrics.bio_spans(predicted_tags) != metrics.bio_spans(gold_tags),
    )


def entities(predictor: Predictor, texts: list[str]) -> list[dict[str, Any]]:
    """Each text's entities, from one forward pass over all of them (padded to the longest)."""
    encoded = predictor.tokenizer(
        texts,
        truncation=True,
        max_length=predictor.max_length,
        padding=True,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    offsets = encoded.pop("offset_mapping").tolist()
    probabilities = predictor.probabilities(encoded)
    return [
        text_entities(text, encoded.word_ids(row), offsets[row], probabilities[row], predictor)
        for row, text in enumerate(texts)
    ]


def text_entities(
    text: str,
    word_ids: list[int | None],
    offsets: list[list[int]],
    probabilities: Any,
    predictor: Predictor,
) -> dict[str, Any]:
    """Tags each word's first sub-token (as in training) and maps spans to characters."""
    words: list[tuple[int, int]] = []
    tags: list[str] = []
    scores: list[float] = []
    previous = None
    for position, word in enumerate(word_ids):
        if word is None:  # special tokens and padding
            continue
        start, end = offsets[position]
        if word != previous:
            best = int(probabilities[position].argmax())
            words.append((start, end))
            tags.append(predictor.labels[best])
            scores.append(float(probabilities[position, best]))
        else:
            words[-1] = (words[-1][0], end)  # the word's later pieces extend its span
        previous = word
    found = []
    for kind, first, last in sorted(metrics.bio_spans(tags), key=lambda span: span[1]):
        start, end = words[first][0], words[last - 1][1]
        score = sum(scores[first:last]) / (last - first)
        found.append(
            {"type": kind, "start": start, "end": end, "text": text[start:end], "score": score}
        )
    return {"entities": found}


TASK = TokenClassification()
