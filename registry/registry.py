"""Registry semantics over any `ObjectStore`: every line here serves S3 and local alike.

Layout (plain objects, readable with any S3 tool):

    blobs/sha256/<2 hex>/<64 hex>                  file contents, immutable, shared by versions
    models/<name>/versions/<000001>.json           a version's manifest
    models/<name>/aliases/<alias>.json             {"version": N, "history": [...]}
    models/<name>/events/<timestamp>-<id>.json     append-only audit trail
    models/<name>/pending/<id>.json                blobs of a registration in flight (for gc)

Rules: blobs first, manifest last (a version is visible only when complete); a version number is
claimed by a create-only write and a lost race retries with the next number; alias moves are
compare-and-swap; every downloaded blob is checked against its sha256.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from registry.cache import BlobCache, CorruptBlob, sha256_file
from registry.errors import RegistryError
from registry.refs import LATEST, Ref, parse_ref, validate_name
from registry.store import NotFound, ObjectStore, PreconditionFailed

# A version's kind is its strategy's (full, adapter, ... or one a plugin adds) or "base"; the
# registry stores it and matches on it, and leaves what it means to the strategy.
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
MANIFEST_FILE = "ftray_manifest.json"
DEFAULT_GC_GRACE_S = 3600.0
PENDING_TTL_S = 24 * 3600.0  # a registration still "in flight" after a day has died
FILE_THREADS = 4


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


def open_store(uri: str) -> ObjectStore:
    if uri.startswith("s3://"):
        from registry.s3_store import S3Store

        return S3Store(uri)
    from registry.local_store import LocalStore

    return LocalStore(uri)


def default_uri() -> str:
    return os.environ.get("FTRAY_REGISTRY") or str(Path.home() / ".ftray" / "registry")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def _actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _fingerprint(files: dict[str, dict[str, Any]]) -> str:
    import hashlib

    canonical = json.dumps({path: entry["sha256"] for path, entry in files.items()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Registry:
    def __init__(self, store: ObjectStore, cache: BlobCache | None = None) -> None:
        self.store = store
        self.cache = cache or BlobCache()
        # Transfer counters, for benchmarks and for tests that assert deduplication.
        self.bytes_uploaded = 0
        self.bytes_downloaded = 0

    @classmethod
    def open(cls, uri: str | None = None, cache: BlobCache | None = None) -> Registry:
        """The registry at `uri` (s3://bucket/prefix or a local path); default: FTRAY_REGISTRY,
        else ~/.ftray/registry."""
        return cls(open_store(uri or default_uri()), cache)

    @property
    def uri(self) -> str:
        return self.store.uri

    # ---- keys

    @staticmethod
    def _blob(sha256: str) -> str:
        return f"blobs/sha256/{sha256[:2]}/{sha256}"

    @staticmethod
    def _version(name: str, version: int) -> str:
        return f"models/{name}/versions/{version:06d}.json"

    @staticmethod
    def _alias(name: str, alias: str) -> str:
        return f"models/{name}/aliases/{alias}.json"

    # ---- registration

    def register(
        self,
        source: str | Path,
        name: str,
        kind: str,
        *,
        task: str | None = None,
        labels: list[str] | None = None,
        base: dict[str, Any] | None = None,
        strategy: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        test_metrics: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
        aliases: tuple[str, ...] | list[str] = (),
        reuse_identical: bool = False,
    ) -> Manifest:
        """Store the files under `source` as the next version of `name`.

        Blobs are uploaded (only those the store lacks) before the manifest is written with a
        create-only write, so a registration that fails part-way leaves no visible version.
        With `reuse_identical`, an existing version with the same kind and files is returned
        instead of a new one (how a base model is registered once).
        """
        validate_name(name)
        if not KIND_PATTERN.match(kind):
            raise RegistryError(f"kind {kind!r}: use lower-case letters, digits, '-' or '_'")
        for alias in aliases:
            self._check_movable_alias(alias)
        source = Path(source)
        paths, files = self._hash_files(source)
        fingerprint = _fingerprint(files)
        if reuse_identical:
            for existing in self.versions(name):
                if existing.fingerprint == fingerprint and existing.kind == kind:
                    return existing
        manifest = Manifest(
            name=name,
            version=0,  # claimed when written
            kind=kind,
            files=files,
            task=task,
            labels=labels or [],
            base=base,
            strategy=strategy,
            metrics=metrics or {},
            test_metrics=test_metrics or {},
            spec=spec,
            lineage=lineage or {},
            fingerprint=fingerprint,
            created=datetime.now(timezone.utc).isoformat(),
            created_by=_actor(),
        )
        self._store_version(manifest, paths)
        self._advance_latest(name, manifest.version)
        self._record(name, "register", version=manifest.version, kind=kind)
        for alias in aliases:
            self.set_alias(name, alias, manifest.version)
        return manifest

    @staticmethod
    def _hash_files(source: Path) -> tuple[list[Path], dict[str, dict[str, Any]]]:
        paths = sorted(p for p in source.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
        if not paths:
            raise RegistryError(f"{source}: no files to register")
        with ThreadPoolExecutor(FILE_THREADS) as pool:
            hashes = list(pool.map(sha256_file, paths))
        files = {
            p.relative_to(source).as_posix(): {"sha256": h, "size": p.stat().st_size}
            for p, h in zip(paths, hashes, strict=True)
        }
        return paths, files

    def _store_version(self, manifest: Manifest, paths: list[Path]) -> None:
        """Blobs first, under a pending record gc respects; then the manifest, create-only."""
        hashes = [entry["sha256"] for entry in manifest.files.values()]
        pending = f"models/{manifest.name}/pending/{uuid.uuid4().hex}.json"
        self.store.put(pending, json.dumps(sorted(set(hashes))).encode())
        try:
            self._upload_blobs(dict(zip(hashes, paths, strict=True)))
            self._claim_version(manifest)
        finally:
            self.store.delete(pending)

    def _upload_blobs(self, blobs: dict[str, Path]) -> None:
        def upload(item: tuple[str, Path]) -> int:
            sha256, path = item
            try:
                self.store.head(self._blob(sha256))
                return 0  # content-addressed: already stored, by this or any other version
            except NotFound:
                self.store.upload(self._blob(sha256), path)
                return path.stat().st_size

        with ThreadPoolExecutor(FILE_THREADS) as pool:
            self.bytes_uploaded += sum(pool.map(upload, blobs.items()))

    def _claim_version(self, manifest: Manifest) -> None:
        """Write the manifest under the next free number; a create-only write decides races."""
        manifest.version = self._highest_version(manifest.name) + 1
        while True:
            try:
                self.store.put(
                    self._version(manifest.name, manifest.version),
                    manifest.to_json(),
                    create_only=True,
                )
                return
            except PreconditionFailed:
                manifest.version += 1

    def _highest_version(self, name: str) -> int:
        keys = self.store.list(f"models/{name}/versions/")
        return max((int(Path(info.key).stem) for info in keys), default=0)

    def _advance_latest(self, name: str, version: int) -> None:
        """Move `latest` forward to `version` unless a newer one got there first."""
        while True:
            current, etag = self._read_alias(name, LATEST)
            if current is not None and current["version"] >= version:
                return
            document = {"version": version, "history": [], "updated": _now(), "by": _actor()}
            try:
                self._write_alias(name, LATEST, document, etag)
                return
            except PreconditionFailed:
                continue

    # ---- reading

    def models(self) -> list[str]:
        names = {
            info.key.split("/")[1]
            for info in self.store.list("models/")
            if "/versions/" in info.key
        }
        return sorted(names)

    def versions(self, name: str) -> list[Manifest]:
        validate_name(name)
        return [
            Manifest.from_json(self.store.get(info.key)[0])
            for info in self.store.list(f"models/{name}/versions/")
        ]

    def resolve(self, ref: str | Ref) -> Manifest:
        """The manifest a reference points to. `latest` is the highest complete version."""
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        version = ref.version
        if version is None:
            version = self._alias_version(ref.name, ref.alias or LATEST)
        try:
            data, _ = self.store.get(self._version(ref.name, version))
        except NotFound:
            highest = self._highest_version(ref.name)
            if highest == 0:
                raise RegistryError(f"unknown model {ref.name!r} in {self.uri}") from None
            raise RegistryError(
                f"unknown version {ref}: {ref.name} has versions 1-{highest}"
            ) from None
        return Manifest.from_json(data)

    def _alias_version(self, name: str, alias: str) -> int:
        if alias == LATEST:
            highest = self._highest_version(name)
            if highest == 0:
                raise RegistryError(f"unknown model {name!r} in {self.uri}")
            return highest
        current, _ = self._read_alias(name, alias)
        if current is None:
            known = self.aliases(name)
            if not known:
                raise RegistryError(f"unknown model {name!r} in {self.uri}")
            raise RegistryError(
                f"unknown alias {name}@{alias} (aliases: {', '.join(sorted(known))})"
            )
        return current["version"]

    def aliases(self, name: str) -> dict[str, int]:
        found = {}
        for info in self.store.list(f"models/{name}/aliases/"):
            alias = Path(info.key).stem
            found[alias] = json.loads(self.store.get(info.key)[0])["version"]
        highest = self._highest_version(name)
        if highest:
            found[LATEST] = highest  # always the highest complete version
        return found

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            json.loads(self.store.get(info.key)[0])
            for info in self.store.list(f"models/{name}/events/")
        ]

    # ---- aliases

    def set_alias(self, name: str, alias: str, version: int) -> dict[str, Any]:
        """Point `name@alias` at `version` (compare-and-swap; the old target joins its history)."""
        self._check_movable_alias(alias)
        self.resolve(Ref(name, version=version))
        while True:
            current, etag = self._read_alias(name, alias)
            history = [*current["history"], current["version"]] if current else []
            document = {"version": version, "history": history, "updated": _now(), "by": _actor()}
            try:
                self._write_alias(name, alias, document, etag)
                break
            except PreconditionFailed:
                continue
        self._record(
            name,
            "alias",
            alias=alias,
            version=version,
            previous=current["version"] if current else None,
        )
        return document

    def rollback(self, name: str, alias: str) -> dict[str, Any]:
        """Move `name@alias` back to the version it pointed to before its last move."""
        self._check_movable_alias(alias)
        while True:
            current, etag = self._read_alias(name, alias)
            if current is None:
                raise RegistryError(f"unknown alias {name}@{alias}")
            if not current["history"]:
                raise RegistryError(f"{name}@{alias} has no earlier version to roll back to")
            document = {
                "version": current["history"][-1],
                "history": current["history"][:-1],
                "updated": _now(),
                "by": _actor(),
            }
            try:
                self._write_alias(name, alias, document, etag)
                break
            except PreconditionFailed:
                continue
        self._record(
            name, "rollback", alias=alias, version=document["version"], previous=current["version"]
        )
        return document

    @staticmethod
    def _check_movable_alias(alias: str) -> None:
        validate_name(alias, "alias")
        if alias == LATEST:
            raise RegistryError("alias 'latest' is maintained by the registry and cannot be moved")

    def _read_alias(self, name: str, alias: str) -> tuple[dict[str, Any] | None, str | None]:
        try:
            data, etag = self.store.get(self._alias(name, alias))
        except NotFound:
            return None, None
        return json.loads(data), etag

    def _write_alias(
        self, name: str, alias: str, document: dict[str, Any], etag: str | None
    ) -> None:
        data = json.dumps(document, indent=2).encode()
        if etag is None:
            self.store.put(self._alias(name, alias), data, create_only=True)
        else:
            self.store.put(self._alias(name, alias), data, if_match=etag)

    def _record(self, name: str, action: str, **details: Any) -> None:
        event = {
            "time": datetime.now(timezone.utc).isoformat(),
            "action": action,
            "by": _actor(),
            **details,
        }
        key = f"models/{name}/events/{_now()}-{uuid.uuid4().hex[:8]}.json"
        self.store.put(key, json.dumps(event).encode(), create_only=True)

    # ---- evaluations: append-only records beside an immutable manifest

    @staticmethod
    def _evaluations(name: str, version: int) -> str:
        return f"models/{name}/evaluations/{version:06d}/"

    def record_evaluation(self, ref: str | Ref, record: dict[str, Any]) -> str:
        """Store an evaluation of `ref` as a new create-only object; returns its key."""
        manifest = self.resolve(ref)
        key = f"{self._evaluations(manifest.name, manifest.version)}{_now()}-{uuid.uuid4().hex[:8]}"
        self.store.put(f"{key}.json", json.dumps(record, default=str).encode(), create_only=True)
        self._record(manifest.name, "evaluate", version=manifest.version, data=record.get("data"))
        return f"{key}.json"

    def evaluations(self, ref: str | Ref) -> list[dict[str, Any]]:
        """Every evaluation recorded for the version `ref` resolves to, oldest first."""
        manifest = self.resolve(ref)
        prefix = self._evaluations(manifest.name, manifest.version)
        return [json.loads(self.store.get(info.key)[0]) for info in self.store.list(prefix)]

    # ---- pulling and checking

    def pull(self, ref: str | Ref, destination: str | Path) -> Manifest:
        """Download a version into `destination` (absent or empty), every file checked against
        its sha256; blobs already in the local cache are not downloaded again. The manifest is
        written beside the files as ftray_manifest.json."""
        manifest = self.resolve(ref)
        destination = Path(destination)
        if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
            raise RegistryError(f"pull: {destination} is not an empty directory")
        self.fetch_blobs(manifest)
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
        try:
            for path, entry in manifest.files.items():
                self.cache.place(entry["sha256"], staging / path)
            (staging / MANIFEST_FILE).write_bytes(manifest.to_json())
            if destination.exists():
                destination.rmdir()
            staging.rename(destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return manifest

    def checkout(self, ref: str | Ref) -> tuple[Manifest, Path]:
        """A version's files in a read-only directory under the cache (pulled once, reused):
        what loaders use. Keyed by the file set's fingerprint, so it can never be stale."""
        manifest = self.resolve(ref)
        key = f"{manifest.version}-{manifest.fingerprint[:16]}"
        directory = self.cache.root.parent / "versions" / manifest.name / key
        if not (directory / MANIFEST_FILE).exists():
            try:
                self.pull(manifest.ref, directory)
            except (RegistryError, OSError):
                if not (directory / MANIFEST_FILE).exists():  # else another process won the race
                    raise
        return manifest, directory

    def fetch_blobs(self, manifest: Manifest) -> dict[str, Path]:
        """Every file of a version in the local cache (downloading what is missing); returns
        relative path -> cached path."""

        def fetch(item: tuple[str, dict[str, Any]]) -> int:
            path, entry = item
            download = lambda target: self.store.download(self._blob(entry["sha256"]), target)  # noqa: E731
            try:
                _, size = self.cache.fetch(entry["sha256"], download, f"{manifest.ref} {path}")
            except NotFound:
                raise RegistryError(
                    f"{manifest.ref} {path}: blob {entry['sha256'][:12]}... is missing"
                ) from None
            return size

        with ThreadPoolExecutor(FILE_THREADS) as pool:
            self.bytes_downloaded += sum(pool.map(fetch, manifest.files.items()))
        return {path: self.cache.path(entry["sha256"]) for path, entry in manifest.files.items()}

    def verify(self, ref: str | Ref | None = None) -> dict[str, Any]:
        """Check stored bytes against their sha256 (bypassing the cache) for one version or the
        whole registry, and that aliases point at existing versions."""
        if ref is not None:
            manifests = [self.resolve(ref)]
        else:
            manifests = [m for name in self.models() for m in self.versions(name)]
        problems: list[str] = []
        checked: dict[str, bool] = {}
        for manifest in manifests:
            for path, entry in manifest.files.items():
                sha256 = entry["sha256"]
                if sha256 not in checked:
                    checked[sha256] = self._blob_intact(sha256)
                if not checked[sha256]:
                    problems.append(
                        f"{manifest.ref} {path}: blob {sha256[:12]}... is missing or corrupt"
                    )
        if ref is None:
            for name in self.models():
                highest = self._highest_version(name)
                for alias, version in self.aliases(name).items():
                    if not 1 <= version <= highest:
                        problems.append(f"{name}@{alias} points at missing version {version}")
        return {"versions": len(manifests), "blobs": len(checked), "problems": problems}

    def _blob_intact(self, sha256: str) -> bool:
        with tempfile.TemporaryDirectory(prefix="ftray-verify-") as scratch:
            target = Path(scratch) / "blob"
            try:
                self.store.download(self._blob(sha256), target)
            except NotFound:
                return False
            return sha256_file(target) == sha256

    def gc(self, dry_run: bool = False, grace_s: float = DEFAULT_GC_GRACE_S) -> dict[str, Any]:
        """Delete blobs no manifest references and older than `grace_s` (uploads in flight keep
        theirs through a pending record; the grace period covers the rest)."""
        blobs = self.store.list("blobs/sha256/")
        referenced = {
            entry["sha256"]
            for name in self.models()
            for m in self.versions(name)
            for entry in m.files.values()
        }
        now = time.time()
        candidates = [
            b for b in blobs if Path(b.key).name not in referenced and now - b.modified > grace_s
        ]
        pending = self._pending_blobs(now)  # read last: registrations that began meanwhile
        doomed = [b for b in candidates if Path(b.key).name not in pending]
        if not dry_run:
            for blob in doomed:
                self.store.delete(blob.key)
        return {
            "deleted" if not dry_run else "would_delete": [Path(b.key).name for b in doomed],
            "bytes": sum(b.size for b in doomed),
            "kept_in_grace": sum(1 for b in blobs if Path(b.key).name not in referenced)
            - len(candidates),
            "dry_run": dry_run,
        }

    def _pending_blobs(self, now: float) -> set[str]:
        """Blobs of registrations in flight; records older than PENDING_TTL_S are from
        registrations that died, and are removed."""
        shas: set[str] = set()
        for info in self.store.list("models/"):
            if "/pending/" not in info.key:
                continue
            if now - info.modified > PENDING_TTL_S:
                self.store.delete(info.key)
                continue
            try:
                shas.update(json.loads(self.store.get(info.key)[0]))
            except NotFound:
                continue
        return shas


__all__ = [
    "KIND_PATTERN",
    "MANIFEST_FILE",
    "CorruptBlob",
    "Manifest",
    "Registry",
    "default_uri",
    "open_store",
]
