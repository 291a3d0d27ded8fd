"""The typed results layers hand each other, and the JSON files they are kept in.

- `ModelResult`: what `ftray_result.json` beside an exported model says. `ftray train` writes it
  for its run, `ftray tune` for its winner (with the trial's `config`); registration, `ftray
  eval` and the CLI read it. One schema, read back as a model, never with `.get`.
- `TrialRow`: one row of a tuning leaderboard (also a comparison's raw row).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RESULT_FILE = "ftray_result.json"
TUNE_RESULT = "tune_result.json"
MODEL_CARD = "MODEL_CARD.md"  # beside a model, and a blob of its registered version
README = "README.md"


def card_as_readme(directory: Path) -> None:
    """A model's card also as README.md, where model hubs and people look (a README the
    model carries itself is kept)."""
    card, readme = directory / MODEL_CARD, directory / README
    if card.exists() and not readme.exists():
        shutil.copyfile(card, readme)


class Timings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    startup_s: float | None = None
    step_time_s: float | None = None
    samples_per_second: float | None = None  # examples, or packed rows under train.packing
    tokens_per_second: float | None = None  # real (non-padding) tokens, all workers
    plan_s: float | None = None
    total_s: float | None = None


class ModelResult(BaseModel):
    # Files written by a newer ftray may carry more; an older reader keeps what it knows.
    model_config = ConfigDict(extra="ignore")

    run: str | None = None  # None in results written by hand for a model trained elsewhere
    run_dir: str | None = None
    task: str
    strategy: str
    labels: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)  # validation: what chose the model
    test_metrics: dict[str, Any] = Field(default_factory=dict)  # the held-out test split
    test_examples: int = 0
    spec: dict[str, Any] = Field(default_factory=dict)  # the job spec as trained (JSON)
    output_dir: str | None = None
    registered: dict[str, Any] | None = None  # {"ref", "aliases", "registry", ...}
    tracking: dict[str, dict[str, str]] | None = None  # tracker -> the run's ids and URLs
    # A training run's course (absent for a tune winner, whose trial ran it):
    metric: str | None = None
    mode: str | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    epochs_run: float | None = None
    stopped_early: bool = False
    resumed_from: dict[str, Any] | None = None
    worker_nodes: list[str] | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    trainable_pct: float | None = None
    groups: list[str] = Field(default_factory=list)
    train_examples: int | None = None
    validation_examples: int | None = None
    timings: Timings = Field(default_factory=Timings)
    # A tune winner's trial configuration:
    config: dict[str, Any] | None = None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / RESULT_FILE
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, directory: str | Path) -> ModelResult | None:
        """The result beside a model directory; None for a directory ftray did not write."""
        path = Path(directory) / RESULT_FILE
        return cls.model_validate_json(path.read_text()) if path.exists() else None

    @property
    def model_name(self) -> str | None:
        """The base model the run fine-tuned (as the spec named it)."""
        return (self.spec.get("model") or {}).get("name")


class TrialRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trial: str
    config: dict[str, Any]
    strategy: str | None
    best: float | None  # the trial's best value of the tuned metric
    epochs: float
    steps: int
    evaluations: int
    stopped: str  # completed | early stopping | scheduler | error
    wall_s: float | None
    error: str | None
    history: list[dict[str, Any]] = Field(default_factory=list)  # each evaluation, as a run's


class TuneWinner(BaseModel):
    """The best trial's model, exported (and scored on the test split when there is one)."""

    model_config = ConfigDict(extra="forbid")
    trial: str
    config: dict[str, Any]
    metric: float | None  # its best value of the tuned metric
    output_dir: str
    metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None = None


class TuneResult(BaseModel):
    """What `ftray tune` returns and writes as tune_result.json."""

    model_config = ConfigDict(extra="forbid")
    experiment: str
    experiment_dir: str
    metric: str
    mode: str
    scheduler: dict[str, Any]
    searcher: str
    max_t: int
    trials: int
    stopped_by_scheduler: int
    trial_epochs: float
    evaluations: int
    leaderboard: list[TrialRow]
    best: TuneWinner | None = None
    registered: dict[str, Any] | None = None
    wall_s: float = 0.0


class ComparisonRow(BaseModel):
    """One strategy at one data fraction in `ftray compare`: its best trial's cost and quality."""

    model_config = ConfigDict(extra="forbid")
    strategy: str
    fraction: float
    trial: str
    trainable_params: int
    trainable_pct: float
    wall_s: float | None
    train_s: float | None = None
    samples_per_second: float | None = None
    peak_memory_mb: float | None = None
    artefact_bytes: int
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    perplexity: float | None = None
    worst_slice: str | None = None
    worst_slice_f1: float | None = None
    slice_gap: float | None = None
    train_val_gap: float | None = None
    epochs: float
    best_step: int | None = None
    config: dict[str, Any]
    # The held-out test split, scored once on the row's chosen model (when there is one):
    test_accuracy: float | None = None
    test_f1: float | None = None
    test_perplexity: float | None = None

    def score(self, metric: str) -> float | None:
        """A quality column by name (the task's headline metric, or its test_ twin)."""
        return getattr(self, metric, None)


class ComparisonReport(BaseModel):
    """What `ftray compare` returns and writes as compare.json."""

    model_config = ConfigDict(extra="forbid")
    experiment: str
    task: str
    metric: str
    strategies: list[str]
    fractions: list[float]
    majority_baseline: float | None
    rows: list[ComparisonRow]
    failed: list[dict[str, Any]]
    wall_s: float
    registered: list[dict[str, Any]] | None = None
    out: str | None = None
