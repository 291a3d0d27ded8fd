"""Registered versions of every kind load back and answer as the trained model did."""

import json

import pytest
import torch
from test_artefacts import LABELS, trained_output

from ftray.artefacts import register_output
from ftray.evaluate import output_files, score_examples
from ftray.inference import ModelFiles, Predictor
from ftray.models import load_task_model, load_tokenizer
from ftray.results import RESULT_FILE, ModelResult
from ftray.spec import DataSpec
from ftray.strategies import get_strategy
from registry import BlobCache, Registry
from registry.local_store import LocalStore

TEXTS = ["The kettle is superb, I would buy it again.", "A dreadful sequel, a waste of money."]


@pytest.fixture
def registry(tmp_path):
    return Registry(LocalStore(tmp_path / "registry"), BlobCache(tmp_path / "cache"))


def reference_probabilities(output, tiny_bert):
    """What the trained model itself says, loaded the way it was saved (transformers or PEFT)."""
    from peft import PeftModel

    tokenizer = load_tokenizer(str(tiny_bert))
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    if (output / "adapter_config.json").exists():
        base = load_task_model(str(tiny_bert), "sequence-classification", LABELS)
        model = PeftModel.from_pretrained(base, str(output))
    else:
        model = load_task_model(str(output), "sequence-classification", LABELS)
    with torch.no_grad():
        return model.eval()(**batch).logits.softmax(-1)


@pytest.mark.parametrize(
    ("kind", "knobs"),
    [
        ("full", {}),
        ("partial", {"top_layers": 1}),
        ("adapter", {}),
        ("prompt", {"num_virtual_tokens": 5}),
    ],
)
def test_every_kind_loads_back_from_the_registry_and_predicts_the_same(
    registry, tmp_path, tiny_bert, kind, knobs
):
    output = trained_output(tmp_path, tiny_bert, kind, 7, **knobs)
    manifest = register_output(registry, output, f"clf-{kind}")
    predictor = Predictor.from_registry(registry, f"clf-{kind}@latest")
    answers = predictor.predict(TEXTS)
    expected = reference_probabilities(output, tiny_bert)
    for answer, row in zip(answers, expected.tolist(), strict=True):
        assert answer["scores"] == pytest.approx(dict(zip(LABELS, row, strict=True)), abs=1e-5)
        assert answer["label"] == LABELS[max(range(2), key=row.__getitem__)]
    assert manifest.kind == kind


def test_a_classifier_answers_at_the_temperature_fitted_on_its_validation(
    registry, tmp_path, tiny_bert
):
    """Probabilities are softmax(logits / temperature), through the registry and for a training
    output (`ftray eval`, the test split); logits stay the model's own, as an export gives them.
    Versions without one answer at 1."""
    output = trained_output(tmp_path, tiny_bert, "full", 7)
    register_output(registry, output, "as-trained")
    result = json.loads((output / RESULT_FILE).read_text())
    result["metrics"]["temperature"] = 2.5
    (output / RESULT_FILE).write_text(json.dumps(result))
    register_output(registry, output, "calibrated")
    files = output_files(output, ModelResult.read(output))
    assert files.calibration_temperature == 2.5
    examples = [{"text": text, "label": label} for text, label in zip(TEXTS, LABELS, strict=True)]
    scores = score_examples(files, examples, DataSpec(train="-"))
    assert scores.metrics["temperature"] == 2.5  # what was applied, not a fit to these rows
    # Brier of the probabilities at 2.5; the loss stays the model's own, as validation's is.
    logits, targets = reference_probabilities(output, tiny_bert).log(), torch.tensor([0, 1])
    served = (logits / 2.5).softmax(dim=-1)
    brier = float(((served - torch.eye(2)[targets]) ** 2).sum(dim=-1).mean())
    assert scores.metrics["brier"] == pytest.approx(brier, rel=1e-4)
    loss = torch.nn.functional.cross_entropy(logits, targets)
    assert scores.metrics["val_loss"] == pytest.approx(float(loss), rel=1e-4)
    assert Predictor.from_registry(registry, "as-trained@latest").calibration_temperature == 1.0
    predictor = Predictor.from_registry(registry, "calibrated@latest")
    logits = reference_probabilities(output, tiny_bert).log()  # the logits, up to a shift
    expected = (logits / 2.5).softmax(dim=-1)
    for answer, row in zip(predictor.predict(TEXTS), expected.tolist(), strict=True):
        assert answer["scores"] == pytest.approx(dict(zip(LABELS, row, strict=True)), abs=1e-5)


def untrained_model(tmp_path, tiny_bert, task: str, labels: list[str], seed: int):
    """The tiny BERT with a fresh head for `task`, saved as a full version's files (random
    weights: what these tests check does not depend on training)."""
    torch.manual_seed(seed)
    strategy = get_strategy("full")
    model = strategy.apply(
        load_task_model(str(tiny_bert), task, labels), strategy.config_type(), task
    )
    directory = tmp_path / task
    model.save_pretrained(directory)
    load_tokenizer(str(tiny_bert)).save_pretrained(directory)
    return directory


