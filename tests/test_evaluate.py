"""`ftray eval`: run directories and registry versions scored on labelled files, recorded
evaluations, and one-line refusals of data the model cannot be scored on."""

import json
import re

import pytest
from conftest import TEMPLATED, read_jsonl, write_jsonl
from sklearn.metrics import accuracy_score, f1_score
from test_artefacts import trained_output

from ftray.artefacts import register_output
from ftray.cli import main
from ftray.errors import FtrayError
from ftray.evaluate import evaluate, output_files
from ftray.inference import Predictor
from ftray.models import load_task_model, load_tokenizer
from ftray.results import ModelResult
from ftray.runs import RESULT_FILE
from registry import BlobCache, Registry
from registry.local_store import LocalStore

ROWS = read_jsonl(TEMPLATED / "templated-sentiment/validation.jsonl")[:60]


@pytest.fixture
def registry_uri(tmp_path):
    return str(tmp_path / "registry")


@pytest.fixture
def data_file(tmp_path):
    return write_jsonl(tmp_path / "held-out.jsonl", ROWS)


def test_a_run_directory_scores_as_scikit_learn_says_its_predictions_do(
    tmp_path, tiny_bert, data_file
):
    output = trained_output(tmp_path, tiny_bert, "adapter", 3)
    result = evaluate(
        str(output),
        str(data_file),
        overrides=["data.group_field=group"],
        plot_dir=tmp_path / "plots",
        errors=4,
    )
    files = output_files(output, ModelResult.read(output))
    predictor = Predictor.from_files(files)
    predicted = [p["label"] for p in predictor.predict([r["text"] for r in ROWS])]
    gold = [r["label"] for r in ROWS]
    assert result.rows == 60 and result.task == "sequence-classification"
    assert result.metrics["accuracy"] == pytest.approx(accuracy_score(gold, predicted))
    assert result.metrics["f1"] == pytest.approx(f1_score(gold, predicted, average="macro"))
    assert sum(map(sum, result.confusion)) == 60
    assert set(result.metrics["slices"]) == {r["group"] for r in ROWS}
    assert len(result.errors) == min(4, sum(p != g for p, g in zip(predicted, gold, strict=True)))
    assert all(e["wrong"] for e in result.errors)
    assert (tmp_path / "plots" / "confusion_matrix.png").stat().st_size > 1000


def test_a_registry_version_is_evaluated_recorded_and_shown(
    tmp_path, tiny_bert, data_file, registry_uri, capsys
):
    registry = Registry(LocalStore(registry_uri), BlobCache(tmp_path / "cache"))
    manifest = register_output(registry, trained_output(tmp_path, tiny_bert, "full", 4), "clf")
    before = manifest.to_json()
    with pytest.raises(SystemExit) as exited:
        main(["eval", "clf@latest", str(data_file), "--registry", registry_uri, "--record",
              "--plot-dir", str(tmp_path), "--json"])  # fmt: skip
    assert exited.value.code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == "clf:1" and printed["recorded"].startswith("models/clf/evaluations/")
    records = registry.evaluations("clf:1")
    assert len(records) == 1 and records[0]["rows"] == 60
    assert records[0]["metrics"]["accuracy"] == printed["metrics"]["accuracy"]
    assert len(records[0]["data_sha256"]) == 64
    assert registry.resolve("clf:1").to_json() == before  # the manifest is untouched
    with pytest.raises(SystemExit):
        main(["registry", "--uri", registry_uri, "show", "clf:1"])
    assert "evaluated" in capsys.readouterr().out


def test_field_overrides_map_other_column_names(tmp_path, tiny_bert):
    output = trained_output(tmp_path, tiny_bert, "full", 5)
    renamed = [{"review": r["text"], "sentiment": r["label"]} for r in ROWS[:10]]
    path = write_jsonl(tmp_path / "renamed.jsonl", renamed)
    result = evaluate(
        str(output), str(path), overrides=["data.text_field=review", "data.label_field=sentiment"]
    )
    assert result.rows == 10


def test_predict_local_answers_without_an_endpoint_as_the_predictor_does(
    tmp_path, tiny_bert, registry_uri, capsys
):
    registry = Registry(LocalStore(registry_uri), BlobCache(tmp_path / "cache"))
    output = trained_output(tmp_path, tiny_bert, "adapter", 5)
    register_output(registry, output, "clf")
    texts = [r["text"] for r in ROWS[:3]]
    expected = Predictor.from_files(output_files(output, ModelResult.read(output))).predict(texts)
    for target, answered_by in (("clf@latest", "clf:1"), (str(output), str(output))):
        with pytest.raises(SystemExit) as exited:
            main(["predict", target, *texts, "--local", "--registry", registry_uri, "--json"])
        assert exited.value.code == 0
        printed = json.loads(capsys.readouterr().out)
        assert (printed["model"], printed["requested"]) == (answered_by, target)
        assert printed["task"] == "sequence-classification"
        assert [o["label"] for o in printed["outputs"]] == [o["label"] for o in expected]
        for got, want in zip(printed["outputs"], expected, strict=True):
            assert got["scores"] == pytest.approx(want["scores"], abs=1e-6)


def test_predict_without_an_endpoint_says_how_to_start_one_or_answer_here(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["predict", "clf:1", "hello", "--url", "http://127.0.0.1:9"])
    assert exited.value.code != 0
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ftray: error: --url: cannot reach http://127.0.0.1:9")
    assert "`ftray serve clf:1`" in line and "--local" in line
    with pytest.raises(SystemExit):
        main(["predict", "clf:1", "hello", "--registry", "/tmp/elsewhere"])
    assert "--registry: only with --local" in capsys.readouterr().err


