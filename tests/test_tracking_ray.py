"""Tracking, model cards, portable artefacts and run reports, end to end on a real local Ray.

A real MLflow tracking server (SQLite backend, local artifact root) runs on 127.0.0.1 for the
module; TensorBoard's event files are read back with TensorBoard's own reader; W&B runs offline.
One 2-worker LoRA run of the bundled MiniLM on NER (9 labels: the base's config has 2) and one
2-trial tune are asserted through MLflow's REST client, the registry and a fresh process that
loads the pulled adapter with plain PEFT and no ftray.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import TEMPLATED, make_spec, ner_raw, sentiment_raw

from ftray.models import resolve_model_path
from ftray.report import report
from ftray.results import MODEL_CARD
from ftray.runtime import ray_runtime
from ftray.train import train
from ftray.tune import tune
from registry import Registry
from registry.cache import sha256_file

pytestmark = pytest.mark.slow

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.time() < deadline, "mlflow server did not start"
            time.sleep(0.5)
    yield uri
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    with ray_runtime():
        yield


def tracking_section(uri: str, tmp_path: Path) -> dict:
    return {
        "mlflow": {"uri": uri, "experiment": "ftray-tests"},
        "tensorboard": {"dir": str(tmp_path / "tensorboard")},
        "wandb": {"mode": "offline", "dir": str(tmp_path / "wandb"), "project": "ftray-tests"},
    }


def test_a_tracked_run_is_logged_carded_portable_and_drawn(tmp_path, mlflow_server):
    from mlflow.tracking import MlflowClient

    raw = ner_raw(
        Path("all-MiniLM-L6-v2"),
        strategy={"kind": "adapter", "method": "lora"},
        scaling={"num_workers": 2},
        train={"epochs": 1, "max_steps": 12, "eval_steps": 4, "batch_size": 16},
        data={"test_split": 0.1},
        registry={"uri": str(tmp_path / "registry"), "register_as": "tracked-ner"},
        tracking=tracking_section(mlflow_server, tmp_path),
    )
    raw["model"]["name"] = "all-MiniLM-L6-v2"
    result = train(make_spec(raw, tmp_path), progress=False)
    evaluations = len(result.history)
    assert evaluations == 3  # steps 4, 8, 12
    ref = result.registered["ref"]

    # MLflow, through its REST API: one run, one metric point per evaluation, the spec as
    # params, the model as an artifact, and the registry ref and manifest linking both ways.
    client = MlflowClient(mlflow_server)
    run_id = result.tracking["mlflow"]["run_id"]
    run = client.get_run(run_id)
    assert run.info.run_name == result.run and run.info.status == "FINISHED"
    assert run.data.params["strategy"] == "adapter"
    assert run.data.params["train.max_steps"] == "12"
    assert run.data.params["run.workers"] == "2"
    history = client.get_metric_history(run_id, "f1")
    assert [m.step for m in history] == [row["step"] for row in result.history]
    assert [m.value for m in history] == pytest.approx([row["f1"] for row in result.history])
    assert "test_f1" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run_id, "model")}
    assert "model/adapter_model.safetensors" in artifacts and f"model/{MODEL_CARD}" in artifacts
    assert run.data.tags["ftray.registry_ref"] == ref
    registry = Registry.open(str(tmp_path / "registry"))
    manifest = registry.resolve(ref)
    assert manifest.lineage["tracking"]["mlflow"]["run_id"] == run_id

    # TensorBoard, read back with its own event reader; W&B's offline run files.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(result.tracking["tensorboard"]["log_dir"])
    events.Reload()
    assert len(events.Scalars("f1")) == evaluations
    wandb_dir = Path(result.tracking["wandb"]["dir"]).parent
    assert list(wandb_dir.glob("run-*.wandb")), "no W&B offline run file"

    # The model card holds the real numbers and data hashes; pull writes it as README.md.
    card = registry.read_file(ref, MODEL_CARD).decode()
    assert sha256_file(TEMPLATED / "templated-ner/train.jsonl") in card
    assert f"| f1 | {result.metrics['f1']:.4f} | {result.test_metrics['f1']:.4f} |" in card
    assert f"base_model: {HUB_ID}" in card
    pulled = tmp_path / "pulled"
    registry.pull(ref, pulled)
    adapter = json.loads((pulled / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == HUB_ID

    # The pulled adapter loads in a fresh process with PEFT alone (the base from a hub cache,
    # offline), and its logits equal those ftray serves.
    texts = ["Priya Szabo flew to Lake Imara .", "The Tarrowian council met on Monday ."]
    expected = ftray_logits(registry, ref, texts)
    loaded = plain_peft_logits(pulled, result.labels, texts, tmp_path / "hub")
    assert loaded == pytest.approx(expected, abs=1e-4)

    # The report draws the run's own history.
    drawn = report(result.run_dir, tmp_path / "report")
    assert drawn.kind == "run" and drawn.evaluations == evaluations
    assert drawn.png.stat().st_size > 10_000


def ftray_logits(registry, ref: str, texts: list[str]) -> list:
    from ftray.inference import Predictor

    predictor = Predictor.from_registry(registry, ref)
    batch = predictor.tokenizer(texts, padding=True, return_tensors="pt")
    return predictor.logits(batch).flatten().tolist()


PLAIN_LOAD = """
import json, sys
import torch
from peft import AutoPeftModelForTokenClassification
from transformers import AutoTokenizer

