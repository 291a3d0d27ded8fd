"""`ftray eval`: score a trained model on any labelled file, with the metric code training uses.

The model is a registry version (`name:3`, `name@production`) or a run's output directory; the
file is read with the field mapping of the job spec the model was trained with (override any
field with `data.text_field=...`). Rows are encoded as in training, run through the model in
batches, and fed to the task's `Evaluator`, so a number here means what it means in a training
run. Inputs are cut at the limit the endpoint cuts them at (the model's positions, 512 tokens at
most), not at training's `max_length`, so a score here is what the endpoint would answer.
Training scores its test split through the same `score_examples`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ftray.artefacts import recorded_strategy
from ftray.data import normalize, read_rows
from ftray.encoding import Collator
from ftray.errors import FtrayError
from ftray.evaluation import Evaluator, ScoredRow
from ftray.inference import ModelFiles, Predictor, version_files
from ftray.model_files import served_temperature
from ftray.models import resolve_model_path
from ftray.results import ModelResult
from ftray.runtime import cluster_capacity, ray_runtime
from ftray.spec import DataSpec, apply_override
from ftray.strategies import get_strategy
from ftray.tasks import encode, get_task
from registry import Registry
from registry.cache import sha256_file

BATCH_SIZE = 32
RAY_ROWS = 20_000  # files larger than this are scored in Ray tasks, one per CPU of the cluster
MAX_ERRORS_SHOWN = 5


@dataclass
class Scores:
    metrics: dict[str, Any]
    confusion: list[list[int]] | None  # [true, predicted] counts, classification only
    rows: list[ScoredRow]

    def worst(self, n: int) -> list[ScoredRow]:
        """The n most confident mistakes: the errors most worth reading."""
        wrong = [r for r in self.rows if r.wrong]
        return sorted(wrong, key=lambda r: -r.confidence)[:n]


@dataclass
class Evaluation:
    """An evaluation record: what was scored, on which data, with what result."""

    model: str
    data: str
    data_sha256: str
    rows: int
    task: str
    labels: list[str]
    metrics: dict[str, Any]
    confusion: list[list[int]] | None
    errors: list[dict[str, Any]] = field(default_factory=list)
    evaluated_at: str = ""
    seconds: float = 0.0
    plot: str | None = None
    recorded: str | None = None  # the registry key of the record, with --record
    notes: list[str] = field(default_factory=list)  # what was scored differently, and why

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvaluatedModel:
    """A model ready to score: its files and the field mapping it was trained with."""

    name: str
    files: ModelFiles
    data: DataSpec
    registry_ref: str | None = None


def evaluate(
    target: str,
    data_file: str,
    *,
    overrides: Sequence[str] = (),
    registry_uri: str | None = None,
    errors: int = MAX_ERRORS_SHOWN,
    record: bool = False,
    plot_dir: str | Path | None = None,
    shards: int | None = None,
    address: str | None = None,
) -> Evaluation:
    """Score `target` (registry ref or output directory) on the labelled rows of `data_file`.

    `shards`: Ray tasks to spread the rows over (default: one per cluster CPU for files over
    RAY_ROWS rows, else none: loading the model in a task costs more than it saves)."""

    started = time.perf_counter()
    model = resolve_target(target, registry_uri)
    data = apply_data_overrides(model.data, overrides)
    path = Path(data_file)
    rows = read_rows(str(path), data.format, "data file")
    check_task_fields(rows[0], model.files.task, data, path.name)
    data, notes = _slices_in(rows, data)
    examples = normalize(rows, model.files.task, data, path.name)
    scores = _score(model, examples, data, path.name, shards, address)
    result = Evaluation(
        model=model.name,
        data=str(path.resolve()),
        data_sha256=sha256_file(path),
        rows=len(examples),
        task=model.files.task,
        labels=model.files.labels,
        metrics=scores.metrics,
        confusion=scores.confusion,
        errors=[asdict(r) for r in scores.worst(errors)],
        evaluated_at=datetime.now(timezone.utc).isoformat(),
        notes=notes,
    )
    if plot_dir is not None and scores.confusion is not None:
        result.plot = str(confusion_plot(result, Path(plot_dir)))
    result.seconds = time.perf_counter() - started
    if record:
        result.recorded = record_evaluation(model, result, registry_uri)
    return result


def _slices_in(rows: list[dict[str, Any]], data: DataSpec) -> tuple[DataSpec, list[str]]:
    """The model's group field applies only to a file that has it: a model trained with slices
    is still scored on a file written without them (a file where only some rows name their
    group is refused row by row, as in training)."""
    name = data.group_field
    if not name or any(name in row for row in rows):
        return data, []
    note = f"no {name!r} field in the file: no per-slice metrics"
    return data.model_copy(update={"group_field": None}), [note]


def _score(
    model: EvaluatedModel,
    examples: list[dict[str, Any]],
    data: DataSpec,
    where: str,
    shards: int | None,
    address: str | None,
) -> Scores:
    if shards is None:
        shards = 0 if len(examples) > RAY_ROWS else 1
    if shards == 1:
        return score_examples(model.files, examples, data, where)

    with ray_runtime(address):
        shards = shards or max(1, int(cluster_capacity().get("CPU", 1)))
        return score_examples(model.files, examples, data, where, shards)


def resolve_target(target: str, registry_uri: str | None) -> EvaluatedModel:
    """A run's output directory (or the run directory holding `model/`), else a registry ref."""
    directory = Path(target).expanduser()
    if directory.is_dir():
        return _output_model(directory / "model" if (directory / "model").is_dir() else directory)
    if "/" in target or target.startswith("."):
        raise FtrayError(f"{target}: no such directory (give a run's output or NAME:VERSION)")

    registry = Registry.open(registry_uri)
    manifest = registry.resolve(target)
    # Load the version just resolved, not the alias again: one that moved in between would have
    # its files scored (and, with --record, recorded) under the version it left.
    files = version_files(registry, manifest.ref)
    spec = manifest.spec or {}
    return EvaluatedModel(
        name=manifest.ref,
        files=files,
        data=_data_spec(spec),
        registry_ref=manifest.ref,
    )


