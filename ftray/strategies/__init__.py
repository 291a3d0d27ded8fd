"""Fine-tuning strategies, one module per `strategy.kind`.

Every module in this package (other than `base`) exports `STRATEGY`; adding a strategy is adding
one file. The job spec's `strategy` section is the union of their config types.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Union

from pydantic import Field

from ftray.errors import FtrayError
from ftray.strategies.base import Strategy, StrategyConfig


def _discover() -> dict[str, Strategy]:
    found: dict[str, Strategy] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        strategy = importlib.import_module(f"{__name__}.{info.name}").STRATEGY
        found[strategy.kind] = strategy
    return found


STRATEGIES: dict[str, Strategy] = _discover()

AnyStrategyConfig = Annotated[
    Union[tuple(s.config_type for s in STRATEGIES.values())],  # noqa: UP007
    Field(discriminator="kind"),
]


def get_strategy(kind: str) -> Strategy:
    try:
        return STRATEGIES[kind]
    except KeyError:
        raise FtrayError(f"strategy.kind: {kind!r} is not one of {', '.join(STRATEGIES)}") from None


__all__ = ["STRATEGIES", "AnyStrategyConfig", "Strategy", "StrategyConfig", "get_strategy"]
