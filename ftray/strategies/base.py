"""The one interface every fine-tuning strategy implements.

A strategy decides which parameters train: it receives the task model freshly loaded from its
pretrained weights and returns the module to optimise (the same model with some parameters frozen,
or a PEFT wrapper around it). Everything else (loop, checkpoints, export) is shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel


class StrategyConfig(BaseModel):
    """Base of each strategy's `strategy:` section; `kind` selects the strategy."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    kind: str


class Strategy(ABC):
    kind: ClassVar[str]
    config_type: ClassVar[type[StrategyConfig]]
    # Sensible starting points differ by orders of magnitude between strategies.
    default_learning_rate: ClassVar[float]

    @abstractmethod
    def apply(self, model: PreTrainedModel, config: StrategyConfig, task: str) -> nn.Module:
        """Freeze or wrap `model`; return the module whose trainable parameters get optimised."""

    def logit_offset(self, config: StrategyConfig, task: str) -> int:
        """Positions the strategy prepends to the sequence; token-level logits drop them."""
        return 0


def peft_task_type(task: str) -> str:
    """PEFT's task type, which also makes PEFT train (and save) the task head."""
    from peft import TaskType

    return {
        "sequence-classification": TaskType.SEQ_CLS,
        "token-classification": TaskType.TOKEN_CLS,
        "causal-lm": TaskType.CAUSAL_LM,
    }[task]
