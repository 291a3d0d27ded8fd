"""A streamed training set: Ray Data reads and tokenizes it across the cluster, and each Train
worker consumes its own shard.

What holds, and how:
- **Each example once per epoch, across workers.** Ray Train's default split (`equal=True`)
  drops rows to make shards equal; `WholeSplit` keeps them all, so shards may differ by a few
  rows. Workers agree before every micro-batch whether anyone still has data (one tiny
  all-reduce); a worker that has run out trains on a *filler* batch whose labels are all
  ignored (no loss, no gradient), so DeepSpeed's collectives stay in step, and the epoch ends
  when every shard is empty (padded with fillers to a whole accumulation step).
- **Mid-epoch resume trains the rest of the epoch, exactly.** Which rows reach which worker
  depends on timing, so a position ("skip the first N") means nothing after a restart. Instead
  every example carries a stable id (a hash of its row), each checkpoint stores the ids the
  epoch has trained so far (a multiset: duplicate rows have equal ids), and a resumed run skips
  exactly those. The multiset lives in one small Ray actor that every worker asks, so that two
  copies of a row, met by two workers, are not both skipped for one trained. Skipped rows are
  still read and tokenized; they are not trained.
- **Shuffling** is a seeded buffer of `data.shuffle_buffer` rows per worker over blocks in file
  order, not a global permutation of the set.
- **Read-ahead is bounded**: Ray Data works a few blocks ahead of the workers (`buffer_bytes`),
  not through the whole set on the cores they train on, and waits without spinning
  (`ray_internals.idle_backoff_callback`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ftray.checkpointing import TrainState
from ftray.data import Splits
from ftray.encoding import IGNORE
from ftray.errors import FtrayError
from ftray.spec import JobSpec

EXAMPLE_ID = "example_id"
TRAINED_IDS = "trained_ids.npz"  # in a checkpoint: the current epoch's trained example ids
ENCODE_BATCH_ROWS = 256  # rows per tokenizer call
# Rows per block reaching the workers: each block is one round trip to the split's coordinator,
# so larger is faster (on 300k rows in bench/data_scale.py's setting, 4,096-row blocks trained
# 4,872-5,283 samples/s, 256-row blocks 2,767-4,477); but a split deals whole blocks, and a
# worker whose shard ends a block early trains fillers until the others finish. Each worker
# gets ~BLOCKS_PER_WORKER blocks an epoch, so the shards differ by ~1/32 at most.
BLOCK_ROWS = (256, 4096)
BLOCKS_PER_WORKER = 32
# How far Ray Data may read and tokenize ahead of the workers: a few blocks each, not the whole
# set. Unbounded, it works through the set as fast as it can on the cores the workers train on
# (bench/data_scale.py, 2 cores: 1M rows trained at 0.46x the samples/s of 10k with a tiny
# BERT, 0.67x with MiniLM; bounded, 0.82-0.96x and 0.95-0.96x). Estimated as BUFFER_BLOCKS
# blocks a worker at BYTES_PER_TOKEN (input ids, mask and labels or types, as int64, plus
# Arrow's offsets), with a floor.
BUFFER_BLOCKS = 2
BYTES_PER_TOKEN = 32
MIN_BUFFER_BYTES = 64 * 2**20
# A directory: each worker appends the example ids of every micro-batch it trains (a JSON line
# per batch). For tests and debugging; off unless set.
TRACE_ENV = "FTRAY_TRACE_EXAMPLES"


def example_id(row: dict[str, Any]) -> int:
    """A stable 63-bit id of a raw row: the same row has the same id in every run."""
    text = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest()) >> 1


# --- the driver's side: the Ray Dataset handed to the TorchTrainer ---------------------------


def train_dataset(spec: JobSpec, splits: Splits) -> Any:
    """The training set as a Ray Dataset of encoded features, tokenized by Ray Data tasks."""
    assert splits.stream is not None, "only a streamed training set has a Ray Dataset"
    encoder = EncodeRows(spec.model_dump(mode="json"), splits.labels, splits.groups)
    encoded = splits.stream.source.ray_dataset().map_batches(
        encoder, batch_size=ENCODE_BATCH_ROWS, batch_format="pyarrow"
    )
    # Ray Data coalesces small outputs into large blocks, and a split deals whole blocks: one
    # worker could get the whole epoch.
    rows = block_rows(splits.train_rows, spec)
    dataset = encoded.repartition(target_num_rows_per_block=rows)
    bound_read_ahead(dataset, buffer_bytes(rows, spec))
    return dataset


def block_rows(rows: int, spec: JobSpec) -> int:
    """Rows per block of a streamed set of `rows` (see BLOCK_ROWS)."""
    low, high = BLOCK_ROWS
    return max(low, min(high, rows // (spec.scaling.num_workers * BLOCKS_PER_WORKER)))


def buffer_bytes(rows_per_block: int, spec: JobSpec) -> int:
    """The object-store budget of a streamed set in `rows_per_block`-row blocks (BUFFER_BLOCKS)."""
    block = rows_per_block * spec.model.max_length * BYTES_PER_TOKEN
    return max(MIN_BUFFER_BYTES, BUFFER_BLOCKS * spec.scaling.num_workers * block)


def bound_read_ahead(dataset: Any, budget: int) -> None:
    """Hold Ray Data to `budget` bytes ahead of `dataset`'s consumers, without spinning while
    held: set on the dataset's own context, so every consumer (Train, a benchmark) reads so."""
    from ray.data import ExecutionResources

    from ftray.ray_internals import idle_backoff_callback

    context = dataset.context
    options = copy.deepcopy(context.execution_options)  # a copy: it may be a shared default
    limit = ExecutionResources.for_limits(object_store_memory=budget)
    options.resource_limits = options.resource_limits.min(limit)
    context.execution_options = options
    callbacks = context.custom_execution_callback_classes  # a user's stay
    context.custom_execution_callback_classes = [*callbacks, idle_backoff_callback()]


