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
    first (a collective: every rank takes part). A PEFT model saves only its trainable weights.
    """
    import deepspeed
    from peft import PeftModel

    module = engine.module
    peft = isinstance(module, PeftModel)
    params = [p for p in module.parameters() if p.requires_grad or not peft]
    zero3 = engine.zero_optimization_stage() == 3
    with deepspeed.zero.GatheredParameters(params) if zero3 else nullcontext():
        if rank == 0:
            module.save_pretrained(str(directory), safe_serialization=True)
            tokenizer.save_pretrained(str(directory))
