"""Gradient all-reduce overlapped with the backward pass, for data-parallel (ZeRO-0) fp32 runs.

DeepSpeed's ZeRO-0 engine all-reduces every gradient once the backward pass has ended. torch's
DDP instead starts a bucket's all-reduce as soon as backward has produced that bucket's
gradients, so communication runs while the rest of the backward computes. `OverlappedGradientSync`
does DDP's part for a DeepSpeed engine: it turns the engine's own reduction off and reduces in
buckets from gradient hooks, leaving clipping and the optimizer step to DeepSpeed.

Correct by construction across ranks: every rank launches the buckets in the same order (a
bucket never overtakes the one before it) and every bucket's flattened size is fixed, so gloo or
NCCL pair the same collectives even when a parameter gets no gradient on some step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

# DDP's default bucket size; the first buckets (the last layers) then launch early in backward.
BUCKET_BYTES = 25 * 2**20


@dataclass
class _Bucket:
    params: list[torch.nn.Parameter]
    waiting: int = 0  # parameters whose gradient this backward has not produced yet
    work: Any = None
    flat: torch.Tensor | None = None
    grads: list[torch.Tensor] = field(default_factory=list)


class OverlappedGradientSync:
    """Average `params`' gradients over the default process group while backward runs.

    Call `arm(boundary)` before each backward (only an accumulation boundary reduces, as with
    DDP's `no_sync`) and `finish()` after it, before the optimizer step.
    """

    def __init__(self, params: list[torch.nn.Parameter], bucket_bytes: int = BUCKET_BYTES) -> None:
        self.world = dist.get_world_size()
        trained = [p for p in params if p.requires_grad and p.numel() > 0]
        # Backward reaches the last layers first: bucket in reverse so the first buckets fill first.
        self.buckets = _buckets(list(reversed(trained)), bucket_bytes)
        self.bucket_of = {id(p): bucket for bucket in self.buckets for p in bucket.params}
        self.next_launch = 0
        self.armed = False
        for param in trained:
            param.register_post_accumulate_grad_hook(self._gradient_ready)

    def arm(self, boundary: bool) -> None:
        self.armed = boundary
        self.next_launch = 0
        for bucket in self.buckets:
            bucket.waiting = len(bucket.params)

    def finish(self) -> None:
        """Launch what backward left (parameters without a gradient this step get zeros, as
        DeepSpeed gives them), wait for every bucket and write the averages back."""
        if not self.armed:
            return
        self._launch_ready(force=True)
        for bucket in self.buckets:
            bucket.work.wait()
            assert bucket.flat is not None
            bucket.flat.div_(self.world)
            averages = _split_like(bucket.flat, bucket.grads)
            for grad, average in zip(bucket.grads, averages, strict=True):
                grad.copy_(average)
            bucket.work, bucket.flat, bucket.grads = None, None, []
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
            bucket.flat = torch.cat([grad.reshape(-1) for grad in bucket.grads])
            bucket.work = dist.all_reduce(bucket.flat, async_op=True)
            self.next_launch += 1


def _buckets(params: list[torch.nn.Parameter], bucket_bytes: int) -> list[_Bucket]:
    buckets: list[_Bucket] = []
    current: list[torch.nn.Parameter] = []
    size = 0
    for param in params:
        current.append(param)
        size += param.numel() * param.element_size()
        if size >= bucket_bytes:
            buckets.append(_Bucket(current))
            current, size = [], 0
    if current:
        buckets.append(_Bucket(current))
    return buckets


def _split_like(flat: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    pieces = torch.split(flat, [t.numel() for t in tensors])
    return [piece.view_as(t) for piece, t in zip(pieces, tensors, strict=True)]


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
