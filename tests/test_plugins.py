"""A strategy and a task defined in this file, not in ftray, run the whole way: train on Ray ->
register -> `ftray eval` -> serve over HTTP, through the public plugin entry points alone.

- LayerNorm-only tuning (with the new head) also owns what a version stores: only its tensors,
  on a referenced base, and how they load back onto it.
- Regression (a score per text) owns its fields, encoding, MSE loss, evaluator, and a scalar
  answer from the served model.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import torch
from conftest import TEMPLATED, make_spec, read_jsonl, sentiment_raw, write_jsonl
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForSequenceClassification

from ftray.artefacts import register_output
from ftray.errors import FtrayError
from ftray.evaluate import evaluate
from ftray.evaluation import Evaluator
from ftray.inference import Predictor
from ftray.model_files import ModelFiles
from ftray.models import load_task_model
from ftray.runtime import ray_runtime
from ftray.strategies import STRATEGIES, Strategy, StrategyConfig, register_strategy
from ftray.tasks import TASKS, Task, register_task
from ftray.train import train
from registry import BlobCache, Registry
from registry.local_store import LocalStore
from serving.client import predict
from serving.launch import serving

pytestmark = pytest.mark.slow
TUNED_FILE = "layernorm.safetensors"
TEXTS = ["The kettle is superb, I would buy it again.", "A dreadful kettle, a waste of money."]


# ---- a strategy: LayerNorm scales and biases, plus the new head


class LayerNormConfig(StrategyConfig):
    kind: Literal["layernorm"] = "layernorm"


class LayerNormOnly(Strategy):
    kind = "layernorm"
    config_type = LayerNormConfig
    default_learning_rate = 1e-2
    needs_base = True

    def apply(self, model, config, task):
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(self._tuned(model, name))
        return model

    @staticmethod
    def _tuned(model: nn.Module, name: str) -> bool:
        module = model.get_submodule(name.rsplit(".", 1)[0])
        outside_backbone = not name.startswith(f"{model.base_model_prefix}.")
        return isinstance(module, nn.LayerNorm) or outside_backbone

    def package(self, files: ModelFiles, scratch: Path) -> Path:
        model = super().load(files)  # the training output is a whole model
        tuned = {k: v.contiguous() for k, v in model.state_dict().items() if self._tuned(model, k)}
        save_file(tuned, str(scratch / TUNED_FILE))
        for path in files.directory.iterdir():
            if path.is_file() and path.suffix != ".safetensors":
                (scratch / path.name).write_bytes(path.read_bytes())
        return scratch

    def load(self, files: ModelFiles) -> nn.Module:
        if not (files.directory / TUNED_FILE).exists():
            return super().load(files)
        model = load_task_model(str(files.base_directory), files.task, files.labels)
        model.load_state_dict(load_file(str(files.directory / TUNED_FILE)), strict=False)
        return model.eval()


# ---- a task: a real-valued score per text, mean squared error


class RegressionEvaluator(Evaluator):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.errors = torch.zeros(2, dtype=torch.float64)  # summed absolute error, rows

    def _add(self, logits, batch):
        difference = logits[:, 0] - batch["labels"]
        self.errors += torch.tensor([float(difference.abs().sum()), len(difference)])

    def _counts(self):
        return [self.loss, self.errors]

    def _compute(self):
        absolute, rows = self.errors.tolist()
        return {"mse": self.loss[0].item() / rows, "mae": absolute / rows}


class Regression(Task):
    name = "regression"
    metrics: ClassVar[dict[str, str]] = {"mse": "min", "mae": "min", "val_loss": "min"}
    fields = ("text_field", "label_field")
    peft_task_type = "SEQ_CLS"
    labelled = False
    headline_metric = "mse"

    def model_class(self):
        return AutoModelForSequenceClassification

    def model_options(self, labels):
        return {"num_labels": 1, "problem_type": "regression"}

    def read_example(self, row, data, at):
        value = row.get(data.label_field)
        if not isinstance(value, (int, float)):
            raise FtrayError(f"{at}: field {data.label_field!r} must be a number")
        return {"text": row[data.text_field], "score": float(value)}

    def encode(self, examples, tokenizer, labels, max_length):
        batch = tokenizer([e["text"] for e in examples], truncation=True, max_length=max_length)
        return [
            {**{k: batch[k][i] for k in batch}, "labels": e["score"]}
            for i, e in enumerate(examples)
        ]

    def loss(self, logits, labels):
        return ((logits[:, 0].float() - labels.float()) ** 2).sum(), len(labels)

    def correct_predictions(self, logits, labels):
        return 0, 0

    def evaluator(self, labels, groups, max_slice_gap):
        return RegressionEvaluator(self.loss, labels, groups, max_slice_gap)

    def predict(self, predictor, inputs, options):
        batch = predictor.tokenizer(inputs, truncation=True, padding=True, return_tensors="pt")
        return [{"score": float(v)} for v in predictor.logits(batch)[:, 0]]

    def text(self, example, joiner=" "):
        return example["text"]


# ---- the runs


@pytest.fixture(scope="module")
def plugins():
    strategy, task = register_strategy(LayerNormOnly()), register_task(Regression())
    yield
    STRATEGIES.pop(strategy.kind)
    TASKS.pop(task.name)


@pytest.fixture(scope="module")
def scores(tmp_path_factory) -> dict[str, Path]:
    """The templated reviews with a score (positive 1.0, negative 0.0) instead of a label."""
    root = tmp_path_factory.mktemp("scores")
    files = {}
    for split in ("train", "validation"):
        rows = read_jsonl(TEMPLATED / f"templated-sentiment/{split}.jsonl")
        scored = [{"text": r["text"], "score": float(r["label"] == "positive")} for r in rows]
        files[split] = write_jsonl(root / f"{split}.jsonl", scored)
    return files


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_bert, plugins, scores):
    root = tmp_path_factory.mktemp("plugins")
    layernorm = sentiment_raw(tiny_bert, strategy={"kind": "layernorm"}, train={"epochs": 2})
    # A random tiny BERT's [CLS] moves slowly: a score needs a higher rate and more epochs than a
    # label. Validation MSE over seeds 1, 2 (variance 0.249): 4 epochs 0.043, 0.073 (and 0.126 on
    # CI's machine, seed 42); 6 epochs 0.048, 0.071; 8 epochs 0.015, 0.004.
    regression = sentiment_raw(tiny_bert, train={"epochs": 8, "learning_rate": 3e-3})
    regression["model"]["task"] = "regression"
    regression["data"] = {
        "train": str(scores["train"]),
        "validation": str(scores["validation"]),
        "label_field": "score",
    }
    # One worker each on the two cores: the runs go side by side, as two users' jobs would.
    with ray_runtime(), ThreadPoolExecutor(2) as pool:
        runs = {
            name: pool.submit(train, make_spec(raw, root / name), progress=False)
            for name, raw in (("layernorm", layernorm), ("regression", regression))
        }
        results = {name: run.result() for name, run in runs.items()}
    registry = Registry(LocalStore(root / "registry"), BlobCache(root / "cache"))
    refs = {name: register_output(registry, r.output_dir, name) for name, r in results.items()}
    return {"results": results, "manifests": refs, "registry": registry, "root": root}


def test_the_strategy_trains_its_parameters_and_stores_only_them(trained, tiny_bert):
    result, manifest = trained["results"]["layernorm"], trained["manifests"]["layernorm"]
    model_state, base_state = (
        load_task_model(str(path), "sequence-classification", result.labels).state_dict()
        for path in (result.output_dir, tiny_bert)
    )
    norm = "bert.encoder.layer.0.output.LayerNorm.weight"
    frozen = "bert.encoder.layer.0.output.dense.weight"
    assert not torch.equal(model_state[norm], base_state[norm])
    assert torch.equal(model_state[frozen], base_state[frozen])
    assert manifest.kind == "layernorm" and manifest.strategy["kind"] == "layernorm"
    assert TUNED_FILE in manifest.files and "model.safetensors" not in manifest.files
    assert manifest.base["ref"].startswith("bert:")  # the base is registered once, referenced


def test_the_task_reports_its_own_metrics_and_a_scalar_answer(trained, scores):
    result = trained["results"]["regression"]
    targets = [r["score"] for r in read_jsonl(scores["validation"])]
    variance = sum((t - sum(targets) / len(targets)) ** 2 for t in targets) / len(targets)
    assert result.metrics["mse"] < 0.5 * variance  # far better than answering the mean
    manifest = trained["manifests"]["regression"]
    assert manifest.task == "regression" and manifest.labels == []
    [answer] = Predictor.from_registry(trained["registry"], manifest.ref).predict(TEXTS[:1])
    assert set(answer) == {"score"}


@pytest.mark.parametrize("name", ["layernorm", "regression"])
def test_ftray_eval_scores_the_registered_version_as_training_did(trained, scores, name):
    data = scores["validation"] if name == "regression" else None
    data = data or TEMPLATED / "templated-sentiment/validation.jsonl"
    overrides = ["data.label_field=score"] if name == "regression" else []
    manifest = trained["manifests"][name]
    scored = evaluate(
        manifest.ref, str(data), overrides=overrides, registry_uri=str(trained["root"] / "registry")
    )
    metric = "mse" if name == "regression" else "accuracy"
    expected = trained["results"][name].metrics[metric]
    assert scored.metrics[metric] == pytest.approx(expected, rel=1e-4)


def test_both_are_served_by_replicas_that_never_imported_this_file(trained):
    registry, manifests = trained["registry"], trained["manifests"]
    refs = [m.ref for m in manifests.values()]
    with serving(refs, registry=str(trained["root"] / "registry"), port=8131) as url:
        answers = {ref: predict(url, ref, TEXTS) for ref in refs}
    for ref, answer in answers.items():
        expected = Predictor.from_registry(registry, ref).predict(TEXTS)
        assert json.dumps(answer["outputs"]) != "[]"
        for got, want in zip(answer["outputs"], expected, strict=True):
            assert got.keys() == want.keys()
            if "score" in got:
                assert got["score"] == pytest.approx(want["score"], abs=1e-5)
            else:
                assert got["label"] == want["label"]