class EncodeRows:
    """Raw rows -> the task's features plus `example_id` (a picklable Ray Data function)."""

    def __init__(self, spec: dict[str, Any], labels: list[str], groups: list[str]) -> None:
        self.raw_spec, self.labels, self.groups = spec, labels, groups

    @cached_property
    def spec(self) -> JobSpec:
        """Validated once per process, not per batch (it travels as plain JSON)."""
        return JobSpec.model_validate(self.raw_spec)

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        from ftray.data import normalize
        from ftray.tasks import encode, get_task

        spec = self.spec
        rows = table.to_pylist()
        examples = normalize(rows, spec.model.task, spec.data, "data.train (a streamed batch)")
        known, task = set(self.labels), get_task(spec.model.task)
        for example in examples:
            unknown = [v for v in task.example_labels(example) if v not in known]
            if unknown:
                raise FtrayError(
                    f"data.train: label {unknown[0]!r} is not among the labels "
                    f"({', '.join(self.labels)}); a streamed set infers them from its first "
                    "rows: declare model.labels"
                )
        tokenizer = _tokenizer(spec.model.name, spec.data.chat.template)
        features = encode(
            examples, spec.model.task, tokenizer, self.labels, self.groups, spec.model.max_length
        )
        for feature, row in zip(features, rows, strict=True):
            feature[EXAMPLE_ID] = example_id(row)
        return pa.Table.from_pylist(features)


@lru_cache(maxsize=2)
def _tokenizer(name: str, template: str | None) -> Any:
    from ftray.models import load_tokenizer, quiet_transformers

    quiet_transformers()
    return load_tokenizer(name, template)


def whole_split_config() -> Any:
    """Ray Train's DataConfig, splitting the training set without dropping rows."""
    from ray.train import DataConfig

    class WholeSplit(DataConfig):  # DataConfig.configure is Ray's extension point for this
        def configure(self, datasets, world_size, worker_handles, worker_node_ids, **kwargs):
            output: list[dict[str, Any]] = [{} for _ in range(world_size)]
            for name, dataset in datasets.items():
                dataset = dataset.copy(dataset, _deep_copy=True)  # Train's options, its own bound
                own = dataset.context.execution_options.resource_limits
                options = self.default_ingest_options()
                options.resource_limits = options.resource_limits.min(own)
                dataset.context.execution_options = options
                for index, split in enumerate(dataset.streaming_split(world_size, equal=False)):
                    output[index][name] = split
            return output

    return WholeSplit()


# --- the worker's side: batches from its shard ----------------------------------------------


class TrainedIds:
    """A multiset of example ids: what a resumed epoch has already trained, taken off as met."""

    def __init__(self, ids: np.ndarray | None = None) -> None:
        ids = np.empty(0, np.int64) if ids is None else np.asarray(ids, np.int64)
        self.values, self.counts = np.unique(ids, return_counts=True)

    def take(self, ids: np.ndarray) -> np.ndarray:
        """A mask of the ids to skip (each occurrence recorded is skipped once)."""
        skip = np.zeros(len(ids), dtype=bool)
        if not len(self.values):
            return skip
        where = np.searchsorted(self.values, ids).clip(0, len(self.values) - 1)
        for index in np.nonzero(self.values[where] == ids)[0]:
            slot = where[index]
            if self.counts[slot] > 0:
                self.counts[slot] -= 1
                skip[index] = True
        return skip


class SharedTrainedIds:
    """`TrainedIds` shared by every worker through a Ray actor (created by whichever worker
    comes first, found by name by the others); ids not among them never leave the worker."""

    def __init__(self, ids: np.ndarray, name: str) -> None:
        import ray

        self.known = np.unique(ids)
        remote = ray.remote(num_cpus=0)(TrainedIds)
        self.ledger: Any = remote.options(name=name, get_if_exists=True).remote(ids)

    def take(self, ids: np.ndarray) -> np.ndarray:
        import ray

        skip = np.zeros(len(ids), dtype=bool)
        candidates = np.isin(ids, self.known)
        if candidates.any():
            skip[candidates] = ray.get(self.ledger.take.remote(ids[candidates]))
        return skip