@dataclass
class Prediction:
    """A model's answers in this process, shaped as the endpoint's `/v1/predict` reply."""

    model: str  # the name:version (or run directory) that answered
    requested: str
    task: str
    outputs: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict(target: str, inputs: Sequence[str], registry_uri: str | None = None) -> Prediction:
    """What `target` (registry ref or run output directory) answers for `inputs`, computed
    here by the loader and task code the endpoint runs: no server, no Ray."""
    model = resolve_target(target, registry_uri)
    outputs = Predictor.from_files(model.files).predict(list(inputs))
    return Prediction(model.name, target, model.files.task, outputs)


def _output_model(directory: Path) -> EvaluatedModel:
    result = ModelResult.read(directory)
    if result is None:
        raise FtrayError(f"{directory}: no ftray_result.json; is this a training output?")
    spec = result.spec
    return EvaluatedModel(str(directory), output_files(directory, result), _data_spec(spec))


def output_files(directory: Path, result: ModelResult) -> ModelFiles:
    """What a loader needs for a training output, from its result summary (task, labels, spec)."""
    record = recorded_strategy(directory, result, None)
    base = None
    if get_strategy(record["kind"]).needs_base and result.model_name:
        base = Path(resolve_model_path(result.model_name))
    temperature = served_temperature(result.metrics)
    return ModelFiles(
        directory, record["kind"], result.task, result.labels, base, record["config"], temperature
    )


def _data_spec(spec: dict[str, Any]) -> DataSpec:
    """The trained-with field mapping; paths and sizes do not matter for scoring."""
    recorded = dict(spec.get("data") or {})
    mapping = {
        k: v
        for k, v in recorded.items()
        if k.endswith("_field") or k in ("format", "layout", "chat")
    }
    return DataSpec(train="-", **mapping)


def apply_data_overrides(data: DataSpec, overrides: Sequence[str]) -> DataSpec:
    """`data.text_field=review` style overrides; only the data section applies to scoring."""

    raw: dict[str, Any] = {"data": data.model_dump()}
    for override in overrides:
        if not override.partition("=")[0].strip().startswith("data."):
            raise FtrayError(f"--set {override!r}: ftray eval takes data.* fields only")
        apply_override(raw, override)
    try:
        return DataSpec.model_validate(raw["data"])
    except Exception as exc:  # pydantic's message, as one line
        raise FtrayError(f"--set: {exc}".splitlines()[0]) from None


def check_task_fields(row: dict[str, Any], task: str, data: DataSpec, where: str) -> None:
    """Refuse data shaped for another task before the per-row errors would say it less clearly."""
    needed = get_task(task).row_fields(row, data)
    missing = [name for name in needed if name not in row]
    if missing:
        present = ", ".join(sorted(row)) or "none"
        raise FtrayError(
            f"{where} row 1: the model is a {task} model and needs field(s) "
            f"{', '.join(repr(m) for m in missing)} (the row has: {present}); "
            "map other names with --set data.<field>_field=NAME"
        )


