"""`ftray registry export`: a version as a directory that needs nothing from ftray.

Unmerged, a version is written as it is stored (a PEFT adapter directory for adapter and prompt
versions, which vLLM and Ray Serve LLM load as LoRA; a transformers directory otherwise) with
its model card as `README.md`. Merged (`--merge`), the strategy's weights are folded into the
base: LoRA-style adapters through PEFT's `merge_and_unload`, partial versions by loading base +
changed tensors; the result is a plain transformers model with its tokenizer (chat template
included), loadable by `AutoModelFor<Task>.from_pretrained` alone.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftray.errors import FtrayError
from ftray.inference import load_model, version_files
from ftray.models import load_tokenizer
from ftray.results import MODEL_CARD, card_as_readme


@dataclass
class Export:
    ref: str
    directory: str
    merged: bool
    files: list[str]


def export_version(registry: Any, ref: str, directory: str | Path, merge: bool = False) -> Export:
    """Write version `ref` into `directory` (absent or empty), merged into its base if asked."""
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FtrayError(f"export: {target} is not an empty directory")
    manifest = registry.resolve(ref)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        if merge:
            write_merged(registry, manifest.ref, staging)
        else:
            shutil.rmtree(staging)
            registry.pull(manifest.ref, staging)
        card_as_readme(staging)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    written = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    return Export(manifest.ref, str(target), merge, written)


def write_merged(registry: Any, ref: str, staging: Path) -> None:
    files = version_files(registry, ref)
    if files.extra_positions() or files.kind == "prompt":
        raise FtrayError(
            f"export --merge: {ref} is a prompt version: its virtual tokens are inputs, not "
            "weights of the base, so there is nothing to merge; export it without --merge"
        )
    model: Any = load_model(files)[0]  # a transformers model, or a PEFT model around one
    if hasattr(model, "merge_and_unload"):  # a PEFT model: fold the adapter into the base
        model = model.merge_and_unload()
    model.save_pretrained(staging, safe_serialization=True)
    load_tokenizer(str(files.directory)).save_pretrained(staging)
    card = files.directory / MODEL_CARD
    if card.exists():
        shutil.copyfile(card, staging / MODEL_CARD)
