"""The collator that pads each batch to its longest row, and the label that means "no label".

How examples become token ids is each task's (`Task.encode`, `ftray.tasks.encode`).
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE = -100


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
        # Real tokens (not padding): what tokens/s counts; packed rows hold several examples.
        batch["tokens"] = torch.tensor(sum(len(f["input_ids"]) for f in features))
        return batch


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def model_logits(model: Any, batch: Any, logit_offset: int = 0) -> torch.Tensor:
    """The model's logits for a batch, aligned with its labels: the positions a prompt strategy
    prepended are dropped. Training, `ftray eval` and serving all call the model through this."""
    inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
    if "position_ids" in inputs:  # packed rows (ftray.packing): a cache would hide the restarts
        inputs["use_cache"] = False
    logits = model(**inputs).logits
    return logits[:, logit_offset:] if logit_offset else logits
