"""The endpoint's client: `ftray predict`, health checks, and one-line errors for HTTP ones.

Standard library only, so a client machine needs neither Ray nor torch.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from ftray.errors import FtrayError
from serving.schema import Limits

READY_TIMEOUT_S = 300


class Unreachable(FtrayError):
    """Nothing answered at the URL (refused, unknown host, timed out)."""


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
        raise Unreachable(f"--url: cannot reach {url}: {reason}") from None


def predict(url: str, ref: str, inputs: list[str], token: str | None = None) -> dict[str, Any]:
    """The endpoint's answer for every input: in requests of at most its default `max_inputs`,
    so a whole file can be asked at once (the last request's version and task are reported)."""
    per_request = Limits().max_inputs
    outputs: list[Any] = []
    for start in range(0, max(len(inputs), 1), per_request):
        chunk = inputs[start : start + per_request]
        answer = call(url, "/v1/predict", {"model": ref, "inputs": chunk}, token)
        outputs += answer["outputs"]
    return {**answer, "outputs": outputs}
