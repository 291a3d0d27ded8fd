"""Every metric ftray reports, cross-checked against scikit-learn and seqeval on random inputs,
and across two gloo processes whose validation shards differ in size."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics import f1_score as seqeval_f1
from seqeval.metrics import precision_score as seqeval_precision
from seqeval.metrics import recall_score as seqeval_recall
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, brier_score_loss, precision_recall_fscore_support

from ftray import metrics
from ftray.encoding import IGNORE
from ftray.ray_internals import free_loopback_port
from ftray.tasks import make_evaluator

LABELS = ["a", "b", "c", "d"]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
TYPES = ["LOC", "ORG", "PER"]


@st.composite
def label_pairs(draw, max_size: int = 40) -> tuple[list[int], list[int], int]:
    """(targets, predictions, number of classes): classes may be empty on either side."""
    classes = draw(st.integers(2, len(LABELS)))
    size = draw(st.integers(1, max_size))
    label = st.integers(0, classes - 1)
    targets = draw(st.lists(label, min_size=size, max_size=size))
    predictions = draw(
        st.one_of(
            st.lists(label, min_size=size, max_size=size),
            st.just([(t + 1) % classes for t in targets]),  # all wrong
            st.just(list(targets)),  # all right
        )
    )
    return targets, predictions, classes


@settings(max_examples=300, deadline=None)
@given(label_pairs())
def test_classification_metrics_match_scikit_learn(pair):
    targets, predictions, classes = pair
    cm = metrics.confusion_matrix(torch.tensor(predictions), torch.tensor(targets), classes)
    ours = metrics.classification_metrics(cm, LABELS[:classes])
    precision, recall, f1, _ = precision_recall_fscore_support(
        targets, predictions, average="macro", zero_division=0
    )
    assert ours["accuracy"] == pytest.approx(accuracy_score(targets, predictions))
    assert ours["precision"] == pytest.approx(precision)
    assert ours["recall"] == pytest.approx(recall)
    assert ours["f1"] == pytest.approx(f1)
    per_p, per_r, per_f, support = precision_recall_fscore_support(
        targets, predictions, labels=list(range(classes)), average=None, zero_division=0
    )
    for i, label in enumerate(LABELS[:classes]):
        scores = ours["per_class"][label]
        assert scores["precision"] == pytest.approx(per_p[i])
        assert scores["recall"] == pytest.approx(per_r[i])
        assert scores["f1"] == pytest.approx(per_f[i])
        assert scores["support"] == support[i]


def test_f1_is_the_harmonic_mean_when_precision_plus_recall_is_below_one():
    # a: P 1/3, R 1/2 -> F1 0.4 (the old clamped denominator gave 2PR = 0.333); b: P 0, R 0.
    cm = metrics.confusion_matrix(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1, 1, 0]), 2)
    ours = metrics.classification_metrics(cm, ["a", "b"])
    p, r = 1 / 3, 1 / 2
    assert ours["per_class"]["a"]["f1"] == pytest.approx(2 * p * r / (p + r)) == pytest.approx(0.4)
    assert ours["f1"] == pytest.approx(0.2)


def reference_calibration(probabilities: torch.Tensor, targets: list[int]) -> tuple[float, float]:
    """ECE from scikit-learn's reliability curve (each non-empty bin's accuracy and mean
    confidence, weighted by its share of the examples) and Brier's multi-class score."""
    table = probabilities.double().numpy()
    confidence, right = table.max(axis=1), (table.argmax(axis=1) == np.array(targets))
    accuracy, mean_confidence = calibration_curve(
        right.astype(int), confidence, n_bins=metrics.CALIBRATION_BINS, pos_label=1
    )
    edges = np.linspace(0, 1, metrics.CALIBRATION_BINS + 1)[1:-1]
    counts = np.bincount(np.searchsorted(edges, confidence), minlength=metrics.CALIBRATION_BINS)
    ece = float((counts[counts > 0] * abs(accuracy - mean_confidence)).sum() / len(targets))
    brier = brier_score_loss(
        targets, table, labels=list(range(table.shape[1])), scale_by_half=False
    )
    return ece, float(brier)


@st.composite
def probability_tables(draw) -> tuple[torch.Tensor, list[int]]:
    """Softmaxed logits (some of them sure of one class: confidence 1.0) and targets."""
    classes, size = draw(st.integers(2, 4)), draw(st.integers(1, 40))
    logit = st.one_of(st.floats(-8, 8), st.sampled_from([-100.0, 0.0, 100.0]))
    rows = draw(st.lists(st.lists(logit, min_size=classes, max_size=classes), min_size=size,
                         max_size=size))  # fmt: skip
    targets = draw(st.lists(st.integers(0, classes - 1), min_size=size, max_size=size))
    return torch.tensor(rows, dtype=torch.float64).softmax(dim=-1), targets


