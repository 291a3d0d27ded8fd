"""`ftray serve` and `ftray predict`: registry versions behind an HTTP endpoint, and its client.

`serving(...)` starts the Serve application (on local Ray, or the cluster at `address`) and
yields its URL; `serve_forever(...)` does so until interrupted. References are checked against the
registry before anything starts.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ftray.errors import FtrayError
from ftray.runtime import ray_runtime

APP_NAME = "ftray"
READY_TIMEOUT_S = 300


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
    from registry import Registry

    opened = Registry.open(registry)
    for ref in refs:
        opened.resolve(ref)  # unknown models, versions and aliases fail here, in one line
    from ray import serve

    from serving.app import build_app

    with ray_runtime(address, verbose):
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
    hop, when Serve runs with direct ingress (`ftray.runtime.SERVE_FAST_PATH`; the Ray ftray
    starts does); empty otherwise. Each replica answers only for itself: the proxy's URL is the
    one that spreads requests over replicas."""
    import ray
    from ray.serve.context import _get_global_client

    # Serve's public status omits replica ports; its controller lists them as target groups.
    controller = _get_global_client()._controller
    groups = ray.get(controller.get_target_groups.remote(APP_NAME))
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


def wait_until_healthy(url: str, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise FtrayError(f"the endpoint at {url} did not become healthy within {timeout:.0f}s")


def call(
    url: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 60,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One JSON request to the endpoint; an HTTP error becomes one line with its message."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{url.rstrip('/')}{path}",
        data=data,
        method="POST" if data else "GET",
        headers=headers or {},
    )
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = error.reason
        raise FtrayError(f"{url}{path}: {error.code}: {message}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FtrayError(f"--url: cannot reach {url}: {reason}") from None


def predict(url: str, ref: str, inputs: list[str], token: str | None = None) -> dict[str, Any]:
    return call(url, "/v1/predict", {"model": ref, "inputs": inputs}, token)
