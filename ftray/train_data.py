"""How the training loop gets its micro-batches: one interface, two feeds.

`InMemoryTrainData` (examples encoded on every worker, a seeded shard sampler) and
`ftray.streaming.StreamedTrainData` (a Ray Data shard) both yield `(batch, last_of_epoch)` and
keep what a checkpoint needs to resume part-way into an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from torch.utils.data import DataLoader

from ftray.checkpointing import TrainState
from ftray.sampler import ShardSampler
from ftray.schedule import Schedule


class TrainData(Protocol):
    def batches(self, epoch: int, micro_in_epoch: int) -> Iterator[tuple[dict[str, Any], bool]]:
        """The epoch's micro-batches from `micro_in_epoch` on, each with "is the last"."""

    def save(self, directory: Path, state: TrainState, rank: int) -> None:
        """Add what resuming needs to a checkpoint (every rank calls it)."""

    def restore(self, directory: Path, state: TrainState) -> None:
        """Take up the position a checkpoint saved."""


class InMemoryTrainData:
    """Encoded examples in memory: the sampler's seeded order makes a position enough to
    resume (the first `micro_in_epoch` batches of the epoch are skipped, not re-drawn)."""

    def __init__(
        self, loader: DataLoader, sampler: ShardSampler, schedule: Schedule, batch_size: int
    ) -> None:
        self.loader, self.sampler, self.schedule = loader, sampler, schedule
        self.batch_size = batch_size

    def batches(self, epoch: int, micro_in_epoch: int) -> Iterator[tuple[dict[str, Any], bool]]:
        self.sampler.set_epoch(epoch, skip=micro_in_epoch * self.batch_size)
        per_epoch = self.schedule.micro_per_epoch
        remaining = islice(self.loader, per_epoch - micro_in_epoch)
        for micro, batch in enumerate(remaining, start=micro_in_epoch + 1):
            yield batch, micro == per_epoch

    def save(self, directory: Path, state: TrainState, rank: int) -> None:
        pass  # the position is in TrainState already

    def restore(self, directory: Path, state: TrainState) -> None:
        pass