def score_examples(
    files: ModelFiles,
    examples: list[dict[str, Any]],
    data: DataSpec,
    where: str = "data",
    shards: int = 1,
) -> Scores:
    """Metrics of the model in `files` over `examples` (normalised rows), overall and per slice.

    With `shards` > 1 the rows are split into that many Ray tasks, each loading the model and
    counting its share; the counts are summed, so the metrics are those of the whole file."""
    _check_labels(examples, files, where)
    groups = sorted({e["group"] for e in examples}) if data.group_field else []
    size = -(-len(examples) // max(shards, 1))
    pieces = [(start, examples[start : start + size]) for start in range(0, len(examples), size)]
    if len(pieces) > 1:
        import ray

        task = ray.remote(num_cpus=1)(_score_shard)
        parts = ray.get([task.remote(files, rows, start, data, groups) for start, rows in pieces])
    else:
        parts = [_score_shard(files, examples, 0, data, groups)]
    evaluator, scored = parts[0]
    for other, rows in parts[1:]:
        evaluator.merge(other)
        scored += rows
    return Scores(evaluator.compute(), evaluator.confusion, scored)


def _score_shard(
    files: ModelFiles,
    examples: list[dict[str, Any]],
    offset: int,
    data: DataSpec,
    groups: list[str],
) -> tuple[Evaluator, list[ScoredRow]]:
    """One shard's evaluator counts and per-row outcomes (rows numbered from `offset`)."""
    task = get_task(files.task)
    # The endpoint's model and input limit: a score here is what the endpoint answers, on
    # inputs longer than the training rows too (training's max_length would cut them shorter).
    predictor = Predictor.from_files(files)
    tokenizer = predictor.tokenizer
    features = encode(examples, files.task, tokenizer, files.labels, groups, predictor.max_length)
    evaluator = task.evaluator(files.labels, groups, data.max_slice_gap)
    evaluator.probability_temperature = predictor.calibration_temperature
    collate = Collator(tokenizer.pad_token_id)
    scored: list[ScoredRow] = []
    with torch.no_grad():
        for start in range(0, len(features), BATCH_SIZE):
            batch = collate(features[start : start + BATCH_SIZE])
            logits = predictor.logits(batch).float()
            evaluator.add(logits, batch)
            first_row = offset + start + 1  # rows count from the file's top
            rows = examples[start : start + BATCH_SIZE]
            served = logits / predictor.calibration_temperature  # the endpoint's confidences
            scored += task.scored_rows(files.labels, rows, served, batch["labels"], first_row)
    return evaluator, scored


def _check_labels(examples: list[dict[str, Any]], files: ModelFiles, where: str) -> None:
    task = get_task(files.task)
    if not task.labelled:
        return
    known = set(files.labels)
    for number, example in enumerate(examples, start=1):
        unknown = [v for v in task.example_labels(example) if v not in known]
        if unknown:
            raise FtrayError(
                f"{where} row {number}: label {unknown[0]!r} is not one the model predicts "
                f"({', '.join(files.labels)})"
            )


def confusion_plot(evaluation: Evaluation, directory: Path) -> Path:
    """A confusion-matrix PNG (rows: true label, columns: predicted), counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    counts, labels = evaluation.confusion or [], evaluation.labels
    size = max(3.5, 0.6 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    peak = max((max(r) for r in counts), default=0)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            colour = "white" if value > peak / 2 else "black"
            axes.text(j, i, str(value), ha="center", va="center", color=colour)
    accuracy = evaluation.metrics.get("accuracy", 0.0)
    axes.set_title(f"{evaluation.model}: accuracy {accuracy:.3f} on {evaluation.rows} rows")
    figure.tight_layout()
    path = directory / "confusion_matrix.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def record_evaluation(
    model: EvaluatedModel, evaluation: Evaluation, registry_uri: str | None
) -> str:
    """Append the evaluation to the version's records in the registry (the manifest stays)."""
    if model.registry_ref is None:
        raise FtrayError("--record: only registry versions keep evaluation records")

    record = {k: v for k, v in evaluation.to_dict().items() if k not in ("plot", "recorded")}
    return Registry.open(registry_uri).record_evaluation(model.registry_ref, record)
