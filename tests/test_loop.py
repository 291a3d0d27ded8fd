"""The training loop in one process (no Ray): the same `train_worker` Ray Train runs."""

import json
import os
import sysconfig
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, clm_raw, make_spec, ner_raw, sentiment_raw
from torch.utils.cpp_extension import get_default_build_root

from ftray.checkpointing import EXPORT_SCORE, MODEL_DIR, TRAINER_STATE
from ftray.data import normalize, read_rows
from ftray.deepspeed_config import deepspeed_config
from ftray.errors import FtrayError
from ftray.evaluate import score_examples
from ftray.local import run_local
from ftray.loop import _build_in_this_environment
from ftray.model_files import ModelFiles
from ftray.optim import add_l1_penalty
from ftray.sampler import ShardSampler
from ftray.schedule import lr_schedule
from ftray.session import LocalSession


class Crash(Exception):
    pass


class CrashingSession(LocalSession):
    """Persists the first `reports` checkpoints, then dies: an interrupted run."""

    def __init__(self, root, reports: int) -> None:
        super().__init__(root)
        self.left = reports

    def report(self, metrics, checkpoint):
        super().report(metrics, checkpoint)
        self.left -= 1
        if self.left == 0:
            raise Crash


def test_a_run_evaluates_checkpoints_and_exports_the_best_model(tmp_path, tiny_bert):
    spec = make_spec(sentiment_raw(tiny_bert, train={"epochs": 2}))
    reports = run_local(spec, tmp_path / "run")
    assert [r["step"] for r in reports] == [50, 100] and [r["epoch"] for r in reports] == [1, 2]
    last = reports[-1]
    for key in (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "val_loss",
        "train_loss",
        "slices",
        "worst_slice",
    ):
        assert key in last
    assert set(last["per_class"]) == {"negative", "positive"}
    assert last["trainable_params"] == last["total_params"]
    checkpoints = LocalSession(tmp_path / "run").checkpoints()
    assert [c.name for c in checkpoints] == ["checkpoint_00000050", "checkpoint_00000100"]
    for checkpoint, report in zip(checkpoints, reports, strict=True):
        assert (checkpoint / TRAINER_STATE).exists() and (checkpoint / "deepspeed").is_dir()
        # Only a checkpoint that was the best so far carries the exported model.
        assert (checkpoint / MODEL_DIR).is_dir() == (report[EXPORT_SCORE] >= 0)
    exported = checkpoints[0] / MODEL_DIR
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in exported.iterdir()
    }


def test_an_interrupted_run_resumes_mid_epoch_from_its_checkpoint(tmp_path, tiny_bert):
    spec = make_spec(sentiment_raw(tiny_bert, train={"epochs": 1, "eval_steps": 15}))
    with pytest.raises(Crash):
        from ftray.loop import train_worker

        train_worker(spec, CrashingSession(tmp_path / "run", reports=1))
    state = json.loads((tmp_path / "run/checkpoint_00000015" / TRAINER_STATE).read_text())
    assert (state["epoch"], state["global_step"], state["micro_in_epoch"]) == (0, 15, 15)

    reports = run_local(spec, tmp_path / "run")
    assert reports[0]["resumed_from"] == {"epoch": 0, "step": 15}
    assert [r["step"] for r in reports] == [30, 45, 50]  # continues; the epoch has 50 steps
    assert [row["step"] for row in reports[-1]["history"]] == [15, 30, 45, 50]


def test_early_stopping_stops_after_patience_evaluations_without_improvement(tmp_path, tiny_bert):
    spec = make_spec(
        sentiment_raw(
            tiny_bert,
            train={
                "epochs": 3,
                "eval_steps": 5,
                "learning_rate": 1e-12,
                "early_stopping": {"metric": "val_loss", "patience": 2, "min_delta": 0.01},
            },
        )
    )
    reports = run_local(spec, tmp_path / "run")
    assert [r["step"] for r in reports] == [5, 10, 15]  # of 150 steps: the loss cannot move
    assert reports[-1]["stopped_early"] and reports[-1]["best_step"] == 5


def test_prompt_tuning_trains_token_classification(tmp_path, tiny_bert):
    spec = make_spec(
        ner_raw(
            tiny_bert,
            strategy={"kind": "prompt", "num_virtual_tokens": 4},
            train={"epochs": 2, "learning_rate": 3e-2},
        )
    )
    reports = run_local(spec, tmp_path / "run")
    assert reports[-1]["val_loss"] < reports[0]["val_loss"] or reports[-1]["accuracy"] > 0.6
    assert "precision" in reports[-1] and set(reports[-1]["per_class"]) == {
        "LOC",
        "MISC",
        "ORG",
        "PER",
    }
    assert reports[-1]["trainable_params"] < reports[-1]["total_params"] / 5


def test_causal_lm_perplexity_falls(tmp_path, tiny_llama):
    spec = make_spec(clm_raw(tiny_llama, train={"epochs": 2, "learning_rate": 3e-3}))
    reports = run_local(spec, tmp_path / "run")
    assert reports[-1]["perplexity"] < reports[0]["perplexity"] < 50


