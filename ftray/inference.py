"""Registered versions (or training outputs) back as models that answer requests.

`Predictor` loads any kind — full, partial (base + changed tensors), adapter and prompt (base +
PEFT weights) — and predicts for its task:
- classification: the label and a score per label;
- NER: entity spans with character offsets in the input text;
- causal LM: a greedy completion.
Weights load from safetensors only; remote code never runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ftray.artefacts import PARTIAL_FILE, PROMPT_PEFT_TYPES
from ftray.errors import FtrayError
from ftray.metrics import bio_spans
from ftray.models import load_task_model, load_tokenizer, quiet_transformers, resolve_model_path

MAX_NEW_TOKENS = 32


@dataclass
class ModelFiles:
    """What a loader needs to know about a version, from its manifest or ftray_result.json."""

    directory: Path
    kind: str
    task: str
    labels: list[str]
    base_directory: Path | None  # adapter, prompt, partial


def version_files(registry: Any, ref: str) -> ModelFiles:
    manifest, directory = registry.checkout(ref)
    base_directory = None
    if manifest.kind in ("adapter", "prompt", "partial"):
        base = manifest.base or {}
        if "ref" in base:
            base_directory = registry.checkout(base["ref"])[1]
        elif "name" in base:
            base_directory = Path(resolve_model_path(base["name"]))
        else:
            raise FtrayError(f"{manifest.ref}: a {manifest.kind} version records no base model")
    if manifest.task is None:
        raise FtrayError(f"{manifest.ref}: the version records no task; register it with ftray")
    return ModelFiles(directory, manifest.kind, manifest.task, manifest.labels, base_directory)


def load_model(files: ModelFiles) -> tuple[torch.nn.Module, int]:
    """The model in eval mode and its logit offset (virtual tokens to drop, for token tasks)."""
    quiet_transformers()
    if files.kind in ("full", "base"):
        return load_task_model(str(files.directory), files.task, files.labels).eval(), 0
    base = load_base(files)
    if files.kind == "partial":
        from safetensors.torch import load_file

        changed = load_file(str(files.directory / PARTIAL_FILE))
        unexpected = set(changed) - set(base.state_dict())
        if unexpected:
            raise FtrayError(
                f"{files.directory}: tensors not in the base model: {sorted(unexpected)[:3]}"
            )
        base.load_state_dict(changed, strict=False)
        return base.eval(), 0
    from peft import PeftModel

    model = PeftModel.from_pretrained(base, str(files.directory), is_trainable=False)
    return model.eval(), adapter_logit_offset(files)


def load_base(files: ModelFiles) -> torch.nn.Module:
    return load_task_model(str(files.base_directory), files.task, files.labels)


def adapter_logit_offset(files: ModelFiles) -> int:
    """Prompt tuning and p-tuning prepend virtual tokens; token-level logits drop them."""
    config = json.loads((files.directory / "adapter_config.json").read_text())
    prepends = config.get("peft_type") in PROMPT_PEFT_TYPES - {"PREFIX_TUNING"}
    return (
        config.get("num_virtual_tokens", 0)
        if prepends and files.task != "sequence-classification"
        else 0
    )


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
        max_length: int = 512,
    ) -> None:
        self.model, self.tokenizer, self.task, self.labels = model, tokenizer, task, labels
        self.logit_offset, self.adapter, self.max_length = logit_offset, adapter, max_length
        self.device = next(model.parameters()).device

    @classmethod
    def from_files(cls, files: ModelFiles, device: str | torch.device = "cpu") -> Predictor:
        model, offset = load_model(files)
        tokenizer = load_tokenizer(str(files.directory))
        return cls(model.to(device), tokenizer, files.task, files.labels, offset)

    @classmethod
    def from_registry(cls, registry: Any, ref: str) -> Predictor:
        return cls.from_files(version_files(registry, ref))

    @torch.no_grad()
    def predict(
        self, inputs: list[str], max_new_tokens: int = MAX_NEW_TOKENS, temperature: float = 0.0
    ) -> list[dict[str, Any]]:
        if self.adapter is not None and self.model.active_adapter != self.adapter:
            self.model.set_adapter(self.adapter)  # ~0.5 ms on MiniLM: only when it changes
        if self.task == "sequence-classification":
            return self._classify(inputs)
        if self.task == "token-classification":
            return [self._entities(text) for text in inputs]
        return [self._complete(text, max_new_tokens, temperature) for text in inputs]

    def _logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        names = ("input_ids", "attention_mask", "token_type_ids")
        logits = self.model(**{k: v.to(self.device) for k, v in batch.items() if k in names}).logits
        return logits[:, self.logit_offset :] if self.logit_offset else logits

    def _classify(self, texts: list[str]) -> list[dict[str, Any]]:
        batch = self.tokenizer(
            texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
        )
        probabilities = self._logits(batch).float().softmax(dim=-1).cpu()
        results = []
        for row in probabilities.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            results.append(
                {"label": self.labels[best], "scores": dict(zip(self.labels, row, strict=True))}
            )
        return results

    def _entities(self, text: str) -> dict[str, Any]:
        """Tags each word's first sub-token (as in training) and maps spans to characters."""
        encoded = self.tokenizer(
            text,
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = encoded.pop("offset_mapping")[0].tolist()
        probabilities = self._logits(encoded)[0].float().softmax(dim=-1).cpu()
        words: list[tuple[int, int]] = []
        tags: list[str] = []
        scores: list[float] = []
        previous = None
        for position, word in enumerate(encoded.word_ids(0)):
            if word is None:
                continue
            start, end = offsets[position]
            if word != previous:
                best = int(probabilities[position].argmax())
                words.append((start, end))
                tags.append(self.labels[best])
                scores.append(float(probabilities[position, best]))
            else:
                words[-1] = (words[-1][0], end)  # the word's later pieces extend its span
            previous = word
        entities = []
        for kind, first, last in sorted(bio_spans(tags), key=lambda span: span[1]):
            start, end = words[first][0], words[last - 1][1]
            score = sum(scores[first:last]) / (last - first)
            entities.append(
                {"type": kind, "start": start, "end": end, "text": text[start:end], "score": score}
            )
        return {"entities": entities}

    def _complete(self, prompt: str, max_new_tokens: int, temperature: float) -> dict[str, Any]:
        encoded = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        sampling = (
            {"do_sample": True, "temperature": temperature}
            if temperature > 0
            else {"do_sample": False}
        )
        output = self.model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            **sampling,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        new_tokens = output[0, encoded["input_ids"].shape[1] :]
        finished = len(new_tokens) > 0 and int(new_tokens[-1]) == self.tokenizer.eos_token_id
        return {
            "completion": self.tokenizer.decode(new_tokens, skip_special_tokens=True),
            "prompt_tokens": int(encoded["input_ids"].shape[1]),
            "completion_tokens": len(new_tokens),
            "finish_reason": "stop" if finished else "length",
        }
