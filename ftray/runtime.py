"""Connecting to Ray: a local instance on embedded defaults or an existing cluster, quietly."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ftray.errors import FtrayError


@contextmanager
def ray_runtime(address: str | None = None, verbose: bool = False) -> Iterator[None]:
    """Ray for the duration of a command: joins `address` (or RAY_ADDRESS) or starts a local
    instance on 127.0.0.1, and stops what it started. Worker logs reach the terminal only when
    `verbose`; ftray's own progress display reports what matters."""
    import ray

    # Ray prints its warnings on stdout, which belongs to the command's result (--json): while
    # ftray holds a Ray session, stdout is sent to stderr; results are printed afterwards.
    with contextlib.redirect_stdout(sys.stderr):
        if ray.is_initialized():  # an embedding program (or a test) owns the session
            yield
            return
        with _ray_session(address, verbose):
            yield


@contextmanager
def _ray_session(address: str | None, verbose: bool) -> Iterator[None]:
    import ray

    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    # Tune prints its own configuration box and tables unless the pre-2.x output is selected;
    # ftray draws its own progress.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not verbose:
        os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
        for name in ("ray", "ray.train", "ray.tune", "ray.data"):
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
            include_dashboard=True, dashboard_host="127.0.0.1", _node_ip_address="127.0.0.1"
        )
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise FtrayError(f"--address: cannot reach the Ray cluster at {address}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()


def cluster_capacity() -> dict[str, float]:
    import ray

    return {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}


def check_capacity(
    workers: int, cpus_per_worker: float, use_gpu: bool, what: str = "scaling"
) -> None:
    """Fail fast when the cluster can never fit the workers, instead of waiting for resources."""
    capacity = cluster_capacity()
    need_cpu = workers * cpus_per_worker
    if need_cpu > capacity.get("CPU", 0):
        raise FtrayError(
            f"{what}.num_workers: {workers} workers x {cpus_per_worker:g} CPU need {need_cpu:g} "
            f"CPUs but the Ray cluster has {capacity.get('CPU', 0):g}"
        )
    if use_gpu and workers > capacity.get("GPU", 0):
        raise FtrayError(
            f"{what}.num_workers: {workers} GPU workers but the Ray cluster has "
            f"{capacity.get('GPU', 0):g} GPUs"
        )
