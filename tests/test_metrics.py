import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ftray import metrics
from ftray.early_stopping import EarlyStopping
from ftray.encoding import IGNORE
from ftray.ray_internals import free_loopback_port
from ftray.tasks import make_evaluator


def test_classification_metrics_match_hand_computed_values():
    # true a a a b b c / predicted a a b b c c
    cm = metrics.confusion_matrix(
        torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 0, 0, 1, 1, 2]), 3
    )
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    result = metrics.classification_metrics(cm, ["a", "b", "c"])
    assert result["accuracy"] == pytest.approx(4 / 6)
    # precision a 2/2, b 1/2, c 1/2; recall a 2/3, b 1/2, c 1/1
    assert result["precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert result["recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    f1 = {"a": 0.8, "b": 0.5, "c": 2 / 3}
    assert result["f1"] == pytest.approx(sum(f1.values()) / 3)
    for label, value in f1.items():
        assert result["per_class"][label]["f1"] == pytest.approx(value)
    assert result["per_class"]["a"]["support"] == 3


def test_macro_average_skips_labels_absent_from_targets_and_predictions():
    cm = metrics.confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 3)
    result = metrics.classification_metrics(cm, ["a", "b", "c"])
    # a: P 1/1 R 1/2 F1 2/3; b: P 1/2 R 1/1 F1 2/3; c never occurs and is not averaged in.
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_bio_spans_follow_conlleval():
    assert metrics.bio_spans(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 2), ("LOC", 3, 4)}
    assert metrics.bio_spans(["I-ORG", "I-ORG", "O"]) == {("ORG", 0, 2)}  # I- may open an entity
    assert metrics.bio_spans(["B-PER", "I-LOC"]) == {("PER", 0, 1), ("LOC", 1, 2)}
    assert metrics.bio_spans(["B-PER", "B-PER"]) == {("PER", 0, 1), ("PER", 1, 2)}
    assert metrics.bio_spans(["O", "O"]) == set()


def test_entity_metrics_count_exact_span_and_type_matches():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "B-PER"]]
    counts = metrics.entity_counts(pred, gold, ["LOC", "ORG", "PER"])
    # LOC: 1 tp; ORG: 1 tp; PER: truncated span is 1 fp + 1 fn, stray PER 1 fp
    assert counts.tolist() == [[1, 0, 0], [1, 0, 0], [0, 2, 1]]
    result = metrics.entity_metrics(counts, ["LOC", "ORG", "PER"])
    assert result["precision"] == pytest.approx(2 / 4)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert result["per_class"]["PER"]["support"] == 1


def test_slice_report_flags_a_gap_over_the_threshold_and_ignores_empty_slices():
    per_slice = {
        "a": {"f1": 0.9, "support": 10},
        "b": {"f1": 0.7, "support": 5},
        "c": {"f1": 0.0, "support": 0},
    }
    report = metrics.slice_report(per_slice, max_gap=0.1)
    assert report["worst_slice"] == "b"
    assert report["slice_gap"] == pytest.approx(0.2)
    assert report["worst_slice_f1"] == 0.7 and report["slice_gap_flagged"] is True
    assert metrics.slice_report(per_slice, max_gap=0.25)["slice_gap_flagged"] is False


def test_language_model_metrics():
    result = metrics.language_model_metrics(loss_sum=6.0, tokens=4, correct=3)
    assert result == {"val_loss": 1.5, "perplexity": pytest.approx(math.exp(1.5)), "accuracy": 0.75}


def test_early_stopping_counts_evaluations_without_a_min_delta_improvement():
    stopper = EarlyStopping(mode="max", patience=2, min_delta=0.01)
    assert [stopper.update(v, step) for step, v in enumerate([0.5, 0.6, 0.605, 0.59])] == [
        True,
        True,
        False,
        False,
    ]
    assert stopper.should_stop and stopper.best == 0.6 and stopper.best_step == 1
    stopper = EarlyStopping(mode="min", patience=1)
    assert stopper.update(2.0, 0) and stopper.update(1.0, 1) and not stopper.update(float("nan"), 2)
    assert stopper.should_stop
    never = EarlyStopping(mode="max", patience=0)
    for step in range(5):
        never.update(0.1, step)
    assert not never.should_stop