def test_a_file_without_the_models_group_field_is_scored_without_slices(tmp_path, tiny_bert):
    output = trained_output(tmp_path, tiny_bert, "full", 7)
    grouped = ["data.group_field=group"]  # as a model trained on the examples' data records
    ungrouped = write_jsonl(
        tmp_path / "ungrouped.jsonl", [{"text": r["text"], "label": r["label"]} for r in ROWS]
    )
    result = evaluate(str(output), str(ungrouped), overrides=grouped)
    assert result.rows == 60 and "slices" not in result.metrics
    assert result.notes == ["no 'group' field in the file: no per-slice metrics"]
    with_groups = evaluate(
        str(output), str(write_jsonl(tmp_path / "g.jsonl", ROWS)), overrides=grouped
    )
    assert with_groups.metrics["accuracy"] == result.metrics["accuracy"] and not with_groups.notes
    partly = [dict(r) for r in ROWS[:3]]
    del partly[1]["group"]
    with pytest.raises(FtrayError, match=re.escape("partly.jsonl row 2: field 'group' is missing")):
        evaluate(
            str(output), str(write_jsonl(tmp_path / "partly.jsonl", partly)), overrides=grouped
        )


def test_rows_longer_than_training_rows_are_scored_as_the_endpoint_reads_them(tmp_path, tiny_bert):
    """Training cut rows at max_length 8; the endpoint reads up to 512 tokens, and so does eval:
    an entity at the end of a long sentence counts, and the answer is the endpoint's."""
    tags = ["O", "B-PER", "I-PER"]
    out = tmp_path / "ner"
    load_task_model(str(tiny_bert), "token-classification", tags).save_pretrained(out)
    load_tokenizer(str(tiny_bert)).save_pretrained(out)
    spec = {
        "model": {"name": str(tiny_bert), "task": "token-classification", "max_length": 8},
        "data": {"train": "t.jsonl"},
    }
    result = {"task": "token-classification", "strategy": "full", "labels": tags, "spec": spec}
    (out / RESULT_FILE).write_text(json.dumps(result))
    words = ["the", "committee", "met", "again", "on", "tuesday", "and", "after", "a", "long"]
    row = {"tokens": [*words, "ada", "okafor"], "tags": ["O"] * len(words) + ["B-PER", "I-PER"]}
    scored = evaluate(str(out), str(write_jsonl(tmp_path / "long.jsonl", [row])))
    assert scored.metrics["per_class"]["PER"]["support"] == 1  # cut at 8 tokens: 0
    served = Predictor.from_files(output_files(out, ModelResult.read(out)))
    found = {
        (e["start"], e["end"]) for e in served.predict([" ".join(row["tokens"])])[0]["entities"]
    }
    ada = len(" ".join(words)) + 1
    recalled = (ada, ada + len("ada okafor")) in found
    assert scored.metrics["per_class"]["PER"]["recall"] == float(recalled)


def causal_lm_output(tmp_path, tiny_llama):
    out = tmp_path / "clm"
    load_task_model(str(tiny_llama), "causal-lm", []).save_pretrained(out)
    load_tokenizer(str(tiny_llama)).save_pretrained(out)
    spec = {"model": {"name": str(tiny_llama), "task": "causal-lm", "max_length": 64},
            "data": {"train": "t.jsonl"}}  # fmt: skip
    result = {"task": "causal-lm", "strategy": "full", "labels": [], "spec": spec}
    (out / RESULT_FILE).write_text(json.dumps(result))
    return out


def test_bad_input_is_refused_in_one_line(tmp_path, tiny_bert, tiny_llama, data_file):
    output = trained_output(tmp_path, tiny_bert, "full", 6)
    cases = [
        ((str(output), str(tmp_path / "absent.jsonl")), "file not found"),
        ((str(tmp_path / "no-such-run"), str(data_file)), "no such directory"),
        (
            (str(output), str(write_jsonl(tmp_path / "l.jsonl", [{"text": "ok", "label": "meh"}]))),
            "row 1: label 'meh' is not one the model predicts (negative, positive)",
        ),
        (
            (str(output), str(write_jsonl(tmp_path / "f.jsonl", [{"text": "no label here"}]))),
            "needs field(s) 'label'",
        ),
        (
            (str(causal_lm_output(tmp_path, tiny_llama)), str(data_file)),
            "the model is a causal-lm model and needs field(s) 'prompt', 'completion'",
        ),
    ]
    for args, message in cases:
        with pytest.raises(FtrayError, match=re.escape(message)) as raised:
            evaluate(*args)
        assert "\n" not in str(raised.value)


def test_scoring_in_ray_tasks_counts_the_whole_file(tmp_path, tiny_bert, data_file):
    from ftray.runtime import ray_runtime

    output = trained_output(tmp_path, tiny_bert, "adapter", 8)
    in_process = evaluate(str(output), str(data_file), overrides=["data.group_field=group"])
    with ray_runtime():
        sharded = evaluate(
            str(output), str(data_file), overrides=["data.group_field=group"], shards=3
        )
    assert rounded(sharded.metrics) == rounded(in_process.metrics)
    assert sharded.confusion == in_process.confusion
    assert [e["index"] for e in sharded.errors] == [e["index"] for e in in_process.errors]


def rounded(value):
    """Metrics with floats rounded: summing counts in another order may move the last digit."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return round(value, 6) if isinstance(value, float) else value
