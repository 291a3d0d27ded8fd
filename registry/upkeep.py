"""Upkeep: verifying stored bytes and aliases, and collecting blobs no version references."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from registry.cache import sha256_file
from registry.files import RegistryFiles
from registry.layout import blob_key
from registry.refs import Ref
from registry.store import NotFound

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
