"""A local S3 server for benchmarks: moto's, on 127.0.0.1, with bucket "bench"."""

from __future__ import annotations

import logging
import os
from typing import Any


def start_s3() -> Any:
    """Start it and point boto3 (and pyarrow) at it through the environment; returns the
    server (call `.stop()` when done)."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    boto3.client("s3").create_bucket(Bucket="bench")
    return server
