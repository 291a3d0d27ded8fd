"""Gradient all-reduce overlapped with the backward pass, for data-parallel (ZeRO-0) fp32 runs.

DeepSpeed's ZeRO-0 engine all-reduces every gradient once the backward pass has ended. torch's
DDP instead starts a bucket's all-reduce as soon as backward has produced that bucket's
gradients, so communication runs while the rest of the backward computes. `OverlappedGradientSync`
does DDP's part for a DeepSpeed engine: it turns the engine's own reduction off and reduces in
buckets from gradient hooks, leaving the optimizer step to DeepSpeed. It clips too, more
cheaply than DeepSpeed (`take_over_clipping`).

It also does less than DDP where it can: a large embedding table (a vocabulary's word
embeddings) gets gradient only in the rows of the tokens a batch holds, so its table is reduced
by rows, only those some rank touched, instead of as one dense tensor (MiniLM's 47 MB table
becomes ~1-2 MB a step). The rows are found from the gradient itself, not from the token ids, so
this holds however the model reaches the table; a row no rank touched is zero on every rank and
therefore already its own average.

Correct by construction across ranks: every rank launches the buckets in the same order (a
bucket never overtakes the one before it) and every bucket's flattened size is fixed, so gloo or
NCCL pair the same collectives even when a parameter gets no gradient on some step; a table's
rows are agreed by one small reduction before they travel, so their count matches too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

# DDP's default bucket size; the first buckets (the last layers) then launch early in backward.
BUCKET_BYTES = 25 * 2**20
# Below this, one dense reduction costs less than finding the touched rows (a scan of the table).
ROW_SPARSE_MIN_BYTES = 4 * 2**20


@dataclass
class _Bucket:
    params: list[torch.nn.Parameter]
    by_rows: bool = False  # one embedding table, reduced in the rows some rank touched
    waiting: int = 0  # parameters whose gradient this backward has not produced yet
    work: Any = None
    flat: torch.Tensor | None = None
    grads: list[torch.Tensor] = field(default_factory=list)
    # by_rows: a 0/1 flag per row, set where this rank (once reduced: any rank) has gradient
    touched: torch.Tensor | None = None
    rows: torch.Tensor | None = None


class OverlappedGradientSync:
    """Average `params`' gradients over the default process group while backward runs.

    `by_rows` names embedding tables (from `row_sparse_tables`) to reduce in their touched rows
    only. Call `arm(boundary)` before each backward (only an accumulation boundary reduces, as
    with DDP's `no_sync`) and `finish()` after it, before the optimizer step.
    """

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        by_rows: Sequence[torch.nn.Parameter] = (),
        bucket_bytes: int = BUCKET_BYTES,
    ) -> None:
        self.world = dist.get_world_size()
        trained = [p for p in params if p.requires_grad and p.numel() > 0]
        # Backward reaches the last layers first: bucket in reverse so the first buckets fill first.
        self.buckets = _buckets(list(reversed(trained)), {id(p) for p in by_rows}, bucket_bytes)
        self.bucket_of = {id(p): bucket for bucket in self.buckets for p in bucket.params}
        self.next_launch = 0
        self.armed = False
        self.rows_reduced = 0  # in the by_rows tables at the last boundary, for tests and benches
        for param in trained:
            param.register_post_accumulate_grad_hook(self._gradient_ready)

    def arm(self, boundary: bool) -> None:
        self.armed = boundary
        self.next_launch = 0
        for bucket in self.buckets:
            bucket.waiting = len(bucket.params)

    def finish(self, max_norm: float = 0.0) -> None:
        """Launch what backward left (parameters without a gradient this step get zeros, as
        DeepSpeed gives them), wait for every bucket and write the averages back; with a
        `max_norm`, clipped to it (see `take_over_clipping`)."""
        if not self.armed:
            return
        self._launch_ready(force=True)
        self.rows_reduced = 0
        # After every other launch, in bucket order: the same sequence of collectives on every rank.
        for bucket in self.buckets:
            if bucket.by_rows:
                self._launch_rows(bucket)
        for bucket in self.buckets:
            bucket.work.wait()
        scale = 1.0 / self.world
        if max_norm:
            scale *= _clip_coefficient(self.buckets, scale, max_norm)
        for bucket in self.buckets:
            self._write_back(bucket, scale)
        self.armed = False

    def _gradient_ready(self, param: torch.nn.Parameter) -> None:
        if not self.armed:
            return
        self.bucket_of[id(param)].waiting -= 1
        self._launch_ready(force=False)

    def _launch_ready(self, force: bool) -> None:
        while self.next_launch < len(self.buckets):
            bucket = self.buckets[self.next_launch]
            if bucket.waiting > 0 and not force:
                return
            for param in bucket.params:
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
            bucket.grads = [param.grad for param in bucket.params]  # type: ignore[misc]
            if bucket.by_rows:
                # First agree on the rows: a row any rank touched, as a MAX over 0/1 flags.
                bucket.touched = bucket.grads[0].any(dim=1).to(torch.uint8)
                bucket.work = dist.all_reduce(bucket.touched, dist.ReduceOp.MAX, async_op=True)
            else:
                bucket.flat = torch.cat([grad.reshape(-1) for grad in bucket.grads])
                bucket.work = dist.all_reduce(bucket.flat, async_op=True)
            self.next_launch += 1

    def _write_back(self, bucket: _Bucket, scale: float) -> None:
        assert bucket.flat is not None
        bucket.flat.mul_(scale)
        if bucket.rows is not None:
            bucket.grads[0].index_copy_(0, bucket.rows, bucket.flat)
        else:
            averages = _split_like(bucket.flat, bucket.grads)
            for grad, average in zip(bucket.grads, averages, strict=True):
                grad.copy_(average)
        bucket.work, bucket.flat, bucket.grads = None, None, []
        bucket.touched, bucket.rows = None, None

    def _launch_rows(self, bucket: _Bucket) -> None:
        bucket.work.wait()
        assert bucket.touched is not None
        bucket.rows = bucket.touched.nonzero().squeeze(1)
        bucket.flat = bucket.grads[0].index_select(0, bucket.rows)
        bucket.work = dist.all_reduce(bucket.flat, async_op=True)
        self.rows_reduced += len(bucket.rows)


def _buckets(
    params: list[torch.nn.Parameter], by_rows: set[int], bucket_bytes: int
) -> list[_Bucket]:
    buckets: list[_Bucket] = []
    current: list[torch.nn.Parameter] = []
    size = 0
    for param in params:
        if id(param) in by_rows:  # a bucket of its own, between the dense ones
            buckets.extend([_Bucket(current)] if current else [])
            buckets.append(_Bucket([param], by_rows=True))
            current, size = [], 0
            continue
        current.append(param)
        size += param.numel() * param.element_size()
        if size >= bucket_bytes:
            buckets.append(_Bucket(current))
            current, size = [], 0
    if current:
        buckets.append(_Bucket(current))
    return buckets


def row_sparse_tables(
    model: torch.nn.Module, min_bytes: int = ROW_SPARSE_MIN_BYTES
) -> list[torch.nn.Parameter]:
    """Trained weights of `nn.Embedding` modules of at least `min_bytes` that no other module
    shares: a table tied to an output layer gets gradient in every row, so rows would not pay."""
    uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    return [
        module.weight
        for module in model.modules()
        if isinstance(module, torch.nn.Embedding)
        and isinstance(module.weight, torch.nn.Parameter)
        and module.weight.requires_grad
        and uses[id(module.weight)] == 1
        and module.weight.numel() * module.weight.element_size() >= min_bytes
    ]


def _clip_coefficient(buckets: list[_Bucket], average: float, max_norm: float) -> float:
    """torch's `clip_grad_norm_` coefficient for the averaged gradients, read from the summed
    buffers: the rows a table's buffer leaves out are zero and add nothing to the norm."""
    norms = torch.stack([torch.linalg.vector_norm(b.flat) for b in buckets if b.flat is not None])
    norm = float(torch.linalg.vector_norm(norms)) * average
    return min(1.0, max_norm / (norm + 1e-6))


def _split_like(flat: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    pieces = torch.split(flat, [t.numel() for t in tensors])
    return [piece.view_as(t) for piece, t in zip(pieces, tensors, strict=True)]


def take_over_clipping(engine: Any) -> float:
    """Turn DeepSpeed's gradient clipping off and return its max norm, for `finish` to clip.

    DeepSpeed's ZeRO-0 clipping takes every parameter's norm one at a time, all-reduces a norm
    every rank already shares after the reduction, and scales every gradient even by 1; `finish`
    reads the norm from the buffers it reduced and folds the scale into the averaging."""
    max_norm = float(engine.gradient_clipping())
    engine._config.gradient_clipping = 0.0
    return max_norm


def overlap_applies(engine: Any, gradient_checkpointing: bool) -> bool:
    """Whether this engine's gradients can be reduced by `OverlappedGradientSync` instead:
    several ranks, ZeRO-0, fp32 gradients on the parameters themselves (bf16 and fp16 keep
    DeepSpeed's own reduction, which runs on its separate fp32 gradient buffers), no MoE layers,
    and no recomputation that could fire a gradient hook twice."""
    return (
        dist.is_initialized()
        and dist.get_world_size() > 1
        and engine.zero_optimization_stage() == 0
        and not engine.bfloat16_enabled()
        and not engine.fp16_enabled()
        and engine.communication_data_type == torch.float32
        and not engine.has_moe_layers
        and not gradient_checkpointing
    )
