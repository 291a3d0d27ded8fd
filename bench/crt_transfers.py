"""AWS's CRT transfer client against boto3's default transfers, on moto's S3 server (127.0.0.1).

    pip install awscrt && python bench/crt_transfers.py [--mb 64]

boto3's own CRT switch (`preferred_transfer_client="crt"`) will not speak plain HTTP to a custom
endpoint; built by hand (s3transfer's `create_s3_crt_client(use_ssl=False)` with botocore's
request serializer pointed at AWS_ENDPOINT_URL) it does. Prints MB/s for one upload and one
download of the same random file each way. Not wired into the registry: see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    import boto3
    import botocore.session
    from moto.server import ThreadedMotoServer
    from s3transfer.crt import (
        BotocoreCRTCredentialsWrapper,
        BotocoreCRTRequestSerializer,
        CRTTransferManager,
        create_s3_crt_client,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=64)
    args = parser.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url)
    client.create_bucket(Bucket="bench-crt")
    session = botocore.session.get_session()
    provider = BotocoreCRTCredentialsWrapper(session.get_credentials())
    crt = create_s3_crt_client(
        "us-east-1", crt_credentials_provider=provider.to_crt_credentials_provider(), use_ssl=False
    )
    serializer = BotocoreCRTRequestSerializer(
        session, {"endpoint_url": url, "region_name": "us-east-1"}
    )
    data = os.urandom(args.mb * 2**20)
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "blob")
        with open(path, "wb") as handle:
            handle.write(data)
        timings = {}
        with CRTTransferManager(crt, serializer) as manager:
            started = time.perf_counter()
            manager.upload(path, "bench-crt", "crt").result()
            timings["crt_upload"] = time.perf_counter() - started
            started = time.perf_counter()
            manager.download("bench-crt", "crt", path + ".crt").result()
            timings["crt_download"] = time.perf_counter() - started
        started = time.perf_counter()
        client.upload_file(path, "bench-crt", "boto3")
        timings["boto3_upload"] = time.perf_counter() - started
        started = time.perf_counter()
        client.download_file("bench-crt", "boto3", path + ".boto3")
        timings["boto3_download"] = time.perf_counter() - started
        same = client.get_object(Bucket="bench-crt", Key="crt")["Body"].read() == data
    server.stop()
    rates = {k: round(args.mb / v) for k, v in timings.items()}
    print(f"MB/s: {rates}; the CRT upload reads back intact: {same}")
    print(
        f"upload CRT/boto3 {rates['crt_upload'] / rates['boto3_upload']:.2f}x, "
        f"download {rates['crt_download'] / rates['boto3_download']:.2f}x"
    )


if __name__ == "__main__":
    main()
