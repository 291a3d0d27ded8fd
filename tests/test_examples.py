"""The committed example data is exactly what the seeded generators produce."""

import subprocess
import sys

import pytest
from conftest import EXAMPLES


@pytest.mark.parametrize("example", ["sentiment", "ner", "causal-lm", "chat"])
def test_generators_reproduce_the_committed_data(tmp_path, example):
    builds_a_model = example in ("causal-lm", "chat")
    extra = ["--no-model"] if builds_a_model else []
    out = tmp_path if builds_a_model else tmp_path / "data"
    subprocess.run(
        [sys.executable, str(EXAMPLES / example / "generate.py"), "--out", str(out), *extra],
        check=True,
    )
    for split in ("train", "validation"):
        generated = (tmp_path / "data" / f"{split}.jsonl").read_text()
        assert generated == (EXAMPLES / example / "data" / f"{split}.jsonl").read_text()
