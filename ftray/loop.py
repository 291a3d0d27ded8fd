"""The per-worker training loop, top to bottom: data, model, DeepSpeed engine, resume, train,
evaluate, checkpoint, stop.

`train_worker(spec, session)` is a plain function: Ray Train runs it on every worker
(`ftray.train`), and `ftray.local` runs it in one process or under torchrun without Ray.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import resource
import sys
import sysconfig
import tempfile
import time
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from ftray.checkpointing import EXPORT_SCORE, TrainState, load_checkpoint, save_checkpoint
from ftray.data import load_splits, normalize, read_rows
from ftray.deepspeed_config import deepspeed_config
from ftray.early_stopping import EarlyStopping
from ftray.encoding import Collator, model_logits
from ftray.errors import FtrayError
from ftray.gradient_sync import (
    OverlappedGradientSync,
    overlap_applies,
    row_sparse_tables,
    take_over_clipping,
)
from ftray.models import load_task_model, load_tokenizer, quiet_transformers
from ftray.optim import (
    add_l1_penalty,
    count_parameters,
    decayed_parameters,
    make_adamw,
    param_groups,
)
from ftray.packing import check_packing, pack
from ftray.sampler import ShardSampler
from ftray.schedule import lr_schedule, schedule_for
from ftray.session import Session
from ftray.spec import JobSpec
from ftray.strategies import get_strategy
from ftray.streaming import StreamedTrainData, filler_batch
from ftray.tasks import encode, get_task, make_evaluator
from ftray.train_data import InMemoryTrainData, TrainData

PROGRESS_INTERVAL_S = 2.0  # progress events are for humans; keep them cheap


def train_worker(spec: JobSpec, session: Session) -> None:
    """Run one worker's share of the job described by `spec`, reporting through `session`."""
    Recipe(spec, session).run()


