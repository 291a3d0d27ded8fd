"""Connecting to Ray: a local instance on embedded defaults or an existing cluster, quietly."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftray import ray_internals
from ftray.errors import FtrayError
from ftray.spec import JobSpec


@contextmanager
def ray_runtime(
    address: str | None = None, verbose: bool = False, haproxy: bool = False
) -> Iterator[None]:
    """Ray for the duration of a command: joins `address` (or RAY_ADDRESS) or starts a local
    instance on 127.0.0.1, and stops what it started. Worker logs reach the terminal only when
    `verbose`; ftray's own progress display reports what matters. `haproxy`: a local instance
    serves through Serve's HAProxy ingress (`ray_internals.loopback_haproxy`)."""
    import ray

    # Ray prints its warnings on stdout, which belongs to the command's result (--json): while
    # ftray holds a Ray session, stdout is sent to stderr; results are printed afterwards.
    with contextlib.redirect_stdout(sys.stderr):
        if ray.is_initialized():  # an embedding program (or a test) owns the session
            yield
            return
        with _ray_session(address, verbose, haproxy):
            yield


@contextmanager
def _ray_session(address: str | None, verbose: bool, haproxy: bool) -> Iterator[None]:
    import ray

    ray_internals.set_defaults({**ray_internals.TRAIN_V2, **ray_internals.QUIET_TUNE})
    if not verbose:
        ray_internals.set_defaults(ray_internals.QUIET_TRAIN)
        ray_internals.drop_benign_driver_messages()
        for name in ("ray", "ray.train", "ray.tune", "ray.data", "ray.serve"):
            logging.getLogger(name).setLevel(logging.ERROR)
    options: dict = {
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
    }
    if address or os.environ.get("RAY_ADDRESS"):
        options["address"] = address
    else:
        # The dashboard serves Ray's state API, which Train V2 needs to release the workers of a
        # run whose driver died (a Tune trial stopped by ASHA): without it they leak and the
        # next trials wait forever. It also serves the Job Submission API.
        options.update(
            include_dashboard=True, dashboard_host="127.0.0.1", **ray_internals.loopback_node()
        )
        ray_internals.set_defaults({**ray_internals.SERVE_FAST_PATH, **ray_internals.LOCAL_TRAIN})
    with contextlib.ExitStack() as stack:
        local_flags = {}
        if haproxy and "address" not in options:
            local_flags = stack.enter_context(ray_internals.loopback_haproxy())
        try:
            with ray_internals.started_with(local_flags):
                ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise FtrayError(
                f"--address: cannot reach the Ray cluster at {address}: {exc}"
            ) from None
        try:
            yield
        finally:
            ray.shutdown()


def cluster_capacity() -> dict[str, float]:
    import ray

    return {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}


def check_capacity(
    workers: int,
    cpus_per_worker: float,
    use_gpu: bool,
    what: str = "scaling",
    streamed: bool = False,
    strategy: str = "PACK",
) -> None:
    """Fail fast when the cluster can never fit the workers, instead of waiting for resources.

    A streamed training set also needs a CPU beside the workers: Ray Data's read and tokenize
    tasks take one each, and with every CPU held by a worker they would wait forever."""
    capacity = cluster_capacity()
    need_cpu = workers * cpus_per_worker
    if need_cpu > capacity.get("CPU", 0):
        raise FtrayError(
            f"{what}.num_workers: {workers} workers x {cpus_per_worker:g} CPU need {need_cpu:g} "
            f"CPUs but the Ray cluster has {capacity.get('CPU', 0):g}"
        )
    if streamed and need_cpu + 1 > capacity.get("CPU", 0):
        raise FtrayError(
            f"{what}.cpus_per_worker: {workers} workers x {cpus_per_worker:g} CPU leave no CPU "
            f"of the cluster's {capacity.get('CPU', 0):g} for Ray Data to stream the training "
            "set; use fewer or smaller workers (e.g. cpus_per_worker: 0.5)"
        )
    if strategy == "STRICT_SPREAD" and workers > (nodes := alive_nodes()):
        raise FtrayError(
            f"{what}.placement_strategy: STRICT_SPREAD puts each of {workers} workers on a node "
            f"of its own but the Ray cluster has {nodes}"
        )
    if use_gpu and workers > capacity.get("GPU", 0):
        raise FtrayError(
            f"{what}.num_workers: {workers} GPU workers but the Ray cluster has "
            f"{capacity.get('GPU', 0):g} GPUs"
        )


