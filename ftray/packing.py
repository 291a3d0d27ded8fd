"""Sequence packing (`train.packing`): several examples share one `max_length` row, so no
compute goes to padding.

Packed examples must not see each other. A row carries `position_ids` that restart at 0 for
each example and no attention mask; transformers then derives a block-diagonal causal mask
from the restarts (its padding-free path, `masking_utils.find_packed_sequence_indices`).
Each example's first label is dropped, because position t predicts t + 1 and the last token
of one example must not be trained to predict the first of the next. A model that does not
take this path is found by a probe before training starts, not by a silently worse loss.
"""

from __future__ import annotations

import bisect
from typing import Any

import torch

from ftray.encoding import IGNORE, model_logits
from ftray.errors import FtrayError


def pack(features: list[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
    """Rows of whole examples, filled best-fit in decreasing length (few rows, little slack);
    deterministic, so every worker packs the same rows."""
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row index), kept sorted
    for index in order:
        length = len(features[index]["input_ids"])
        slot = bisect.bisect_left(free, (length, -1))
        if slot == len(free):
            rows.append([index])
            bisect.insort(free, (max_length - length, len(rows) - 1))
            continue
        room, row = free.pop(slot)
        rows[row].append(index)
        bisect.insort(free, (room - length, row))
    return [packed_row([features[i] for i in row]) for row in rows]


def packed_row(features: list[dict[str, Any]]) -> dict[str, list[int]]:
    row: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}
    for feature in features:
        ids = feature["input_ids"]
        row["input_ids"] += ids
        row["labels"] += [IGNORE, *feature["labels"][1:]]
        row["position_ids"] += range(len(ids))
    return row


def check_packing(model: Any, vocab_size: int) -> None:
    """Refuse packing for a model whose attention crosses example boundaries: the second of two
    packed examples must get the logits it gets alone."""
    first = torch.arange(5) % vocab_size
    second = (torch.arange(4) + 7) % vocab_size
    alone = {"input_ids": second[None], "position_ids": torch.arange(4)[None]}
    packed = {
        "input_ids": torch.cat([first, second])[None],
        "position_ids": torch.cat([torch.arange(5), torch.arange(4)])[None],
    }
    device = next(model.parameters()).device
    training = model.training
    model.eval()
    with torch.no_grad():
        expected = model_logits(model, {k: v.to(device) for k, v in alone.items()})[0]
        got = model_logits(model, {k: v.to(device) for k, v in packed.items()})[0, 5:]
    model.train(training)
    if not torch.allclose(got.float(), expected.float(), atol=1e-3, rtol=1e-3):
        raise FtrayError(
            f"train.packing: {type(model).__name__} lets packed examples attend to each other "
            "(it does not restart attention at position 0); set packing: false"
        )
