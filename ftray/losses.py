"""Task losses computed from logits (not by the model), so strategies that add positions
(prompt tuning) and the evaluators share one definition."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ftray.encoding import IGNORE


def task_loss(logits: torch.Tensor, labels: torch.Tensor, task: str) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy and the number of positions it covers."""
    if task == "causal-lm":  # position t predicts token t + 1
        logits, labels = logits[:, :-1], labels[:, 1:]
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1)
    loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE, reduction="sum")
    return loss, int((flat_labels != IGNORE).sum())


def correct_predictions(logits: torch.Tensor, labels: torch.Tensor, task: str) -> tuple[int, int]:
    """(correct, counted) argmax predictions over labelled positions: training accuracy."""
    if task == "causal-lm":
        logits, labels = logits[:, :-1], labels[:, 1:]
    keep = labels != IGNORE
    hits = (logits.argmax(dim=-1) == labels) & keep
    return int(hits.sum()), int(keep.sum())
