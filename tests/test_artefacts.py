"""Training outputs as registry versions: kinds, base references, partial deltas, lineage."""

import json
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ftray.artefacts import detect_kind, recorded_strategy, register_output
from ftray.errors import FtrayError
from ftray.inference import version_files
from ftray.model_files import ModelFiles
from ftray.models import load_task_model, load_tokenizer
from ftray.results import ModelResult
from ftray.runs import RESULT_FILE
from ftray.strategies import get_strategy
from ftray.strategies.partial import PARTIAL_FILE
from registry import BlobCache, Manifest, Registry
from registry.local_store import LocalStore
from registry.s3_store import S3Store

LABELS = ["negative", "positive"]


@pytest.fixture(params=["local", "s3"])
def registry(request, tmp_path) -> Registry:
    if request.param == "local":
        return Registry(LocalStore(tmp_path / "registry"), BlobCache(tmp_path / "cache"))
    request.getfixturevalue("s3_endpoint")
    return Registry(S3Store(f"s3://ftray-test/{uuid.uuid4().hex}"), BlobCache(tmp_path / "cache"))


def trained_output(tmp_path: Path, base: Path, kind: str, seed: int, **knobs) -> Path:
    """What `ftray train` leaves behind: the exported model and ftray_result.json."""
    torch.manual_seed(seed)
    strategy = get_strategy(kind)
    model = strategy.apply(
        load_task_model(str(base), "sequence-classification", LABELS),
        strategy.config_type(**knobs),
        "sequence-classification",
    )
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.01)  # "training"
    out = tmp_path / f"{kind}-{seed}"
    model.save_pretrained(out)
    load_tokenizer(str(base)).save_pretrained(out)
    spec = {
        "model": {"name": str(base), "task": "sequence-classification"},
        "data": {"train": str(tmp_path / "absent.jsonl")},
    }
    result = {
        "run": f"run-{seed}",
        "task": "sequence-classification",
        "strategy": kind,
        "labels": LABELS,
        "metrics": {"f1": 0.8 + seed / 100, "history": [1, 2]},
        "spec": spec,
    }
    (out / RESULT_FILE).write_text(json.dumps(result))
    return out


def test_the_strategy_is_read_from_the_result_and_recognised_in_foreign_directories(
    tmp_path, tiny_bert
):
    assert detect_kind(trained_output(tmp_path, tiny_bert, "adapter", 1)) == "adapter"
    assert detect_kind(trained_output(tmp_path, tiny_bert, "prompt", 1)) == "prompt"
    assert detect_kind(trained_output(tmp_path, tiny_bert, "full", 1)) == "full"
    partial = trained_output(tmp_path, tiny_bert, "partial", 1)
    assert recorded_strategy(partial, ModelResult.read(partial), None)["kind"] == "partial"
    with pytest.raises(FtrayError, match="neither a transformers model nor a PEFT adapter"):
        detect_kind(tmp_path)


def test_a_second_adapter_on_an_unchanged_base_adds_no_base_bytes(registry, tmp_path, tiny_bert):
    first = register_output(
        registry, trained_output(tmp_path, tiny_bert, "adapter", 1), "clf", aliases=["candidate"]
    )
    uploaded_first = registry.bytes_uploaded
    second_dir = trained_output(tmp_path, tiny_bert, "adapter", 2)
    second = register_output(registry, second_dir, "clf")
    added = registry.bytes_uploaded - uploaded_first
    base = registry.resolve(first.base["ref"])
    stored = {e["sha256"] for e in [*first.files.values(), *base.files.values()]}
    new_bytes = sum(e["size"] for e in second.files.values() if e["sha256"] not in stored)
    assert first.base == second.base and first.base["ref"] == f"{tiny_bert.name}:1"
    assert added == new_bytes  # the new adapter's own files and nothing of the base
    assert new_bytes < (second_dir / "adapter_model.safetensors").stat().st_size + 2000
    assert base.kind == "base" and len(registry.versions(tiny_bert.name)) == 1
    assert uploaded_first >= base.size  # the base was uploaded once, with the first adapter
    assert (first.kind, second.version) == ("adapter", 2)
    assert registry.resolve("clf@candidate").version == 1
    assert first.labels == LABELS and first.metrics == {"f1": 0.81}  # history is left out
    assert first.lineage["run"] == "run-1" and "ftray" in first.lineage["code"]


def test_a_partial_version_stores_only_the_changed_tensors(registry, tmp_path, tiny_bert):
    out = trained_output(tmp_path, tiny_bert, "partial", 3, top_layers=1)
    manifest = register_output(registry, out, "partial-clf")
    assert manifest.kind == "partial" and PARTIAL_FILE in manifest.files
    assert "model.safetensors" not in manifest.files
    pulled = tmp_path / "pulled"
    registry.pull(manifest.ref, pulled)
    delta = load_file(str(pulled / PARTIAL_FILE))
    assert delta and all(".layer.1." in k or k.startswith("classifier") for k in delta)
    full_size = (out / "model.safetensors").stat().st_size
    assert manifest.files[PARTIAL_FILE]["size"] < 0.7 * full_size


def test_reference_policy_records_the_base_without_storing_it(registry, tmp_path, tiny_bert):
    manifest = register_output(
        registry, trained_output(tmp_path, tiny_bert, "prompt", 4), "p", base="reference"
    )
    assert manifest.base["name"] == str(tiny_bert) and len(manifest.base["fingerprint"]) == 64
    assert registry.models() == ["p"]


def test_the_manifest_records_the_strategy_that_trained_the_version(tmp_path, tiny_bert):
    registry = Registry(LocalStore(tmp_path / "registry"), BlobCache(tmp_path / "cache"))
    out = trained_output(tmp_path, tiny_bert, "prompt", 5, num_virtual_tokens=3)
    result = ModelResult.read(out)
    assert result is not None
    result.spec["strategy"] = {"kind": "prompt", "num_virtual_tokens": 3}  # as train writes
    result.write(out)
    manifest = register_output(registry, out, "p")
    assert manifest.strategy["kind"] == "prompt" and manifest.strategy["method"] == "prompt_tuning"
    assert manifest.strategy["config"]["num_virtual_tokens"] == 3
    files = version_files(registry, "p:1")
    assert files.config == get_strategy("prompt").config_type(num_virtual_tokens=3)


def test_versions_registered_before_strategies_were_recorded_still_load(tmp_path, tiny_bert):
    """A manifest with `kind` alone: the strategy rebuilds its config (here the virtual tokens
    that token-level logits drop) from its own files."""
    registry = Registry(LocalStore(tmp_path / "registry"), BlobCache(tmp_path / "cache"))
    out = trained_output(tmp_path, tiny_bert, "prompt", 6, num_virtual_tokens=4)
    manifest = register_output(registry, out, "p")
    old = json.loads(manifest.to_json())
    del old["strategy"]
    assert Manifest.from_json(json.dumps(old).encode()).strategy is None
    legacy = ModelFiles(out, "prompt", "token-classification", ["O", "B-X"], tiny_bert, None)
    assert legacy.config.num_virtual_tokens == 4 and legacy.logit_offset() == 4
    recorded = ModelFiles(
        out, "prompt", "token-classification", ["O", "B-X"], tiny_bert, manifest.strategy["config"]
    )
    assert recorded.logit_offset() == 4
