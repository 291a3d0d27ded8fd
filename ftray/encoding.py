"""Examples to token ids, per task, and the collator that pads each batch to its longest row.

- sequence-classification: the text; one label id per example.
- token-classification: the words, with each word's BIO tag on its first sub-word token and -100
  (ignored by the loss) on the other sub-words and on special tokens.
- causal-lm: prompt then completion then EOS; the loss sees only completion tokens (the prompt's
  labels are -100).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

IGNORE = -100


def encode(
    examples: list[dict[str, Any]],
    task: str,
    tokenizer: PreTrainedTokenizerBase,
    labels: list[str],
    groups: list[str],
    max_length: int,
) -> list[dict[str, Any]]:
    """Token ids, attention mask, labels and (when grouped) the slice index of every example."""
    if task == "sequence-classification":
        features = _encode_classification(examples, tokenizer, labels, max_length)
    elif task == "token-classification":
        features = _encode_tokens(examples, tokenizer, labels, max_length)
    else:
        features = _encode_completions(examples, tokenizer, max_length)
    if groups:
        group_index = {g: i for i, g in enumerate(groups)}
        for feature, example in zip(features, examples, strict=True):
            feature["group"] = group_index[example["group"]]
    return features


def _encode_classification(examples, tokenizer, labels, max_length) -> list[dict]:
    label_index = {label: i for i, label in enumerate(labels)}
    batch = tokenizer([e["text"] for e in examples], truncation=True, max_length=max_length)
    return [
        {**{k: batch[k][i] for k in batch}, "labels": label_index[e["label"]]}
        for i, e in enumerate(examples)
    ]


def _encode_tokens(examples, tokenizer, labels, max_length) -> list[dict]:
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


def _encode_completions(examples, tokenizer, max_length) -> list[dict]:
    features = []
    for example in examples:
        prompt = tokenizer(example["prompt"], add_special_tokens=True)["input_ids"]
        completion = tokenizer(example["completion"], add_special_tokens=False)["input_ids"]
        completion = [*completion, tokenizer.eos_token_id]
        ids = (prompt + completion)[:max_length]
        label_ids = ([IGNORE] * len(prompt) + completion)[:max_length]
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": label_ids})
    return features


class Collator:
    """Pads a list of features to the longest in the batch (optionally to a multiple of N)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        if self.multiple:
            length = -(-length // self.multiple) * self.multiple
        batch: dict[str, torch.Tensor] = {}
        for key in features[0]:
            values = [f[key] for f in features]
            if not isinstance(values[0], list):
                batch[key] = torch.tensor(values)
                continue
            pad = {"input_ids": self.pad_token_id, "labels": IGNORE}.get(key, 0)
            batch[key] = torch.tensor([v + [pad] * (length - len(v)) for v in values])
        return batch