def test_l1_penalty_shrinks_weights(tmp_path, tiny_bert):
    def weight_l1(l1: float) -> float:
        spec = make_spec(
            sentiment_raw(
                tiny_bert,
                strategy={"kind": "partial", "head_only": True},
                train={"l1": l1, "weight_decay": 0.0, "learning_rate": 1e-2},
            )
        )
        run_local(spec, tmp_path / f"l1-{l1}")
        from safetensors.torch import load_file

        exported = next((tmp_path / f"l1-{l1}").glob(f"*/{MODEL_DIR}/model.safetensors"))
        return float(load_file(exported)["classifier.weight"].abs().sum())

    assert weight_l1(0.5) < 0.5 * weight_l1(0.0)


def test_l1_hook_adds_the_subgradient_of_the_penalty():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    reference = layer.weight.detach().clone().requires_grad_(True)
    expected_loss = (x @ reference.T + layer.bias.detach()).pow(
        2
    ).mean() + 0.3 * reference.abs().sum()
    expected_loss.backward()
    add_l1_penalty([layer.weight], strength=0.3, accumulation=1)
    layer(x).pow(2).mean().backward()
    assert torch.allclose(layer.weight.grad, reference.grad, atol=1e-6)


def test_shard_sampler_deals_disjoint_shards_and_skips_to_resume():
    shards = [list(ShardSampler(10, rank, 3, seed=1)) for rank in range(3)]
    assert all(len(s) == 4 for s in shards)  # padded to 12 so every rank has as many batches
    assert set().union(*shards) == set(range(10))
    sampler = ShardSampler(10, 0, 3, seed=1)
    sampler.set_epoch(0, skip=2)
    assert list(sampler) == shards[0][2:] and len(sampler) == 2
    sampler.set_epoch(1)
    assert list(sampler) != shards[0]  # reshuffled each epoch


def test_lr_schedule_warms_up_then_decays():
    linear = lr_schedule("linear", warmup=4, total=14)
    assert [round(linear(s), 2) for s in (0, 3, 4, 9, 14)] == [0.2, 0.8, 1.0, 0.5, 0.0]
    cosine = lr_schedule("cosine", warmup=0, total=10)
    assert cosine(0) == 1.0 and cosine(5) == pytest.approx(0.5) and cosine(10) == pytest.approx(0.0)
    assert lr_schedule("constant", warmup=0, total=10)(7) == 1.0


def test_too_few_examples_for_a_batch_is_a_clear_error(tmp_path, tiny_bert):
    spec = make_spec(sentiment_raw(tiny_bert, train={"gradient_accumulation_steps": 64}))
    with pytest.raises(
        FtrayError, match="1600 training examples over 1 workers are too few for batches of 32 x 64"
    ):
        run_local(spec, tmp_path / "run")


def test_the_task_head_gets_its_own_learning_rate(tiny_bert):
    from ftray.models import load_task_model
    from ftray.optim import param_groups
    from ftray.spec import TrainSpec

    model = load_task_model(str(tiny_bert), "sequence-classification", ["a", "b"])
    groups = param_groups(model, TrainSpec(head_learning_rate=1e-3, weight_decay=0.1), 5e-5)
    head = {id(p) for name, p in model.named_parameters() if name.startswith("classifier.")}
    for group in groups:
        in_head = {id(p) in head for p in group["params"]}
        assert len(in_head) == 1  # a group is all head or all body
        assert group["lr"] == (1e-3 if in_head == {True} else 5e-5)
        assert group["weight_decay"] == (0.1 if group["params"][0].ndim >= 2 else 0.0)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    same = param_groups(model, TrainSpec(), 5e-5)
    assert {g["lr"] for g in same} == {5e-5}


def test_gradient_checkpointing_changes_memory_not_the_math(tmp_path, tiny_llama):
    raw = clm_raw(tiny_llama, strategy={"kind": "adapter"}, train={"epochs": 1, "max_steps": 6})
    plain = run_local(make_spec(raw), tmp_path / "plain")
    raw["train"]["gradient_checkpointing"] = True
    checkpointed = run_local(make_spec(raw), tmp_path / "checkpointed")
    for key in ("train_loss", "val_loss", "perplexity"):
        assert checkpointed[-1][key] == pytest.approx(plain[-1][key], rel=1e-5)


@pytest.mark.parametrize(
    ("deepspeed", "user_json", "supported", "bf16"),
    [
        ({}, None, True, True),  # auto on a bf16 GPU
        ({}, None, False, False),  # auto elsewhere
        ({"autocast": True}, None, True, False),  # autocast keeps fp32 weights
        ({}, {"torch_autocast": {"enabled": True}}, True, False),  # asked for by the JSON
        ({}, {"torch_autocast": {"enabled": True}, "bf16": {"enabled": True}}, True, True),
        ({"bf16": True}, None, False, True),  # asked for outright
        ({"fp16": True}, None, True, False),
    ],
)
def test_bf16_auto_resolves_after_the_user_json(
    tmp_path, tiny_bert, deepspeed, user_json, supported, bf16
):
    raw = sentiment_raw(tiny_bert, deepspeed=dict(deepspeed))
    if user_json is not None:
        (tmp_path / "ds.json").write_text(json.dumps(user_json))
        raw["deepspeed"]["config"] = str(tmp_path / "ds.json")
    config = deepspeed_config(make_spec(raw), 2, bf16_supported=supported)
    assert config["bf16"]["enabled"] is bf16


