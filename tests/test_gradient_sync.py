"""OverlappedGradientSync against the definition of data-parallel training: after backward, every
rank holds the average of all ranks' gradients (DeepSpeed's ZeRO-0 reduction), with two real
gloo processes; the embedding table reduced by rows, so that only rows some rank touched travel,
and the result clipped as torch's clip_grad_norm_ clips it."""

from __future__ import annotations

import functools
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import make_spec, sentiment_raw

from ftray.gradient_sync import OverlappedGradientSync, row_sparse_tables
from ftray.ray_internals import free_loopback_port

WORLD = 2
MAX_NORM = 0.1


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Embedding(50, 16),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 4, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 3),
    )
    model.unused = torch.nn.Parameter(torch.ones(5))  # no gradient on any step
    model.frozen = torch.nn.Parameter(torch.ones(5), requires_grad=False)
    return model


def _batch(rank: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 * rank + micro)
    return torch.randint(0, 50, (6, 4), generator=generator), torch.randint(
        0, 3, (6,), generator=generator
    )


def _loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    inputs, target = batch
    return torch.nn.functional.cross_entropy(model(inputs), target)


def _rank(rank: int, port: int, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    model, reference = _model(), _model()
    # 200 bytes a bucket: several buckets, so launch order and overlap are exercised.
    table = model[0].weight
    sync = OverlappedGradientSync(list(model.parameters()), by_rows=[table], bucket_bytes=200)
    assert len(sync.buckets) > 3
    for micro in range(2):  # two micro-batches accumulated, reduced at the boundary only
        sync.arm(boundary=micro == 1)
        _loss(model, _batch(rank, micro)).backward()
        sync.finish(max_norm=MAX_NORM)
        if micro == 0:  # not a boundary: the local gradient, unreduced
            local = _model()
            _loss(local, _batch(rank, 0)).backward()
            assert torch.equal(model[4].weight.grad, local[4].weight.grad)
    # Only the rows some rank's tokens hit (in either micro-batch) travelled: fewer than all.
    batches = [_batch(other, micro)[0] for other in range(WORLD) for micro in range(2)]
    touched = torch.cat([tokens.flatten() for tokens in batches]).unique()
    assert sync.rows_reduced == len(touched) < table.shape[0]
    # The reference: every rank's micro-batches on one model, averaged over ranks.
    for other in range(WORLD):
        for micro in range(2):
            (_loss(reference, _batch(other, micro)) / WORLD).backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), MAX_NORM)
    assert norm > 2 * MAX_NORM, "the clipping must be exercised"
    for (name, param), expected in zip(
        model.named_parameters(), reference.parameters(), strict=True
    ):
        if name == "frozen":
            assert param.grad is None
        elif name == "unused":
            assert torch.equal(param.grad, torch.zeros(5)), "as DeepSpeed: zeros, not None"
        else:
            torch.testing.assert_close(param.grad, expected.grad, rtol=1e-5, atol=1e-7)
    results[rank] = True
    dist.destroy_process_group()


def test_overlapped_buckets_leave_every_rank_the_average_gradient():
    results = mp.Manager().dict()
    mp.spawn(_rank, args=(free_loopback_port(), results), nprocs=WORLD, join=True)
    assert dict(results) == {0: True, 1: True}


def test_only_large_untied_trained_embedding_tables_are_reduced_by_rows():
    model = torch.nn.ModuleDict(
        {
            "words": torch.nn.Embedding(1000, 64),
            "positions": torch.nn.Embedding(10, 64),  # too small to pay for the scan
            "frozen": torch.nn.Embedding(1000, 64),
            "tied": torch.nn.Embedding(1000, 64),
            "head": torch.nn.Linear(64, 1000, bias=False),
        }
    )
    model["frozen"].weight.requires_grad = False
    model["head"].weight = model["tied"].weight  # an output layer: gradient in every row
    assert row_sparse_tables(model, min_bytes=100_000) == [model["words"].weight]


def _train_rank(rank: int, port: int, raw: dict, root: str, ours: bool, results: dict) -> None:
    """One torchrun-like rank of the real loop; `ours` False leaves DeepSpeed's own reduction."""
    import ftray.loop as loop
    from ftray.local import run_local

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    os.environ.update(WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD))
    rows: list[int] = []
    if ours:  # every embedding table by rows, however small, so the tiny model takes that path
        loop.row_sparse_tables = functools.partial(row_sparse_tables, min_bytes=0)
        finish = OverlappedGradientSync.finish

        def finish_and_count(sync: OverlappedGradientSync, max_norm: float = 0.0) -> None:
            finish(sync, max_norm)
            rows.append(sync.rows_reduced)

        loop.OverlappedGradientSync.finish = finish_and_count  # type: ignore[method-assign]
    else:
        loop.overlap_applies = lambda engine, gradient_checkpointing: False
    last = run_local(make_spec(raw), root)[-1]
    if rank == 0:
        results[ours] = (last["train_loss"], last["val_loss"], rows)


def test_the_loop_with_the_gradient_sync_trains_as_deepspeeds_own_reduction(tmp_path, tiny_bert):
    """Two ranks of the real loop, ZeRO-0 fp32, clipping on every step: the same losses with the
    overlapped, by-rows, self-clipping reduction as with DeepSpeed's reduction and clipping."""
    raw = sentiment_raw(
        tiny_bert,
        train={"max_steps": 6, "epochs": 1, "max_grad_norm": 0.05, "learning_rate": 1e-3},
        deepspeed={"zero_stage": 0},
    )
    results = mp.Manager().dict()
    for ours in (True, False):
        root = str(tmp_path / f"ours-{ours}")
        mp.spawn(_train_rank, args=(free_loopback_port(), raw, root, ours, results), nprocs=WORLD)
    (train_ours, val_ours, rows), (train_ds, val_ds, _) = results[True], results[False]
    assert len(rows) == 6 and all(count > 0 for count in rows), rows
    assert train_ours == pytest.approx(train_ds, rel=1e-4)
    assert val_ours == pytest.approx(val_ds, rel=1e-4)
