"""The committed example data is exactly what the seeded generators produce."""

import importlib.util
import subprocess
import sys

import pytest
from conftest import EXAMPLES, read_jsonl


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


@pytest.mark.parametrize("split", ["challenge", "dev", "dev2", "fresh"])
def test_the_chat_examples_hand_written_answers_are_the_desks_own(split):
    """Every answer in a hand-written chat set is one the desk's table gives (a typo there would
    count a right reply as wrong)."""
    loader = importlib.util.spec_from_file_location("chat_desk", EXAMPLES / "chat" / "generate.py")
    assert loader is not None and loader.loader is not None
    desk = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(desk)
    rows = read_jsonl(EXAMPLES / "chat" / "data" / f"{split}.jsonl")
    said = {m["content"] for row in rows for m in row["messages"] if m["role"] == "assistant"}
    unknown = said - desk.answers()
    assert said and not unknown, sorted(unknown)


def text_of(row):
    return (row.get("text") or " ".join(row["tokens"])).lower()


@pytest.mark.parametrize(
    "example,split",
    [
        ("sentiment", "challenge"),
        ("sentiment", "holdout"),
        ("sentiment", "blind"),
        ("sentiment", "long"),
        ("sentiment", "short"),
        ("sentiment", "fresh"),
        ("sentiment", "fresh2"),
        ("ner", "challenge"),
        ("ner", "holdout"),
        ("ner", "long"),
        ("ner", "plain"),
        ("ner", "fresh"),
    ],
)
def test_the_hand_written_sets_share_no_row_with_training_and_are_well_labelled(example, split):
    """A hand-written set scores text the model never trained on, in the example's own labels."""
    data = EXAMPLES / example / "data"
    trained = "\n".join(
        text_of(row)
        for name in ("train", "validation")
        for row in read_jsonl(data / f"{name}.jsonl")
    )
    rows = read_jsonl(data / f"{split}.jsonl")
    # Substrings too: training rows include hand-written reviews with a sentence added around them.
    assert rows and not [row for row in rows if text_of(row) in trained]
    for row in rows:
        if example == "sentiment":
            assert row["label"] in ("positive", "negative"), row
        else:
            assert len(row["tags"]) == len(row["tokens"]), row
            for before, tag in zip(["O", *row["tags"][:-1]], row["tags"], strict=True):
                assert tag == "O" or tag[2:] in ("PER", "ORG", "LOC", "MISC"), row
                assert not tag.startswith("I-") or before[2:] == tag[2:], row  # BIO, not IO
