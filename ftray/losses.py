"""Losses computed from logits (not by the model), so strategies that add positions (prompt
tuning) and the evaluators share one definition. Each task picks its own (`Task.loss`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ftray.encoding import IGNORE


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over labelled positions, and how many positions it covers."""
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1)
    loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE, reduction="sum")
    return loss, int((flat_labels != IGNORE).sum())


def argmax_hits(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """(correct, counted) argmax predictions over labelled positions: training accuracy."""
    keep = labels != IGNORE
    hits = (logits.argmax(dim=-1) == labels) & keep
    return int(hits.sum()), int(keep.sum())


def next_token(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels aligned for a decoder: position t predicts token t + 1."""
    return logits[:, :-1], labels[:, 1:]
