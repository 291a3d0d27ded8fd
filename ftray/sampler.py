"""How a worker draws its share of the training set, resumable part-way into an epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ShardSampler(Sampler[int]):
    """A seeded per-epoch shuffle, padded to a multiple of the world size and dealt round-robin
    (as torch's DistributedSampler), that can start part-way into an epoch to resume."""

    def __init__(self, size: int, rank: int, world: int, seed: int) -> None:
        self.size, self.rank, self.world, self.seed = size, rank, world, seed
        self.per_rank = math.ceil(size / world)
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(
            self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)
        )
        order = order.repeat(math.ceil(self.per_rank * self.world / self.size))
        mine = order[: self.per_rank * self.world][self.rank :: self.world].tolist()
        return iter(mine[self.skip :])

    def __len__(self) -> int:
        return self.per_rank - self.skip
