"""Run directories under `checkpoint.storage_path`: naming new runs, finding one to resume.

A run is `<storage_path>/<job name>-<UTC timestamp>`; Ray Train keeps its checkpoints there, and
ftray marks it finished with `ftray_result.json`. Ray Train resumes a run from its latest
checkpoint when started again under the same name, which is all `--resume` needs.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from ftray import storage
from ftray.errors import FtrayError
from ftray.spec import JobSpec

RESULT_FILE = "ftray_result.json"


def new_run_name(spec: JobSpec) -> str:
    return f"{spec.name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S-%f}"


def run_uri(spec: JobSpec, run: str) -> str:
    return storage.join(spec.checkpoint.storage_path, run)


def runs_of(spec: JobSpec) -> list[str]:
    pattern = re.compile(rf"^{re.escape(spec.name)}-\d{{8}}-\d{{6}}-\d{{6}}$")
    return [d for d in storage.list_dirs(spec.checkpoint.storage_path) if pattern.match(d)]


def resumable_run(spec: JobSpec) -> str:
    """The newest run of this job that did not finish."""
    unfinished = [
        r for r in runs_of(spec) if not storage.exists(storage.join(run_uri(spec, r), RESULT_FILE))
    ]
    if not unfinished:
        raise FtrayError(
            f"--resume: no unfinished run of {spec.name!r} under {spec.checkpoint.storage_path}"
        )
    return unfinished[-1]


def output_dir(spec: JobSpec, run: str) -> Path:
    """Where the trained model lands on the driver's machine."""
    if spec.checkpoint.output_dir:
        return Path(spec.checkpoint.output_dir)
    if "://" in spec.checkpoint.storage_path:
        return Path("~/ftray/outputs").expanduser() / run
    return Path(spec.checkpoint.storage_path) / run / "model"
