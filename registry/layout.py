"""Where everything lives in a registry's object store, and what a version's manifest holds.

blobs/sha256/<2 hex>/<64 hex>                  file contents, immutable, shared by versions
models/<name>/versions/<000001>.json           a version's manifest
models/<name>/aliases/<alias>.json             {"version": N, "history": [...]}
models/<name>/events/<timestamp>-<id>.json     append-only audit trail
models/<name>/evaluations/<000001>/<ts>-<id>.json  append-only evaluation records
models/<name>/pending/<id>.json                blobs of a registration in flight (for gc)
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

MANIFEST_FILE = "ftray_manifest.json"


def blob_key(sha256: str) -> str:
    return f"blobs/sha256/{sha256[:2]}/{sha256}"


def versions_prefix(name: str) -> str:
    return f"models/{name}/versions/"


def version_key(name: str, version: int) -> str:
    return f"{versions_prefix(name)}{version:06d}.json"


def aliases_prefix(name: str) -> str:
    return f"models/{name}/aliases/"


def alias_key(name: str, alias: str) -> str:
    return f"{aliases_prefix(name)}{alias}.json"


def events_prefix(name: str) -> str:
    return f"models/{name}/events/"


def evaluations_prefix(name: str, version: int) -> str:
    return f"models/{name}/evaluations/{version:06d}/"


# Held (created only if absent) while gc deletes; a registration whose pending record gc may
# have missed waits for it to go before trusting that a blob exists (registry/upkeep.py).
GC_LOCK_KEY = "gc.lock"
GC_LOCK_TTL_S = 600.0  # a lock older than this is a dead gc's; a live gc stops deleting before


def pending_key(name: str) -> str:
    return f"models/{name}/pending/{uuid.uuid4().hex}.json"


def unique_suffix() -> str:
    """A time-ordered, collision-free object name: appended records never overwrite."""
    return f"{now()}-{uuid.uuid4().hex[:8]}"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def fingerprint(files: dict[str, dict[str, Any]]) -> str:
    canonical = json.dumps({path: entry["sha256"] for path, entry in files.items()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Manifest:
    name: str
    version: int
    kind: str
    files: dict[str, dict[str, Any]]  # relative path -> {"sha256", "size"}
    task: str | None = None
    labels: list[str] = field(default_factory=list)
    base: dict[str, Any] | None = None  # {"ref": "name:N"} or {"name": ..., "fingerprint": ...}
    strategy: dict[str, Any] | None = None  # {"kind", "method", "config"}: what trained it
    metrics: dict[str, Any] = field(default_factory=dict)  # validation: what chose the model
    test_metrics: dict[str, Any] = field(default_factory=dict)  # the held-out test split, if any
    spec: dict[str, Any] | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""  # identity of the file set, to recognise a re-registration
    created: str = ""
    created_by: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def size(self) -> int:
        return sum(entry["size"] for entry in self.files.values())

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        return cls(**json.loads(data))
