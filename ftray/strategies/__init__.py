"""Fine-tuning strategies, one module per `strategy.kind`.

Every module in this package (other than `base` and private ones) exports `STRATEGY`; adding a
strategy to ftray is adding one file. A strategy defined elsewhere (a user's package, a script, a
test) joins with `register_strategy`: the job spec's `strategy` section then accepts its kind,
and `ftray.plugins` carries it to the Ray workers and Serve replicas a job starts.
"""

from __future__ import annotations

from ftray.discovery import add, discover
from ftray.errors import FtrayError
from ftray.strategies.base import Strategy, StrategyConfig

STRATEGIES: dict[str, Strategy] = {
    strategy.kind: strategy for strategy in discover(__name__, __path__, "STRATEGY")
}


def register_strategy(strategy: Strategy) -> Strategy:
    """Make `strategy` available to job specs, training, registration, loading and serving."""
    if strategy.config_type.model_fields["kind"].default != strategy.kind:
        raise FtrayError(f"{strategy.config_type.__name__}.kind must default to {strategy.kind!r}")
    return add(STRATEGIES, strategy.kind, strategy, __name__, "strategy")


def get_strategy(kind: str) -> Strategy:
    try:
        return STRATEGIES[kind]
    except KeyError:
        raise FtrayError(f"strategy.kind: {kind!r} is not one of {', '.join(STRATEGIES)}") from None


def validate_config(raw: object) -> StrategyConfig:
    """A `strategy:` section as its strategy's config (the kind picks the type)."""
    if isinstance(raw, StrategyConfig):
        return raw
    if not isinstance(raw, dict) or "kind" not in raw:
        raise FtrayError(f"strategy.kind: required (one of {', '.join(STRATEGIES)})")
    return get_strategy(str(raw["kind"])).config_type.model_validate(raw)


__all__ = [
    "STRATEGIES",
    "Strategy",
    "StrategyConfig",
    "get_strategy",
    "register_strategy",
    "validate_config",
]