directory, labels, texts = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
model = AutoPeftModelForTokenClassification.from_pretrained(
    directory,
    num_labels=len(labels),
    id2label=dict(enumerate(labels)),
    label2id={label: i for i, label in enumerate(labels)},
).eval()
tokenizer = AutoTokenizer.from_pretrained(directory)
with torch.no_grad():
    logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
assert not any(name.startswith("ftray") for name in sys.modules), "ftray was imported"
print(json.dumps(logits.flatten().tolist()))
"""


def plain_peft_logits(directory: Path, labels: list[str], texts: list[str], hub: Path) -> list:
    """Logits from a fresh interpreter that knows the base only by its hub id, resolved from a
    hub cache holding it (what another machine has after one download)."""
    snapshot = hub / f"models--{HUB_ID.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for file in Path(resolve_model_path("all-MiniLM-L6-v2")).iterdir():
        (snapshot / file.name).symlink_to(file)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    completed = subprocess.run(
        [sys.executable, "-c", PLAIN_LOAD, str(directory), json.dumps(labels), json.dumps(texts)],
        capture_output=True,
        text=True,
        env=env,
        cwd=directory,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_a_tracked_tune_nests_each_trial_under_the_experiment(tmp_path, mlflow_server, tiny_bert):
    from mlflow.tracking import MlflowClient

    raw = sentiment_raw(
        tiny_bert,
        scaling={"num_workers": 1},
        train={"epochs": 2, "batch_size": 64},
        tracking=tracking_section(mlflow_server, tmp_path),
    )
    raw["tune"] = {
        "searcher": "grid",
        "num_samples": 1,
        "search_space": {"train.learning_rate": {"grid": [1e-3, 3e-3]}},
        "scheduler": {"kind": "fifo"},
    }
    result = tune(make_spec(raw, tmp_path), progress=False)
    assert result.trials == 2

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("ftray-tests")
    parents = client.search_runs(
        [experiment.experiment_id], f"attributes.run_name = '{result.experiment}'"
    )
    assert len(parents) == 1
    parent = parents[0]
    trials = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(trials) == 2
    by_rate = {run.data.params["train.learning_rate"]: run for run in trials}
    assert set(by_rate) == {"0.001", "0.003"}
    for row in result.leaderboard:
        run = by_rate[str(row.config["train.learning_rate"])]
        assert len(client.get_metric_history(run.info.run_id, "accuracy")) == row.evaluations
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"tune_result.json"}
    assert f"best_{result.metric}" in parent.data.metrics

    drawn = report(result.experiment_dir)
    assert drawn.kind == "experiment"
    assert drawn.evaluations == sum(row.evaluations for row in result.leaderboard)
