"""A model card for every trained model: what a person reads before using it.

Hugging Face's card layout (YAML metadata, then model details, training data, evaluation,
limitations, how to load), filled from the run's `ModelResult` and its data checks. The card is
written beside the model as `MODEL_CARD.md`, so a registered version stores it as one of its
blobs; `ftray registry show --card` prints it and `ftray registry pull` writes it as `README.md`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftray.models import portable_model_name
from ftray.results import MODEL_CARD, ModelResult
from ftray.strategies._peft import ADAPTER_CONFIG
from ftray.tasks import get_task
from registry.cache import sha256_file

if TYPE_CHECKING:
    from ftray.datacheck import Finding

PEFT_TEMPLATE = "README.md"  # PEFT's save_pretrained writes an empty card template here
PIPELINE_TAGS = {
    "sequence-classification": "text-classification",
    "token-classification": "token-classification",
    "causal-lm": "text-generation",
}
AUTO_CLASSES = {
    "sequence-classification": "SequenceClassification",
    "token-classification": "TokenClassification",
    "causal-lm": "CausalLM",
}


def write_model_card(
    directory: Path, result: ModelResult, findings: list[Finding] | None = None
) -> Path:
    """The card of the model in `directory`, which is made portable first (`make_portable`)."""
    make_portable(directory, result)
    path = directory / MODEL_CARD
    path.write_text(model_card(result, findings or [], directory))
    return path


def make_portable(directory: Path, result: ModelResult) -> None:
    """Name the base by a reference another machine resolves (a hub id), not by this machine's
    path, in a PEFT adapter's config; drop PEFT's empty card template (the card replaces it)."""
    config_path = directory / ADAPTER_CONFIG
    if config_path.exists() and result.model_name:
        config = json.loads(config_path.read_text())
        portable = portable_model_name(result.model_name)
        config["base_model_name_or_path"] = portable
        if config.get("tokenizer_name_or_path"):
            config["tokenizer_name_or_path"] = portable
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    template = directory / PEFT_TEMPLATE
    if template.exists() and "[More Information Needed]" in template.read_text():
        template.unlink()


def model_card(result: ModelResult, findings: list[Finding], directory: Path) -> str:
    base = portable_model_name(result.model_name) if result.model_name else "unknown"
    name = (result.spec.get("registry") or {}).get("register_as") or result.run or "model"
    sections = [
        _metadata(result, base),
        f"# {name}\n\nFine-tuned from `{base}` for {result.task} by ftray (run `{result.run}`).",
        _details(result, base),
        _training_data(result),
        _evaluation(result),
        _limitations(result, findings),
        _how_to_load(result, base, directory),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _metadata(result: ModelResult, base: str) -> str:
    peft = (Path(result.output_dir or "") / ADAPTER_CONFIG).exists()
    lines = [
        "---",
        f"base_model: {base}",
        f"library_name: {'peft' if peft else 'transformers'}",
        f"pipeline_tag: {PIPELINE_TAGS.get(result.task, result.task)}",
        "tags:",
        "- ftray",
        f"- {result.strategy}",
    ]
    return "\n".join([*lines, "---"])


def _details(result: ModelResult, base: str) -> str:
    strategy = result.spec.get("strategy") or {"kind": result.strategy}
    method = f" ({strategy['method']})" if strategy.get("method") else ""
    share = (
        f"{result.trainable_params:,} of {result.total_params:,} parameters "
        f"({result.trainable_pct:.2f}%)"
        if result.trainable_params and result.total_params and result.trainable_pct is not None
        else "not recorded"
    )
    rows = [
        ("Base model", f"`{base}`"),
        ("Task", result.task),
        ("Strategy", f"{result.strategy}{method}"),
        ("Trained", share),
        ("Labels", ", ".join(result.labels) if result.labels else "none (generation)"),
        ("Selection", f"best validation {result.metric} ({result.mode})" if result.metric else ""),
    ]
    return "## Model details\n\n" + _table(("", ""), [r for r in rows if r[1]])


def _training_data(result: ModelResult) -> str:
    data = result.spec.get("data") or {}
    counts = {
        "train": result.train_examples,
        "validation": result.validation_examples,
        "test": result.test_examples or None,
    }
    rows = []
    for split in ("train", "validation", "test"):
        path = data.get(split)
        if path and Path(path).is_file():
            file = Path(path)
            size = f"{file.stat().st_size:,} bytes"
            rows.append((split, file.name, f"`{sha256_file(file)}`", size, counts[split]))
        elif counts[split]:
            source = f"split from {Path(data.get('train', '')).name}"
            rows.append((split, source, "", "", counts[split]))
    header = ("split", "file", "sha256", "size", "examples")
    return "## Training data\n\n" + _table(header, [tuple(_text(v) for v in r) for r in rows])


def _evaluation(result: ModelResult) -> str:
    task = get_task(result.task)
    keys = [k for k in (*task.metrics, "precision", "recall") if k in result.metrics]
    keys = list(dict.fromkeys(keys))
    rows = [(k, _number(result.metrics.get(k)), _number(result.test_metrics.get(k))) for k in keys]
    text = "## Evaluation\n\n"
    text += f"Validation: {result.validation_examples or '?'} examples (chose the checkpoint); "
    text += (
        f"test: {result.test_examples} examples, scored once after every choice was made.\n\n"
        if result.test_examples
        else "no test split was held out.\n\n"
    )
    text += _table(("metric", "validation", "test"), rows)
    temperature = result.metrics.get("temperature")
    if isinstance(temperature, float):
        text += (
            f"\n\nProbabilities are the softmax of the logits divided by {temperature:.3g}, the "
            "temperature that fits the validation split best: validation's `ece` and `brier` "
            "are the model's before it, test's are what the endpoint answers."
        )
    slices = result.metrics.get("slices") or {}
    if slices:
        headline = "f1" if "f1" in next(iter(slices.values())) else "accuracy"
        slice_rows = [
            (name, _number(values.get(headline)), _text(values.get("support")))
            for name, values in slices.items()
        ]
        gap = result.metrics.get("slice_gap")
        text += f"\n\nPer slice (validation {headline}; gap between best and worst slice: "
        text += f"{_number(gap)}{', flagged' if result.metrics.get('slice_gap_flagged') else ''}):"
        text += "\n\n" + _table(("slice", headline, "examples"), slice_rows)
    return text


def _limitations(result: ModelResult, findings: list[Finding]) -> str:
    text = (
        "## Intended use and limitations\n\n"
        f"Intended for {result.task} on text like its training data "
        f"({result.train_examples or '?'} examples). Scores above come from the same source "
        "as the training data; expect lower scores on text written elsewhere, and check it on "
        "your own held-out examples (`ftray eval`) before relying on it."
    )
    warnings = [f for f in findings if f.level != "ok"]
    if warnings:
        text += "\n\nData checks that limit how far the scores carry:\n\n"
        text += "\n".join(f"- **{f.check}** ({f.level}): {f.message}" for f in warnings)
    elif findings:
        text += f"\n\nData checks: all {len(findings)} passed."
    if result.metrics.get("slice_gap_flagged"):
        worst = result.metrics.get("worst_slice")
        text += f"\n\nThe slice `{worst}` scores well below the others (see Evaluation)."
    return text


def _how_to_load(result: ModelResult, base: str, directory: Path) -> str:
    auto = AUTO_CLASSES.get(result.task)
    name = (result.spec.get("registry") or {}).get("register_as") or "NAME"
    text = "## How to load\n\nWith ftray (serving shares the base across versions):\n\n```bash\n"
    text += f"ftray registry pull {name}@latest ./model\nftray serve {name}@latest\n```"
    if auto is None:
        return text
    labels = ""
    if result.labels and result.task != "causal-lm":
        labels = (
            f", num_labels={len(result.labels)},\n    id2label={dict(enumerate(result.labels))!r}"
            f",\n    label2id={ {label: i for i, label in enumerate(result.labels)}!r}"
        )
    if (directory / ADAPTER_CONFIG).exists():
        text += (
            f"\n\nWith PEFT alone (the base, `{base}`, must be resolvable: the hub or its cache):"
            f"\n\n```python\nfrom peft import AutoPeftModelFor{auto}\n\n"
            f'model = AutoPeftModelFor{auto}.from_pretrained(\n    "./model"{labels}\n)\n```'
        )
    elif (directory / "config.json").exists():
        text += (
            "\n\nWith transformers alone:\n\n```python\n"
            f"from transformers import AutoModelFor{auto}\n\n"
            f'model = AutoModelFor{auto}.from_pretrained("./model")\n```'
        )
    return text


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_text(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else _text(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|")
