"""What the PEFT strategies (adapter, prompt) share after training: a version is a PEFT adapter
directory on a referenced base, loads with `PeftModel`, and shares its base in a replica with
the other versions of its family."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ftray.strategies.base import Strategy

if TYPE_CHECKING:
    from torch import nn

    from ftray.model_files import ModelFiles

ADAPTER_CONFIG = "adapter_config.json"


def adapter_config(directory: Path) -> dict[str, Any]:
    path = directory / ADAPTER_CONFIG
    return json.loads(path.read_text()) if path.exists() else {}


class PeftStrategy(Strategy):
    needs_base = True
    # PEFT's `peft_type` values this strategy writes, as in adapter_config.json.
    peft_types: ClassVar[frozenset[str]]
    # LoRA-like adapters rewrite the base's modules and prompt adapters feed it virtual tokens:
    # the two families cannot share one PEFT model.
    family: ClassVar[str]

    def load(self, files: ModelFiles) -> nn.Module:
        from peft import PeftModel

        from ftray.models import load_task_model

        base = load_task_model(str(files.base_directory), files.task, files.labels)
        return PeftModel.from_pretrained(base, str(files.directory), is_trainable=False).eval()

    def recognises(self, directory: Path) -> bool:
        return adapter_config(directory).get("peft_type") in self.peft_types

    def sharing_family(self, files: ModelFiles) -> str | None:
        return self.family

    def attach(self, shared: Any, files: ModelFiles, name: str) -> Any:
        from peft import PeftModel

        from ftray.models import load_task_model

        if shared is not None:
            shared.load_adapter(str(files.directory), adapter_name=name, is_trainable=False)
            return shared
        base = load_task_model(str(files.base_directory), files.task, files.labels)
        model = PeftModel.from_pretrained(
            base, str(files.directory), adapter_name=name, is_trainable=False
        )
        return model.eval()

    def detach(self, shared: Any, name: str) -> None:
        shared.delete_adapter(name)
