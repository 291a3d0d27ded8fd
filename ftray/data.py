"""Reading training data: files to checked examples, labels, groups and the validation split.

Examples are plain dicts with task-specific keys (each task's `read_example`), so the same data
flows to the tokenizer, to the data checks and to the tests. Every problem is reported with the
spec field, the file and the 1-based row that caused it.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftray import sources, storage
from ftray.errors import FtrayError
from ftray.fields import label_value
from ftray.sources import FORMATS, Source
from ftray.spec import DataSpec, JobSpec
from ftray.tasks import get_task


@dataclass(frozen=True)
class TrainStream:
    """A training set too large or too remote to read whole: Ray Data streams it to the
    workers, and the driver holds only `Splits.train`, a sample of its first rows."""

    source: Source
    rows: int  # all of it
    exact: bool  # counted (Parquet metadata) or estimated from bytes (JSONL, CSV)


@dataclass
class Splits:
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    test: list[dict[str, Any]] = field(default_factory=list)  # scored once, never for selection
    labels: list[str] = field(default_factory=list)  # class names or BIO tags; empty for causal-lm
    groups: list[str] = field(default_factory=list)  # slice names when data.group_field is set
    stream: TrainStream | None = None  # set when `train` holds only a sample of a streamed set

    @property
    def train_rows(self) -> int:
        return self.stream.rows if self.stream else len(self.train)

    def train_size(self, checks: str) -> str:
        """The training set's size for people: a streamed one's count says whether it was
        estimated, and what `checks` read of it (the sample in `train`)."""
        if self.stream is None:
            return f"{len(self.train)} train"
        about = "" if self.stream.exact else "about "
        return f"{about}{self.stream.rows} train (streamed; {checks} its first {len(self.train)})"


def read_rows(path: str, fmt: str = "auto", what: str = "data.train") -> list[dict[str, Any]]:
    """All rows of a JSONL, CSV or Parquet file, or of a directory, glob or s3:// URI of them."""
    if not _plain_path(path):
        rows = sources.resolve(path, fmt, what).read_all()
        if not rows:
            raise FtrayError(f"{what}: {path} has no rows")
        return rows
    file = Path(path)
    if fmt == "auto":
        fmt = FORMATS.get(file.suffix.lower(), "")
        if not fmt:
            raise FtrayError(
                f"{what}: cannot tell the format of {file.name}; "
                "use a .jsonl, .csv or .parquet file or set data.format"
            )
    try:
        rows = _read_format(file, fmt, what)
    except FileNotFoundError:
        raise FtrayError(f"{what}: file not found: {path}") from None
    except (OSError, ValueError) as exc:  # a directory, a name too long, bytes that are not UTF-8
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise FtrayError(f"{what}: cannot read {file.name[:80]}: {reason}") from None
    if not rows:
        raise FtrayError(f"{what}: {path} has no rows")
    return rows


def _plain_path(path: str) -> bool:
    """A local path that is not a directory or a glob: read here, with row-exact messages."""
    return (
        "://" not in path
        and not any(c in path for c in "*?[")
        and not storage.is_directory(Path(path).expanduser())
    )


def _read_format(file: Path, fmt: str, what: str) -> list[dict[str, Any]]:
    if not file.is_file():
        raise FileNotFoundError(file)
    if fmt == "jsonl":
        return _read_jsonl(file, what)
    if fmt == "csv":
        with file.open(newline="", encoding="utf-8-sig") as handle:  # a BOM: Excel, Notepad
            return list(csv.DictReader(handle))
    import pyarrow.parquet as pq

    try:
        return pq.read_table(file).to_pylist()
    except Exception as exc:
        raise FtrayError(f"{what}: {file.name} is not a readable Parquet file: {exc}") from None


def _read_jsonl(file: Path, what: str) -> list[dict[str, Any]]:
    rows = []
    with file.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FtrayError(
                    f"{what}: {file.name} line {number}: invalid JSON: {exc.msg}"
                ) from None
            if not isinstance(row, dict):
                raise FtrayError(f"{what}: {file.name} line {number}: expected a JSON object")
            rows.append(row)
    return rows


