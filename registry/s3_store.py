"""S3 (or any S3-compatible server) as an object store, through boto3.

Standard boto3 credentials and `AWS_ENDPOINT_URL` (MinIO, Ceph, a local test server) apply.
Create-only is `PutObject` with `If-None-Match: *`, compare-and-swap `If-Match: <etag>`; blobs
travel as whole files (`registry.transfers`: the CRT client when `awscrt` is installed, boto3's
multipart transfers otherwise). Errors become one line that names the bucket and the cause,
never credentials.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from registry.store import NotFound, ObjectInfo, PreconditionFailed, StoreError
from registry.transfers import BotoTransfers, CrtTransfers, transfers_for


class S3Store:
    def __init__(self, uri: str) -> None:
        import boto3
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

    @cached_property
    def transfers(self) -> BotoTransfers | CrtTransfers:
        """Made on the first blob transfer: the CRT client starts native threads."""
        return transfers_for(self.client)

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
        try:
            self.transfers.upload(path, self.bucket, self._key(key))
        except Exception as exc:
            raise self._translate(exc, key) from None

    def download(self, key: str, path: Path) -> None:
        try:
            self.transfers.download(self.bucket, self._key(key), path)
        except Exception as exc:
            raise self._translate(exc, key) from None

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
        if isinstance(exc, BotoCoreError) or type(exc).__name__ == "AwsCrtError":
            return StoreError(f"registry: cannot reach {self._endpoint()}: {type(exc).__name__}")
        return exc

    def _endpoint(self) -> str:
        return self.client.meta.endpoint_url
