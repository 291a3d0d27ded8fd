"""Secrets for submitted jobs, kept out of what Ray stores about a job.

Ray keeps a job's runtime environment (its `env_vars` too) in the cluster's control store and
shows it to anyone who can reach the dashboard's job API; so does `--env`. `--secret-file
NAME=PATH` sends only a path: PATH is a file on every node (a mounted Kubernetes secret, a file
the cluster's setup commands write), and each process of the job reads it into NAME when it
starts: the driver as the CLI starts, every worker process (Train workers, their controller,
Tune trials, tasks) through Ray's `worker_process_setup_hook`. The value never travels. What
Ray cannot keep secret: anything a job passes it (env vars, arguments, the working_dir), and a
process's environment from someone who can run code on its node.
"""

from __future__ import annotations

import json
import os
import re

from ftray.errors import FtrayError

SECRET_FILES_ENV = "FTRAY_SECRET_FILES"  # {"NAME": "/path/on/every/node", ...}
SETUP_HOOK = "ftray.secrets.load_secret_files"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `--env` names that look like credentials get a warning about where their values end up.
SECRET_LIKE = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|_KEY$", re.IGNORECASE)


def secret_files(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`NAME=PATH` options, checked, as {NAME: PATH}."""
    files = {}
    for pair in pairs:
        name, _, path = pair.partition("=")
        if not NAME.match(name) or not path:
            raise FtrayError(f"--secret-file {pair!r}: give NAME=PATH (a file on every node)")
        files[name] = path
    return files


def load_secret_files() -> None:
    """Read the job's secret files into the environment (names already set are kept)."""
    raw = os.environ.get(SECRET_FILES_ENV)
    if not raw:
        return
    for name, path in json.loads(raw).items():
        if name in os.environ:
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                os.environ[name] = handle.read().rstrip("\n")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise FtrayError(f"--secret-file {name}: cannot read {path} here: {reason}") from None