def normalize(rows: list[dict[str, Any]], task: str, data: DataSpec, where: str) -> list[dict]:
    """The task's fields of every row, checked (`Task.read_example`), plus "group" when
    data.group_field is set."""
    plugin = get_task(task)
    examples = []
    for number, row in enumerate(rows, start=1):
        at = f"{where} row {number}"
        example = plugin.read_example(row, data, at)
        if data.group_field:
            example["group"] = label_value(row, data.group_field, at)
        examples.append(example)
    return examples


def resolve_labels(
    spec: JobSpec, train: list[dict], validation: list[dict], test: Sequence[dict] = ()
) -> list[str]:
    """The declared label list, checked against the data, or the labels seen in training data."""
    task = get_task(spec.model.task)
    if not task.labelled:
        return []
    declared = spec.model.labels
    if declared is None:
        labels = task.order_labels({v for example in train for v in task.example_labels(example)})
    else:
        labels = list(declared)
    known = set(labels)
    for split, examples in (("train", train), ("validation", validation), ("test", test)):
        for number, example in enumerate(examples, start=1):
            unknown = [v for v in task.example_labels(example) if v not in known]
            if unknown:
                source = "model.labels" if declared is not None else "the training labels"
                raise FtrayError(
                    f"data.{split} example {number}: label {unknown[0]!r} is not in {source} "
                    f"({', '.join(labels)})"
                )
    return labels


def stratified_split(
    examples: list[dict], fraction: float, seed: int, key: str | None
) -> tuple[list[dict], list[dict]]:
    """Split off `fraction` of the examples, per label when `key` is given; seeded and stable."""
    rng = random.Random(seed)
    strata: dict[Any, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        strata[example[key] if key else None].append(index)
    held_out: set[int] = set()
    for indices in strata.values():
        rng.shuffle(indices)
        held_out.update(indices[: round(len(indices) * fraction)])
    kept = [e for i, e in enumerate(examples) if i not in held_out]
    taken = [e for i, e in enumerate(examples) if i in held_out]
    return kept, taken


def load_splits(spec: JobSpec) -> Splits:
    """Train and validation examples with their label and group lists, ready for encoding."""
    data, task = spec.data, spec.model.task
    stream = train_stream(data)
    if stream:
        sample = stream.source.head(sources.SAMPLE_ROWS)
        train = normalize(sample, task, data, "data.train")
    else:
        rows = read_rows(data.train, data.format, "data.train")
        train = normalize(rows, task, data, "data.train")
    stratify = get_task(task).stratify_by
    test: list[dict] = []
    if data.test:
        test = normalize(read_rows(data.test, data.format, "data.test"), task, data, "data.test")
    elif data.test_split > 0:
        # Split off first (with a seed of its own), so test rows reach neither validation nor train.
        train, test = stratified_split(train, data.test_split, data.seed + 1, stratify)
        if not test:
            raise FtrayError(
                f"data.test_split: {data.test_split} of {len(train)} examples leaves the "
                "test split empty; add data or set data.test"
            )
    if data.validation:
        rows = read_rows(data.validation, data.format, "data.validation")
        validation = normalize(rows, task, data, "data.validation")
    else:
        train, validation = stratified_split(train, data.validation_split, data.seed, stratify)
        if not validation:
            raise FtrayError(
                f"data.validation_split: {data.validation_split} of {len(train)} examples "
                "leaves the validation split empty; add data or set data.validation"
            )
    if data.fraction < 1:
        _, train = stratified_split(train, data.fraction, data.seed, stratify)
        if not train:
            raise FtrayError(f"data.fraction: {data.fraction} leaves the train split empty")
    labels = resolve_labels(spec, train, validation, test)
    groups = sorted({e["group"] for e in train + validation + test}) if data.group_field else []
    return Splits(train, validation, test, labels, groups, stream)


def train_stream(data: DataSpec) -> TrainStream | None:
    """The streamed training set, or None when `data.train` is read into memory."""
    if _plain_path(data.train) and data.streaming is not True:
        return None
    source = sources.resolve(data.train, data.format, "data.train")
    if not sources.streams(source, data.streaming):
        return None
    # These need the whole set in hand; a stream has only its first rows on the driver.
    if not data.validation:
        raise FtrayError("data.validation: a streamed training set needs its own validation file")
    if data.test_split:
        raise FtrayError("data.test_split: a streamed training set needs data.test instead")
    if data.fraction < 1:
        raise FtrayError("data.fraction: cannot subsample a streamed training set")
    rows, exact = source.count_rows()
    return TrainStream(source, rows, exact)