def why_workers_wait() -> str | None:
    """What this job's training workers wait for, from Ray's State API: a placement group the
    cluster cannot place yet, or worker actors not yet created (a node still setting up their
    runtime environment, say). None when nothing of this job waits, or the API cannot answer.

    Train V2 retries a worker group that cannot start without end, quietly: this is what a
    user sees instead of a bar that never moves."""
    import ray
    from ray.util import state

    job = ray.get_runtime_context().get_job_id()
    try:
        groups = state.list_placement_groups(
            filters=[("creator_job_id", "=", job), ("state", "=", "PENDING")],
            detail=True,
            raise_on_missing_output=False,
        )
        actors = state.list_actors(
            filters=[("job_id", "=", job)], detail=True, raise_on_missing_output=False
        )
    except Exception:  # no dashboard to serve the State API (a cluster started without one)
        return None
    reasons = []
    if groups:
        free, nodes = ray.available_resources().get("CPU", 0), alive_nodes()
        where = f"{free:g} CPUs free on {nodes} node" + ("s" if nodes != 1 else "")
        for group in groups:
            reasons.append(
                f"a placement group of {_shape(group.bundles or [])} is pending "
                f"(the cluster has {where})"
            )
    waiting = Counter(
        f"{actor.class_name.rsplit('.', 1)[-1]} {actor.state}"
        for actor in actors
        if actor.state in ("DEPENDENCIES_UNREADY", "PENDING_CREATION")
    )
    reasons += [f"{count} {key}" for key, count in sorted(waiting.items())]
    return "; ".join(reasons) or None


def _shape(bundles: list[dict]) -> str:
    need = [bundle.get("unit_resources", {}) for bundle in bundles]
    return f"{len(need)} x {need[0]}" if need and all(b == need[0] for b in need) else str(need)


def alive_nodes() -> int:
    import ray

    return sum(1 for node in ray.nodes() if node["Alive"])


def check_storage_reachable(storage_path: str, shared_filesystem: bool) -> None:
    """On a multi-node cluster, checkpoints must live where every node can read them: a worker
    restarted on another node resumes from them, and the driver exports the best one."""
    if "://" in storage_path or shared_filesystem:
        return
    nodes = alive_nodes()
    if nodes > 1:
        raise FtrayError(
            f"checkpoint.storage_path: {storage_path} is a local directory but the Ray cluster "
            f"has {nodes} nodes, whose workers could not share checkpoints there; use "
            "s3://bucket/prefix, or set checkpoint.shared_filesystem: true if every node mounts it"
        )


def node_portable(spec: JobSpec) -> JobSpec:
    """The spec as workers on any node can read it. A Ray job's working_dir (where `ftray submit`
    puts the spec and its data) is unpacked on every node at its own path, and workers start in
    their copy: paths inside the driver's copy travel relative to it. (Not via the driver's cwd:
    Ray may delete and re-create its copy while the driver runs.)"""
    import ray

    working_dir = ray.get_runtime_context().runtime_env.get("working_dir")
    if not working_dir:
        return spec
    os.environ.update(ray_internals.STAY_IN_WORKING_DIR)
    package = Path(working_dir.split("://")[-1]).name.removesuffix(".zip")
    spec = spec.model_copy(deep=True)
    for section, field in (("data", "train"), ("data", "validation"), ("deepspeed", "config")):
        parts = Path(getattr(getattr(spec, section), field) or "").parts
        if package in parts:
            inside = Path(*parts[parts.index(package) + 1 :])
            setattr(getattr(spec, section), field, str(inside))
    return spec
