"""The per-worker training loop, top to bottom: data, model, DeepSpeed engine, resume, train,
evaluate, checkpoint, stop.

`train_worker(spec, session)` is a plain function: Ray Train runs it on every worker
(`ftray.train`), and `ftray.local` runs it in one process or under torchrun without Ray.
"""

from __future__ import annotations

import logging
import math
import re
import resource
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from ftray.checkpointing import EXPORT_SCORE, TrainState, load_checkpoint, save_checkpoint
from ftray.data import load_splits
from ftray.deepspeed_config import deepspeed_config
from ftray.early_stopping import EarlyStopping
from ftray.encoding import Collator, encode
from ftray.errors import FtrayError
from ftray.evaluation import make_evaluator
from ftray.losses import correct_predictions, task_loss
from ftray.models import load_task_model, load_tokenizer, quiet_transformers
from ftray.session import Session
from ftray.spec import JobSpec, TrainSpec
from ftray.strategies import get_strategy

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PROGRESS_INTERVAL_S = 2.0  # progress events are for humans; keep them cheap


def train_worker(spec: JobSpec, session: Session) -> None:
    """Run one worker's share of the job described by `spec`, reporting through `session`."""
    started = time.perf_counter()
    quiet_transformers()
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    import deepspeed

    task, train = spec.model.task, spec.train
    rank, world = session.world_rank, session.world_size
    device = _pick_device(spec, session.local_rank)
    bf16 = spec.deepspeed.bf16 is True or (
        spec.deepspeed.bf16 == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )

    # --- Data: every worker encodes the (small) dataset and trains on its own shard of it.
    splits = load_splits(spec)
    tokenizer = load_tokenizer(spec.model.name)
    encode_split = partial(
        encode,
        task=task,
        tokenizer=tokenizer,
        labels=splits.labels,
        groups=splits.groups,
        max_length=spec.model.max_length,
    )
    train_set, validation_set = encode_split(splits.train), encode_split(splits.validation)
    collate = Collator(
        tokenizer.pad_token_id, pad_to_multiple_of=8 if device.type == "cuda" else None
    )
    sampler = ShardSampler(len(train_set), rank, world, seed=train.seed)
    loader = DataLoader(train_set, batch_size=train.batch_size, sampler=sampler, collate_fn=collate)
    accumulation = train.gradient_accumulation_steps
    schedule = schedule_for(train, len(train_set), world)
    micro_per_epoch, total_steps = schedule.micro_per_epoch, schedule.total_steps

    # --- Model: pretrained weights (same head init on every rank), the strategy's trainable part.
    torch.manual_seed(train.seed)
    strategy = get_strategy(spec.strategy.kind)
    model = load_task_model(spec.model.name, task, splits.labels, tokenizer.pad_token_id)
    model = strategy.apply(model, spec.strategy, task)
    logit_offset = strategy.logit_offset(spec.strategy, task)
    trainable, total = count_parameters(model)

    # --- DeepSpeed engine: AdamW with decoupled weight decay (L2) and a warm-up schedule.
    decay, _ = split_decay(model)  # the weight matrices: the L1 penalty's targets
    config = deepspeed_config(spec, world, bf16)
    optimizer = scheduler = None
    groups = param_groups(model, train, spec.learning_rate)
    if "optimizer" not in config:  # a user DeepSpeed JSON may bring its own optimizer
        optimizer = make_adamw(groups, spec.learning_rate)
    if "scheduler" not in config and optimizer is not None:
        warmup = int(total_steps * train.warmup_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_schedule(train.scheduler, warmup, total_steps)
        )
    engine, *_ = deepspeed.initialize(
        model=model,
        model_parameters=groups if optimizer is None else None,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=config,
    )
    add_l1_penalty(decay, train.l1, accumulation)
    nodes = _worker_nodes(session.node)

    # --- Resume: weights, optimizer, schedule, position and early-stopping state.
    state = TrainState(
        stopper=EarlyStopping(
            spec.mode, train.early_stopping.patience, train.early_stopping.min_delta
        )
    )
    with session.restore() as checkpoint:
        if checkpoint is not None:
            state = load_checkpoint(engine, checkpoint)
            state.resumed_from = {"epoch": state.epoch, "step": state.global_step}
    session.progress(
        {
            "kind": "start",
            "trainable_params": trainable,
            "total_params": total,
            "total_steps": total_steps,
            "steps_per_epoch": schedule.steps_per_epoch,
            "world_size": world,
            "resumed_from": state.resumed_from,
            "worker_nodes": nodes,
            "startup_s": time.perf_counter() - started,
        }
    )

    # --- Train: micro-batches until the epochs or max_steps run out, or early stopping says so.
    window = torch.zeros(4, dtype=torch.float64)  # loss sum, positions, correct, predictions
    step_times: list[float] = []
    last_progress = 0.0
    done = state.global_step >= total_steps or state.stopped_early
    while not done:
        engine.train()
        sampler.set_epoch(state.epoch, skip=state.micro_in_epoch * train.batch_size)
        step_started = time.perf_counter()
        for batch in islice(loader, micro_per_epoch - state.micro_in_epoch):
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = forward(engine, batch, logit_offset)
            loss_sum, positions = task_loss(logits, batch["labels"], task)
            engine.backward(loss_sum / max(positions, 1))
            engine.step()
            correct, predicted = correct_predictions(logits.detach(), batch["labels"], task)
            window += torch.tensor([loss_sum.item(), positions, correct, predicted])

            state.micro_in_epoch += 1
            end_of_epoch = state.micro_in_epoch == micro_per_epoch
            if end_of_epoch:
                state.epoch, state.micro_in_epoch = state.epoch + 1, 0
            elif state.micro_in_epoch % accumulation:
                continue
            state.global_step += 1
            step_times.append(time.perf_counter() - step_started)
            step_started = time.perf_counter()
            done = state.global_step >= total_steps

            if rank == 0 and (time.perf_counter() - last_progress > PROGRESS_INTERVAL_S or done):
                last_progress = time.perf_counter()
                session.progress(
                    {
                        "kind": "step",
                        "step": state.global_step,
                        "epoch": state.epoch + state.micro_in_epoch / micro_per_epoch,
                        "loss": loss_sum.item() / max(positions, 1),
                        "lr": engine.get_lr()[0],
                    }
                )

            due = state.global_step % train.eval_steps == 0 if train.eval_steps else end_of_epoch
            if due or done:
                metrics = _evaluate(
                    engine, validation_set, collate, spec, splits, logit_offset, rank, world, device
                )
                metrics.update(_window_metrics(window))
                window.zero_()
                metrics.update(_timing(step_times, spec, world, started))
                improved = state.stopper.update(metrics[spec.metric], state.global_step)
                state.stopped_early = _agree(state.stopper.should_stop and not done)
                done = done or state.stopped_early
                state.history.append(_history_row(state, metrics, spec.metric))
                metrics.update(
                    epoch=state.epoch,
                    step=state.global_step,
                    total_steps=total_steps,
                    best_step=state.stopper.best_step,
                    stopped_early=state.stopped_early,
                    resumed_from=state.resumed_from,
                    worker_nodes=nodes,
                    trainable_params=trainable,
                    total_params=total,
                    # A copy: Ray may serialise a report after this worker has appended more.
                    history=list(state.history),
                    **{EXPORT_SCORE: state.global_step if improved else -1},
                )
                with tempfile.TemporaryDirectory(prefix="ftray-ckpt-") as directory:
                    save_checkpoint(
                        engine,
                        state,
                        Path(directory),
                        rank,
                        tokenizer=tokenizer if improved else None,
                        metrics=metrics,
                    )
                    session.report(metrics, Path(directory))
                session.progress({"kind": "eval", "metrics": state.history[-1]})
                engine.train()
                step_started = time.perf_counter()
            if done:
                break