@settings(max_examples=300, deadline=None)
@given(probability_tables())
def test_calibration_error_and_brier_score_match_scikit_learn(table):
    probabilities, targets = table
    counts = metrics.calibration_counts(probabilities, torch.tensor(targets))
    brier = metrics.brier_sum(probabilities, torch.tensor(targets))
    result = metrics.calibration_metrics(counts, brier)
    ece, expected_brier = reference_calibration(probabilities, targets)
    assert result["ece"] == pytest.approx(ece, abs=1e-12)
    assert result["brier"] == pytest.approx(expected_brier, abs=1e-12)


def test_ner_calibration_counts_the_labelled_tokens_only():
    """A tagger's calibration is over the tokens that carry a tag (each word's first piece),
    as its loss and accuracy are: word pieces and special tokens do not count."""
    torch.manual_seed(1)
    logits = torch.randn(3, 7, 5) * 4
    gold = torch.randint(0, 5, (3, 7))
    gold[:, 0] = gold[:, -1] = IGNORE  # special tokens
    gold[1, 3] = gold[2, 2] = IGNORE  # later pieces of a word
    evaluator = make_evaluator("token-classification", TAGS[:5], [], 0.1)
    evaluator.add(logits, {"labels": gold})
    result = evaluator.compute()
    keep = gold != IGNORE
    ece, brier = reference_calibration(logits[keep].double().softmax(dim=-1), gold[keep].tolist())
    nll = metrics.nll_sums(logits[keep], gold[keep])
    assert result["ece"] == pytest.approx(ece, rel=1e-6)
    assert result["brier"] == pytest.approx(brier, rel=1e-6)
    assert result["temperature"] == metrics.fitted_temperature(nll)


def test_nll_sums_are_the_summed_cross_entropy_at_each_temperature():
    torch.manual_seed(0)
    logits, targets = torch.randn(50, 4) * 5, torch.randint(0, 4, (50,))
    expected = [
        float(torch.nn.functional.cross_entropy(logits.double() / t, targets, reduction="sum"))
        for t in metrics.TEMPERATURES
    ]
    assert metrics.nll_sums(logits, targets).tolist() == pytest.approx(expected, rel=1e-9)


def test_the_fitted_temperature_is_the_one_an_overconfident_model_was_made_with():
    """Labels drawn from softmax(z), scored by a model that says 3z: temperature 3 undoes it."""
    torch.manual_seed(0)
    truth = torch.randn(20_000, 3) * 2
    targets = torch.multinomial(truth.softmax(dim=-1), 1).squeeze(1)
    assert metrics.fitted_temperature(metrics.nll_sums(truth * 3, targets)) == pytest.approx(
        3, rel=0.06
    )


def test_a_model_right_on_every_row_is_not_made_sharper():
    logits, targets = torch.tensor([[4.0, -4.0], [-4.0, 4.0]]), torch.tensor([0, 1])
    assert metrics.fitted_temperature(metrics.nll_sums(logits, targets)) == 1.0


