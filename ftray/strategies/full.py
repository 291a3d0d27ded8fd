"""`full`: every parameter trains."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ftray.strategies.base import Strategy, StrategyConfig

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel


class FullConfig(StrategyConfig):
    kind: Literal["full"] = "full"


class Full(Strategy):
    kind = "full"
    config_type = FullConfig
    default_learning_rate = 5e-5

    def apply(self, model: PreTrainedModel, config: StrategyConfig, task: str) -> nn.Module:
        model.requires_grad_(True)
        return model


STRATEGY = Full()
