"""`partial`: a chosen subset of the model's own parameters trains, the rest stays frozen.

Selectors combine as a union: the top N transformer layers, parameter-name patterns (regular
expressions), every bias (BitFit); or `head_only`. A classification head is freshly initialised,
so it always trains.

A registry version stores only the tensors that differ from its base (`partial_model.safetensors`)
plus config and tokenizer, and references the base; the frozen tensors are not stored again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from ftray.errors import FtrayError
from ftray.strategies.base import Strategy, StrategyConfig, get_task

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel

    from ftray.model_files import ModelFiles

PARTIAL_FILE = "partial_model.safetensors"

LAYER_INDEX = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")


class PartialConfig(StrategyConfig):
    kind: Literal["partial"] = "partial"
    top_layers: int | None = Field(None, gt=0)  # default 2 when no other selector is set
    patterns: list[str] = Field(default_factory=list)
    bias_only: bool = False
    head_only: bool = False

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return patterns

    @model_validator(mode="after")
    def _one_selection(self) -> PartialConfig:
        others = self.top_layers is not None or self.patterns or self.bias_only
        if self.head_only and others:
            raise ValueError("head_only trains the head alone; drop the other selectors")
        if not self.head_only and not others:
            self.top_layers = 2
        return self


def head_parameter_names(model: PreTrainedModel) -> set[str]:
    """Parameters outside the backbone: the task head (classifier, score or lm_head)."""
    prefix = f"{model.base_model_prefix}."
    return {name for name, _ in model.named_parameters() if not name.startswith(prefix)}


def select_parameters(model: PreTrainedModel, config: PartialConfig, task: str) -> set[str]:
    names = [name for name, _ in model.named_parameters()]
    head = head_parameter_names(model)
    if config.head_only:
        chosen = set(head)
    else:
        chosen = set(head) if get_task(task).new_head else set()
        if config.top_layers:
            layers = {n: int(m.group(1)) for n in names if (m := LAYER_INDEX.search(n))}
            if not layers:
                raise FtrayError(
                    f"strategy.top_layers: no numbered layers found in {model.config.model_type}; "
                    "select parameters with strategy.patterns instead"
                )
            first = max(layers.values()) + 1 - config.top_layers
            chosen |= {n for n, index in layers.items() if index >= first}
        for pattern in config.patterns:
            matched = {n for n in names if re.search(pattern, n)}
            if not matched:
                raise FtrayError(f"strategy.patterns: {pattern!r} matches no parameter")
            chosen |= matched
        if config.bias_only:
            chosen |= {n for n in names if n.endswith("bias")}
    if not chosen:
        raise FtrayError("strategy: the partial selection trains no parameter")
    return chosen


class Partial(Strategy):
    kind = "partial"
    config_type = PartialConfig
    default_learning_rate = 1e-4
    needs_base = True

    def apply(self, model: PreTrainedModel, config: StrategyConfig, task: str) -> nn.Module:
        assert isinstance(config, PartialConfig)
        chosen = select_parameters(model, config, task)
        for name, param in model.named_parameters():
            param.requires_grad_(name in chosen)
        return model

    def package(self, files: ModelFiles, scratch: Path) -> Path:
        import torch
        from safetensors.torch import load_file, save_file

        tuned = {}
        for weights in sorted(files.directory.glob("*.safetensors")):
            tuned.update(load_file(str(weights)))
        base_state = self._base(files).state_dict()
        changed = {
            k: v.contiguous()
            for k, v in tuned.items()
            if k not in base_state or not torch.equal(v, base_state[k].to(v.dtype))
        }
        save_file(changed, str(scratch / PARTIAL_FILE))
        for path in files.directory.iterdir():
            if path.is_file() and path.suffix != ".safetensors":
                (scratch / path.name).write_bytes(path.read_bytes())
        return scratch

    def load(self, files: ModelFiles) -> nn.Module:
        """A registered version is base + changed tensors; a training output a whole model."""
        if not (files.directory / PARTIAL_FILE).exists():
            return super().load(files)
        from safetensors.torch import load_file

        model = self._base(files)
        changed = load_file(str(files.directory / PARTIAL_FILE))
        unexpected = set(changed) - set(model.state_dict())
        if unexpected:
            raise FtrayError(
                f"{files.directory}: tensors not in the base model: {sorted(unexpected)[:3]}"
            )
        model.load_state_dict(changed, strict=False)
        return model.eval()

    @staticmethod
    def _base(files: ModelFiles) -> PreTrainedModel:
        from ftray.models import load_task_model

        return load_task_model(str(files.base_directory), files.task, files.labels)


STRATEGY = Partial()
