"""Registering versions: blobs first, then the manifest under a version number claimed by a
create-only write; and the append-only evaluation records beside each immutable manifest."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from registry.aliases import RegistryAliases
from registry.cache import sha256_file
from registry.errors import RegistryError
from registry.layout import (
    GC_LOCK_KEY,
    GC_LOCK_TTL_S,
    MANIFEST_FILE,
    Manifest,
    actor,
    blob_key,
    evaluations_prefix,
    fingerprint,
    pending_key,
    unique_suffix,
    version_key,
)
from registry.refs import Ref, validate_name
from registry.store import NotFound, PreconditionFailed

# A version's kind is its strategy's (full, adapter, ... or one a plugin adds) or "base"; the
# registry stores it and matches on it, and leaves what it means to the strategy.
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
FILE_THREADS = 4
GC_WAIT_POLL_S = 0.2


class RegistryVersions(RegistryAliases):
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
        identity = fingerprint(files)
        if reuse_identical:
            for existing in self.versions(name):
                if existing.fingerprint == identity and existing.kind == kind:
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
            fingerprint=identity,
            created=datetime.now(timezone.utc).isoformat(),
            created_by=actor(),
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
        pending = pending_key(manifest.name)
        self.store.put(pending, json.dumps(sorted(set(hashes))).encode())
        try:
            self._wait_for_gc()
            self._upload_blobs(dict(zip(hashes, paths, strict=True)))
            self._claim_version(manifest)
        finally:
            self.store.delete(pending)

    def _wait_for_gc(self) -> None:
        """A gc that read the pending records before ours was written may still delete a blob
        we are about to find and reuse: wait until no gc holds the lock (or a dead one's lock
        is stale). From then on every gc sees our pending record, and existence can be trusted."""
        while True:
            try:
                lock = self.store.head(GC_LOCK_KEY)
            except NotFound:
                return
            if time.time() - lock.modified > GC_LOCK_TTL_S:
                return
            time.sleep(GC_WAIT_POLL_S)

    def _upload_blobs(self, blobs: dict[str, Path]) -> None:
        def upload(item: tuple[str, Path]) -> int:
            sha256, path = item
            try:
                self.store.head(blob_key(sha256))
                return 0  # content-addressed: already stored, by this or any other version
            except NotFound:
                self.store.upload(blob_key(sha256), path)
                return path.stat().st_size

        with ThreadPoolExecutor(FILE_THREADS) as pool:
            self.bytes_uploaded += sum(pool.map(upload, blobs.items()))

    def _claim_version(self, manifest: Manifest) -> None:
        """Write the manifest under the next free number; a create-only write decides races."""
        manifest.version = self._highest_version(manifest.name) + 1
        while True:
            try:
                self.store.put(
                    version_key(manifest.name, manifest.version),
                    manifest.to_json(),
                    create_only=True,
                )
                return
            except PreconditionFailed:
                manifest.version += 1

    def record_evaluation(self, ref: str | Ref, record: dict[str, Any]) -> str:
        """Store an evaluation of `ref` as a new create-only object; returns its key."""
        manifest = self.resolve(ref)
        key = evaluations_prefix(manifest.name, manifest.version) + unique_suffix()
        self.store.put(f"{key}.json", json.dumps(record, default=str).encode(), create_only=True)
        self._record(manifest.name, "evaluate", version=manifest.version, data=record.get("data"))
        return f"{key}.json"

    def evaluations(self, ref: str | Ref) -> list[dict[str, Any]]:
        """Every evaluation recorded for the version `ref` resolves to, oldest first."""
        manifest = self.resolve(ref)
        prefix = evaluations_prefix(manifest.name, manifest.version)
        return [json.loads(self.store.get(info.key)[0]) for info in self.store.list(prefix)]
