"""`ftray data check`: what is wrong with a job's data before it costs a training run.

Label balance, exact duplicates (and duplicates that disagree on their label: noise), leakage of
validation examples into training, group balance for slice metrics, malformed BIO sequences, and
splits too small to learn from or to measure on. Each finding is ok, warn or fail.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from ftray.data import Splits, load_splits
from ftray.spec import JobSpec

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

    @property
    def failed(self) -> bool:
        return any(f.level == "fail" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed}


def check_data(spec: JobSpec) -> DataReport:
    splits = load_splits(spec)
    task = spec.model.task
    findings = [_sizes(splits)]
    if task == "sequence-classification":
        findings.append(_label_balance(splits))
    if task == "token-classification":
        findings.append(_bio_validity(splits))
    findings += [_duplicates(splits, task), _leakage(splits, task)]
    if splits.groups:
        findings.append(_group_balance(splits))
    return DataReport(
        findings, len(splits.train), len(splits.validation), splits.labels, splits.groups
    )


def _key(example: dict, task: str) -> str:
    """What makes two examples 'the same': their input, case- and whitespace-insensitive."""
    if task == "sequence-classification":
        text = example["text"]
    elif task == "token-classification":
        text = " ".join(example["tokens"])
    else:
        text = example["prompt"] + "\x1f" + example["completion"]
    return re.sub(r"\s+", " ", text.strip().lower())


def _target(example: dict, task: str) -> str:
    return (
        example["label"] if task == "sequence-classification" else " ".join(example.get("tags", []))
    )


def _sizes(splits: Splits) -> Finding:
    train, validation = len(splits.train), len(splits.validation)
    details = {"train": train, "validation": validation}
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


def _duplicates(splits: Splits, task: str) -> Finding:
    targets: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    for example in splits.train:
        key = _key(example, task)
        counts[key] += 1
        targets[key].add(_target(example, task))
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


def _leakage(splits: Splits, task: str) -> Finding:
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
