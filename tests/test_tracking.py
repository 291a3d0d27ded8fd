"""Tracking, model cards, portable names and run reports without Ray (the end-to-end runs
against a real MLflow server are in test_tracking_ray.py)."""

from __future__ import annotations

import json
import logging
import socket

import pytest
from conftest import TEMPLATED, make_spec, sentiment_raw

from ftray import tracking
from ftray.errors import FtrayError
from ftray.model_card import make_portable, model_card
from ftray.models import portable_model_name
from ftray.report import report
from ftray.results import ModelResult
from registry.cache import sha256_file


def test_metrics_are_flattened_to_the_numbers_every_tracker_accepts():
    metrics = {
        "accuracy": 0.5,
        "slices": {"north & south": {"f1": 0.25, "support": 4}},
        "worst_slice": "north & south",
        "slice_gap_flagged": True,
        "history": [{"step": 1}],
        "step": 7,
        "training_iteration": 3,
        "val_loss": float("nan"),
    }
    assert tracking.flat_numbers(metrics) == {
        "accuracy": 0.5,
        "slices/north _ south/f1": 0.25,
        "slices/north _ south/support": 4.0,
    }


def test_the_spec_is_logged_as_dotted_params(tmp_path):
    spec = make_spec(sentiment_raw(tmp_path, train={"learning_rate": 2e-4}), tmp_path)
    params = tracking.flat_spec(spec)
    assert params["train.learning_rate"] == 2e-4
    assert params["strategy"] == "full" and params["strategy.kind"] == "full"
    assert not any(key.startswith("tracking") for key in params)


def test_no_tracking_section_opens_nothing(tmp_path):
    spec = make_spec(sentiment_raw(tmp_path), tmp_path)
    with tracking.tracked(spec, "run", kind="train") as tracker:
        tracker.on_event({"kind": "step", "step": 1, "loss": 1.0, "lr": 0.1})
        assert not tracker and tracker.links() == {}


def test_an_unreachable_mlflow_server_is_one_line_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    raw = sentiment_raw(tmp_path, tracking={"mlflow": {"uri": f"http://127.0.0.1:{port}"}})
    with pytest.raises(FtrayError, match=r"^tracking.mlflow: cannot start a run: ") as raised:
        tracking.start(make_spec(raw, tmp_path), "run", kind="train")
    assert "\n" not in str(raised.value)


class Failing:
    calls = 0

    def log_metrics(self, metrics, step):
        Failing.calls += 1
        raise ConnectionError("tracker went away")

    def finish(self, failed):
        Failing.calls += 1


def test_a_tracker_failing_mid_run_is_reported_once_and_left_alone(caplog):
    tracker = tracking.Tracking({"flaky": Failing()}, "run")  # type: ignore[dict-item]
    with caplog.at_level(logging.WARNING, logger="ftray.tracking"):
        for step in range(3):
            tracker.log_metrics({"accuracy": 0.5}, step)
        tracker.finish()
    assert Failing.calls == 1
    assert [r.message for r in caplog.records] == [
        "tracking.flaky: log_metrics failed; not logging there again: tracker went away"
    ]


def test_tensorboard_events_read_back_with_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    raw = sentiment_raw(tmp_path, tracking={"tensorboard": {"dir": str(tmp_path / "tb")}})
    with tracking.tracked(make_spec(raw, tmp_path), "run", kind="train") as tracker:
        for step, accuracy in ((5, 0.6), (10, 0.8)):
            metrics = {"step": step, "accuracy": accuracy}
            tracker.on_event({"kind": "eval", "metrics": metrics, "numbers": metrics})
    events = EventAccumulator(str(tmp_path / "tb" / "run"))
    events.Reload()
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("accuracy")] == [
        (5, 0.6),
        (10, 0.8),
    ]


def sample_result(tmp_path) -> ModelResult:
    spec = make_spec(sentiment_raw(tmp_path), tmp_path)
    history = [
        {"epoch": 1, "step": 10, "f1": 0.6, "lr": 1e-3, "train_loss": 0.9, "val_loss": 0.8},
        {"epoch": 2, "step": 20, "f1": 0.7, "lr": 5e-4, "train_loss": 0.5, "val_loss": 0.7,
         "slices": {"a": 0.65, "b": 0.75}},
    ]  # fmt: skip
    return ModelResult(
        run="sentiment-test-1",
        run_dir=str(tmp_path),
        task="sequence-classification",
        strategy="full",
        labels=["negative", "positive"],
        metrics={
            "accuracy": 0.75,
            "f1": 0.7,
            "slices": {"a": {"f1": 0.65, "support": 3}, "b": {"f1": 0.75, "support": 5}},
            "slice_gap": 0.1,
        },
        test_metrics={"accuracy": 0.625, "f1": 0.6},
        test_examples=8,
        metric="f1",
        mode="max",
        history=history,
        train_examples=40,
        validation_examples=8,
        spec=spec.model_dump(mode="json"),
    )


def test_the_model_card_holds_the_real_numbers_and_data_hashes(tmp_path):
    card = model_card(sample_result(tmp_path), [], tmp_path)
    train_file = TEMPLATED / "templated-sentiment/train.jsonl"
    assert f"| train | train.jsonl | `{sha256_file(train_file)}` |" in card
    assert "| f1 | 0.7000 | 0.6000 |" in card and "| accuracy | 0.7500 | 0.6250 |" in card
    assert "| a | 0.6500 | 3 |" in card and "gap between best and worst slice: 0.1000" in card
    assert "divided by" not in card  # a result without a fitted temperature
    result = sample_result(tmp_path)
    result.metrics.update(ece=0.08, temperature=2.858)
    result.test_metrics["ece"] = 0.03
    card = model_card(result, [], tmp_path)
    assert "| ece | 0.0800 | 0.0300 |" in card and "divided by 2.86," in card


def test_an_adapter_names_its_base_portably_and_drops_the_empty_template(tmp_path):
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "/site-packages/x/model", "peft_type": "LORA"})
    )
    (tmp_path / "README.md").write_text("## Model Details\n[More Information Needed]\n")
    result = sample_result(tmp_path)
    result.spec["model"]["name"] = "all-MiniLM-L6-v2"
    make_portable(tmp_path, result)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert not (tmp_path / "README.md").exists()


def test_portable_model_names(tmp_path):
    assert portable_model_name("all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert portable_model_name("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    local = tmp_path / "my-bert"
    local.mkdir()
    (local / "config.json").write_text(json.dumps({"_name_or_path": str(local)}))
    assert portable_model_name(str(local)) == "my-bert"
    (local / "config.json").write_text(json.dumps({"_name_or_path": "acme/bert-small"}))
    assert portable_model_name(str(local)) == "acme/bert-small"


def test_report_draws_a_run_from_its_history(tmp_path):
    sample_result(tmp_path).write(tmp_path)
    drawn = report(tmp_path, tmp_path / "out")
    assert (drawn.kind, drawn.evaluations) == ("run", 2)
    assert drawn.png == tmp_path / "out/report.png" and drawn.png.stat().st_size > 10_000


def test_report_on_a_directory_without_a_result_is_one_line(tmp_path):
    with pytest.raises(FtrayError, match=r"no ftray_result.json or tune_result.json here"):
        report(tmp_path)