def test_early_stopping_round_trips_through_its_state():
    stopper = EarlyStopping(mode="max", patience=3)
    stopper.update(0.4, 10)
    stopper.update(0.3, 20)
    restored = EarlyStopping(**stopper.state_dict())
    assert restored == stopper and restored.evals_without_improvement == 1


def classification_batches():
    torch.manual_seed(0)
    logits = torch.randn(10, 3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    groups = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    return logits, {"labels": labels, "group": groups}


def test_classification_evaluator_and_slices():
    logits, batch = classification_batches()
    evaluator = make_evaluator("sequence-classification", ["a", "b", "c"], ["g0", "g1"], 0.1)
    evaluator.add(logits[:4], {k: v[:4] for k, v in batch.items()})
    evaluator.add(logits[4:], {k: v[4:] for k, v in batch.items()})
    result = evaluator.compute()
    preds = logits.argmax(-1)
    assert result["accuracy"] == pytest.approx(float((preds == batch["labels"]).float().mean()))
    expected_loss = torch.nn.functional.cross_entropy(logits, batch["labels"]).item()
    assert result["val_loss"] == pytest.approx(expected_loss)
    g1 = batch["group"] == 1
    assert result["slices"]["g1"]["accuracy"] == pytest.approx(
        float((preds[g1] == batch["labels"][g1]).float().mean())
    )
    assert result["slices"]["g0"]["support"] == 5


def test_entity_evaluator_reads_tags_only_at_labelled_positions():
    labels = ["O", "B-PER", "I-PER"]
    gold = torch.tensor([[IGNORE, 1, IGNORE, 2, 0, IGNORE]])  # word pieces carry IGNORE
    predicted = torch.tensor([[0, 1, 0, 2, 0, 0]])
    logits = torch.nn.functional.one_hot(predicted, 3).float() * 5
    evaluator = make_evaluator("token-classification", labels, [], 0.1)
    evaluator.add(logits, {"labels": gold})
    result = evaluator.compute()
    assert result["f1"] == 1.0 and result["accuracy"] == 1.0


def test_language_model_evaluator_shifts_logits_against_labels():
    vocab = 5
    ids = torch.tensor([[1, 2, 3, 4]])
    labels = torch.tensor([[IGNORE, IGNORE, 3, 4]])  # prompt masked
    logits = torch.full((1, 4, vocab), -9.0)
    logits[0, 1, 3] = 9.0  # position 1 predicts token 3: right
    logits[0, 2, 0] = 9.0  # position 2 predicts 0 instead of 4: wrong
    evaluator = make_evaluator("causal-lm", [], [], 0.1)
    evaluator.add(logits, {"labels": labels, "input_ids": ids})
    result = evaluator.compute()
    assert result["accuracy"] == 0.5
    assert result["perplexity"] == pytest.approx(math.exp(result["val_loss"]))


def _shard_worker(rank: int, world: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    logits, batch = classification_batches()
    evaluator = make_evaluator("sequence-classification", ["a", "b", "c"], ["g0", "g1"], 0.1)
    evaluator.add(logits[rank::world], {k: v[rank::world] for k, v in batch.items()})
    evaluator.all_reduce()
    queue.put((rank, evaluator.compute()))
    dist.destroy_process_group()


def test_all_reduced_shards_give_the_whole_set_metrics():
    logits, batch = classification_batches()
    whole = make_evaluator("sequence-classification", ["a", "b", "c"], ["g0", "g1"], 0.1)
    whole.add(logits, batch)
    context = mp.get_context("spawn")
    queue = context.Queue()
    mp.start_processes(
        _shard_worker, args=(2, free_loopback_port(), queue), nprocs=2, start_method="spawn"
    )
    results = dict(queue.get() for _ in range(2))
    expected = whole.compute()
    for rank in (0, 1):
        assert results[rank]["f1"] == pytest.approx(expected["f1"])
        assert results[rank]["val_loss"] == pytest.approx(expected["val_loss"])
        for name, scores in expected["slices"].items():
            assert results[rank]["slices"][name] == pytest.approx(scores)
