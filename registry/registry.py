"""Registry semantics over any `ObjectStore`: every line here serves S3 and local alike.

Split by concern, each layer on the one below: `layout` (keys and the manifest), `reading`,
`aliases`, `versions` (registration, evaluation records), `files` (pull, checkout), `upkeep`
(verify, gc). `Registry` is the whole stack.

Rules: blobs first, manifest last (a version is visible only when complete); a version number is
claimed by a create-only write and a lost race retries with the next number; alias moves are
compare-and-swap; every downloaded blob is checked against its sha256.
"""

from __future__ import annotations

import os
from pathlib import Path

from registry.cache import BlobCache, CorruptBlob
from registry.layout import MANIFEST_FILE, Manifest
from registry.store import ObjectStore
from registry.upkeep import DEFAULT_GC_GRACE_S, RegistryUpkeep
from registry.versions import KIND_PATTERN


def open_store(uri: str) -> ObjectStore:
    if uri.startswith("s3://"):
        from registry.s3_store import S3Store  # boto3 loads only for S3 registries

        return S3Store(uri)
    from registry.local_store import LocalStore

    return LocalStore(uri)


def default_uri() -> str:
    return os.environ.get("FTRAY_REGISTRY") or str(Path.home() / ".ftray" / "registry")


class Registry(RegistryUpkeep):
    @classmethod
    def open(cls, uri: str | None = None, cache: BlobCache | None = None) -> Registry:
        """The registry at `uri` (s3://bucket/prefix or a local path); default: FTRAY_REGISTRY,
        else ~/.ftray/registry."""
        return cls(open_store(uri or default_uri()), cache)


__all__ = [
    "DEFAULT_GC_GRACE_S",
    "KIND_PATTERN",
    "MANIFEST_FILE",
    "CorruptBlob",
    "Manifest",
    "Registry",
    "default_uri",
    "open_store",
]
