"""What a checkpoint holds, and how workers write and read it.

    trainer_state.json   where training stands: epoch, step, position in the epoch, early stopping
    deepspeed/           DeepSpeed's own state for an exact resume: trainable weights, optimizer,
                         LR schedule (frozen weights are left out; they come from the base model)
    model/               only in checkpoints that were the best so far: the loadable artefact
                         (PEFT adapter dir, or a transformers model dir) with its tokenizer and
                         ftray_eval.json, the metrics of the evaluation that made it the best

Every rank writes its part into its own directory; the session merges them (Ray Train does).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftray.early_stopping import EarlyStopping

TRAINER_STATE = "trainer_state.json"
DEEPSPEED_DIR = "deepspeed"
MODEL_DIR = "model"
TAG = "state"
EVAL_FILE = "ftray_eval.json"
# Reported with every checkpoint: its step when it holds the exported model, else -1, so that
# score-based retention (Ray Train's CheckpointConfig) always keeps the best model.
EXPORT_SCORE = "export_step"


@dataclass
class TrainState:
    stopper: EarlyStopping
    epoch: int = 0  # epochs completed
    micro_in_epoch: int = 0  # micro-batches of the current epoch already trained
    global_step: int = 0  # optimizer steps
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per evaluation
    resumed_from: dict[str, int] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainState:
        raw = json.loads(text)
        return cls(stopper=EarlyStopping(**raw.pop("stopper")), **raw)


def save_checkpoint(
    engine: Any,
    state: TrainState,
    directory: Path,
    rank: int,
    tokenizer: Any = None,
    metrics: dict[str, Any] | None = None,
) -> None:
    """Write this rank's part of a checkpoint; with a tokenizer, also the loadable model and the
    evaluation `metrics` that earned it."""
    engine.save_checkpoint(str(directory / DEEPSPEED_DIR), tag=TAG, exclude_frozen_parameters=True)
    if tokenizer is not None:
        export_model(engine, tokenizer, directory / MODEL_DIR, rank)
        if rank == 0:
            evaluation = {k: v for k, v in (metrics or {}).items() if k != "history"}
            (directory / MODEL_DIR / EVAL_FILE).write_text(
                json.dumps(evaluation, indent=2, default=str)
            )
    if rank == 0:
        (directory / TRAINER_STATE).write_text(state.to_json())


def load_checkpoint(engine: Any, directory: Path) -> TrainState:
    engine.load_checkpoint(str(directory / DEEPSPEED_DIR), tag=TAG, load_module_strict=False)
    return TrainState.from_json((directory / TRAINER_STATE).read_text())


def export_model(engine: Any, tokenizer: Any, directory: Path, rank: int) -> None:
    """Save the model as transformers/PEFT would (safetensors) from rank 0.

    Under ZeRO-3 each rank holds a slice of every parameter, so the ones being saved are gathered
    first (a collective: every rank takes part). A PEFT model saves only its trainable weights,
    gathered at once (they are small); a whole model is streamed (`stream_zero3_model`).
    """
    import deepspeed
    from peft import PeftModel

    module = engine.module
    zero3 = engine.zero_optimization_stage() == 3
    if zero3 and not isinstance(module, PeftModel):
        stream_zero3_model(module, directory, rank)
        if rank == 0:
            tokenizer.save_pretrained(str(directory))
        return
    params = [p for p in module.parameters() if p.requires_grad] if zero3 else []
    with deepspeed.zero.GatheredParameters(params) if params else nullcontext():
        if rank == 0:
            module.save_pretrained(str(directory), safe_serialization=True)
            tokenizer.save_pretrained(str(directory))


SHARD_BYTES = 512 * 2**20  # a safetensors file of the streamed export holds about this much


def stream_zero3_model(module: Any, directory: Path, rank: int) -> None:
    """Write a ZeRO-3 partitioned model as sharded safetensors with an index, never holding it
    whole: one submodule's parameters are gathered at a time (every rank takes part), copied to
    rank 0's CPU shard and released; a shard is written when it fills. Other ranks hold their
    partition plus one submodule. The files and index are transformers' own layout, so
    `from_pretrained(directory)` loads them."""
    import deepspeed
    from safetensors.torch import save_file

    shard: dict[str, Any] = {}
    weight_map: dict[str, str] = {}  # tensor name -> file
    files: list[str] = []
    seen: set[int] = set()  # tied weights (an LM head sharing the embedding) are saved once

    def flush() -> None:
        files.append(f"model-{len(files) + 1:05d}.safetensors")
        save_file(shard, str(directory / files[-1]), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, files[-1]))
        shard.clear()

    if rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
    held = total = 0
    for prefix, submodule in module.named_modules():
        own = [(n, p) for n, p in submodule.named_parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for _, p in own)
        with deepspeed.zero.GatheredParameters([p for _, p in own]):
            if rank != 0:
                continue
            for name, tensor in [*own, *persistent_buffers(submodule)]:
                # No copy on CPU: the reference keeps the gathered storage alive after the
                # parameter is released (DeepSpeed rebinds param.data to its partition).
                shard[f"{prefix}.{name}" if prefix else name] = tensor.detach().cpu()
                held += tensor.numel() * tensor.element_size()
        if held >= SHARD_BYTES:
            total, held = total + held, 0
            flush()
    if rank != 0:
        return
    if shard or not files:
        total += held
        flush()
    name_shards(directory, files, weight_map, total)
    module.config.save_pretrained(str(directory))
    if getattr(module, "generation_config", None) is not None and module.can_generate():
        module.generation_config.save_pretrained(str(directory))


def persistent_buffers(module: Any) -> list[tuple[str, Any]]:
    skipped = module._non_persistent_buffers_set
    return [(n, b) for n, b in module.named_buffers(recurse=False) if n not in skipped]


def name_shards(directory: Path, files: list[str], weight_map: dict[str, str], total: int):
    """transformers' names: one model.safetensors, or model-0000i-of-0000n files and an index."""
    if len(files) == 1:
        (directory / files[0]).rename(directory / "model.safetensors")
        return
    names = {
        old: f"{old.removesuffix('.safetensors')}-of-{len(files):05d}.safetensors" for old in files
    }
    for old, new in names.items():
        (directory / old).rename(directory / new)
    index = {
        "metadata": {"total_size": total},
        "weight_map": {key: names[file] for key, file in sorted(weight_map.items())},
    }
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