class Recipe:
    """One worker's run, read top to bottom: `setup_*` build the pieces, `train` loops over
    micro-batches, `evaluate_and_checkpoint` scores, reports and decides whether to stop."""

    def __init__(self, spec: JobSpec, session: Session) -> None:
        self.started = time.perf_counter()
        quiet_transformers()
        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
        self.spec, self.session, self.task = spec, session, spec.model.task
        self.task_plugin = get_task(self.task)
        self.rank, self.world = session.world_rank, session.world_size
        self.device = _pick_device(spec, session.local_rank)
        # loss, positions, correct, predicted, real tokens: since the last evaluation
        self.window = torch.zeros(5, dtype=torch.float64)
        self.window_steps = 0
        self.step_times: list[float] = []
        self.step_started = self.last_progress = 0.0

    def run(self) -> None:
        self.setup_data()
        self.setup_model()
        self.setup_loader()  # after the model: packing probes it
        self.setup_engine()
        self.resume()
        self.train()

    def setup_data(self) -> None:
        """The validation set, encoded on every worker; the training set encoded here too when
        it is small, or streamed by Ray Data (`setup_loader`) when the driver says so."""
        spec = self.spec
        self.splits = load_splits(spec)
        self.tokenizer = load_tokenizer(spec.model.name, spec.data.chat.template)
        self.encode_split = partial(
            encode,
            task=self.task,
            tokenizer=self.tokenizer,
            labels=self.splits.labels,
            groups=self.splits.groups,
            max_length=spec.model.max_length,
        )
        self.validation_set = self.encode_split(self.splits.validation)
        pad_to = 8 if self.device.type == "cuda" else None
        self.collate = Collator(self.tokenizer.pad_token_id, pad_to_multiple_of=pad_to)
        self.shard = self.session.dataset_shard("train") if self.splits.stream else None

    def setup_loader(self) -> None:
        """This worker's share of the training rows: a shard of the stream, or of the examples
        (packed, with `train.packing`) read into memory."""
        spec, train = self.spec, self.spec.train
        if self.shard is not None:
            filler = filler_batch(self.collate, self.validation_set[0])
            self.data: TrainData = StreamedTrainData(
                self.shard, self.collate, filler, spec, self.rank
            )
            self.schedule = schedule_for(train, self.splits.train_rows, self.world)
            return
        if self.splits.stream:  # no Ray Data here (ftray.local): read the set whole
            rows = read_rows(spec.data.train, spec.data.format, "data.train")
            self.splits.train = normalize(rows, self.task, spec.data, "data.train")
        examples = self.encode_split(self.splits.train)
        if train.packing:
            check_packing(self.model, len(self.tokenizer))
            examples = pack(examples, spec.model.max_length)
        self.schedule = schedule_for(train, len(examples), self.world)
        sampler = ShardSampler(len(examples), self.rank, self.world, seed=train.seed)
        loader: DataLoader = DataLoader(
            examples,  # type: ignore[arg-type]  # a list of feature dicts is a map-style dataset
            batch_size=train.batch_size,
            sampler=sampler,
            collate_fn=self.collate,
        )
        self.data = InMemoryTrainData(loader, sampler, self.schedule, train.batch_size)

    def setup_model(self) -> None:
        """Pretrained weights (the same head init on every rank), then the strategy's part."""
        spec = self.spec
        torch.manual_seed(spec.train.seed)
        self.strategy = strategy = get_strategy(spec.strategy.kind)
        model = load_task_model(
            spec.model.name,
            self.task,
            self.splits.labels,
            self.tokenizer.pad_token_id,
            **strategy.load_options(spec.strategy, self.device),
        )
        self.model = strategy.apply(model, spec.strategy, self.task)
        if spec.train.gradient_checkpointing:
            # Non-reentrant: it needs no input that requires grad, which a frozen base lacks.
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        self.logit_offset = strategy.logit_offset(spec.strategy, self.task)
        self.trainable, self.total = count_parameters(self.model)

    def setup_engine(self) -> None:
        """DeepSpeed with AdamW (decoupled weight decay, L2), a warm-up schedule and L1 hooks."""
        deepspeed = _import_deepspeed()

        spec, train = self.spec, self.spec.train
        bf16_supported = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        if spec.deepspeed.fp16 and self.device.type != "cuda":
            raise FtrayError(
                f"deepspeed.fp16: fp16 training needs CUDA GPUs; this worker runs on "
                f"{self.device.type} (bf16 or fp32 run anywhere)"
            )
        config = deepspeed_config(spec, self.world, bf16_supported)
        optimizer = scheduler = None
        scale = partial(self.strategy.learning_rate_scale, spec.strategy)
        groups = param_groups(self.model, train, spec.learning_rate, scale)
        if "optimizer" not in config:  # a user DeepSpeed JSON may bring its own optimizer
            optimizer = make_adamw(groups, spec.learning_rate)
        if "scheduler" not in config and optimizer is not None:
            total = self.schedule.total_steps
            multiplier = lr_schedule(train.scheduler, int(total * train.warmup_ratio), total)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
        self.engine, *_ = deepspeed.initialize(
            model=self.model,
            model_parameters=groups if optimizer is None else None,
            optimizer=optimizer,
            lr_scheduler=scheduler,
            config=config,
        )
        accumulation = train.gradient_accumulation_steps
        add_l1_penalty(decayed_parameters(self.model), train.l1, accumulation)
        self.gradient_sync: OverlappedGradientSync | None = None
        self.clip_norm = 0.0  # clipping the gradient sync does in DeepSpeed's place
        if overlap_applies(self.engine, train.gradient_checkpointing):
            # DDP's overlap for ZeRO-0: buckets reduce during backward instead of after it, and
            # large embedding tables only in the rows the step's tokens touched.
            self.engine.enable_backward_allreduce = False
            self.gradient_sync = OverlappedGradientSync(
                list(self.model.parameters()), by_rows=row_sparse_tables(self.model)
            )
            self.clip_norm = take_over_clipping(self.engine)
        self.nodes = _worker_nodes(self.session.node)

    def resume(self) -> None:
        """Weights, optimizer, schedule, position and early-stopping state of a checkpoint."""
        stopping = self.spec.train.early_stopping
        self.state = TrainState(
            stopper=EarlyStopping(self.spec.mode, stopping.patience, stopping.min_delta)
        )
        with self.session.restore() as checkpoint:
            if checkpoint is not None:
                self.state = load_checkpoint(self.engine, checkpoint)
                self.data.restore(checkpoint, self.state)
                self.state.resumed_from = {
                    "epoch": self.state.epoch,
                    "step": self.state.global_step,
                }
        self.session.progress(
            {
                "kind": "start",
                "trainable_params": self.trainable,
                "total_params": self.total,
                "total_steps": self.schedule.total_steps,
                "steps_per_epoch": self.schedule.steps_per_epoch,
                "world_size": self.world,
                "device": self.device.type,
                "resumed_from": self.state.resumed_from,
                "worker_nodes": self.nodes,
                "startup_s": time.perf_counter() - self.started,
            }
        )

    def train(self) -> None:
        """Micro-batches until the epochs or max_steps run out, or early stopping says so."""
        state = self.state
        done = self.finished()
        while not done:
            self.engine.train()
            self.step_started = time.perf_counter()
            trained_any = False
            for batch, last in self.data.batches(state.epoch, state.micro_in_epoch):
                trained_any = True
                loss = self.micro_step(batch)
                stepped, end_of_epoch = self.advance(last)
                if not stepped:
                    continue
                done = self.finished()
                self.report_progress(loss, done)
                if self.evaluation_due(end_of_epoch) or done:
                    done = self.evaluate_and_checkpoint(done)
                if done:
                    break
            if not trained_any:
                raise FtrayError(f"data.train: no training rows left in epoch {state.epoch + 1}")

    def finished(self) -> bool:
        """The epochs are done, max_steps is reached, or early stopping stopped the run."""
        state, train = self.state, self.spec.train
        return (
            state.stopped_early
            or state.epoch >= train.epochs
            or bool(train.max_steps and state.global_step >= train.max_steps)
        )

    def micro_step(self, batch: dict[str, torch.Tensor]) -> float:
        """Forward, backward and (at the accumulation boundary) DeepSpeed's step; the loss."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        logits = model_logits(self.engine, batch, self.logit_offset)
        loss_sum, positions = self.task_plugin.loss(logits, batch["labels"])
        sync = self.gradient_sync
        if sync is not None:
            sync.arm(self.engine.is_gradient_accumulation_boundary())
        self.engine.backward(loss_sum / max(positions, 1))
        if sync is not None:
            sync.finish(self.clip_norm)
        self.engine.step()
        correct, predicted = self.task_plugin.correct_predictions(logits.detach(), batch["labels"])
        tokens = int(batch["tokens"])
        self.window += torch.tensor([loss_sum.item(), positions, correct, predicted, tokens])
        return loss_sum.item() / max(positions, 1)

    def advance(self, end_of_epoch: bool) -> tuple[bool, bool]:
        """Count the micro-batch: (an optimizer step ended, the epoch ended)."""
        state = self.state
        state.micro_in_epoch += 1
        if end_of_epoch:
            state.epoch, state.micro_in_epoch = state.epoch + 1, 0
        elif state.micro_in_epoch % self.spec.train.gradient_accumulation_steps:
            return False, False
        state.global_step += 1
        self.window_steps += 1
        self.step_times.append(time.perf_counter() - self.step_started)
        self.step_started = time.perf_counter()
        return True, end_of_epoch

    def evaluation_due(self, end_of_epoch: bool) -> bool:
        every = self.spec.train.eval_steps
        return self.state.global_step % every == 0 if every else end_of_epoch

    def report_progress(self, loss: float, done: bool) -> None:
        now = time.perf_counter()
        if self.rank != 0 or (now - self.last_progress <= PROGRESS_INTERVAL_S and not done):
            return
        self.last_progress = now
        state, per_epoch = self.state, self.schedule.micro_per_epoch
        self.session.progress(
            {
                "kind": "step",
                "step": state.global_step,
                "epoch": state.epoch + state.micro_in_epoch / per_epoch,
                "loss": loss,
                "lr": self.engine.get_lr()[0],
                "at": time.time(),  # the driver sees it up to a poll later
            }
        )

    def evaluate_and_checkpoint(self, done: bool) -> bool:
        """Score the whole validation set, report with a checkpoint; whether the run is done."""
        spec, state = self.spec, self.state
        metrics = _evaluate(
            _scoring_model(self.engine),
            self.validation_set,
            self.collate,
            spec,
            self.splits,
            self.logit_offset,
            self.rank,
            self.world,
            self.device,
        )
        metrics.update(_window_metrics(self.window))
        metrics.update(_timing(self.step_times, spec, self.world, self.started))
        # The window's tokens over all workers, per optimizer step, at the steady step time.
        tokens_per_step = metrics.pop("window_tokens") / max(self.window_steps, 1)
        metrics["tokens_per_second"] = tokens_per_step / metrics["step_time_s"]
        self.window.zero_()
        self.window_steps = 0
        improved = state.stopper.update(metrics[spec.metric], state.global_step)
        state.stopped_early = _agree(state.stopper.should_stop and not done)
        state.history.append(_history_row(state, metrics, spec.metric, self.engine.get_lr()[0]))
        metrics.update(self.run_facts(improved))
        with tempfile.TemporaryDirectory(prefix="ftray-ckpt-") as directory:
            tokenizer = self.tokenizer if improved else None
            save_checkpoint(
                self.engine, state, Path(directory), self.rank, tokenizer=tokenizer, metrics=metrics
            )
            self.data.save(Path(directory), state, self.rank)
            self.session.report(metrics, Path(directory))
        self.session.progress(
            {"kind": "eval", "metrics": state.history[-1], "numbers": _numbers(metrics)}
        )
        self.engine.train()
        self.step_started = time.perf_counter()
        return done or state.stopped_early

    def run_facts(self, improved: bool) -> dict[str, Any]:
        """What every report carries beside the metrics: position, stopping, the run's shape."""
        state = self.state
        return {
            "epoch": state.epoch,
            "step": state.global_step,
            "total_steps": self.schedule.total_steps,
            "best_step": state.stopper.best_step,
            "stopped_early": state.stopped_early,
            "resumed_from": state.resumed_from,
            "worker_nodes": self.nodes,
            "trainable_params": self.trainable,
            "total_params": self.total,
            # A copy: Ray may serialise a report after this worker has appended more.
            "history": list(state.history),
            EXPORT_SCORE: state.global_step if improved else -1,
        }


