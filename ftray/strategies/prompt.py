"""`prompt`: learned virtual tokens (PEFT prompt tuning, p-tuning, or prefix tuning) on a frozen
model, plus the task head.

Prompt tuning and p-tuning prepend `num_virtual_tokens` positions to the sequence, so token-level
logits carry that many extra positions in front; `logit_offset` tells the loop to drop them before
they meet the labels (PEFT's own token-classification path compares them unshifted and fails).
Prefix tuning feeds the model a key/value cache, which only causal-LM decoders accept.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ftray.errors import FtrayError
from ftray.strategies._peft import PeftStrategy, adapter_config
from ftray.strategies.base import StrategyConfig, get_task, peft_task_type

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel


class PromptConfig(StrategyConfig):
    kind: Literal["prompt"] = "prompt"
    method: Literal["prompt_tuning", "p_tuning", "prefix"] = "prompt_tuning"
    num_virtual_tokens: int = Field(20, gt=0)
    encoder_hidden_size: int | None = Field(None, gt=0)  # p-tuning's prompt encoder width
    init_text: str | None = None  # prompt tuning: start from this text's embeddings


METHODS = {"PROMPT_TUNING": "prompt_tuning", "P_TUNING": "p_tuning", "PREFIX_TUNING": "prefix"}


class Prompt(PeftStrategy):
    kind = "prompt"
    config_type = PromptConfig
    default_learning_rate = 3e-2
    peft_types = frozenset(METHODS)
    family = "prompt"

    def apply(self, model: PreTrainedModel, config: StrategyConfig, task: str) -> nn.Module:
        from peft import (
            PeftConfig,
            PrefixTuningConfig,
            PromptEncoderConfig,
            PromptTuningConfig,
            PromptTuningInit,
            get_peft_model,
        )

        assert isinstance(config, PromptConfig)
        common: dict[str, Any] = {
            "task_type": peft_task_type(task),
            "num_virtual_tokens": config.num_virtual_tokens,
        }
        peft_config: PeftConfig
        if config.method == "prefix":
            # PEFT hands the prefix to the model as a key/value cache; in transformers 5 only
            # the causal-LM path still accepts one (classification forwards dropped it).
            if not get_task(task).generates or not model.can_generate():
                raise FtrayError(
                    f"strategy.method: prefix tuning works for causal-lm decoders only, not "
                    f"{task} on {model.config.model_type}; use prompt_tuning or p_tuning"
                )
            peft_config = PrefixTuningConfig(**common)
        elif config.method == "p_tuning":
            peft_config = PromptEncoderConfig(
                **common, encoder_hidden_size=config.encoder_hidden_size or model.config.hidden_size
            )
        elif config.init_text:
            peft_config = PromptTuningConfig(
                **common,
                prompt_tuning_init=PromptTuningInit.TEXT,
                prompt_tuning_init_text=config.init_text,
                tokenizer_name_or_path=model.name_or_path,
            )
        else:
            peft_config = PromptTuningConfig(**common)
        return get_peft_model(model, peft_config)

    def logit_offset(self, config: StrategyConfig, task: str) -> int:
        return self.extra_positions(config, task) if get_task(task).per_token else 0

    def extra_positions(self, config: StrategyConfig, task: str) -> int:
        assert isinstance(config, PromptConfig)
        # Prefix tuning feeds its tokens as attention keys and values, not as positions.
        prepends = config.method in ("prompt_tuning", "p_tuning")
        return config.num_virtual_tokens if prepends else 0

    def config_from_files(self, directory: Path) -> PromptConfig:
        saved = adapter_config(directory)
        return PromptConfig(
            method=METHODS.get(saved.get("peft_type", ""), "prompt_tuning"),
            num_virtual_tokens=saved.get("num_virtual_tokens", 20),
        )


STRATEGY = Prompt()
