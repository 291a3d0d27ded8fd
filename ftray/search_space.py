"""Search spaces over job-spec fields: checked against the spec before any trial starts, turned
into Ray Tune distributions, and applied to the spec of each trial.

    tune:
      search_space:
        train.learning_rate: {loguniform: [1e-5, 1e-3]}
        strategy.kind: {choice: [adapter, partial]}
        strategy.r: {randint: [4, 16]}        # inclusive; applies to trials that pick adapter

A `strategy.*` knob applies to the trials whose kind has it, and is ignored for the others.
"""

from __future__ import annotations

from typing import Any

from ftray.errors import FtrayError
from ftray.spec import JobSpec, set_field, spec_from_dict
from ftray.strategies import STRATEGIES, get_strategy

FINITE = ("choice", "grid")


def trial_spec(spec: JobSpec, config: dict[str, Any]) -> JobSpec:
    """The job spec of one trial: the base spec with the trial's sampled values."""
    raw = spec.model_dump(mode="json", exclude={"tune"})
    if "strategy.kind" in config:
        set_field(raw, "strategy.kind", config["strategy.kind"])
    kind = get_strategy(raw["strategy"]["kind"])  # an unknown kind fails here, by name
    knobs = kind.config_type.model_fields
    for key, value in config.items():
        if key == "strategy.kind" or (
            key.startswith("strategy.") and key.split(".", 1)[1] not in knobs
        ):
            continue
        set_field(raw, key, value)
    return spec_from_dict(raw, source="trial spec")


def check_search_space(spec: JobSpec) -> None:
    """Every key is a spec field and every value it can take gives a valid spec; the searcher
    can handle the distributions. Raises FtrayError naming the key."""
    space = spec.tune.search_space
    if not space:
        raise FtrayError("tune.search_space: empty; give at least one field to search")
    kinds = _values(space["strategy.kind"]) if "strategy.kind" in space else [spec.strategy.kind]
    for key, distribution in space.items():
        kind, values = next(iter(distribution.items()))
        base: dict[str, Any] = {}
        if key.startswith("strategy.") and key != "strategy.kind":
            knob = key.split(".", 1)[1]
            owners = [
                k
                for k in kinds
                if k in STRATEGIES and knob in STRATEGIES[k].config_type.model_fields
            ]
            if not owners:
                raise FtrayError(
                    f"tune.search_space: {key} is a knob of no strategy this search can pick "
                    f"({', '.join(map(str, kinds))})"
                )
            base["strategy.kind"] = owners[0]
        for value in values if kind in FINITE else values[:2]:
            try:
                trial_spec(spec, {**base, key: value})
            except FtrayError as exc:
                reason = str(exc).removeprefix("trial spec: ")
                raise FtrayError(f"tune.search_space: {key}={value!r}: {reason}") from None
    ranged = [k for k, d in space.items() if next(iter(d)) not in FINITE]
    if spec.tune.searcher == "grid" and ranged:
        raise FtrayError(
            f"tune.searcher: grid needs choice or grid values for every key; {ranged[0]} is a range"
        )
    if spec.tune.searcher == "optuna":
        gridded = [k for k, d in space.items() if "grid" in d]
        if gridded:
            raise FtrayError(
                f"tune.searcher: optuna samples; use choice instead of grid for {gridded[0]}"
            )
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise FtrayError(
                "tune.searcher: optuna is not installed (pip install optuna)"
            ) from None


def _values(distribution: dict[str, list[Any]]) -> list[Any]:
    kind, values = next(iter(distribution.items()))
    return values if kind in FINITE else []


def ray_param_space(spec: JobSpec) -> dict[str, Any]:
    """Ray Tune distributions; with the grid searcher every choice becomes a grid axis."""
    from ray import tune

    space = {}
    for key, distribution in spec.tune.search_space.items():
        kind, values = next(iter(distribution.items()))
        if kind == "grid" or (kind == "choice" and spec.tune.searcher == "grid"):
            space[key] = tune.grid_search(values)
        elif kind == "choice":
            space[key] = tune.choice(values)
        elif kind == "loguniform":
            space[key] = tune.loguniform(*values)
        elif kind == "uniform":
            space[key] = tune.uniform(*values)
        else:
            space[key] = tune.randint(values[0], values[1] + 1)  # inclusive, unlike Ray's
    return space
