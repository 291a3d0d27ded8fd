"""ftray's model registry: content-addressed blobs, versions and aliases on S3 or a directory."""

from registry.cache import BlobCache, CorruptBlob
from registry.errors import RegistryError
from registry.refs import Ref, parse_ref, validate_name
from registry.registry import (
    KIND_PATTERN,
    MANIFEST_FILE,
    Manifest,
    Registry,
    default_uri,
    open_store,
)
from registry.store import NotFound, ObjectInfo, ObjectStore, PreconditionFailed, StoreError

__all__ = [
    "KIND_PATTERN",
    "MANIFEST_FILE",
    "BlobCache",
    "CorruptBlob",
    "Manifest",
    "NotFound",
    "ObjectInfo",
    "ObjectStore",
    "PreconditionFailed",
    "Ref",
    "Registry",
    "RegistryError",
    "StoreError",
    "default_uri",
    "open_store",
    "parse_ref",
    "validate_name",
]
