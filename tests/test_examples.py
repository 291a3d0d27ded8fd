"""The committed example data is exactly what the seeded generators produce."""

import subprocess
import sys

import pytest
from conftest import EXAMPLES


@pytest.mark.parametrize("example", ["sentiment", "ner", "causal-lm"])
def test_generators_reproduce_the_committed_data(tmp_path, example):
    extra = ["--no-model"] if example == "causal-lm" else []
    out = tmp_path if example == "causal-lm" else tmp_path / "data"
    subprocess.run(
        [sys.executable, str(EXAMPLES / example / "generate.py"), "--out", str(out), *extra],
        check=True,
    )
    for split in ("train", "validation"):
        generated = (tmp_path / "data" / f"{split}.jsonl").read_text()
        assert generated == (EXAMPLES / example / "data" / f"{split}.jsonl").read_text()
