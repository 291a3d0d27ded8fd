"""`ftray data check`: what is wrong with a job's data before it costs a training run.

Label balance, exact duplicates (and duplicates that disagree on their label: noise), leakage of
validation examples into training, group balance for slice metrics, malformed BIO sequences, and
splits too small to learn from or to measure on. Then what makes a validation score lie about new
text (`ftray.textchecks`): near duplicates across splits, shortcut phrases, template-made data,
and, for NER, entities the held-out splits share verbatim with train. Each finding is ok, warn or
fail, and says what it means and what to do.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ftray import textchecks
from ftray.data import Splits, load_splits
from ftray.metrics import bio_spans
from ftray.spec import DataChecksSpec, JobSpec
from ftray.tasks import Task, get_task

MIN_TRAIN = 100  # below this a fine-tune mostly memorises
MIN_PER_CLASS = 10
MIN_VALIDATION = 50  # below this one example moves accuracy by 2 points
MIN_SLICE = 20
MINORITY_SHARE = 0.1


@dataclass
class Finding:
    check: str
    level: str  # "ok", "warn" or "fail"
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataReport:
    findings: list[Finding]
    train_examples: int
    validation_examples: int
    labels: list[str]
    groups: list[str]
    test_examples: int = 0

    @property
    def failed(self) -> bool:
        return any(f.level == "fail" for f in self.findings)

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level != "ok"]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed}


def check_data(spec: JobSpec, splits: Splits | None = None) -> DataReport:
    splits = splits or load_splits(spec)
    task, limits = get_task(spec.model.task), spec.data.checks
    findings = [_sizes(splits)]
    findings += [TASK_CHECKS[name](splits, limits) for name in task.structure_checks]
    findings += [_duplicates(splits, task), _leakage(splits, task)]
    if splits.groups:
        findings.append(_group_balance(splits))
    findings += [_near_duplicates(splits, task, limits), _diversity(splits, task, limits)]
    findings += [TASK_CHECKS[name](splits, limits) for name in task.content_checks]
    return DataReport(
        findings,
        splits.train_rows,
        len(splits.validation),
        splits.labels,
        splits.groups,
        len(splits.test),
    )


def _held_out(splits: Splits) -> dict[str, list[dict]]:
    return {
        name: rows
        for name, rows in (("validation", splits.validation), ("test", splits.test))
        if rows
    }


def _near_duplicates(splits: Splits, task: Task, limits: DataChecksSpec) -> Finding:
    train = [task.text(e) for e in splits.train]
    threshold = limits.near_duplicate_jaccard
    results = {
        name: textchecks.near_duplicates(train, [task.text(e) for e in rows], threshold)
        for name, rows in _held_out(splits).items()
    }
    details = {
        name: {"share": r.share, "rows": r.count, "examples": r.examples}
        for name, r in results.items()
    }
    shares = ", ".join(f"{100 * r.share:.0f}% of {name}" for name, r in results.items())
    flagged = [name for name, r in results.items() if r.share > limits.near_duplicate_max_share]
    if flagged:
        return Finding(
            "near_duplicates",
            "warn",
            f"{shares} rows have a train row with Jaccard >= {threshold} — {' and '.join(flagged)}"
            " scores will overstate quality on new text; hold out text written apart from the "
            "training data (data.test)",
            details,
        )
    return Finding(
        "near_duplicates",
        "ok",
        f"near duplicates of train (Jaccard >= {threshold}): {shares}",
        details,
    )


def _shortcuts(splits: Splits, limits: DataChecksSpec) -> Finding:
    found = textchecks.shortcuts(
        [e["text"] for e in splits.train],
        [e["label"] for e in splits.train],
        {name: [e["text"] for e in rows] for name, rows in _held_out(splits).items()},
        limits.shortcut_precision,
        limits.shortcut_min_coverage,
    )
    details = {
        "train_share": found.train_share,
        "held_out_share": found.held_out_share,
        "phrases": [vars(s) for s in found.phrases[:20]],
    }
    listed = "; ".join(
        f"'{s.phrase}' -> {s.label} (precision {s.precision:.2f}, in {100 * s.coverage:.1f}% "
        "of train)"
        for s in found.phrases[:3]
    )
    held = ", ".join(f"{100 * v:.0f}% of {k}" for k, v in found.held_out_share.items())
    shares = [found.train_share, *found.held_out_share.values()]
    if max(shares) > limits.shortcut_max_share:
        return Finding(
            "shortcuts",
            "warn",
            f"{len(found.phrases)} phrases alone predict the label: {listed}; they occur in "
            f"{100 * found.train_share:.0f}% of train and {held} rows — a model can learn the "
            "phrases instead of the task, and held-out rows that share them score it too "
            "kindly; vary the wording or add rows where the phrases carry the other label",
            details,
        )
    return Finding(
        "shortcuts",
        "ok",
        f"{len(found.phrases)} shortcut phrases; in {100 * found.train_share:.0f}% of train"
        + (f", {held} rows" if held else ""),
        details,
    )


def _diversity(splits: Splits, task: Task, limits: DataChecksSpec) -> Finding:
    result = textchecks.diversity([task.text(e) for e in splits.train])
    details: dict[str, Any] = vars(result)
    details.update(task.diversity_details(splits.train))
    summary = (
        f"{100 * result.distinct_trigram_share:.0f}% distinct word 3-grams; "
        f"{100 * result.template_share:.0f}% of train rows differ from another row in "
        f"{textchecks.SLOT_WORDS} words or fewer"
    )
    if "distinct_tag_sequence_share" in details:
        summary += f"; {100 * details['distinct_tag_sequence_share']:.0f}% distinct tag sequences"
    low = (
        result.template_share > limits.template_max_share
        or result.distinct_trigram_share < limits.min_distinct_trigram_share
    )
    if low:
        return Finding(
            "diversity",
            "warn",
            f"low diversity: {summary}, e.g. '{result.example[0]}' and '{result.example[1]}' — "
            "the model may learn the templates; measure it on text written apart from them "
            "(data.test)",
            details,
        )
    return Finding("diversity", "ok", summary, details)


def _entity_surfaces(examples: list[dict]) -> list[str]:

    return [
        f"{kind}:{' '.join(e['tokens'][a:b]).lower()}"
        for e in examples
        for kind, a, b in bio_spans(e["tags"])
    ]


def _entity_overlap(splits: Splits, limits: DataChecksSpec) -> Finding:
    train = set(_entity_surfaces(splits.train))
    results = {
        name: textchecks.entity_overlap(train, _entity_surfaces(rows))
        for name, rows in _held_out(splits).items()
    }
    details = {name: vars(r) for name, r in results.items()}
    shares = ", ".join(
        f"{100 * r.share:.0f}% of {r.entities} {name} entities" for name, r in results.items()
    )
    flagged = [n for n, r in results.items() if r.share > limits.entity_overlap_max_share]
    if flagged:
        return Finding(
            "entity_overlap",
            "warn",
            f"{shares} appear verbatim as entities in train — {' and '.join(flagged)} "
            "scores reward memorised names; hold out names the model never saw",
            details,
        )
    return Finding("entity_overlap", "ok", f"seen in train: {shares}", details)


# Joins an example's parts (a prompt and its completion) in its key. Not whitespace (as the ASCII
# unit separator \x1f is, to Python's regular expressions): the key's whitespace is collapsed.
PART_SEPARATOR = "\u241f"


def _key(example: dict, task: Task) -> str:
    """What makes two examples 'the same': their input, case- and whitespace-insensitive."""
    return re.sub(r"\s+", " ", task.text(example, PART_SEPARATOR).strip().lower())


def _sizes(splits: Splits) -> Finding:
    train, validation = splits.train_rows, len(splits.validation)
    details = {"train": train, "validation": validation}
    if splits.stream:  # the checks below see only this sample of a streamed set
        details["train_checked"] = len(splits.train)
        message = f"{splits.train_size('these checks read')}, {validation} validation examples"
        return Finding("split_sizes", "ok", message, details)
    if train < MIN_TRAIN or validation < MIN_VALIDATION:
        return Finding(
            "split_sizes",
            "warn",
            f"small splits: {train} train (want >= {MIN_TRAIN}), {validation} validation "
            f"(want >= {MIN_VALIDATION}); metrics will be noisy",
            details,
        )
    return Finding("split_sizes", "ok", f"{train} train, {validation} validation examples", details)


def _label_balance(splits: Splits) -> Finding:
    counts = Counter(e["label"] for e in splits.train)
    validation = Counter(e["label"] for e in splits.validation)
    details = {"train": dict(counts), "validation": dict(validation)}
    absent = [label for label in splits.labels if counts[label] == 0]
    if absent:
        return Finding(
            "label_balance", "fail", f"no training examples for {', '.join(absent)}", details
        )
    total = sum(counts.values())
    rare = [label for label in splits.labels if counts[label] / total < MINORITY_SHARE]
    few = [label for label in splits.labels if counts[label] < MIN_PER_CLASS]
    unmeasured = [label for label in splits.labels if validation[label] == 0]
    problems = []
    if rare:
        shares = ", ".join(f"{label} {100 * counts[label] / total:.1f}%" for label in rare)
        problems.append(f"imbalanced: {shares} of train")
    if few:
        problems.append(f"fewer than {MIN_PER_CLASS} examples: {', '.join(few)}")
    if unmeasured:
        problems.append(f"absent from validation: {', '.join(unmeasured)}")
    if problems:
        return Finding("label_balance", "warn", "; ".join(problems), details)
    majority = max(counts.values()) / total
    return Finding(
        "label_balance",
        "ok",
        f"{len(counts)} labels, majority class {100 * majority:.1f}%",
        details,
    )


def _bio_validity(splits: Splits) -> Finding:
    broken = 0
    for example in splits.train:
        previous = "O"
        for tag in example["tags"]:
            prefix, _, kind = tag.partition("-")
            if prefix == "I" and previous.partition("-")[2] != kind:
                broken += 1
                break
            previous = tag
    if broken:
        return Finding(
            "bio_tags",
            "warn",
            f"{broken} training sentences have an I- tag that starts an entity",
            {"sentences": broken},
        )
    return Finding("bio_tags", "ok", "every entity starts with a B- tag")


def _duplicates(splits: Splits, task: Task) -> Finding:
    targets: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    for example in splits.train:
        key = _key(example, task)
        counts[key] += 1
        targets[key].add(task.target(example))
    repeated = sum(n - 1 for n in counts.values() if n > 1)
    conflicting = [key for key, seen in targets.items() if len(seen) > 1]
    details = {"duplicates": repeated, "conflicting": len(conflicting), "examples": conflicting[:5]}
    if conflicting:
        return Finding(
            "duplicates",
            "warn",
            f"noisy labels: {len(conflicting)} inputs appear with different labels; "
            f"{repeated} exact duplicates in train",
            details,
        )
    if repeated:
        share = repeated / len(splits.train)
        return Finding(
            "duplicates",
            "warn",
            f"{repeated} exact duplicates in train ({100 * share:.1f}%)",
            details,
        )
    return Finding("duplicates", "ok", "no duplicates in train", details)


def _leakage(splits: Splits, task: Task) -> Finding:
    train_keys = {_key(e, task) for e in splits.train}
    leaked = [e for e in splits.validation if _key(e, task) in train_keys]
    share = len(leaked) / len(splits.validation)
    details = {"leaked": len(leaked), "share": share}
    if leaked:
        return Finding(
            "leakage",
            "warn",
            f"{len(leaked)} validation examples ({100 * share:.1f}%) also appear in train; "
            "validation metrics overstate quality",
            details,
        )
    return Finding("leakage", "ok", "no validation example appears in train", details)


def _group_balance(splits: Splits) -> Finding:
    train = Counter(e["group"] for e in splits.train)
    validation = Counter(e["group"] for e in splits.validation)
    details = {"train": dict(train), "validation": dict(validation)}
    total = sum(train.values())
    problems = []
    missing = [g for g in splits.groups if train[g] == 0]
    if missing:
        problems.append(f"absent from train: {', '.join(missing)}")
    thin = [g for g in splits.groups if validation[g] < MIN_SLICE]
    if thin:
        problems.append(
            f"under {MIN_SLICE} validation examples (slice metrics unreliable): {', '.join(thin)}"
        )
    rare = [g for g in splits.groups if 0 < train[g] / total < MINORITY_SHARE / 2]
    if rare:
        problems.append(f"under {100 * MINORITY_SHARE / 2:.0f}% of train: {', '.join(rare)}")
    if problems:
        return Finding("group_balance", "warn", "; ".join(problems), details)
    return Finding(
        "group_balance", "ok", f"{len(splits.groups)} groups, each well represented", details
    )


# The task-specific checks a task asks for by name (`Task.structure_checks`, `content_checks`).
TASK_CHECKS: dict[str, Callable[[Splits, DataChecksSpec], Finding]] = {
    "label_balance": lambda splits, limits: _label_balance(splits),
    "bio_validity": lambda splits, limits: _bio_validity(splits),
    "shortcuts": _shortcuts,
    "entity_overlap": _entity_overlap,
}
