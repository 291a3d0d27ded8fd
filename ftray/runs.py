"""The run-storage layout, built and parsed here and nowhere else.

    <storage_path>/<job>-<UTC timestamp>/                     a training run
        checkpoint_<step:08d>/model/                          a checkpoint (model/: exported)
        ftray_result.json                                     marks the run finished
    <storage_path>/<job>-tune-<UTC timestamp>/trials/trial-<id>/   a tune trial's run

Ray Train keeps its checkpoints in a run's directory and resumes a run from its latest
checkpoint when started again under the same name, which is all `--resume` needs.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from ftray import storage
from ftray.checkpointing import MODEL_DIR
from ftray.errors import FtrayError
from ftray.results import RESULT_FILE
from ftray.spec import JobSpec


def new_run_name(spec: JobSpec, kind: str = "") -> str:
    """`<name>-<UTC timestamp>`, or `<name>-<kind>-<timestamp>` (kind "tune", "compare")."""
    prefix = f"{spec.name}-{kind}" if kind else spec.name
    return f"{prefix}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S-%f}"


def run_uri(spec: JobSpec, run: str) -> str:
    return storage.join(spec.checkpoint.storage_path, run)


def runs_of(spec: JobSpec, kind: str = "") -> list[str]:
    prefix = f"{spec.name}-{kind}" if kind else spec.name
    pattern = re.compile(rf"^{re.escape(prefix)}-\d{{8}}-\d{{6}}-\d{{6}}$")
    return [d for d in storage.list_dirs(spec.checkpoint.storage_path) if pattern.match(d)]


def resumable_run(spec: JobSpec, kind: str = "", finished_marker: str = RESULT_FILE) -> str:
    """The newest run (or tune experiment...) of this job that did not finish."""
    unfinished = [
        r
        for r in runs_of(spec, kind)
        if not storage.exists(storage.join(run_uri(spec, r), finished_marker))
    ]
    if not unfinished:
        what = f"{kind} run" if kind else "run"
        raise FtrayError(
            f"--resume: no unfinished {what} of {spec.name!r} under {spec.checkpoint.storage_path}"
        )
    return unfinished[-1]


TRIALS_DIR = "trials"  # a tune experiment's trial runs
CHECKPOINT_PREFIX = "checkpoint_"


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:08d}"


def checkpoint_steps(run: str) -> list[int]:
    """The steps a run (URI) holds checkpoints of."""
    return [
        int(d.removeprefix(CHECKPOINT_PREFIX))
        for d in storage.list_dirs(run)
        if d.startswith(CHECKPOINT_PREFIX)
    ]


def trial_run_name(trial_id: str) -> str:
    return f"trial-{trial_id}"


def trial_run(experiment_uri: str, trial_id: str) -> str:
    """A tune trial's run directory (its own Ray Train run) inside the experiment's."""
    return storage.join(experiment_uri, TRIALS_DIR, trial_run_name(trial_id))


def best_exported_checkpoint(run: str) -> str | None:
    """The newest checkpoint of a run (URI) holding an exported model. A model is exported only
    when an evaluation improves on the best so far, so that is the best one."""
    names = [checkpoint_name(step) for step in sorted(checkpoint_steps(run), reverse=True)]
    exported = (
        storage.join(run, n) for n in names if storage.exists(storage.join(run, n, MODEL_DIR))
    )
    return next(exported, None)


def output_dir(spec: JobSpec, run: str) -> Path:
    """Where the trained model lands on the driver's machine."""
    if spec.checkpoint.output_dir:
        return Path(spec.checkpoint.output_dir)
    if "://" in spec.checkpoint.storage_path:
        return Path("~/ftray/outputs").expanduser() / run
    return Path(spec.checkpoint.storage_path) / run / "model"
