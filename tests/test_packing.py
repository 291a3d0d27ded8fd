"""Sequence packing: rows of whole examples that train exactly as the examples do alone."""

import math

import pytest
import torch

from ftray.encoding import IGNORE, Collator, model_logits
from ftray.errors import FtrayError
from ftray.losses import next_token
from ftray.models import load_task_model, load_tokenizer
from ftray.packing import check_packing, pack
from ftray.spec import spec_from_dict
from ftray.strategies import get_strategy
from tests.conftest import clm_raw


def features(count: int, seed: int = 0) -> list[dict]:
    """Examples of skewed lengths (most short, a few long), with labels on their second half."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        length = 3 + int(torch.randint(0, 6, (1,), generator=generator))
        if torch.rand(1, generator=generator) < 0.15:
            length += 30
        ids = torch.randint(4, 200, (length,), generator=generator).tolist()
        labels = [IGNORE] * (length // 2) + ids[length // 2 :]
        out.append({"input_ids": ids, "attention_mask": [1] * length, "labels": labels})
    return out


def examples_in(row: dict) -> list[tuple[int, ...]]:
    """The examples a packed row holds: its ids split where the positions restart."""
    starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
    bounds = zip(starts, [*starts[1:], len(row["input_ids"])], strict=True)
    return [tuple(row["input_ids"][a:b]) for a, b in bounds]


def test_rows_hold_every_example_once_within_max_length():
    examples = features(200)
    rows = pack(examples, 64)
    assert all(len(row["input_ids"]) <= 64 for row in rows)
    held = sorted(example for row in rows for example in examples_in(row))
    assert held == sorted(tuple(e["input_ids"]) for e in examples)
    for row in rows:  # no example's first token is a target: it would be predicted across
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
        assert all(row["labels"][i] == IGNORE for i in starts)
    tokens = sum(len(e["input_ids"]) for e in examples)
    assert len(rows) <= math.ceil(tokens / 64) + 1  # best-fit leaves almost no slack


def per_token_losses(logits, labels):
    logits, labels = next_token(logits, labels)
    logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    return losses[labels != IGNORE]


def test_packed_rows_give_the_per_token_losses_of_unpacked_batches(tiny_llama):
    tokenizer = load_tokenizer(str(tiny_llama))
    model = load_task_model(str(tiny_llama), "causal-lm", [], tokenizer.pad_token_id).eval()
    examples = features(24, seed=1)
    collate = Collator(tokenizer.pad_token_id)
    with torch.no_grad():
        singles = [collate([e]) for e in examples]
        alone = torch.cat([per_token_losses(model_logits(model, b), b["labels"]) for b in singles])
        rows = pack(examples, 64)
        batch = collate(rows)
        assert "attention_mask" not in batch  # the restarts alone keep the examples apart
        packed = per_token_losses(model_logits(model, batch), batch["labels"])
    # Same tokens trained, same losses; only the order differs (rows are packed longest first).
    trained = sum(sum(x != IGNORE for x in e["labels"][1:]) for e in examples)
    assert len(packed) == len(alone) == trained
    assert torch.allclose(packed.sort().values, alone.sort().values, atol=1e-5)
    assert torch.isclose(packed.sum(), alone.sum(), rtol=1e-5)


def test_a_model_whose_attention_crosses_examples_is_refused(tiny_llama):
    tokenizer = load_tokenizer(str(tiny_llama))
    model = load_task_model(str(tiny_llama), "causal-lm", [], tokenizer.pad_token_id)
    check_packing(model, len(tokenizer))  # plain Llama restarts attention: accepted
    strategy = get_strategy("prompt")
    prefix = strategy.apply(model, strategy.config_type(method="prefix"), "causal-lm")
    # Prefix tuning feeds its keys through the cache, which turns the restarts off.
    with pytest.raises(FtrayError, match="train.packing: .* lets packed examples attend"):
        check_packing(prefix, len(tokenizer))


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"train": {"packing": True}, "model": {"task": "sequence-classification"}},
            "train.packing: sequence-classification examples are not packed",
        ),
        (
            {"train": {"packing": True}, "strategy": {"kind": "prompt"}},
            "train.packing: prompt prepends virtual tokens",
        ),
        ({"deepspeed": {"fp16": True, "bf16": True}}, "deepspeed.fp16: pick fp16 or bf16"),
    ],
)
def test_options_that_cannot_work_together_get_one_line(tiny_llama, sections, message):
    raw = clm_raw(tiny_llama)
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    with pytest.raises(FtrayError, match=message):
        spec_from_dict(raw)
