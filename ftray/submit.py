"""`ftray submit` and `ftray jobs`: ftray commands as jobs on a Ray cluster, through the Job
Submission API on the head node's dashboard port (http://HEAD:8265).

The job spec is validated and its data read here, before anything is sent: a job that cannot work
is refused on the submitter's machine. The spec and its local data files travel in the job's
`working_dir` (data paths rewritten to the copies; `s3://` data is read by the cluster, and only
a sample of its first rows here); the cluster needs ftray installed (or `pip`)
and nothing else from the submitter's disk. Credentials travel as environment variables named by
the submitter and read from its environment (`--env`: Ray stores their values with the job),
or as files already on every node (`--secret-file`, `ftray.secrets`: only the path travels);
their values are never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml

from ftray import secrets
from ftray.data import load_splits
from ftray.errors import FtrayError
from ftray.spec import JobSpec, load_spec, read_raw_spec
from ftray.tracking import SUBMISSION_ENV

CONNECT_TIMEOUT_S = 10.0
COMMANDS = ("train", "tune", "compare")
SPEC_FILE = "job.yaml"
DATA_DIR = "data"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def connect(address: str, timeout: float = CONNECT_TIMEOUT_S) -> Any:
    """A Job Submission client for `address`, after a bounded check that a Ray dashboard
    answers there (the client's own first request can hang on an unreachable host)."""
    from ray.job_submission import JobSubmissionClient

    if "://" not in address:
        address = f"http://{address}"
    try:
        with urllib.request.urlopen(f"{address.rstrip('/')}/api/version", timeout=timeout) as r:
            json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FtrayError(
            f"--address: no Ray dashboard answers at {address} ({reason}); it is the head "
            "node's dashboard, e.g. http://HEAD:8265"
        ) from None
    return JobSubmissionClient(address)


def package(job: str | Path, overrides: tuple[str, ...] | list[str], directory: Path) -> JobSpec:
    """Validate the job and write what the cluster needs into `directory`: the spec, with its
    local data files copied beside it."""
    spec = load_spec(job, overrides)
    load_splits(spec)  # unreadable, malformed or missing data fails here, naming the file
    raw = read_raw_spec(job, overrides)
    (directory / DATA_DIR).mkdir()
    data = raw.setdefault("data", {})
    for field in ("train", "validation"):
        source = getattr(spec.data, field)
        if source and not Path(source).is_file():  # s3:// data stays; a local set must be shared
            data[field] = source if "://" in source else str(Path(source).expanduser().resolve())
        elif source:
            copy = f"{DATA_DIR}/{field}-{Path(source).name}"
            shutil.copyfile(source, directory / copy)
            data[field] = copy
    if spec.deepspeed.config:
        shutil.copyfile(spec.deepspeed.config, directory / "deepspeed.json")
        raw["deepspeed"]["config"] = "deepspeed.json"
    # Other relative paths meant the submitter's directory: make them absolute (a shared
    # filesystem, or the same machine); `~`, absolute paths and URIs stay as written.
    for section, field in (
        ("model", "name"),
        ("checkpoint", "storage_path"),
        ("checkpoint", "output_dir"),
        ("registry", "uri"),
    ):
        value = raw.get(section, {}).get(field)
        resolved = getattr(getattr(spec, section), field)
        if isinstance(value, str) and value != resolved and not value.startswith(("~", "/")):
            raw[section][field] = resolved
    (directory / SPEC_FILE).write_text(yaml.safe_dump(raw, sort_keys=False))
    return spec


def submit(
    job: str | Path,
    address: str,
    *,
    command: str = "train",
    overrides: tuple[str, ...] | list[str] = (),
    env: tuple[str, ...] | list[str] = (),
    secret_files: tuple[str, ...] | list[str] = (),
    pip: tuple[str, ...] | list[str] = (),
    args: tuple[str, ...] | list[str] = (),
    verbose: bool = False,
) -> dict[str, Any]:
    """Submit `ftray COMMAND job.yaml` to the cluster; returns the job's id and entrypoint."""
    if command not in COMMANDS:
        raise FtrayError(f"--command: {command!r} is not one of {', '.join(COMMANDS)}")
    missing = [name for name in env if name not in os.environ]
    if missing:
        raise FtrayError(f"--env: {', '.join(missing)} not set in this environment")
    files = secrets.secret_files(secret_files)
    with tempfile.TemporaryDirectory(prefix="ftray-job-") as directory:
        spec = package(job, overrides, Path(directory))
        client = connect(address)
        submission_id = f"ftray-{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        runtime_env: dict[str, Any] = {
            "working_dir": directory,
            # The job's tracking runs are tagged with the id it was submitted as.
            "env_vars": {**{name: os.environ[name] for name in env}, SUBMISSION_ENV: submission_id},
        }
        if files:  # paths only; every process of the job reads them as it starts
            runtime_env["env_vars"][secrets.SECRET_FILES_ENV] = json.dumps(files)
            runtime_env["worker_process_setup_hook"] = secrets.SETUP_HOOK
        if pip:
            runtime_env["pip"] = list(pip)
        cli = ["python -m ftray.cli", *(["--verbose"] if verbose else [])]
        entrypoint = " ".join([*cli, command, SPEC_FILE, *args])
        job_id = client.submit_job(
            entrypoint=entrypoint,
            runtime_env=runtime_env,
            submission_id=submission_id,
            metadata={"ftray_command": command, "ftray_job": spec.name},
        )
    return {"job_id": job_id, "entrypoint": entrypoint, "address": client.get_address()}


def follow(
    address: str, job_id: str, out: Any = sys.stdout, timeout: float | None = None
) -> dict[str, Any]:
    """Stream the job's logs until it ends, or until `timeout` seconds pass; returns its
    status (not a terminal one when the time ran out first)."""
    client = connect(address)

    async def stream() -> None:
        async for lines in client.tail_job_logs(job_id):
            out.write(lines)
            out.flush()

    async def until_timeout() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stream(), timeout)

    asyncio.run(until_timeout())
    return status(address, job_id, client)


def wait(address: str, job_id: str, timeout: float, poll_s: float = 1.0) -> dict[str, Any]:
    """Until the job reaches a terminal status (or `timeout` passes); returns its status."""
    client = connect(address)
    deadline = time.time() + timeout
    while True:
        info = status(address, job_id, client)
        if info["status"] in TERMINAL or time.time() > deadline:
            return info
        time.sleep(poll_s)


def status(address: str, job_id: str, client: Any = None) -> dict[str, Any]:
    client = client or connect(address)
    return job_row(client.get_job_info(job_id))


def logs(address: str, job_id: str) -> str:
    return connect(address).get_job_logs(job_id)


def stop(address: str, job_id: str) -> dict[str, Any]:
    client = connect(address)
    client.stop_job(job_id)
    return status(address, job_id, client)


def list_jobs(address: str) -> list[dict[str, Any]]:
    jobs = connect(address).list_jobs()
    return [job_row(info) for info in sorted(jobs, key=lambda j: j.start_time or 0)]


def job_row(info: Any) -> dict[str, Any]:
    """What a user needs of a job; the runtime environment (credentials) is left out."""
    return {
        "job_id": info.submission_id or info.job_id,
        "status": str(getattr(info.status, "value", info.status)),
        "entrypoint": info.entrypoint,
        "message": info.message,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "metadata": info.metadata or {},
    }
