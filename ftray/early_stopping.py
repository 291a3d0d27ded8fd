"""Early stopping on a validation metric (mode, patience, min_delta); resumable."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class EarlyStopping:
    mode: str  # "max" or "min"
    patience: int  # evaluations without improvement before stopping; 0 never stops
    min_delta: float = 0.0  # an improvement must beat the best by more than this
    best: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0

    def update(self, value: float, step: int) -> bool:
        """Record one evaluation; True when it is the new best."""
        improved = not math.isnan(value) and (
            self.best is None
            or (
                value > self.best + self.min_delta
                if self.mode == "max"
                else value < self.best - self.min_delta
            )
        )
        if improved:
            self.best, self.best_step, self.evals_without_improvement = value, step, 0
        else:
            self.evals_without_improvement += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.evals_without_improvement >= self.patience

    def state_dict(self) -> dict:
        return asdict(self)
