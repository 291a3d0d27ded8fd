"""`ftray registry export`: versions for tools without ftray. A merged adapter or partial
version loads in a fresh interpreter with plain transformers and answers as ftray does."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from test_artefacts import trained_output
from test_inference import TEXTS

from ftray.artefacts import register_output
from ftray.errors import FtrayError
from ftray.export import export_version
from ftray.inference import Predictor
from registry import BlobCache, Registry
from registry.local_store import LocalStore

PLAIN_LOAD = """
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

directory, texts = sys.argv[1], json.loads(sys.argv[2])
model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
tokenizer = AutoTokenizer.from_pretrained(directory)
with torch.no_grad():
    logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
assert not any(name.startswith("ftray") for name in sys.modules), "ftray was imported"
print(json.dumps({"logits": logits.flatten().tolist(), "labels": model.config.id2label}))
"""


@pytest.fixture
def registry(tmp_path):
    return Registry(LocalStore(tmp_path / "registry"), BlobCache(tmp_path / "cache"))


@pytest.mark.parametrize(("kind", "knobs"), [("adapter", {}), ("partial", {"top_layers": 1})])
def test_a_merged_version_loads_with_plain_transformers_and_answers_the_same(
    registry, tmp_path, tiny_bert, kind, knobs
):
    output = trained_output(tmp_path, tiny_bert, kind, 9, **knobs)
    ref = register_output(registry, output, f"clf-{kind}").ref
    done = export_version(registry, ref, tmp_path / "merged", merge=True)
    assert "model.safetensors" in done.files and "adapter_config.json" not in done.files
    predictor = Predictor.from_registry(registry, ref)
    batch = predictor.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = predictor.logits(batch).flatten().tolist()
    loaded = subprocess.run(
        [sys.executable, "-c", PLAIN_LOAD, done.directory, json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    answer = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert answer["logits"] == pytest.approx(expected, abs=1e-4)
    assert list(answer["labels"].values()) == predictor.labels


def test_unmerged_export_is_the_stored_version_with_its_card_as_readme(
    registry, tmp_path, tiny_bert
):
    ref = register_output(registry, trained_output(tmp_path, tiny_bert, "adapter", 2), "clf").ref
    done = export_version(registry, ref, tmp_path / "plain")
    assert "adapter_config.json" in done.files and "README.md" in done.files
    assert (tmp_path / "plain/README.md").read_text() == (
        tmp_path / "plain/MODEL_CARD.md"
    ).read_text()


def test_a_prompt_version_cannot_be_merged_and_says_so(registry, tmp_path, tiny_bert):
    ref = register_output(registry, trained_output(tmp_path, tiny_bert, "prompt", 4), "p").ref
    with pytest.raises(FtrayError, match=r"^export --merge: p:1 is a prompt version"):
        export_version(registry, ref, tmp_path / "merged", merge=True)
    assert not (tmp_path / "merged").exists()