def test_ner_entities_are_character_spans_of_the_input(tmp_path, tiny_bert):
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    directory = untrained_model(tmp_path, tiny_bert, "token-classification", tags, seed=3)
    predictor = Predictor.from_files(
        ModelFiles(directory, "full", "token-classification", tags, None)
    )
    text = "Amara Okafor flew from Port Elsby to Kelderby, said Ravi Szabo."
    entities = predictor.predict([text])[0]["entities"]
    assert entities, "a random model still tags something"
    for entity in entities:
        assert entity["text"] == text[entity["start"] : entity["end"]]
        start, end = entity["start"], entity["end"]
        # Spans cover whole words of the tokenizer's pre-tokenization (punctuation is a word).
        assert not (start > 0 and text[start].isalnum() and text[start - 1].isalnum())
        assert not (end < len(text) and text[end - 1].isalnum() and text[end].isalnum())
        assert entity["type"] in ("PER", "LOC") and 0 < entity["score"] <= 1
    # Inputs answered in one padded forward pass get what each gets alone.
    texts = [text, "Ravi left.", "Kelderby and Port Elsby, then Amara Okafor again at dawn."]
    together = predictor.predict(texts)
    for alone, batched in zip((predictor.predict([t])[0] for t in texts), together, strict=True):
        assert [(e["type"], e["start"], e["end"]) for e in batched["entities"]] == [
            (e["type"], e["start"], e["end"]) for e in alone["entities"]
        ]
        scores = [e["score"] for e in alone["entities"]]
        assert [e["score"] for e in batched["entities"]] == pytest.approx(scores, abs=1e-5)
    # At a calibration temperature: the same entities, each less sure (a softmax's top
    # probability falls as the temperature rises).
    files = ModelFiles(directory, "full", "token-classification", tags, None, None, 4.0)
    calibrated = Predictor.from_files(files).predict([text])[0]["entities"]
    assert [(e["type"], e["start"], e["end"]) for e in calibrated] == [
        (e["type"], e["start"], e["end"]) for e in entities
    ]
    assert all(c["score"] < e["score"] for c, e in zip(calibrated, entities, strict=True))


def test_many_inputs_are_answered_in_bounded_passes_of_similar_lengths(
    tmp_path, tiny_bert, monkeypatch
):
    """A batch larger than FORWARD_BATCH goes in passes of at most that many inputs, grouped by
    length; each input still gets, in its place, what it gets alone."""
    import ftray.inference

    task = "sequence-classification"
    directory = untrained_model(tmp_path, tiny_bert, task, LABELS, seed=5)
    files = ModelFiles(directory, "full", task, LABELS, None)
    predictor = Predictor.from_files(files)
    texts = [" ".join(["word"] * (1 + (7 * i) % 23)) + f" number {i}" for i in range(11)]
    alone = [predictor.predict([text])[0] for text in texts]
    passes = []
    task_predict = predictor.task_plugin.predict
    monkeypatch.setattr(ftray.inference, "FORWARD_BATCH", 4)
    monkeypatch.setattr(
        predictor.task_plugin,
        "predict",
        lambda p, inputs, options: passes.append(inputs) or task_predict(p, inputs, options),
    )
    together = predictor.predict(texts)
    assert [len(p) for p in passes] == [4, 4, 3]
    assert sorted(len(t) for p in passes for t in p) == [len(t) for p in passes for t in p]
    for single, batched in zip(alone, together, strict=True):
        assert batched["label"] == single["label"]
        assert batched["scores"] == pytest.approx(single["scores"], abs=1e-5)


def test_causal_lm_completes_a_prompt(tiny_llama):
    predictor = Predictor.from_files(ModelFiles(tiny_llama, "full", "causal-lm", [], None))
    [answer] = predictor.predict(["Colour of lime?\nAnswer:"], max_new_tokens=5)
    assert isinstance(answer["completion"], str) and answer["completion_tokens"] <= 5
    assert answer["finish_reason"] in ("stop", "length") and answer["prompt_tokens"] > 3


@pytest.mark.parametrize("kind", ["full", "adapter", "prompt"])
def test_an_input_longer_than_the_model_reads_is_cut_to_fit_its_positions(
    registry, tmp_path, tiny_bert, kind
):
    # The tiny BERT has 256 positions; a prompt-tuned version spends 20 of them on virtual
    # tokens, which the cut must leave room for (it overflowed: 512 + 20 positions).
    output = trained_output(tmp_path, tiny_bert, kind, 3)
    register_output(registry, output, f"long-{kind}")
    predictor = Predictor.from_registry(registry, f"long-{kind}@latest")
    assert predictor.max_length == 256 - (20 if kind == "prompt" else 0)
    [answer] = predictor.predict(["the kettle is superb " * 400])
    assert answer["label"] in LABELS


