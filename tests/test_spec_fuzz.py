"""Mutated job specs either load or fail in one line of ftray's (bounded; the long run is
`python bench/fuzz_specs.py`)."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from conftest import sentiment_raw
from hypothesis import HealthCheck, given, settings
from spec_fuzz import handled, mutated_specs

VALID = sentiment_raw(Path("all-MiniLM-L6-v2"), checkpoint={"storage_path": "/tmp/ftray-fuzz"})
OUTCOMES: Counter[str] = Counter()


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # a fixed seed: CI sees the same specs every run
    suppress_health_check=[HealthCheck.too_slow],
)
@given(mutated_specs(VALID))
def test_a_mutated_spec_loads_or_is_refused_in_one_line(spec):
    with tempfile.TemporaryDirectory() as directory:
        OUTCOMES[handled(spec, Path(directory))] += 1


def test_the_fuzz_saw_both_outcomes():
    # Runs after the fuzz in file order: both kinds must occur, or the mutations are too tame
    # (or too wild) to test anything.
    assert OUTCOMES["valid"] > 0 and OUTCOMES["refused"] > 0, OUTCOMES
