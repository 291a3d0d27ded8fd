"""Checks a job on the driver before any worker starts, and says what it will train.

Everything a worker would trip over later is tried here first: the data (files, fields, labels,
splits), the DeepSpeed overrides, the tokenizer, and the strategy applied to the model built on
the meta device (no weights are read), which also yields the trainable-parameter counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftray.data import Splits, load_splits
from ftray.deepspeed_config import user_overrides
from ftray.errors import FtrayError
from ftray.models import load_task_model, load_tokenizer, quiet_transformers
from ftray.optim import count_parameters
from ftray.spec import JobSpec
from ftray.strategies import get_strategy
from ftray.tasks import encode


@dataclass
class Plan:
    splits: Splits
    trainable_params: int
    total_params: int

    @property
    def trainable_share(self) -> float:
        return self.trainable_params / self.total_params if self.total_params else 0.0

    def summary(self) -> str:
        splits = self.splits
        test = f" / {len(splits.test)} test" if splits.test else ""
        sizes = f"{splits.train_size('checks on')} / {len(splits.validation)} validation{test}"
        return (
            f"{sizes} examples; trainable parameters {self.trainable_params:,} of "
            f"{self.total_params:,} ({100 * self.trainable_share:.2f}%)"
        )


def plan_job(spec: JobSpec) -> Plan:

    quiet_transformers()
    splits = load_splits(spec)
    if splits.stream and spec.train.packing:
        raise FtrayError("train.packing: not available for a streamed training set")
    user_overrides(spec)
    tokenizer = load_tokenizer(spec.model.name, spec.data.chat.template)
    model = load_task_model(
        spec.model.name, spec.model.task, splits.labels, tokenizer.pad_token_id, empty=True
    )
    strategy = get_strategy(spec.strategy.kind)
    extra = strategy.extra_positions(spec.strategy, spec.model.task)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and spec.model.max_length + extra > limit:
        raise FtrayError(
            f"model.max_length: {spec.model.max_length} (+{extra} virtual tokens) exceeds the "
            f"model's {limit} positions"
        )
    # A few examples through the tokenizer: a chat template that cannot render fails here.
    encode(splits.train[:8], spec.model.task, tokenizer, splits.labels, [], spec.model.max_length)
    trainable, total = count_parameters(strategy.apply(model, spec.strategy, spec.model.task))
    return Plan(splits=splits, trainable_params=trainable, total_params=total)
