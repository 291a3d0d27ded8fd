"""Metric maths on count tensors.

Every metric here is computed from counts (confusion matrices, entity TP/FP/FN, summed losses),
so evaluation across workers is one all-reduce of the counts followed by these pure functions:
the numbers are those of the whole validation set, not of one rank's shard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, with 0 where den is 0 (the usual convention for empty classes)."""
    num, den = num.double(), den.double()
    # Divide by 1 where den is 0 (then overwritten with 0): never by a clamped denominator, which
    # would turn F1 = 2PR/(P+R) into 2PR whenever P+R < 1.
    safe = torch.where(den > 0, den, torch.ones_like(den))
    return torch.where(den > 0, num / safe, torch.zeros_like(num))


def _f1(precision: torch.Tensor, recall: torch.Tensor) -> torch.Tensor:
    return _ratio(2 * precision * recall, precision + recall)


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts [true class, predicted class]."""
    flat = targets.long() * num_classes + preds.long()
    counts = torch.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def classification_metrics(cm: torch.Tensor, labels: Sequence[str]) -> dict:
    """Accuracy, macro precision/recall/F1 and per-class scores from a confusion matrix.

    Macro averages run over the classes present in the targets or the predictions (scikit-learn's
    convention), so a label that never occurs in a small validation set does not drag F1 to 0.
    """
    cm = cm.double()
    tp = cm.diag()
    support = cm.sum(dim=1)
    predicted = cm.sum(dim=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _f1(precision, recall)
    present = (support + predicted) > 0
    n_present = max(int(present.sum()), 1)
    return {
        "accuracy": float(_ratio(tp.sum(), cm.sum())),
        "precision": float(precision[present].sum() / n_present),
        "recall": float(recall[present].sum() / n_present),
        "f1": float(f1[present].sum() / n_present),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }


# Equal-width bins of the predicted label's probability, the usual 15 (Guo et al., 2017).
CALIBRATION_BINS = 15


def calibration_counts(
    probabilities: torch.Tensor, targets: torch.Tensor, bins: int = CALIBRATION_BINS
) -> torch.Tensor:
    """[bin, (examples, summed confidence, right answers)]: counts, so workers' shards add up.
    The confidence is the predicted label's probability; one on a bin's edge falls in the lower
    bin, as in scikit-learn's `calibration_curve`."""
    confidence, predicted = probabilities.double().max(dim=-1)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1]
    right = (predicted == targets).double()
    counts = torch.zeros(bins, 3, dtype=torch.float64)
    rows = torch.stack([torch.ones_like(confidence), confidence, right], dim=1)
    return counts.index_add_(0, torch.bucketize(confidence, edges), rows)


def brier_sum(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed squared distance between the probabilities and the one-hot truth (Brier's own
    multi-class score: 0 is perfect, 2 the worst; twice the binary form for two labels)."""
    truth = torch.nn.functional.one_hot(targets.long(), probabilities.shape[-1]).double()
    return ((probabilities.double() - truth) ** 2).sum()


# Temperatures tried when fitting one to validation: 1 (the logits as they are) to 20, 5% apart.
# Never below 1: a model right on every validation row would otherwise be fitted ever sharper.
TEMPERATURES = torch.logspace(0, math.log10(20), 62, dtype=torch.float64)


def nll_sums(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed negative log-likelihood of the targets with the logits divided by each of
    TEMPERATURES: counts again, so the fit sees the whole validation set across workers."""
    scaled = logits.double().unsqueeze(0) / TEMPERATURES.view(-1, 1, 1)
    rows = torch.arange(len(targets))
    return -scaled.log_softmax(dim=-1)[:, rows, targets.long()].sum(dim=1)


def fitted_temperature(nll: torch.Tensor) -> float:
    """The temperature with the lowest validation loss (Guo et al., 2017: temperature scaling)."""
    return float(TEMPERATURES[int(nll.argmin())])


def calibration_metrics(counts: torch.Tensor, brier: torch.Tensor) -> dict:
    """Expected calibration error (how far, on average over examples, the predicted label's
    probability is from how often such predictions are right) and the mean Brier score."""
    examples = float(counts[:, 0].sum())
    if not examples:
        return {}
    gaps = (counts[:, 1] - counts[:, 2]).abs()  # per bin: examples x |confidence - accuracy|
    return {"ece": float(gaps.sum()) / examples, "brier": float(brier) / examples}


def bio_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entity spans (type, start, end-exclusive) in a BIO tag sequence, conlleval style:
    an I- tag that does not continue an entity of its type starts a new one."""
    spans: set[tuple[str, int, int]] = set()
    kind, start = None, 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, tag_type = tag.partition("-")
        continues = prefix == "I" and tag_type == kind
        if kind is not None and not continues:
            spans.add((kind, start, i))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, start = tag_type, i
    return spans


def entity_types(labels: Sequence[str]) -> list[str]:
    return sorted({label.partition("-")[2] for label in labels if label != "O"})


def entity_counts(
    predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], types: Sequence[str]
) -> torch.Tensor:
    """[entity type, (true positives, false positives, false negatives)] over sentences."""
    index = {t: i for i, t in enumerate(types)}
    counts = torch.zeros(len(types), 3, dtype=torch.long)
    for pred_tags, gold_tags in zip(predicted, gold, strict=True):
        pred, true = bio_spans(pred_tags), bio_spans(gold_tags)
        for kind, *_ in pred & true:
            counts[index[kind], 0] += 1
        for kind, *_ in pred - true:
            counts[index[kind], 1] += 1
        for kind, *_ in true - pred:
            counts[index[kind], 2] += 1
    return counts


def entity_metrics(counts: torch.Tensor, types: Sequence[str]) -> dict:
    """Entity-level micro precision/recall/F1 (an entity counts only if type and span match)."""
    tp, fp, fn = counts.double().sum(dim=0)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    per_p = _ratio(counts[:, 0], counts[:, 0] + counts[:, 1])
    per_r = _ratio(counts[:, 0], counts[:, 0] + counts[:, 2])
    per_f = _f1(per_p, per_r)
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(_f1(precision, recall)),
        "per_class": {
            kind: {
                "precision": float(per_p[i]),
                "recall": float(per_r[i]),
                "f1": float(per_f[i]),
                "support": int(counts[i, 0] + counts[i, 2]),
            }
            for i, kind in enumerate(types)
        },
    }


def language_model_metrics(loss_sum: float, tokens: int, correct: int) -> dict:
    loss = loss_sum / tokens if tokens else float("nan")
    return {
        "val_loss": loss,
        "perplexity": math.exp(min(loss, 50.0)) if tokens else float("nan"),
        "accuracy": correct / tokens if tokens else 0.0,
    }


def slice_report(per_slice: dict[str, dict], max_gap: float, metric: str = "f1") -> dict:
    """Worst slice by `metric`, its gap to the best slice, and whether the gap exceeds `max_gap`.

    Slices with no examples in the validation set are left out rather than counted as 0.
    """
    scored = {name: m[metric] for name, m in per_slice.items() if m.get("support", 0) > 0}
    if not scored:
        return {"slices": per_slice}
    worst = min(scored, key=scored.__getitem__)
    gap = max(scored.values()) - scored[worst]
    return {
        "slices": per_slice,
        "worst_slice": worst,
        f"worst_slice_{metric}": scored[worst],
        "slice_gap": gap,
        "slice_gap_flagged": gap > max_gap,
    }
