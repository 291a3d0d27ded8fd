"""Run the training loop without Ray: in this process, or one process per GPU under torchrun.

    python -m ftray.local JOB.yaml --out DIR [--set k=v]...
    torchrun --nproc-per-node 8 -m ftray.local JOB.yaml --out DIR

This is the same `train_worker` Ray Train runs; it exists for machines without Ray (a GPU box
for benchmarks) and for tests of the loop itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftray.loop import train_worker
from ftray.session import LocalSession
from ftray.spec import JobSpec, load_spec


def run_local(
    spec: JobSpec, root: str | Path, on_progress: Callable[[dict], None] | None = None
) -> list[dict[str, Any]]:
    """Train in this process (or this torchrun rank); returns the metrics of every evaluation.

    Checkpoints go under `root`; calling again with the same root resumes from the newest.
    """
    session = LocalSession(root, on_progress)
    train_worker(spec, session)
    return session.reports


def main() -> None:
    parser = argparse.ArgumentParser(description="Run ftray's training loop without Ray.")
    parser.add_argument("job")
    parser.add_argument("--out", required=True, help="checkpoint directory (resumes if present)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    spec = load_spec(args.job, args.overrides)
    reports = run_local(spec, args.out, on_progress=lambda e: print(json.dumps(e), file=sys.stderr))
    if reports:
        final = {k: v for k, v in reports[-1].items() if k != "history"}
        print(json.dumps(final, default=str))


if __name__ == "__main__":
    main()
