"""`causal-lm`: a decoder learns prompt -> completion pairs, plain text, or chat conversations.

A prompt/completion example is encoded as prompt, completion, EOS, with the prompt's labels
-100: the loss sees the completion only. Plain text is trained on whole. A chat is rendered by
the chat template and trained on its assistant turns (`ftray.chat`). Position t predicts token
t + 1, so logits and labels are shifted by one before the loss and the metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from transformers import AutoModelForCausalLM

from ftray import chat, metrics
from ftray.encoding import IGNORE
from ftray.evaluation import Evaluator
from ftray.fields import text_value
from ftray.generation import Sampling, complete, stream
from ftray.losses import argmax_hits, cross_entropy, next_token
from ftray.tasks.base import Task

if TYPE_CHECKING:
    from ftray.inference import Predictor
    from ftray.spec import DataSpec


class LanguageModelEvaluator(Evaluator):
    """Loss and perplexity over completion tokens, and next-token accuracy."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.correct = torch.zeros(1, dtype=torch.long)
        self.group_tokens = torch.zeros(len(self.groups), 2, dtype=torch.long)  # correct, total

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


class CausalLM(Task):
    name = "causal-lm"
    metrics: ClassVar[dict[str, str]] = {"perplexity": "min", "val_loss": "min", "accuracy": "max"}
    fields = ("completion_field",)
    peft_task_type = "CAUSAL_LM"
    labelled = False
    generates = True
    per_token = True
    headline_metric = "perplexity"
    new_head = False  # the pretrained language-model head
    packs = True

    def model_class(self) -> Any:
        return AutoModelForCausalLM

    def read_example(self, row: dict[str, Any], data: DataSpec, at: str) -> dict[str, Any]:
        layout = row_layout(row, data)
        if layout == "chat":
            messages = chat.read_messages(row, data.chat, at)
            return {"messages": messages, "loss_on": data.chat.loss_on}
        if layout == "text":
            return {"text": text_value(row, data.text_field, at)}
        return {
            "prompt": text_value(row, data.prompt_field, at, allow_empty=True),
            "completion": text_value(row, data.completion_field, at),
        }

    def row_fields(self, row: dict[str, Any], data: DataSpec) -> list[str]:
        layout = row_layout(row, data)
        if layout == "chat":
            return [data.chat.messages_field]
        if layout == "text":
            return [data.text_field]
        return [data.prompt_field, data.completion_field]

    def encode(self, examples, tokenizer, labels, max_length):
        return [encode_example(example, tokenizer, max_length) for example in examples]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        return cross_entropy(*next_token(logits, labels))

    def correct_predictions(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
        return argmax_hits(*next_token(logits, labels))

    def evaluator(self, labels: list[str], groups: list[str], max_slice_gap: float) -> Evaluator:
        return LanguageModelEvaluator(self.loss, labels, groups, max_slice_gap)

    def predict(
        self, predictor: Predictor, inputs: list[str], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return complete(predictor, inputs, Sampling.of(options))

    def stream(
        self, predictor: Predictor, text: str, options: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        return stream(predictor, text, Sampling.of(options))

    def text(self, example: dict[str, Any], joiner: str = " ") -> str:
        if "messages" in example:
            return joiner.join(m["content"] for m in example["messages"])
        if "text" in example:
            return example["text"]
        return example["prompt"] + joiner + example["completion"]


def row_layout(row: dict[str, Any], data: DataSpec) -> str:
    """What a row holds: `data.layout`, or under auto, by its fields: a chat, else a
    prompt/completion pair. Plain text is never guessed (`data.layout: text`): a
    classification file would pass for it."""
    if data.layout != "auto":
        return data.layout
    return "chat" if data.chat.messages_field in row else "prompt-completion"


def encode_example(example: dict[str, Any], tokenizer: Any, max_length: int) -> dict[str, Any]:
    if "messages" in example:
        return chat.encode_chat(tokenizer, example["messages"], example["loss_on"], max_length)
    if "text" in example:
        ids = tokenizer(example["text"], add_special_tokens=True)["input_ids"]
        ids = [*ids, tokenizer.eos_token_id][:max_length]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)}
    prompt = tokenizer(example["prompt"], add_special_tokens=True)["input_ids"]
    completion = tokenizer(example["completion"], add_special_tokens=False)["input_ids"]
    completion = [*completion, tokenizer.eos_token_id]
    ids = (prompt + completion)[:max_length]
    labels = ([IGNORE] * len(prompt) + completion)[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


TASK = CausalLM()
