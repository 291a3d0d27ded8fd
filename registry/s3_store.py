"""S3 (or any S3-compatible server) as an object store, through boto3.

Standard boto3 credentials and `AWS_ENDPOINT_URL` (MinIO, Ceph, a local test server) apply.
Create-only is `PutObject` with `If-None-Match: *`, compare-and-swap `If-Match: <etag>`; large
files use boto3's managed multipart transfers with parallel parts. Errors become one line that
names the bucket and the cause, never credentials.
"""

from __future__ import annotations

import os
from pathlib import Path

from registry.store import NotFound, ObjectInfo, PreconditionFailed, StoreError

MB = 1024 * 1024
# Upload threads also checksum their parts: beyond ~2 per core they only contend for CPU
# (measured on 2 cores: 4 threads upload 5% faster than boto3's 10); big boxes keep 10.
UPLOAD_THREADS = min(10, 2 * (os.cpu_count() or 1))
UPLOAD_PART_BYTES = 8 * MB
# Downloads are I/O-bound: fewer, larger ranged GETs (measured: 16 MB x 8 pulls 200 MB 1.6x
# faster than boto3's 8 MB x 10 from a local S3 server).
DOWNLOAD_THREADS = 8
DOWNLOAD_PART_BYTES = 16 * MB


class S3Store:
    def __init__(self, uri: str) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise StoreError(f"registry: {uri!r} names no bucket (expected s3://bucket/prefix)")
        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        # Short timeouts and few retries: an unreachable endpoint fails in seconds, not minutes.
        config = Config(
            connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
        )
        self.client = boto3.session.Session().client("s3", config=config)
        self.uploads = TransferConfig(
            multipart_threshold=UPLOAD_PART_BYTES,
            multipart_chunksize=UPLOAD_PART_BYTES,
            max_concurrency=UPLOAD_THREADS,
        )
        self.downloads = TransferConfig(
            multipart_threshold=DOWNLOAD_PART_BYTES,
            multipart_chunksize=DOWNLOAD_PART_BYTES,
            max_concurrency=DOWNLOAD_THREADS,
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str) -> tuple[bytes, str]:
        response = self._call("get_object", key, Bucket=self.bucket, Key=self._key(key))
        return response["Body"].read(), response["ETag"]

    def head(self, key: str) -> ObjectInfo:
        response = self._call("head_object", key, Bucket=self.bucket, Key=self._key(key))
        return ObjectInfo(
            key, response["ContentLength"], response["ETag"], response["LastModified"].timestamp()
        )

    def put(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> str:
        conditions = {}
        if create_only:
            conditions["IfNoneMatch"] = "*"
        elif if_match is not None:
            conditions["IfMatch"] = if_match
        response = self._call(
            "put_object",
            key,
            Bucket=self.bucket,
            Key=self._key(key),
            Body=data,
            ContentType="application/json" if key.endswith(".json") else "application/octet-stream",
            **conditions,
        )
        return response["ETag"]

    def upload(self, key: str, path: Path) -> None:
        self._call("upload_file", key, str(path), self.bucket, self._key(key), Config=self.uploads)

    def download(self, key: str, path: Path) -> None:
        self._call(
            "download_file", key, self.bucket, self._key(key), str(path), Config=self.downloads
        )

    def list(self, prefix: str) -> list[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self._key(""))
        found = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for item in page.get("Contents", []):
                    found.append(
                        ObjectInfo(
                            item["Key"][strip:],
                            item["Size"],
                            item["ETag"],
                            item["LastModified"].timestamp(),
                        )
                    )
        except Exception as exc:
            raise self._translate(exc, prefix) from None
        return sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        self._call("delete_object", key, Bucket=self.bucket, Key=self._key(key))

    def _call(self, method: str, key: str, *args, **kwargs):
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except Exception as exc:
            raise self._translate(exc, key) from None

    def _translate(self, exc: Exception, key: str) -> Exception:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
            exc = exc.__context__
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound") or (
                status == 404 and code != "NoSuchBucket"
            ):
                return NotFound(f"{key} not found")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return PreconditionFailed(f"{key}: {code or status}")
            if code == "NoSuchBucket":
                return StoreError(
                    f"registry: bucket {self.bucket!r} does not exist at {self._endpoint()}"
                )
            if (
                code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403")
                or status == 403
            ):
                return StoreError(
                    f"registry: access to s3://{self.bucket} denied ({code or status}); "
                    "check the AWS credentials"
                )
            return StoreError(f"registry: s3://{self.bucket}/{key}: {code or status}")
        if isinstance(exc, NoCredentialsError):
            return StoreError(
                "registry: no AWS credentials found (set AWS_ACCESS_KEY_ID or a profile)"
            )
        if isinstance(exc, BotoCoreError):
            return StoreError(f"registry: cannot reach {self._endpoint()}: {type(exc).__name__}")
        return exc

    def _endpoint(self) -> str:
        return self.client.meta.endpoint_url