@dataclass(frozen=True)
class Schedule:
    micro_per_epoch: int  # micro-batches per worker per epoch (a partial accumulation dropped)
    steps_per_epoch: int  # optimizer steps
    total_steps: int
    evaluations: int  # how many times the run evaluates (and reports) if it is not stopped


def schedule_for(train: TrainSpec, examples: int, world: int) -> Schedule:
    """The run's step arithmetic; Tune's ASHA sizes its rungs with the same numbers."""
    accumulation = train.gradient_accumulation_steps
    batches = math.ceil(math.ceil(examples / world) / train.batch_size)
    micro_per_epoch = batches // accumulation * accumulation
    if micro_per_epoch == 0:
        raise FtrayError(
            f"train.batch_size: {examples} training examples over {world} workers are too "
            f"few for batches of {train.batch_size} x {accumulation} accumulation steps"
        )
    steps_per_epoch = micro_per_epoch // accumulation
    total = steps_per_epoch * train.epochs
    if train.max_steps:
        total = min(total, train.max_steps)
    every = train.eval_steps or steps_per_epoch  # the last step always evaluates too
    return Schedule(micro_per_epoch, steps_per_epoch, total, math.ceil(total / every))


def forward(engine: Any, batch: dict[str, torch.Tensor], logit_offset: int) -> torch.Tensor:
    """Logits aligned with the labels (positions a prompt strategy prepended are dropped)."""
    logits = engine(**{k: v for k, v in batch.items() if k in MODEL_INPUTS}).logits
    return logits[:, logit_offset:] if logit_offset else logits


def _evaluate(engine, dataset, collate, spec, splits, logit_offset, rank, world, device) -> dict:
    """Metrics over the whole validation set: each rank evaluates rank::world, counts all-reduce.

    Under ZeRO-3 every forward is a collective, so every rank runs the same number of batches: a
    rank with a shorter shard repeats a batch whose results it then ignores.
    """
    engine.eval()
    size = spec.train.eval_batch_size or spec.train.batch_size
    shard = dataset[rank::world]
    batches = [collate(shard[i : i + size]) for i in range(0, len(shard), size)]
    rounds = math.ceil(math.ceil(len(dataset) / world) / size)
    filler = collate(dataset[:1])
    evaluator = make_evaluator(
        spec.model.task, splits.labels, splits.groups, spec.data.max_slice_gap
    )
    with torch.no_grad():
        for index in range(rounds):
            batch = batches[index] if index < len(batches) else filler
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = forward(engine, batch, logit_offset)
            if index < len(batches):
                evaluator.add(logits, batch)
    evaluator.all_reduce()
    return evaluator.compute()


