"""The CLI contract: --help everywhere, one-line errors with a non-zero exit, --json results."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import EXAMPLES, sentiment_raw, write_jsonl

from ftray.cli import main


def run_cli(capsys, *argv):
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def write_job(tmp_path, raw) -> str:
    raw.setdefault("checkpoint", {})["storage_path"] = str(tmp_path / "runs")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("command", [[], ["train"], ["data"], ["data", "check"]])
def test_every_command_has_help(capsys, command):
    code, out, _ = run_cli(capsys, *command, "--help")
    assert code == 0 and "Usage: ftray" in out


def bad_jobs(tmp_path):
    good = sentiment_raw(tmp_path / "no-model-needed")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    unlabelled = write_jsonl(tmp_path / "odd.jsonl", [{"text": "fine", "label": "maybe"}] * 3)
    missing_text = write_jsonl(
        tmp_path / "gap.jsonl", [{"text": "ok", "label": "positive"}, {"label": "negative"}]
    )
    return {
        "unknown key": ({**good, "trian": {}}, "unknown field 'trian'"),
        "unknown strategy": (
            {**good, "strategy": {"kind": "magic"}},
            "strategy.kind: 'magic' is not one of",
        ),
        "missing data file": (
            {**good, "data": {"train": str(tmp_path / "absent.jsonl")}},
            "data.train: file not found",
        ),
        "empty data file": ({**good, "data": {"train": str(empty)}}, "has no rows"),
        "label not in list": (
            {
                **good,
                "model": {**good["model"], "labels": ["negative", "positive"]},
                "data": {"train": str(unlabelled)},
            },
            "label 'maybe' is not in model.labels (negative, positive)",
        ),
        "text field missing": (
            {**good, "data": {"train": str(missing_text)}},
            "data.train row 2: field 'text' is missing",
        ),
        "max_length": ({**good, "model": {**good["model"], "max_length": 0}}, "model.max_length"),
        "zero stage 4": (
            {**good, "deepspeed": {"zero_stage": 4}},
            "deepspeed.zero_stage: 4 is not one of 0, 1, 2 or 3",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown key",
        "unknown strategy",
        "missing data file",
        "empty data file",
        "label not in list",
        "text field missing",
        "max_length",
        "zero stage 4",
    ],
)
def test_bad_input_is_one_line_nonzero_and_writes_nothing(tmp_path, capsys, case):
    raw, message = bad_jobs(tmp_path)[case]
    code, out, err = run_cli(capsys, "train", write_job(tmp_path, raw))
    assert code == 1 and out == ""
    assert err.startswith("ftray: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "runs").exists()


def test_malformed_yaml_and_usage_errors(tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text("model: {name: [oops\n")
    code, _, err = run_cli(capsys, "train", str(job))
    assert code == 1 and "malformed YAML" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "train")
    assert code == 2 and err == "ftray: error: Missing argument 'JOB'.\n"
    job.write_text("data: {train: t.jsonl}\n")
    code, _, err = run_cli(capsys, "train", str(job), "--set", "novalue")
    assert code == 1 and "expected key.path=value" in err


def test_data_check_prints_json(capsys):
    code, out, _ = run_cli(capsys, "data", "check", str(EXAMPLES / "sentiment/job.yaml"), "--json")
    report = json.loads(out)
    assert code == 0 and report["train_examples"] == 2589 and not report["failed"]
    assert report["test_examples"] == 171
    assert {f["check"] for f in report["findings"]} >= {"label_balance", "leakage", "shortcuts"}


def test_the_installed_command_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ftray.cli", "train", str(tmp_path / "absent.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ftray: error: {tmp_path / 'absent.yaml'}: job spec not found"
    ]
