"""`ftray compare`: bad input before any trial, and a real small comparison on Ray whose three
output files agree with each other and with the trials' own results."""

import json
from pathlib import Path

import pytest
from conftest import make_spec, sentiment_raw

from ftray import storage
from ftray.checkpointing import EVAL_FILE, MODEL_DIR
from ftray.compare import compare, comparison_spec, majority_baseline
from ftray.data import load_splits
from ftray.errors import FtrayError
from ftray.runs import best_exported_checkpoint
from ftray.runtime import ray_runtime


@pytest.mark.parametrize(
    ("strategies", "fractions", "message"),
    [
        (
            ["full", "magic"],
            [1.0],
            "--strategies: 'magic' is not one of adapter, full, partial, prompt",
        ),
        (["full"], [0.5, 1.5], "--fractions: 1.5 is outside (0, 1]"),
        (["full"], [0.0], "--fractions: 0.0 is outside (0, 1]"),
        (
            ["full"],
            [0.0001],
            "--fractions: 0.0001: data.fraction: 0.0001 leaves the train split empty",
        ),
        ([], [1.0], "need at least one value"),
    ],
)
def test_bad_comparisons_fail_before_any_trial(tmp_path, tiny_bert, strategies, fractions, message):
    with pytest.raises(FtrayError) as caught:
        comparison_spec(make_spec(sentiment_raw(tiny_bert), tmp_path), strategies, fractions)
    assert message in str(caught.value)


def test_the_grid_uses_each_strategy_default_learning_rate(tmp_path, tiny_bert):
    grid = comparison_spec(
        make_spec(sentiment_raw(tiny_bert), tmp_path), ["full", "prompt"], [0.5, 1.0]
    )
    assert grid.train.learning_rate is None and grid.tune.searcher == "grid"
    assert grid.tune.search_space == {
        "strategy.kind": {"grid": ["full", "prompt"]},
        "data.fraction": {"grid": [0.5, 1.0]},
    }
    splits = load_splits(grid)
    majority = max(sum(e["label"] == label for e in splits.train) for label in splits.labels)
    share = majority_baseline(grid.model.task, splits)
    assert 0.5 <= share <= 0.6 and majority > 0


@pytest.mark.slow
def test_a_small_comparison_writes_three_agreeing_files(tmp_path, tiny_bert):
    raw = sentiment_raw(
        tiny_bert, scaling={"num_workers": 1}, train={"epochs": 1, "batch_size": 64}
    )
    # The validation file again as the test split: scored on the driver by `ftray eval`'s code,
    # each row's test accuracy must equal the validation accuracy the trial reported.
    raw["data"]["test"] = raw["data"]["validation"]
    spec = make_spec(raw, tmp_path)
    with ray_runtime():
        report = compare(spec, ["full", "adapter"], [0.5], out=tmp_path / "out", progress=False)

    out = tmp_path / "out"
    stored = json.loads((out / "compare.json").read_text())
    assert stored["rows"] == [row.model_dump(mode="json") for row in report.rows]
    # Two trials, one wave on two CPUs; half the training set each (the fraction path).
    assert [(r["strategy"], r["fraction"]) for r in stored["rows"]] == [
        ("full", 0.5),
        ("adapter", 0.5),
    ]
    markdown = (out / "compare.md").read_text()
    experiment = Path(spec.checkpoint.storage_path) / report.experiment
    for row in stored["rows"]:
        # The row is the trial's own best evaluation...
        checkpoint = best_exported_checkpoint(str(experiment / "trials" / f"trial-{row['trial']}"))
        evaluation = json.loads(storage.read_text(storage.join(checkpoint, MODEL_DIR, EVAL_FILE)))
        assert row["accuracy"] == evaluation["accuracy"] and row["f1"] == evaluation["f1"]
        assert row["test_accuracy"] == pytest.approx(row["accuracy"], abs=1e-9)
        assert row["train_val_gap"] == pytest.approx(
            evaluation["train_accuracy"] - evaluation["accuracy"]
        )
        # ...and the markdown says the same.
        line = next(
            text
            for text in markdown.splitlines()
            if text.startswith(f"| {row['strategy']} | {row['fraction']:g} |")
        )
        assert f"{row['accuracy']:.4f}" in line and f"{row['f1']:.4f}" in line
        assert line.rstrip(" |").endswith(f"{row['test_accuracy']:.4f}")
        # Half of the 1,600 training rows at 64 a step: 13 steps (the whole set takes 25).
        assert 0 < row["best_step"] <= 13
        assert row["peak_memory_mb"] > 0 and row["samples_per_second"] > 0 and row["wall_s"] > 0
    full = [r for r in stored["rows"] if r["strategy"] == "full"]
    adapter = [r for r in stored["rows"] if r["strategy"] == "adapter"]
    assert full[0]["trainable_params"] > adapter[0]["trainable_params"]
    assert full[0]["artefact_bytes"] > adapter[0]["artefact_bytes"]
    assert f"majority-class baseline scores {stored['majority_baseline']:.4f}" in markdown
    png = (out / "compare.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
