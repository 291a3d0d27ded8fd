"""The registry's base layer: its store and cache, and reading models, versions, aliases and
events. Every layer above (aliases, versions, files, upkeep) builds on it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from registry.cache import BlobCache
from registry.errors import RegistryError
from registry.layout import (
    Manifest,
    actor,
    alias_key,
    aliases_prefix,
    events_prefix,
    unique_suffix,
    version_key,
    versions_prefix,
)
from registry.refs import LATEST, Ref, parse_ref, validate_name
from registry.store import NotFound, ObjectStore


class RegistryReader:
    def __init__(self, store: ObjectStore, cache: BlobCache | None = None) -> None:
        self.store = store
        self.cache = cache or BlobCache()
        # Transfer counters, for benchmarks and for tests that assert deduplication.
        self.bytes_uploaded = 0
        self.bytes_downloaded = 0

    @property
    def uri(self) -> str:
        return self.store.uri

    def _record(self, name: str, action: str, **details: Any) -> None:
        event = {
            "time": datetime.now(timezone.utc).isoformat(),
            "action": action,
            "by": actor(),
            **details,
        }
        key = f"{events_prefix(name)}{unique_suffix()}.json"
        self.store.put(key, json.dumps(event).encode(), create_only=True)

    def _highest_version(self, name: str) -> int:
        keys = self.store.list(versions_prefix(name))
        return max((int(Path(info.key).stem) for info in keys), default=0)

    def _read_alias(self, name: str, alias: str) -> tuple[dict[str, Any] | None, str | None]:
        try:
            data, etag = self.store.get(alias_key(name, alias))
        except NotFound:
            return None, None
        return json.loads(data), etag

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
            for info in self.store.list(versions_prefix(name))
        ]

    def resolve(self, ref: str | Ref) -> Manifest:
        """The manifest a reference points to. `latest` is the highest complete version."""
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        version = ref.version
        if version is None:
            version = self._alias_version(ref.name, ref.alias or LATEST)
        try:
            data, _ = self.store.get(version_key(ref.name, version))
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
        for info in self.store.list(aliases_prefix(name)):
            alias = Path(info.key).stem
            found[alias] = json.loads(self.store.get(info.key)[0])["version"]
        highest = self._highest_version(name)
        if highest:
            found[LATEST] = highest  # always the highest complete version
        return found

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            json.loads(self.store.get(info.key)[0]) for info in self.store.list(events_prefix(name))
        ]
