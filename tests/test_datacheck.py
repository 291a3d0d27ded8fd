import random

import pytest
from conftest import EXAMPLES, TEMPLATED, make_spec, ner_raw, sentiment_raw, write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from ftray import textchecks
from ftray.datacheck import check_data
from ftray.spec import load_spec

VOCABULARY = [f"w{i}" for i in range(400)]


def report_for(tmp_path, train_rows, validation_rows, raw_builder=sentiment_raw, **sections):
    raw = raw_builder(tmp_path / "model", **sections)
    raw["data"]["train"] = str(write_jsonl(tmp_path / "train.jsonl", train_rows))
    raw["data"]["validation"] = str(write_jsonl(tmp_path / "validation.jsonl", validation_rows))
    report = check_data(make_spec(raw))
    return report, {f.check: f for f in report.findings}


def rows(n, label, group="a", prefix="text"):
    """Rows of random words: no shared wording, no template, no phrase tied to a label."""
    rng = random.Random(f"{prefix}{label}{group}")
    return [
        {"text": " ".join(rng.choices(VOCABULARY, k=8)), "label": label, "group": group}
        for _ in range(n)
    ]


def test_a_healthy_dataset_passes(tmp_path):
    train = rows(100, "pos", "a") + rows(100, "neg", "b")
    validation = rows(30, "pos", "a", "held") + rows(30, "neg", "b", "held")
    report, _ = report_for(tmp_path, train, validation)
    assert not report.failed
    assert all(f.level == "ok" for f in report.findings), [f.message for f in report.findings]


def templated_report(task):
    name = "sentiment" if task == "sequence-classification" else "ner"
    data = TEMPLATED / f"templated-{name}"
    raw = (sentiment_raw if name == "sentiment" else ner_raw)(TEMPLATED / "unused")
    raw["data"].update(train=str(data / "train.jsonl"), validation=str(data / "validation.jsonl"))
    return {f.check: f for f in check_data(make_spec(raw)).findings}


def test_the_old_templated_sentiment_data_is_caught():
    found = templated_report("sequence-classification")
    assert found["near_duplicates"].level == "warn"
    assert found["near_duplicates"].details["validation"]["share"] > 0.3
    assert (
        "validation scores will overstate quality on new text" in found["near_duplicates"].message
    )
    assert found["shortcuts"].level == "warn"
    phrases = {p["phrase"]: p for p in found["shortcuts"].details["phrases"]}
    assert phrases["i keep coming back to it"]["label"] == "positive"
    assert phrases["i keep coming back to it"]["precision"] == 1.0
    assert found["shortcuts"].details["held_out_share"]["validation"] > 0.1
    assert found["diversity"].level == "warn"
    assert found["diversity"].details["template_share"] > 0.5


def test_the_old_templated_ner_data_is_caught():
    found = templated_report("token-classification")
    assert found["entity_overlap"].level == "warn"
    assert found["entity_overlap"].details["validation"]["share"] > 0.95
    assert found["diversity"].details["distinct_tag_sequence_share"] < 0.1
    assert found["near_duplicates"].details["validation"]["share"] > 0.1


@pytest.mark.parametrize("example", ["sentiment", "ner"])
def test_the_examples_challenge_sets_are_far_from_their_training_data(example):
    found = {f.check: f for f in check_data(load_spec(EXAMPLES / example / "job.yaml")).findings}
    assert found["near_duplicates"].details["test"]["share"] < 0.02
    if example == "sentiment":
        assert found["shortcuts"].level == "ok"
        assert found["shortcuts"].details["held_out_share"]["test"] < 0.05
    else:
        assert found["entity_overlap"].details["test"]["share"] < 0.5


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(VOCABULARY[:12]), min_size=1, max_size=8), min_size=1,
             max_size=25),
    st.lists(st.lists(st.sampled_from(VOCABULARY[:12]), min_size=1, max_size=8), min_size=1,
             max_size=10),
)  # fmt: skip
def test_near_duplicates_agree_with_brute_force_jaccard(train, held_out):
    train_texts, held_texts = [" ".join(t) for t in train], [" ".join(t) for t in held_out]
    found = textchecks.near_duplicates(train_texts, held_texts, 0.8)
    brute = sum(max(textchecks.jaccard(set(h), set(t)) for t in train) >= 0.8 for h in held_out)
    # MinHash LSH is probabilistic: it may miss a pair near the threshold, never invent one.
    assert found.count <= brute
    assert found.count >= brute - max(1, brute // 5)


def test_imbalance_duplicates_noise_leakage_and_thin_groups_are_flagged(tmp_path):
    train = rows(190, "pos", "a") + rows(8, "neg", "a")
    train += [train[0], train[1]]  # exact duplicates
    train += [{**train[2], "label": "neg"}]  # same text, other label: noise
    validation = [*rows(40, "pos", "a", "held"), train[5], *rows(5, "neg", "b", "held")]
    _, found = report_for(tmp_path, train, validation)
    assert found["label_balance"].level == "warn"
    assert "imbalanced: neg" in found["label_balance"].message
    assert "fewer than 10 examples: neg" in found["label_balance"].message
    assert found["duplicates"].details["duplicates"] == 3
    assert found["duplicates"].details["conflicting"] == 1
    assert "noisy labels" in found["duplicates"].message
    assert found["leakage"].details["leaked"] == 1
    assert "absent from train: b" in found["group_balance"].message
    assert "slice metrics unreliable" in found["group_balance"].message


def test_a_declared_label_missing_from_train_fails_the_check(tmp_path):
    validation = rows(5, "neg", prefix="v") + rows(5, "pos", prefix="v")
    report, found = report_for(
        tmp_path, rows(60, "pos"), validation, model={"labels": ["pos", "neg"]}
    )
    assert report.failed
    assert found["label_balance"].message == "no training examples for neg"


def test_small_splits_and_broken_bio_are_warned(tmp_path):
    train = [
        {"tokens": ["Ann", "Lee", "ran"], "tags": ["B-PER", "I-PER", "O"], "group": "a"},
        {"tokens": ["Oslo", "is", "cold"], "tags": ["I-LOC", "O", "O"], "group": "a"},
    ]
    validation = [{"tokens": ["Bo", "ran"], "tags": ["B-PER", "O"], "group": "a"}]
    _, found = report_for(tmp_path, train, validation, ner_raw)
    assert found["split_sizes"].level == "warn"
    assert found["bio_tags"].details == {"sentences": 1}


def test_a_prompt_and_its_completion_keep_their_boundary_in_the_duplicate_key():
    """ "a b" + "c" and "a" + "b c" are different examples: the separator joining them must
    survive the key's whitespace folding (the ASCII unit separator did not: `\\s` matches it)."""
    from ftray.datacheck import _key
    from ftray.tasks import get_task

    task = get_task("causal-lm")
    first = {"prompt": "Say a b", "completion": "c"}
    second = {"prompt": "Say a", "completion": "b c"}
    assert _key(first, task) != _key(second, task)
    assert _key(first, task) == _key({"prompt": "say  A b", "completion": "c"}, task)
