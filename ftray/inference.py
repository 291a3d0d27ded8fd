"""Registered versions (or training outputs) back as models that answer requests.

`Predictor` loads a version with the strategy that trained it (`Strategy.load`: a whole model,
base + changed tensors, base + PEFT weights) and answers as its task does (`Task.predict`:
a label and a score per label, entity spans with character offsets, a completion...).
Weights load from safetensors only; remote code never runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ftray.encoding import model_logits
from ftray.errors import FtrayError
from ftray.model_files import ModelFiles, served_temperature
from ftray.models import load_tokenizer, quiet_transformers, resolve_model_path
from ftray.tasks import get_task


def version_files(registry: Any, ref: str) -> ModelFiles:
    manifest, directory = registry.checkout(ref)
    base_directory = None
    if manifest.base is not None:
        base = manifest.base
        if "ref" in base:
            base_directory = registry.checkout(base["ref"])[1]
        elif "name" in base:
            base_directory = Path(resolve_model_path(base["name"]))
    recorded = manifest.strategy or {}
    files = ModelFiles(
        directory,
        manifest.kind,
        manifest.task or "",
        manifest.labels,
        base_directory,
        recorded.get("config"),
        served_temperature(manifest.metrics),
    )
    if manifest.task is None:
        raise FtrayError(f"{manifest.ref}: the version records no task; register it with ftray")
    if files.strategy.needs_base and base_directory is None:
        raise FtrayError(f"{manifest.ref}: a {manifest.kind} version records no base model")
    return files


def load_model(files: ModelFiles) -> tuple[torch.nn.Module, int]:
    """The model in eval mode and its logit offset (virtual tokens to drop, for token tasks)."""
    quiet_transformers()
    return files.strategy.load(files), files.logit_offset()


MAX_INPUT_TOKENS = 512  # a request's text is cut here at most, whatever the model could take
FORWARD_BATCH = 64  # inputs per forward pass when answering


def input_limit(model: torch.nn.Module) -> int:
    """The most tokens an input may have: the model's positions, at most MAX_INPUT_TOKENS."""
    config = getattr(model, "config", None)
    positions = getattr(config, "max_position_embeddings", None) or MAX_INPUT_TOKENS
    return min(MAX_INPUT_TOKENS, positions)


class Predictor:
    """Answers requests with one version: a model of its own, or one adapter of a PEFT model
    shared with other versions (`adapter` is then activated before every forward)."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        task: str,
        labels: list[str],
        logit_offset: int = 0,
        adapter: str | None = None,
        extra_positions: int = 0,
        calibration_temperature: float = 1.0,
    ) -> None:
        # Any: a transformers model or a PEFT wrapper, called through methods nn.Module lacks.
        self.model: Any = model
        self.tokenizer, self.task, self.labels = tokenizer, task, labels
        self.task_plugin = get_task(task)
        self.logit_offset, self.adapter = logit_offset, adapter
        # Logits stay the model's own (an exported copy gives the same); probabilities are
        # computed from logits / temperature, fitted on validation to make them calibrated.
        self.calibration_temperature = calibration_temperature
        # Inputs are truncated to what the model's positions hold once the strategy's virtual
        # tokens are in (a prompt-tuned BERT reads 492 text tokens, not 512 + 20).
        self.max_length = input_limit(model) - extra_positions
        self.device = next(model.parameters()).device

    @classmethod
    def from_files(cls, files: ModelFiles, device: str | torch.device = "cpu") -> Predictor:
        model, _offset = load_model(files)
        return cls.with_model(files, model.to(device))

    @classmethod
    def with_model(cls, files: ModelFiles, model: Any, adapter: str | None = None) -> Predictor:
        """A predictor for the version `files` describes, answering with `model`: its own
        loaded model, or a shared base on which it is the adapter named `adapter`. Everything
        else (task, labels, offsets, calibration) is the version's."""
        return cls(
            model,
            load_tokenizer(str(files.directory)),
            files.task,
            files.labels,
            files.logit_offset(),
            adapter,
            files.extra_positions(),
            files.calibration_temperature,
        )

    @classmethod
    def from_registry(cls, registry: Any, ref: str) -> Predictor:
        return cls.from_files(version_files(registry, ref))

    @torch.no_grad()
    def predict(self, inputs: list[str], **options: Any) -> list[dict[str, Any]]:
        """The task's answer for each input (`Task.predict`); options such as max_new_tokens
        and temperature are the task's. Inputs go in passes of at most FORWARD_BATCH, of
        similar lengths: a pass's memory is bounded however many requests a batch merged, and
        short texts are not padded to a long one's length."""
        self.activate()
        if len(inputs) <= FORWARD_BATCH:
            return self.task_plugin.predict(self, inputs, options)
        by_length = sorted(range(len(inputs)), key=lambda index: len(inputs[index]))
        answers: list[dict[str, Any]] = [{} for _ in inputs]
        for start in range(0, len(inputs), FORWARD_BATCH):
            members = by_length[start : start + FORWARD_BATCH]
            passed = self.task_plugin.predict(self, [inputs[i] for i in members], options)
            for index, answer in zip(members, passed, strict=True):
                answers[index] = answer
        return answers

    def stream(self, text: str, **options: Any) -> Iterator[dict[str, Any]]:
        """A generating task's answer piece by piece (`Task.stream`); each piece is computed
        when it is asked for, so a consumer that stops asking stops the work."""
        return self.task_plugin.stream(self, text, options)

    def activate(self) -> None:
        """Make this version's adapter the shared model's active one (before every forward:
        other versions' requests switch it in between)."""
        if self.adapter is not None and self.model.active_adapter != self.adapter:
            self.model.set_adapter(self.adapter)  # ~0.5 ms on MiniLM: only when it changes

    def probabilities(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """A classifier's probabilities for a tokenised batch, at its calibration temperature."""
        logits = self.logits(batch).float() / self.calibration_temperature
        return logits.softmax(dim=-1).cpu()

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits for a tokenised batch, aligned with its positions."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        return model_logits(self.model, batch, self.logit_offset)