def _import_deepspeed() -> ModuleType:
    """deepspeed (seconds of imports; only workers need it) without mlflow: its autotuner imports
    mlflow and pandas just to log autotuning runs, which ftray never starts, and that was 1.2-1.4 s
    of every worker's start-up. A process that has imported mlflow already keeps it."""
    hidden = "mlflow" not in sys.modules
    if hidden:
        sys.modules["mlflow"] = None  # type: ignore[assignment]  # `import mlflow` fails
    try:
        import deepspeed
    finally:
        if hidden:
            del sys.modules["mlflow"]
    _build_in_this_environment()
    return deepspeed


def _build_in_this_environment() -> None:
    """Have DeepSpeed's CPU communication op built (on first use, ~35 s) with this environment's
    tools into a cache of its own, so that no other launch takes the build for a stale one."""
    _own_ninja_first()
    _own_extensions_cache()


def _own_ninja_first() -> None:
    """torch builds with whichever `ninja` PATH finds. The pip `ninja` DeepSpeed installs hashes
    commands differently from a system one, so launches with and without the environment
    activated rebuilt the op in turn, and without a system ninja an unactivated launch could
    not build it: the environment's scripts directory goes first."""
    scripts = sysconfig.get_path("scripts")
    entries = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
    if os.path.isfile(os.path.join(scripts, "ninja")) and entries[:1] != [scripts]:
        os.environ["PATH"] = os.pathsep.join([scripts, *entries])


