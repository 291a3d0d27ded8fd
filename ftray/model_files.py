"""What a loader needs to know about a model on disk: its files, strategy, task and labels.

A registry version's manifest (or a training output's `ftray_result.json`) records the strategy
that trained it as `{kind, method, config}`; everything downstream (loading, the logit offset,
sharing a base in a replica) asks that strategy's plugin. Versions registered before manifests
recorded it carry only `kind`: their plugin rebuilds the config from its own files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftray.strategies import get_strategy

if TYPE_CHECKING:
    from ftray.strategies.base import Strategy, StrategyConfig

# Registered base models are whole models: they load as the full strategy's artefacts do.
BASE_KIND = "base"


@dataclass
class ModelFiles:
    directory: Path
    kind: str  # the strategy's kind, or "base"
    task: str
    labels: list[str]
    base_directory: Path | None  # strategies whose artefact is relative to a base model
    recorded_config: dict[str, Any] | None = field(default=None)  # the strategy's config
    calibration_temperature: float = 1.0  # a classifier's logits are divided by it (softmax)

    @property
    def strategy(self) -> Strategy:

        return get_strategy("full" if self.kind == BASE_KIND else self.kind)

    @property
    def config(self) -> StrategyConfig:
        return self.strategy.config_from_record(self.recorded_config, self.directory)

    def logit_offset(self) -> int:
        """Positions the strategy prepends to the sequence; token-level logits drop them."""
        return self.strategy.logit_offset(self.config, self.task)

    def extra_positions(self) -> int:
        """Positions the strategy adds to every input, which the text cannot use."""
        return self.strategy.extra_positions(self.config, self.task)


def served_temperature(validation_metrics: dict[str, Any]) -> float:
    """What a classifier's probabilities are served at: the temperature fitted on validation
    when it was trained; 1 for other tasks and for versions trained before ftray fitted one."""
    value = validation_metrics.get("temperature")
    return float(value) if isinstance(value, int | float) and value > 0 else 1.0


def strategy_record(config: StrategyConfig) -> dict[str, Any]:
    """The `strategy` a manifest records: kind, method (when the strategy has one) and config."""
    values = config.model_dump(mode="json")
    return {"kind": config.kind, "method": values.get("method"), "config": values}
