"""The one interface every fine-tuning strategy implements, across a version's whole life.

A strategy decides which parameters train (`apply`), what a registry version stores
(`package`), how a version loads back for inference (`load`), the positions it prepends to
token-level logits (`logit_offset`), and whether versions can share one copy of their base in a
serving replica (`sharing_family`, `attach`, `detach`). The loop, checkpoints, registry and
serving call these; none of them knows which strategies exist.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedModel

    from ftray.model_files import ModelFiles
    from ftray.tasks import Task


class StrategyConfig(BaseModel):
    """Base of each strategy's `strategy:` section; `kind` selects the strategy."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    kind: str


class Strategy(ABC):
    kind: ClassVar[str]
    config_type: ClassVar[type[StrategyConfig]]
    # Sensible starting points differ by orders of magnitude between strategies.
    default_learning_rate: ClassVar[float]
    # True when a version stores only what differs from its base model (which it references).
    needs_base: ClassVar[bool] = False

    @abstractmethod
    def apply(self, model: PreTrainedModel, config: StrategyConfig, task: str) -> nn.Module:
        """Freeze or wrap `model`; return the module whose trainable parameters get optimised."""

    def load_options(self, config: StrategyConfig, device: torch.device) -> dict[str, Any]:
        """Extra `from_pretrained` arguments for the base model (QLoRA: a 4-bit base)."""
        return {}

    def logit_offset(self, config: StrategyConfig, task: str) -> int:
        """Positions the strategy prepends to the sequence; token-level logits drop them."""
        return 0

    def learning_rate_scale(self, config: StrategyConfig, parameter: str) -> float:
        """How much faster than the learning rate a trainable parameter learns (LoRA+: B)."""
        return 1.0

    def extra_positions(self, config: StrategyConfig, task: str) -> int:
        """Positions the strategy adds to every input (virtual tokens), whatever the task: the
        text may use the model's positions less these."""
        return 0

    def package(self, files: ModelFiles, scratch: Path) -> Path:
        """The directory a registry version stores for the training output `files.directory`
        (written under `scratch` when it differs): by default the output as it is."""
        return files.directory

    def load(self, files: ModelFiles) -> nn.Module:
        """The model a version (or a training output) holds, in eval mode."""
        from ftray.models import load_task_model

        return load_task_model(str(files.directory), files.task, files.labels).eval()

    def config_from_record(
        self, recorded: dict[str, Any] | None, directory: Path
    ) -> StrategyConfig:
        """The config a version was trained with: as its manifest records it, or rebuilt from
        its files for versions registered before manifests recorded it."""
        if recorded:
            return self.config_type.model_validate(recorded)
        return self.config_from_files(directory)

    def config_from_files(self, directory: Path) -> StrategyConfig:
        return self.config_type.model_validate({"kind": self.kind})  # its defaults

    def recognises(self, directory: Path) -> bool:
        """Whether a directory ftray did not write (no recorded strategy) is this strategy's."""
        return False

    # Sharing a base in a serving replica. Versions whose family is None load as models of
    # their own; versions of one family on the same base, task and labels share one model.
    def sharing_family(self, files: ModelFiles) -> str | None:
        return None

    def attach(self, shared: Any, files: ModelFiles, name: str) -> Any:
        """Add version `name` to `shared` (None: the first on its base); returns the model."""
        raise NotImplementedError(f"{self.kind} versions do not share a base")

    def detach(self, shared: Any, name: str) -> None:
        raise NotImplementedError(f"{self.kind} versions do not share a base")


def get_task(name: str) -> Task:
    # Task plugins import torch and transformers; the job spec (and so every strategy module)
    # is read by commands that need neither, so tasks load only when a strategy asks.
    from ftray.tasks import get_task as lookup

    return lookup(name)


def peft_task_type(task: str) -> str:
    """PEFT's task type, which also makes PEFT train (and save) the task head."""
    return get_task(task).peft_task_type
