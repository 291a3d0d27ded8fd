"""The job-spec fuzz at length: mutated specs either load or fail in one line of ftray's.

    python bench/fuzz_specs.py [--examples 2000] [--seed 0]

The same mutations as the bounded test (`tests/spec_fuzz.py`: one to three fields of a valid
spec replaced by wrong types, huge or non-finite numbers, odd unicode or path tricks, removed,
or joined by unknown ones), each loaded with `load_spec` and checked with `ftray data check`'s
`check_data`. Prints how many loaded, how many were refused, and the first bug if any.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import sentiment_raw  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from spec_fuzz import handled, mutated_specs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    valid = sentiment_raw(Path("all-MiniLM-L6-v2"), checkpoint={"storage_path": "/tmp/fuzz"})
    outcomes: Counter[str] = Counter()
    started = time.time()

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutated_specs(valid))
    def fuzz(spec: dict) -> None:
        with tempfile.TemporaryDirectory() as directory:
            outcomes[handled(spec, Path(directory))] += 1

    bug = None
    try:
        fuzz()
    except AssertionError as exc:
        bug = str(exc).splitlines()[0]
    report = {
        "specs": sum(outcomes.values()),
        **outcomes,
        "bugs": 0 if bug is None else 1,
        "first_bug": bug,
        "seconds": round(time.time() - started, 1),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