def test_autocast_trains_in_bf16_and_scores_validation_in_fp32(tmp_path, tiny_bert):
    raw = sentiment_raw(tiny_bert, train={"max_steps": 30, "learning_rate": 3e-3})
    plain = run_local(make_spec(raw), tmp_path / "fp32")[-1]
    raw["deepspeed"] = {"autocast": True}
    spec = make_spec(raw)
    mixed = run_local(spec, tmp_path / "autocast")[-1]
    assert deepspeed_config(spec, 1, bf16_supported=False)["torch_autocast"]["enabled"] is True
    assert mixed["train_loss"] == pytest.approx(plain["train_loss"], rel=0.02)
    # The reported validation loss is the exported model's in fp32, as `ftray eval` and serving
    # compute it (equal to the last digit here; scoring in bf16 was 0.6-1.7e-5 off).
    exported = LocalSession(tmp_path / "autocast").checkpoints()[-1] / MODEL_DIR
    labels = json.loads((exported / "config.json").read_text())["id2label"]
    files = ModelFiles(exported, "full", spec.model.task, list(labels.values()), None)
    rows = normalize(read_rows(spec.data.validation), spec.model.task, spec.data, "validation")
    scores = score_examples(files, rows, spec.data)
    assert scores.metrics["val_loss"] == pytest.approx(mixed["val_loss"], rel=1e-6)


def chat_raw(model, **sections):
    raw = clm_raw(model, **sections)
    raw["data"].update(
        train=str(EXAMPLES / "chat/data/train.jsonl"),
        validation=str(EXAMPLES / "chat/data/validation.jsonl"),
        fraction=0.1,
        chat={"template": "zephyr"},
    )
    raw["model"]["max_length"] = 256
    return raw


def test_packed_chat_training_learns_and_keeps_its_template(tmp_path, tiny_llama):
    raw = chat_raw(
        tiny_llama,
        strategy={"kind": "adapter", "target_modules": "all-linear"},
        train={"epochs": 2, "batch_size": 4, "learning_rate": 5e-3, "packing": True},
    )
    reports = run_local(make_spec(raw), tmp_path / "run")
    # Fewer packed rows (4 a step) than the 300 conversations they hold.
    assert reports[0]["step"] < 300 / 4
    assert reports[-1]["perplexity"] < reports[0]["perplexity"]
    assert 0 < reports[-1]["accuracy"] <= 1  # over assistant tokens only
    # samples/s counts packed rows of up to 256 tokens; tokens/s counts the real tokens in them.
    assert reports[-1]["tokens_per_second"] > 50 * reports[-1]["samples_per_second"]
    exported = next(
        c for c in LocalSession(tmp_path / "run").checkpoints() if (c / MODEL_DIR).is_dir()
    )
    saved = json.loads((exported / MODEL_DIR / "tokenizer_config.json").read_text())
    template = (
        saved.get("chat_template") or (exported / MODEL_DIR / "chat_template.jinja").read_text()
    )
    assert "<|assistant|>" in template  # serving renders chats as training did


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"strategy": {"kind": "adapter", "quantize": "nf4"}},
            "strategy.quantize: a 4-bit base (QLoRA) needs a CUDA GPU; this worker runs on cpu",
        ),
        ({"deepspeed": {"fp16": True}}, "deepspeed.fp16: fp16 training needs CUDA GPUs"),
    ],
)
def test_gpu_only_options_are_refused_on_cpu_in_one_line(tmp_path, tiny_llama, sections, message):
    with pytest.raises(FtrayError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_local(make_spec(clm_raw(tiny_llama, **sections)), tmp_path / "run")


def test_deepspeed_builds_with_the_environments_own_ninja_into_its_own_cache(monkeypatch):
    """Activated or not, a worker finds the environment's ninja first, and builds into a cache
    of this environment's, so DeepSpeed's CPU op is not rebuilt each time the launch or the
    environment changes (two ninjas hash build commands differently; two environments' include
    paths differ)."""
    scripts = sysconfig.get_path("scripts")
    assert os.path.isfile(os.path.join(scripts, "ninja")), "deepspeed installs the pip ninja"
    monkeypatch.setenv("PATH", os.pathsep.join(["/usr/bin", "/bin"]))
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    _build_in_this_environment()
    cache = os.environ["TORCH_EXTENSIONS_DIR"]
    _build_in_this_environment()
    assert os.environ["PATH"].split(os.pathsep) == [scripts, "/usr/bin", "/bin"]
    assert os.environ["TORCH_EXTENSIONS_DIR"] == cache
    assert Path(cache).parent == Path(get_default_build_root())
    assert Path(cache).name.startswith("env-")
    chosen = str(Path(cache).parent / "chosen")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", chosen)
    _build_in_this_environment()
    assert os.environ["TORCH_EXTENSIONS_DIR"] == chosen  # the user's choice stands
