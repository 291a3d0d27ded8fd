"""The object-store interface the registry is written against, and its errors.

Small on purpose: the registry's correctness rests on two conditional writes every store must
provide atomically — create-only (`create_only=True`: fails if the key exists) and
compare-and-swap (`if_match=etag`: fails unless the object still has that etag). Large files
move through `upload`/`download`, which a store may parallelise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from registry.errors import RegistryError


class StoreError(RegistryError):
    """The store could not be used at all (unreachable, denied, misconfigured)."""


class NotFound(RegistryError):
    pass


class PreconditionFailed(RegistryError):
    """A conditional write lost: the key exists (create-only) or changed (if-match)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    modified: float  # seconds since the epoch


class ObjectStore(Protocol):
    uri: str

    def get(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and etag (raises NotFound)."""

    def head(self, key: str) -> ObjectInfo:
        """Metadata without the body (raises NotFound)."""

    def put(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> str:
        """Write a small object atomically; returns its etag (raises PreconditionFailed)."""

    def upload(self, key: str, path: Path) -> None:
        """Write a large object from a file (unconditional; used for content-addressed blobs)."""

    def download(self, key: str, path: Path) -> None:
        """Copy an object into a local file (raises NotFound)."""

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with `prefix`, sorted by key."""

    def delete(self, key: str) -> None: ...
