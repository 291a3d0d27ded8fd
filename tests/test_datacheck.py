from conftest import make_spec, ner_raw, sentiment_raw, write_jsonl

from ftray.datacheck import check_data


def report_for(tmp_path, train_rows, validation_rows, raw_builder=sentiment_raw, **sections):
    raw = raw_builder(tmp_path / "model", **sections)
    raw["data"]["train"] = str(write_jsonl(tmp_path / "train.jsonl", train_rows))
    raw["data"]["validation"] = str(write_jsonl(tmp_path / "validation.jsonl", validation_rows))
    report = check_data(make_spec(raw))
    return report, {f.check: f for f in report.findings}


def rows(n, label, group="a", prefix="text"):
    return [{"text": f"{prefix} {label} {i}", "label": label, "group": group} for i in range(n)]


def test_a_healthy_dataset_passes(tmp_path):
    train = rows(100, "pos", "a") + rows(100, "neg", "b")
    validation = rows(30, "pos", "a", "held") + rows(30, "neg", "b", "held")
    report, _ = report_for(tmp_path, train, validation)
    assert not report.failed
    assert all(f.level == "ok" for f in report.findings), [f.message for f in report.findings]


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