def _own_extensions_cache() -> None:
    """torch's default cache is per user and Python version, not per environment. Two
    environments on one machine (a dev venv, a CI clone's) build with different include paths,
    so each rebuilt the op after the other had: each environment gets a directory of its own,
    unless TORCH_EXTENSIONS_DIR is set."""
    if "TORCH_EXTENSIONS_DIR" in os.environ:
        return
    from torch.utils.cpp_extension import get_default_build_root  # imports setuptools: lazily

    named = f"{os.path.realpath(sys.prefix)} {torch.__version__}"  # the version says +cpu, +cu...
    environment = hashlib.sha1(named.encode()).hexdigest()[:12]
    os.environ["TORCH_EXTENSIONS_DIR"] = os.path.join(
        get_default_build_root(), f"env-{environment}"
    )


def _scoring_model(engine) -> torch.nn.Module:
    """What validation runs: the engine's forward runs under its autocast (deepspeed.autocast, or
    a user JSON's torch_autocast); the module's is fp32, as exported and served."""
    return engine.module if engine.torch_autocast_enabled() else engine


def _evaluate(model, dataset, collate, spec, splits, logit_offset, rank, world, device) -> dict:
    """Metrics over the whole validation set: each rank evaluates rank::world, counts all-reduce.

    Under ZeRO-3 every forward is a collective, so every rank runs the same number of batches: a
    rank with a shorter shard repeats a batch whose results it then ignores.
    """
    model.eval()
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
            logits = model_logits(model, batch, logit_offset)
            if index < len(batches):
                evaluator.add(logits, batch)
    evaluator.all_reduce()
    return evaluator.compute()


def _window_metrics(window: torch.Tensor) -> dict[str, float]:
    """Training loss and accuracy since the last evaluation, over all workers."""
    if dist.is_initialized():
        dist.all_reduce(window)
    loss_sum, positions, correct, predicted, tokens = window.tolist()
    return {
        "train_loss": loss_sum / positions if positions else float("nan"),
        "train_accuracy": correct / predicted if predicted else float("nan"),
        "window_tokens": tokens,
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


def _history_row(state: TrainState, metrics: dict, metric: str, lr: float) -> dict[str, Any]:
    """One evaluation in the run's history (what `ftray report` draws): the losses, the
    selection metric, the learning rate, and each slice's score when there are slices."""
    row = {"epoch": state.epoch, "step": state.global_step, metric: metrics[metric], "lr": lr}
    for key in ("val_loss", "train_loss", "accuracy", "f1", "train_accuracy", "slice_gap"):
        if key in metrics:
            row[key] = metrics[key]
    slices = metrics.get("slices") or {}
    scored = {name: _slice_score(values) for name, values in slices.items()}
    if scored:
        row["slices"] = {name: score for name, score in scored.items() if score is not None}
    return row


def _slice_score(values: dict[str, Any]) -> float | None:
    if not values.get("support", 1):
        return None
    return next((values[key] for key in ("f1", "accuracy") if key in values), None)


def _numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics a tracker logs: everything but the history (already logged, row by row)."""
    return {key: value for key, value in metrics.items() if key != "history"}


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
