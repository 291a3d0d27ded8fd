"""OverlappedGradientSync against the definition of data-parallel training: after backward, every
rank holds the average of all ranks' gradients (DeepSpeed's ZeRO-0 reduction), with two real
gloo processes."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ftray.gradient_sync import OverlappedGradientSync
from ftray.ray_internals import free_loopback_port

WORLD = 2


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
    sync = OverlappedGradientSync(list(model.parameters()), bucket_bytes=200)
    assert len(sync.buckets) > 3
    for micro in range(2):  # two micro-batches accumulated, reduced at the boundary only
        sync.arm(boundary=micro == 1)
        _loss(model, _batch(rank, micro)).backward()
        sync.finish()
        if micro == 0:  # not a boundary: the local gradient, unreduced
            local = _model()
            _loss(local, _batch(rank, 0)).backward()
            assert torch.equal(model[4].weight.grad, local[4].weight.grad)
    # The reference: every rank's micro-batches on one model, averaged over ranks.
    for other in range(WORLD):
        for micro in range(2):
            (_loss(reference, _batch(other, micro)) / WORLD).backward()
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