class StreamedTrainData:
    """This worker's shard of a streamed training set, as agreed micro-batches."""

    def __init__(
        self,
        shard: Any,
        collate: Any,
        filler: dict[str, Any],
        spec: JobSpec,
        rank: int,
    ) -> None:
        self.shard, self.collate, self.spec, self.rank = shard, collate, spec, rank
        self.filler = filler
        self.trained: list[np.ndarray] = []  # ids this rank trained in the current epoch
        self.skip: TrainedIds | SharedTrainedIds = TrainedIds()
        self.epoch_of_skip = -1

    def batches(self, epoch: int, resumed_micro: int) -> Iterator[tuple[dict[str, Any], bool]]:
        """(batch, last of the epoch) until every worker's shard is empty."""
        if epoch != self.epoch_of_skip:
            self.skip, self.trained = TrainedIds(), []
        accumulation = self.spec.train.gradient_accumulation_steps
        mine = self._own_batches(epoch)
        current = next(mine, None)
        micro = resumed_micro
        while True:
            # One batch ahead: whether this is the epoch's last micro-batch is known before it
            # trains, so the loop can evaluate at the epoch's end.
            following = next(mine, None) if current is not None else None
            anyone_now, anyone_next = _any_rank(current is not None, following is not None)
            boundary = (micro + 1) % accumulation == 0
            if not anyone_now and micro % accumulation == 0:
                return
            last = not anyone_next and boundary
            if current is None:
                yield self.filler, last
            else:
                batch, ids = current
                self.trained.append(ids)  # counted before it trains: a checkpoint comes after
                self._trace(epoch, resumed_micro, micro, ids)
                yield batch, last
            micro += 1
            if last:
                return
            current = following

    def _trace(self, epoch: int, started: int, micro: int, ids: np.ndarray) -> None:
        """`started`: the micro-batch this pass over the epoch began at (a resumed one's > 0)."""
        if directory := os.environ.get(TRACE_ENV):
            line = {"rank": self.rank, "epoch": epoch, "started": started, "micro": micro}
            with open(Path(directory) / f"{os.getpid()}.jsonl", "a") as trace:
                trace.write(json.dumps({**line, "ids": ids.tolist()}) + "\n")

    def _own_batches(self, epoch: int) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
        """Collated batches of this shard's rows not trained yet, with their example ids."""
        size = self.spec.train.batch_size
        pending: list[dict[str, Any]] = []
        pending_ids: list[int] = []
        for table in self.shard.iter_batches(
            batch_size=size,
            batch_format="pyarrow",
            local_shuffle_buffer_size=self.spec.data.shuffle_buffer,
            local_shuffle_seed=self.spec.train.seed + 1000 * epoch + self.rank,
        ):
            ids = table.column(EXAMPLE_ID).to_numpy()
            keep = ~self.skip.take(ids)
            rows = table.drop_columns([EXAMPLE_ID]).to_pylist()
            pending += [row for row, kept in zip(rows, keep, strict=True) if kept]
            pending_ids += ids[keep].tolist()
            while len(pending) >= size:
                yield self.collate(pending[:size]), np.array(pending_ids[:size], np.int64)
                pending, pending_ids = pending[size:], pending_ids[size:]
        if pending:
            yield self.collate(pending), np.array(pending_ids, np.int64)

    def save(self, directory: Path, state: TrainState, rank: int) -> None:
        """The ids the current epoch has trained, from every rank (none at an epoch's end)."""
        mine = np.concatenate(self.trained) if self.trained else np.empty(0, np.int64)
        everyone: list[Any] = [mine]
        if dist.is_initialized():
            everyone = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, mine)
        if rank == 0 and state.micro_in_epoch:
            np.savez(directory / TRAINED_IDS, epoch=state.epoch, ids=np.concatenate(everyone))

    def restore(self, directory: Path, state: TrainState) -> None:
        file = directory / TRAINED_IDS
        if not file.exists():
            return
        saved = np.load(file)
        if int(saved["epoch"]) == state.epoch:
            ids = saved["ids"]
            alone = not dist.is_initialized() or dist.get_world_size() == 1
            self.skip = TrainedIds(ids) if alone else SharedTrainedIds(ids, _ledger_name())
            self.epoch_of_skip = state.epoch
            # Only rank 0 carries them into later checkpoints of this epoch; the others would
            # repeat them.
            self.trained = [saved["ids"]] if self.rank == 0 else []


def _ledger_name() -> str:
    """A name for this worker group's ledger, the same on every rank (rank 0's choice)."""
    chosen = [f"ftray-trained-{uuid.uuid4().hex}"]
    dist.broadcast_object_list(chosen, src=0)
    return chosen[0]


def filler_batch(collate: Any, example: dict[str, Any]) -> dict[str, Any]:
    """A one-row batch that trains nothing: every label ignored, no tokens counted."""
    batch = collate([example])
    batch["labels"] = torch.full_like(batch["labels"], IGNORE)
    batch["tokens"] = torch.tensor(0)
    return batch


def _any_rank(*flags: bool) -> tuple[bool, ...]:
    values = torch.tensor([int(f) for f in flags])
    if dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in values.tolist())