def test_a_long_prompt_keeps_its_end_and_the_completion_fits(tiny_llama):
    predictor = Predictor.from_files(ModelFiles(tiny_llama, "full", "causal-lm", [], None))
    [answer] = predictor.predict(["lime " * 3000 + "Colour of lime?\nAnswer:"], max_new_tokens=8)
    assert answer["prompt_tokens"] + 8 <= predictor.max_length
    assert answer["completion_tokens"] <= 8


@pytest.mark.parametrize("task", ["sequence-classification", "token-classification"])
def test_a_max_length_that_leaves_no_room_for_virtual_tokens_is_refused_at_plan_time(
    tmp_path, tiny_bert, task
):
    from conftest import make_spec, ner_raw, sentiment_raw

    from ftray.errors import FtrayError
    from ftray.plan import plan_job

    raw = (sentiment_raw if task == "sequence-classification" else ner_raw)(
        tiny_bert, strategy={"kind": "prompt", "num_virtual_tokens": 20}
    )
    raw["model"]["max_length"] = 250
    with pytest.raises(FtrayError, match=r"^model.max_length: 250 \(\+20 virtual tokens\) exceeds"):
        plan_job(make_spec(raw, tmp_path))


def test_prompts_of_a_batch_complete_as_they_do_alone(tiny_llama):
    # Left padding: each row's next token follows its own last one; greedy, so the same text.
    predictor = Predictor.from_files(ModelFiles(tiny_llama, "full", "causal-lm", [], None))
    prompts = [
        "Colour of lime?\nAnswer:",
        "Q: What is the capital of the country that makes the best kettles?\nA:",
        "Hi",
    ]
    together = predictor.predict(prompts, max_new_tokens=6)
    for prompt, batched in zip(prompts, together, strict=True):
        [alone] = predictor.predict([prompt], max_new_tokens=6)
        assert batched == alone


@pytest.mark.parametrize("kind", ["full", "adapter", "prompt"])
def test_a_streamed_completion_is_the_completion(tmp_path, tiny_llama, kind):
    # Token by token with a KV cache (recomputing under prompt learning), greedy: the same text
    # and counts as one generate call, in at least two pieces.
    torch.manual_seed(5)
    strategy = get_strategy(kind)
    model = strategy.apply(
        load_task_model(str(tiny_llama), "causal-lm", []), strategy.config_type(), "causal-lm"
    )
    model.save_pretrained(tmp_path / kind)
    load_tokenizer(str(tiny_llama)).save_pretrained(tmp_path / kind)
    base = tiny_llama if kind != "full" else None
    files = ModelFiles(tmp_path / kind, kind, "causal-lm", [], base)
    predictor = Predictor.from_files(files)
    prompt = "Colour of lime?\nAnswer:"
    [whole] = predictor.predict([prompt], max_new_tokens=12)
    pieces = list(predictor.stream(prompt, max_new_tokens=12))
    *texts, end = pieces
    assert "".join(p["text"] for p in texts) == whole["completion"] and len(texts) >= 2
    assert end == {k: whole[k] for k in ("finish_reason", "prompt_tokens", "completion_tokens")}


def test_stop_strings_seed_and_top_p_as_openai_means_them(tiny_llama):
    predictor = Predictor.from_files(ModelFiles(tiny_llama, "full", "causal-lm", [], None))
    prompt = "Colour of lime?\nAnswer:"
    [free] = predictor.predict([prompt], max_new_tokens=12)
    text = free["completion"]
    assert len(text) >= 4, "the random model must say something to cut"
    stop = text[2:4]  # a stop string inside the free completion: it ends before it
    [stopped] = predictor.predict([prompt], max_new_tokens=12, stop=[stop])
    assert stopped["completion"] == text[: text.find(stop)] and stopped["finish_reason"] == "stop"
    *pieces, end = predictor.stream(prompt, max_new_tokens=12, stop=[stop])
    assert "".join(p["text"] for p in pieces) == stopped["completion"]
    assert end["finish_reason"] == "stop"

    def sampled(**options):
        options = {"max_new_tokens": 8, "temperature": 1.5, **options}
        batch = predictor.predict([prompt], **options)[0]["completion"]
        streamed = "".join(p.get("text", "") for p in predictor.stream(prompt, **options))
        return batch, streamed

    assert sampled(seed=3) == sampled(seed=3)  # a seed repeats the sample, both ways
    assert sampled(seed=3) != sampled(seed=4)
    # top_p so small only the most likely token is left: sampling becomes greedy.
    greedy = predictor.predict([prompt], max_new_tokens=8)[0]["completion"]
    assert sampled(seed=5, top_p=1e-6) == (greedy, greedy)
