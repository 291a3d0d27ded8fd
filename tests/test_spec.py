from pathlib import Path

import pytest

from ftray.errors import FtrayError
from ftray.spec import apply_override, load_spec, spec_from_dict

MINIMAL = {"data": {"train": "train.jsonl"}}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_defaults_fill_every_section():
    spec = spec_from_dict(MINIMAL)
    assert spec.model.task == "sequence-classification"
    assert spec.strategy.kind == "adapter" and spec.strategy.method == "lora"
    assert spec.deepspeed.zero_stage == 0
    assert (spec.metric, spec.mode) == ("f1", "max")
    assert spec.learning_rate == 1e-3  # the adapter strategy's default


def test_objective_follows_the_task_and_the_early_stopping_metric():
    spec = spec_from_dict({**MINIMAL, "model": {"task": "causal-lm"}})
    assert (spec.metric, spec.mode) == ("perplexity", "min")
    spec = spec_from_dict({**MINIMAL, "train": {"early_stopping": {"metric": "val_loss"}}})
    assert (spec.metric, spec.mode) == ("val_loss", "min")


def test_relative_paths_resolve_against_the_spec_file(tmp_path):
    (tmp_path / "ds.json").write_text("{}")
    spec = load_spec(
        write(tmp_path, "data: {train: d/train.jsonl}\ndeepspeed: {config: ds.json}\n")
    )
    assert spec.data.train == str(tmp_path / "d/train.jsonl")
    assert spec.deepspeed.config == str(tmp_path / "ds.json")
    assert spec.checkpoint.storage_path == str(Path("~/ftray/runs").expanduser())


def test_overrides_parse_yaml_values_and_create_sections(tmp_path):
    spec = load_spec(
        write(tmp_path, "data: {train: t.jsonl}\n"),
        ["train.learning_rate=1e-4", "train.early_stopping.patience=5", "model.labels=[a, b]"],
    )
    assert spec.train.learning_rate == 1e-4
    assert spec.train.early_stopping.patience == 5
    assert spec.model.labels == ["a", "b"]


def test_changing_strategy_kind_starts_its_knobs_afresh():
    raw = {**MINIMAL, "strategy": {"kind": "adapter", "r": 4}}
    for override in ["strategy.kind=prompt", "strategy.num_virtual_tokens=7"]:
        apply_override(raw, override)
    spec = spec_from_dict(raw)
    assert spec.strategy.kind == "prompt" and spec.strategy.num_virtual_tokens == 7
    raw = {**MINIMAL, "strategy": {"kind": "adapter", "r": 4}}
    apply_override(raw, "strategy.kind=adapter")  # same kind: knobs stay
    assert spec_from_dict(raw).strategy.r == 4


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"data": {"train": "t", "colour": 1}}, "unknown field 'data.colour' (allowed: train,"),
        ({**MINIMAL, "strategy": {"kind": "adapter", "rank": 2}}, "unknown field 'strategy.rank'"),
        (
            {**MINIMAL, "strategy": {"kind": "magic"}},
            "strategy.kind: 'magic' is not one of adapter, full",
        ),
        (
            {**MINIMAL, "strategy": {"kind": "prompt", "method": "soft"}},
            "strategy.method: 'soft' is not",
        ),
        (
            {**MINIMAL, "deepspeed": {"zero_stage": 4}},
            "deepspeed.zero_stage: 4 is not one of 0, 1, 2 or 3",
        ),
        (
            {**MINIMAL, "deepspeed": {"autocast": True, "bf16": True}},
            "deepspeed.autocast: autocast keeps fp32 weights",
        ),
        (
            {**MINIMAL, "model": {"max_length": 0}},
            "model.max_length: Input should be greater than 0",
        ),
        ({**MINIMAL, "model": {"task": "vision"}}, "model.task: 'vision' is not one of"),
        ({**MINIMAL, "model": {"labels": ["a", "a"]}}, "model.labels: lists a more than once"),
        ({}, "data: required field is missing"),
        ({**MINIMAL, "train": {"early_stopping": {"metric": "bleu"}}}, "'bleu' is not reported"),
        ({**MINIMAL, "name": "../escape"}, "name: use 1-128 letters"),
        ({**MINIMAL, "registry": {"register_as": "a b"}}, "registry.register_as: model name"),
        ({**MINIMAL, "registry": {"aliases": ["x/y"]}}, "registry.aliases: alias"),
        (
            {**MINIMAL, "strategy": {"kind": "partial", "patterns": ["("]}},
            "is not a regular expression",
        ),
    ],
)
def test_invalid_specs_fail_with_one_line_naming_the_field(raw, message):
    with pytest.raises(FtrayError) as caught:
        spec_from_dict(raw, source="job.yaml")
    text = str(caught.value)
    assert text.startswith("job.yaml: ") and message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: {train: [unclosed\n", "line 2: malformed YAML"),
        ("- a list\n- not a mapping\n", "a job spec is a mapping of sections"),
    ],
)
def test_malformed_yaml_is_one_line(tmp_path, text, message):
    with pytest.raises(FtrayError, match=message):
        load_spec(write(tmp_path, text))


def test_missing_spec_file_and_bad_override(tmp_path):
    with pytest.raises(FtrayError, match="job spec not found"):
        load_spec(tmp_path / "absent.yaml")
    with pytest.raises(FtrayError, match="expected key.path=value"):
        load_spec(write(tmp_path, "data: {train: t}\n"), ["train.epochs"])
    with pytest.raises(FtrayError, match="unknown field 'train.epoch'"):
        load_spec(write(tmp_path, "data: {train: t}\n"), ["train.epoch=3"])


def test_the_package_exports_functions_not_their_modules():
    import importlib

    import ftray

    for module in ("ftray.train", "ftray.tune", "ftray.compare", "ftray.evaluate"):
        importlib.import_module(module)  # as any code importing from them does

    for name in ("train", "tune", "compare", "check_data", "evaluate"):
        assert callable(getattr(ftray, name)), name
    from ftray import train

    assert callable(train)
