"""`ftray tune` on a real local Ray: ASHA over two strategies with the winner registered and
loaded back, and an experiment whose driver is killed finished by --resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, make_spec, sentiment_raw

from ftray.inference import Predictor
from ftray.runtime import ray_runtime
from ftray.tune import TRIALS_DIR, tune
from registry import BlobCache, Registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    with ray_runtime():
        yield


def tiny_tune_raw(tiny_bert, tmp_path, **tune_section):
    raw = sentiment_raw(
        tiny_bert,
        strategy={"kind": "full"},
        scaling={"num_workers": 1},
        train={"epochs": 4, "batch_size": 64},
    )
    raw["checkpoint"] = {"storage_path": str(tmp_path / "runs")}
    raw["tune"] = tune_section
    return raw


def test_asha_over_two_strategies_registers_a_winner_that_predicts(tmp_path, tiny_bert):
    raw = tiny_tune_raw(
        tiny_bert,
        tmp_path,
        num_samples=3,
        seed=1,
        max_concurrent_trials=2,
        # val_loss rather than f1: the tiny model's f1 plateaus in ties, which ASHA never cuts.
        metric="val_loss",
        search_space={
            "strategy.kind": {"grid": ["full", "adapter"]},
            "train.learning_rate": {"loguniform": [1e-4, 2e-2]},
        },
        scheduler={"kind": "asha", "grace_period": 1, "reduction_factor": 2},
    )
    raw["registry"] = {
        "uri": str(tmp_path / "registry"),
        "register_as": "tuned",
        "aliases": ["candidate"],
    }
    raw["data"]["test"] = raw["data"]["validation"]  # scored once, on the winner only
    result = tune(make_spec(raw), progress=False)

    rows = result.leaderboard
    assert len(rows) == 6 and {row.strategy for row in rows} == {"full", "adapter"}
    assert result.max_t == 4
    stopped = [row for row in rows if row.stopped == "scheduler"]
    assert stopped, rows
    assert all(row.evaluations < result.max_t for row in stopped)
    assert any(row.steps < 4 * 25 for row in stopped)  # stopped for real: compute was saved
    assert result.stopped_by_scheduler == len(stopped)
    assert rows[0].best == min(row.best for row in rows if row.best is not None), rows

    assert result.registered["ref"] == "tuned:1"
    registry = Registry.open(str(tmp_path / "registry"), BlobCache(tmp_path / "cache"))
    manifest = registry.resolve("tuned@candidate")
    assert manifest.lineage["experiment"] == result.experiment
    # Same data as validation, so the test metrics repeat the winner's validation metrics.
    assert manifest.test_metrics["val_loss"] == pytest.approx(result.best.metrics["val_loss"])
    assert result.best.test_metrics["accuracy"] == pytest.approx(
        result.best.metrics["accuracy"], abs=1e-9
    )
    assert (
        manifest.lineage["trial"] == rows[0].trial and manifest.lineage["config"] == rows[0].config
    )
    assert manifest.kind == rows[0].strategy and manifest.metrics["val_loss"] == pytest.approx(
        rows[0].best
    )
    answers = Predictor.from_registry(registry, "tuned@candidate").predict(
        ["The kettle is superb."]
    )
    assert answers[0]["label"] in ("negative", "positive")
    stored = json.loads((Path(result.experiment_dir) / "tune_result.json").read_text())
    assert stored["leaderboard"] == [row.model_dump(mode="json") for row in rows]


def trial_checkpoints(experiment: Path) -> dict[str, list[str]]:
    return {
        run.name: sorted(p.name for p in run.glob("checkpoint_*"))
        for run in sorted((experiment / TRIALS_DIR).glob("trial-*"))
    }


# A trial's last checkpoint in the killed-driver test: 2 epochs of 25 steps.
LAST_CHECKPOINT = "checkpoint_00000050"


def test_a_killed_tune_driver_is_finished_by_resume_without_rerunning_finished_trials(
    tmp_path, tiny_bert
):
    raw = tiny_tune_raw(
        tiny_bert,
        tmp_path,
        # Two trials: the driver dies in the second, after the first has finished.
        num_samples=2,
        seed=2,
        max_concurrent_trials=1,
        search_space={"train.learning_rate": {"loguniform": [1e-3, 1e-2]}},
        scheduler={"kind": "fifo"},
    )
    raw["train"]["epochs"] = 2
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps(raw))
    driver = subprocess.Popen(
        [sys.executable, "-m", "ftray.cli", "tune", str(job)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    deadline = time.time() + 240
    experiment, before = None, {}
    while time.time() < deadline:  # until the second trial has a checkpoint: the first is done
        experiments = list((tmp_path / "runs").glob("*-tune-*"))
        before = trial_checkpoints(experiments[0]) if experiments else {}
        if sum(1 for checkpoints in before.values() if checkpoints) >= 2:
            experiment = experiments[0]
            break
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert experiment is not None, "the experiment did not get to its second trial"
    # `before` is what stood when the kill was sent. It is not re-read after the kill: the
    # trial's workers outlive the driver for a moment (until the raylet they hang off dies),
    # and on a fast machine they have written the last checkpoint in that moment.
    first = next(name for name, checkpoints in before.items() if LAST_CHECKPOINT in checkpoints)
    [second] = [name for name in before if name != first]
    assert LAST_CHECKPOINT not in before[second]  # the driver died mid-trial
    time.sleep(5)  # let the killed driver's Ray processes exit

    result = tune(make_spec(raw), resume=True, progress=False)
    assert result.experiment == experiment.name
    assert len(result.leaderboard) == 2 and all(
        row.stopped == "completed" for row in result.leaderboard
    )
    after = trial_checkpoints(experiment)
    assert after[first] == before[first]  # the finished trial was not run again
    assert LAST_CHECKPOINT in after[second]  # the interrupted one was finished


def test_the_optuna_searcher_samples_the_space(tmp_path, tiny_bert):
    raw = tiny_tune_raw(
        tiny_bert,
        tmp_path,
        num_samples=2,
        seed=4,
        max_concurrent_trials=2,
        searcher="optuna",
        metric="val_loss",
        scheduler={"kind": "fifo"},
        search_space={
            "train.learning_rate": {"loguniform": [1e-4, 1e-2]},
            "train.batch_size": {"choice": [32, 64]},
        },
    )
    raw["train"]["epochs"] = 1
    result = tune(make_spec(raw), progress=False)
    rates = [row.config["train.learning_rate"] for row in result.leaderboard]
    assert len(rates) == 2 and len(set(rates)) == 2 and all(1e-4 <= r <= 1e-2 for r in rates)
    assert all(row.stopped == "completed" for row in result.leaderboard)
