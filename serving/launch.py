"""Starting the endpoint: registry versions behind HTTP on Ray Serve (`ftray serve`).

`serving(...)` starts the Serve application (on local Ray, or the cluster at `address`) and
yields its URL; `serve_forever(...)` does so until interrupted. References are checked against the
registry before anything starts.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ftray import ray_internals
from ftray.runtime import ray_runtime
from registry import Registry
from serving.client import wait_until_healthy

APP_NAME = "ftray"


@contextmanager
def serving(
    refs: list[str],
    *,
    registry: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    verbose: bool = False,
    **options: Any,
) -> Iterator[str]:
    """The application running; yields its base URL and shuts it down afterwards."""
    opened = Registry.open(registry)
    for ref in refs:
        opened.resolve(ref)  # unknown models, versions and aliases fail here, in one line
    from ray import serve  # Ray Serve takes seconds to import: only once something is served

    from serving.app import build_app  # imports Ray Serve and FastAPI too

    if not verbose:  # importing ray.serve sets its logger to INFO ("Started Serve in ...")
        logging.getLogger("ray.serve").setLevel(logging.ERROR)

    # HAProxy ingress where there is one replica: it is Ray's fast path, but it spreads
    # connections without reading the multiplexed-model header that keeps a version on the
    # replica holding it, so several replicas stay behind Serve's own proxy.
    one_replica = options.get("replicas", 1) == 1 and not options.get("max_replicas")
    with ray_runtime(address, verbose, haproxy=one_replica):
        serve.start(http_options={"host": host, "port": port})
        try:
            app = build_app({"refs": refs, "registry": opened.uri, **options})
            serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
            url = f"http://{host}:{port}"
            wait_until_healthy(url)
            yield url
        finally:
            serve.shutdown()


def replica_urls(host: str = "127.0.0.1") -> list[str]:
    """The URLs at which the application's replicas answer HTTP themselves, without the proxy's
    hop, when Serve runs with direct ingress (`ftray.ray_internals.SERVE_FAST_PATH`; the Ray ftray
    starts does); empty otherwise. Each replica answers only for itself: the proxy's URL is the
    one that spreads requests over replicas."""
    groups = ray_internals.serve_replica_targets(APP_NAME)
    local = host in ("127.0.0.1", "localhost")
    return [
        f"http://{host if local else target.ip}:{target.port}"
        for group in groups
        if group.app_name == APP_NAME and group.protocol == "HTTP"
        for target in group.targets
        if target.name.startswith("SERVE_REPLICA::")
    ]


def serve_forever(refs: list[str], on_ready: Any = None, **kwargs: Any) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly. The signals set an event rather
    than raise, so one arriving while Serve starts or shuts down cannot cut that short."""
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with serving(refs, **kwargs) as url:
            if on_ready:
                on_ready(url)
            stop.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
