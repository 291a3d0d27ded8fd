"""Upkeep: verifying stored bytes and aliases, and collecting blobs no version references."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from registry.cache import sha256_file
from registry.errors import RegistryError
from registry.files import RegistryFiles
from registry.layout import GC_LOCK_KEY, GC_LOCK_TTL_S, actor, blob_key
from registry.refs import Ref
from registry.store import NotFound, PreconditionFailed

DEFAULT_GC_GRACE_S = 3600.0
PENDING_TTL_S = 24 * 3600.0  # a registration still "in flight" after a day has died


class RegistryUpkeep(RegistryFiles):
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
                self.store.download(blob_key(sha256), target)
            except NotFound:
                return False
            return sha256_file(target) == sha256

    def gc(
        self,
        dry_run: bool = False,
        grace_s: float = DEFAULT_GC_GRACE_S,
        pending_ttl_s: float = PENDING_TTL_S,
    ) -> dict[str, Any]:
        """Delete blobs no manifest references and older than `grace_s`. A registration's
        pending record protects its blobs for `pending_ttl_s` (then it is taken for dead: say
        less when you know no registration runs, e.g. after killed pushes).

        Correct by construction against registrations that reuse a stored blob (deduplication
        uploads nothing, so age alone cannot protect it): gc holds `gc.lock` while it decides
        and deletes, and reads the pending records before the manifests. A registration writes
        its pending record, then waits out any lock before it checks which blobs exist; so a
        registration is either seen (pending, or finished and in a manifest) or starts checking
        after the deletions are done.
        """
        with self._gc_lock(dry_run):
            started = time.monotonic()
            blobs = self.store.list("blobs/sha256/")
            now = time.time()
            pending = self._pending_blobs(
                now, pending_ttl_s
            )  # first: a registration that finishes meanwhile
            referenced = self._referenced_blobs()  # is in a manifest read after its record
            unreferenced = [b for b in blobs if Path(b.key).name not in referenced]
            old = [b for b in unreferenced if now - b.modified > grace_s]
            doomed = [b for b in old if Path(b.key).name not in pending]
            deleted = []
            for blob in doomed if not dry_run else []:
                if time.monotonic() - started > GC_LOCK_TTL_S / 2:
                    break  # past here registrations may take the lock for a dead gc's
                self.store.delete(blob.key)
                deleted.append(blob)
        chosen = doomed if dry_run else deleted
        return {
            "deleted" if not dry_run else "would_delete": [Path(b.key).name for b in chosen],
            "bytes": sum(b.size for b in chosen),
            "kept_in_grace": len(unreferenced) - len(old),
            "dry_run": dry_run,
        }

    def _referenced_blobs(self) -> set[str]:
        return {
            entry["sha256"]
            for name in self.models()
            for m in self.versions(name)
            for entry in m.files.values()
        }

    @contextmanager
    def _gc_lock(self, dry_run: bool) -> Iterator[None]:
        """`gc.lock` for a deleting gc (a dry run deletes nothing and needs none); a dead gc's
        lock, older than GC_LOCK_TTL_S, is taken over."""
        if dry_run:
            yield
            return
        body = json.dumps({"by": actor(), "at": time.time()}).encode()
        try:
            self.store.put(GC_LOCK_KEY, body, create_only=True)
        except PreconditionFailed:
            held = self.store.head(GC_LOCK_KEY)
            if time.time() - held.modified <= GC_LOCK_TTL_S:
                raise RegistryError("gc: another gc is running (gc.lock is held)") from None
            try:
                self.store.put(GC_LOCK_KEY, body, if_match=held.etag)
            except PreconditionFailed:
                raise RegistryError("gc: another gc took over the stale gc.lock") from None
        try:
            yield
        finally:
            self.store.delete(GC_LOCK_KEY)

    def _pending_blobs(self, now: float, ttl_s: float) -> set[str]:
        """Blobs of registrations in flight; records older than `ttl_s` are from
        registrations that died, and are removed."""
        shas: set[str] = set()
        for info in self.store.list("models/"):
            if "/pending/" not in info.key:
                continue
            if now - info.modified > ttl_s:
                self.store.delete(info.key)
                continue
            try:
                shas.update(json.loads(self.store.get(info.key)[0]))
            except NotFound:
                continue
        return shas