def _window_metrics(window: torch.Tensor) -> dict[str, float]:
    """Training loss and accuracy since the last evaluation, over all workers."""
    if dist.is_initialized():
        dist.all_reduce(window)
    loss_sum, positions, correct, predicted = window.tolist()
    return {
        "train_loss": loss_sum / positions if positions else float("nan"),
        "train_accuracy": correct / predicted if predicted else float("nan"),
    }


def _timing(step_times: list[float], spec: JobSpec, world: int, started: float) -> dict[str, float]:
    """Steady-state step time (the first steps warm caches up and are left out) and throughput."""
    steady = step_times[3:] or step_times
    step_time = sum(steady) / len(steady) if steady else float("nan")
    global_batch = spec.train.batch_size * spec.train.gradient_accumulation_steps * world
    return {
        "step_time_s": step_time,
        "samples_per_second": global_batch / step_time if steady else 0.0,
        "worker_elapsed_s": time.perf_counter() - started,
        "peak_memory_mb": peak_memory_mb(),
    }


def peak_memory_mb() -> float:
    """The largest peak over workers: accelerator memory allocated on GPU, resident set size
    of the worker process on CPU (model, optimizer state and activations together)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    value = torch.tensor([peak], dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value.item())


def _history_row(state: TrainState, metrics: dict, metric: str) -> dict[str, Any]:
    row = {"epoch": state.epoch, "step": state.global_step, metric: metrics[metric]}
    for key in ("val_loss", "train_loss", "accuracy", "f1", "train_accuracy", "slice_gap"):
        if key in metrics:
            row[key] = metrics[key]
    return row


def _worker_nodes(node: str) -> list[str]:
    """Each rank's node, in rank order: where the workers really ran."""
    if not dist.is_initialized():
        return [node]
    nodes: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, node)
    return nodes


def _agree(flag: bool) -> bool:
    """Rank 0's decision, on every rank, so that all workers stop together."""
    if not dist.is_initialized():
        return flag
    decision = torch.tensor([int(flag)])
    dist.broadcast(decision, src=0)
    return bool(decision.item())


def _pick_device(spec: JobSpec, local_rank: int) -> torch.device:
    if spec.scaling.use_gpu is not False and torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


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


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def split_decay(model: torch.nn.Module) -> tuple[list, list]:
    """Trainable weight matrices (decayed, L1-penalised) and the rest: biases and norm scales."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return decay, no_decay


HEAD = re.compile(r"(^|\.)(classifier|score)\.")  # the task heads transformers builds


def param_groups(model: torch.nn.Module, train: TrainSpec, lr: float) -> list[dict[str, Any]]:
    """AdamW groups: decayed weight matrices and undecayed biases/norms, each split into the new
    task head (at `train.head_learning_rate` when set: a randomly initialised head learns slowly
    at a rate chosen not to disturb pretrained weights) and the rest."""
    head_lr = train.head_learning_rate or lr
    groups: list[dict[str, Any]] = []
    for decayed in (True, False):
        for in_head in (False, True):
            params = [
                p
                for name, p in model.named_parameters()
                if p.requires_grad
                and (p.ndim >= 2) == decayed
                and bool(HEAD.search(name)) == in_head
            ]
            if params:
                groups.append(
                    {
                        "params": params,
                        "weight_decay": train.weight_decay if decayed else 0.0,
                        "lr": head_lr if in_head else lr,
                    }
                )
    return groups


def make_adamw(groups: list[dict], lr: float) -> torch.optim.Optimizer:
    """AdamW with the fused kernel where the parameters allow it: on CPU it steps MiniLM's
    22.7M parameters 6x faster than torch's default per-tensor loop."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # a dtype or device without a fused kernel
        return torch.optim.AdamW(groups, lr=lr, foreach=True)


def add_l1_penalty(params: list[torch.nn.Parameter], strength: float, accumulation: int) -> None:
    """Add strength * sign(w), the (sub)gradient of strength * |w|_1, to each weight's gradient.

    A gradient hook rather than a loss term: under ZeRO-3 a weight exists whole only while its
    module runs, which is exactly when its gradient hook fires. DeepSpeed divides each micro-step's
    loss by the accumulation steps, so the penalty is divided likewise.
    """
    if strength <= 0:
        return
    scale = strength / accumulation
    for param in params:
        param.register_hook(
            lambda grad, p=param: grad + scale * torch.sign(p.detach()).to(grad.dtype)
        )


def lr_schedule(kind: str, warmup: int, total: int):
    """Multiplier on the learning rate at each step: linear warm-up, then the chosen decay."""

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return 1.0

    return multiplier
