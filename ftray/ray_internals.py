"""Every private Ray API and internal environment switch ftray relies on, in one place.

Each is here because no public API covers it (checked on Ray 2.60); `tests/test_ray_internals.py`
fails by name when a Ray upgrade removes or renames one, instead of ftray misbehaving quietly.
"""

from __future__ import annotations

import os
import re
from typing import Any

# Train V2 (Tune trials launch TorchTrainers, `TuneReportCallback`): the default from Ray 2.50
# on, set explicitly so an older or newer default cannot change how runs are driven.
TRAIN_V2 = {"RAY_TRAIN_V2_ENABLED": "1"}

# Tune prints its own configuration box and tables unless the pre-2.x output is selected;
# ftray draws its own progress.
QUIET_TUNE = {"RAY_AIR_NEW_OUTPUT": "0"}

# Train V2 warns about every V1 API it sees in a session; ftray uses none in its own paths.
QUIET_TRAIN = {"RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0"}

# Serve's faster request path, for the Ray ftray starts (a cluster's is its operator's choice):
# the proxy talks to replicas over gRPC, and each replica also answers HTTP on a port of its own
# (direct ingress; `serving.launch.replica_urls`), skipping the proxy's hop and its second round
# trip for the request body. Draining a replica's port on shutdown takes 1 s instead of Serve's 30.
SERVE_FAST_PATH = {
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
}

# Ray Train moves workers into its own run directory unless told not to; workers of a submitted
# job must stay in their copy of the job's working_dir for relative data paths to resolve.
STAY_IN_WORKING_DIR = {"RAY_CHDIR_TO_TRIAL_DIR": "0"}

ALL_FLAGS = {**TRAIN_V2, **QUIET_TUNE, **QUIET_TRAIN, **SERVE_FAST_PATH, **STAY_IN_WORKING_DIR}


def set_defaults(flags: dict[str, str]) -> None:
    """Set `flags` unless the user's environment already chose."""
    for name, value in flags.items():
        os.environ.setdefault(name, value)


def loopback_node() -> dict[str, Any]:
    """`ray.init` options for a local instance reachable on 127.0.0.1 only. `ray.init` has no
    public switch for the address the node binds; `_node_ip_address` is it."""
    return {"_node_ip_address": "127.0.0.1"}


# Error messages the cluster pushes to the driver that are expected, not news: Serve's controller
# kills itself inside `graceful_shutdown`, and the core worker reports that call's "failure"
# (with "infinite retries remaining") on every `serve.shutdown()`.
BENIGN_DRIVER_MESSAGES = ("ServeController.graceful_shutdown failed",)


def drop_benign_driver_messages() -> None:
    """Keep the known-benign messages above out of the terminal. The driver's error listener
    prints every message the cluster pushes (`print_to_stdstream`) whatever `log_to_driver`
    says; there is no public switch, so the printer is wrapped once (`--verbose` skips this)."""
    from ray._private import worker

    printer = worker.print_to_stdstream
    if getattr(printer, "ftray_filtered", False):
        return

    def filtered(data: dict[str, Any], ignore_prefix: bool) -> None:
        lines = [line for line in data.get("lines", []) if not _benign(line)]
        if lines:
            printer({**data, "lines": lines}, ignore_prefix)

    filtered.ftray_filtered = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = filtered


def _benign(line: str) -> bool:
    return any(message in line for message in BENIGN_DRIVER_MESSAGES)


def serve_replica_targets(app_name: str) -> list[Any]:
    """Serve's target groups for `app_name` (protocol, and each replica's ip, port and name).
    Serve's public status omits replica ports; its controller lists them."""
    import ray
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    if client is None:
        return []
    return list(ray.get(client._controller.get_target_groups.remote(app_name)))


# Tune names a trial's directory `<trainable>_<trial id>_<index>_<config>_<time>`; a trial that
# failed before reporting anything has no `trial_id` metric, and its directory name is the only
# place its id survives.
TRIAL_ID_IN_DIRNAME = re.compile(r"_([0-9a-f]{5}_\d{5})_")


def trial_id_from_dirname(name: str) -> str | None:
    found = TRIAL_ID_IN_DIRNAME.search(name)
    return found.group(1) if found else None