@st.composite
def tag_sequences(draw) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted tag sequences of equal lengths, stray I- tags included."""
    lengths = draw(st.lists(st.integers(1, 12), min_size=1, max_size=8))
    tag = st.sampled_from(TAGS)
    gold = [draw(st.lists(tag, min_size=n, max_size=n)) for n in lengths]
    predicted = draw(
        st.one_of(
            st.just([list(s) for s in gold]),
            st.just([["O"] * n for n in lengths]),  # predicts nothing
            st.builds(list, st.tuples(*[st.lists(tag, min_size=n, max_size=n) for n in lengths])),
        )
    )
    return gold, predicted


@settings(max_examples=300, deadline=None)
@given(tag_sequences())
def test_entity_metrics_match_seqeval(sequences):
    gold, predicted = sequences
    ours = metrics.entity_metrics(metrics.entity_counts(predicted, gold, TYPES), TYPES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns when a set has no entity at all
        assert ours["precision"] == pytest.approx(seqeval_precision(gold, predicted))
        assert ours["recall"] == pytest.approx(seqeval_recall(gold, predicted))
        assert ours["f1"] == pytest.approx(seqeval_f1(gold, predicted))
        report = seqeval_report(gold, predicted, output_dict=True, zero_division=0)
    for kind in TYPES:
        if kind not in report:  # seqeval lists only types seen in gold or predictions
            assert ours["per_class"][kind]["support"] == 0
            continue
        assert ours["per_class"][kind]["precision"] == pytest.approx(report[kind]["precision"])
        assert ours["per_class"][kind]["recall"] == pytest.approx(report[kind]["recall"])
        assert ours["per_class"][kind]["f1"] == pytest.approx(report[kind]["f1-score"])
        assert ours["per_class"][kind]["support"] == report[kind]["support"]


@settings(max_examples=100, deadline=None)
@given(label_pairs(max_size=30), st.lists(st.integers(0, 2), min_size=30, max_size=30))
def test_slice_metrics_match_scikit_learn_on_each_slice(pair, slice_of):
    targets, predictions, classes = pair
    groups = slice_of[: len(targets)]
    logits = torch.nn.functional.one_hot(torch.tensor(predictions), classes).float()
    evaluator = make_evaluator("sequence-classification", LABELS[:classes], ["x", "y", "z"], 0.1)
    evaluator.add(logits, {"labels": torch.tensor(targets), "group": torch.tensor(groups)})
    slices = evaluator.compute().get("slices", {})
    for g, name in enumerate(["x", "y", "z"]):
        rows = [i for i, group in enumerate(groups) if group == g]
        assert slices[name]["support"] == len(rows)
        if not rows:
            continue
        t, p = [targets[i] for i in rows], [predictions[i] for i in rows]
        f1 = precision_recall_fscore_support(t, p, average="macro", zero_division=0)[2]
        assert slices[name]["f1"] == pytest.approx(f1)
        assert slices[name]["accuracy"] == pytest.approx(accuracy_score(t, p))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4), st.integers(2, 9), st.integers(0, 2**16))
def test_perplexity_is_exp_of_the_mean_completion_token_loss(rows, length, seed):
    generator = torch.Generator().manual_seed(seed)
    vocab = 11
    logits = torch.randn(rows, length, vocab, generator=generator)
    labels = torch.randint(0, vocab, (rows, length), generator=generator)
    labels[:, 0] = -100  # the prompt's first token is never a target
    evaluator = make_evaluator("causal-lm", [], [], 0.1)
    evaluator.add(logits, {"labels": labels})
    result = evaluator.compute()
    shifted, targets = logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1)
    reference = torch.nn.functional.cross_entropy(shifted, targets, ignore_index=-100)
    assert result["val_loss"] == pytest.approx(float(reference), rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(float(reference)), rel=1e-5)


# --- Two gloo processes, uneven shards: 11 validation rows split 6 / 5 by the loop's evaluation.

ROWS = 11


class RowLogits(torch.nn.Module):
    """A 'model' whose logits for a row are fixed by the row id in input_ids[:, 0]: what the loop
    computes then depends only on which rows it evaluates and how it counts them."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return type("Output", (), {"logits": self.table[input_ids[:, 0]]})()


def _validation_rows():
    generator = torch.Generator().manual_seed(3)
    table = torch.randn(ROWS, 3, generator=generator)
    labels = torch.randint(0, 3, (ROWS,), generator=generator).tolist()
    groups = [i % 2 for i in range(ROWS)]
    dataset = [
        {
            "input_ids": [i, 5, 6],
            "attention_mask": [1, 1, 1],
            "labels": labels[i],
            "group": groups[i],
        }
        for i in range(ROWS)
    ]
    return table, dataset, labels, groups


def _uneven_worker(rank: int, world: int, port: int, queue) -> None:
    from ftray.data import Splits
    from ftray.encoding import Collator
    from ftray.loop import _evaluate
    from ftray.spec import spec_from_dict

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    table, dataset, _, _ = _validation_rows()
    spec = spec_from_dict(
        {"data": {"train": "unused.jsonl", "group_field": "g"}, "train": {"batch_size": 4}}
    )
    splits = Splits([], [], labels=["a", "b", "c"], groups=["even", "odd"])
    result = _evaluate(
        RowLogits(table), dataset, Collator(0), spec, splits, 0, rank, world, torch.device("cpu")
    )
    queue.put((rank, result))
    dist.destroy_process_group()


def test_two_processes_with_uneven_shards_score_the_whole_validation_set():
    table, _, labels, groups = _validation_rows()
    predictions = table.argmax(-1).tolist()
    context = mp.get_context("spawn")
    queue = context.Queue()
    mp.start_processes(
        _uneven_worker, args=(2, free_loopback_port(), queue), nprocs=2, start_method="spawn"
    )
    results = dict(queue.get() for _ in range(2))
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predictions, average="macro", zero_division=0
    )
    loss = torch.nn.functional.cross_entropy(table, torch.tensor(labels))
    ece, brier = reference_calibration(table.double().softmax(dim=-1), labels)
    nll = [
        torch.nn.functional.cross_entropy(table.double() / t, torch.tensor(labels))
        for t in metrics.TEMPERATURES
    ]
    temperature = float(metrics.TEMPERATURES[int(torch.stack(nll).argmin())])
    for rank in (0, 1):
        assert results[rank]["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
        assert results[rank]["f1"] == pytest.approx(f1)
        assert results[rank]["precision"] == pytest.approx(precision)
        assert results[rank]["recall"] == pytest.approx(recall)
        assert results[rank]["val_loss"] == pytest.approx(float(loss), rel=1e-6)
        assert results[rank]["ece"] == pytest.approx(ece, rel=1e-6)
        assert results[rank]["brier"] == pytest.approx(brier, rel=1e-6)
        assert results[rank]["temperature"] == temperature
        assert results[rank]["slices"]["even"]["support"] == groups.count(0)
        assert results[rank]["slices"]["odd"]["support"] == groups.count(1)
