"""Aliases: named pointers to versions, moved by compare-and-swap, each move kept in history."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from registry.errors import RegistryError
from registry.layout import actor, alias_key, now
from registry.reading import RegistryReader
from registry.refs import LATEST, Ref, validate_name
from registry.store import PreconditionFailed

Alias = dict[str, Any] | None  # an alias document ({"version", "history", ...}), or none yet


class RegistryAliases(RegistryReader):
    def set_alias(self, name: str, alias: str, version: int) -> dict[str, Any]:
        """Point `name@alias` at `version` (compare-and-swap; the old target joins its history)."""
        self._check_movable_alias(alias)
        self.resolve(Ref(name, version=version))

        def point(current: Alias) -> Alias:
            history = [*current["history"], current["version"]] if current else []
            return {"version": version, "history": history, "updated": now(), "by": actor()}

        current, document = self._swap_alias(name, alias, point)
        previous = current["version"] if current else None
        self._record(name, "alias", alias=alias, version=version, previous=previous)
        assert document is not None
        return document

    def rollback(self, name: str, alias: str) -> dict[str, Any]:
        """Move `name@alias` back to the version it pointed to before its last move."""
        self._check_movable_alias(alias)

        def back(current: Alias) -> Alias:
            if current is None:
                raise RegistryError(f"unknown alias {name}@{alias}")
            if not current["history"]:
                raise RegistryError(f"{name}@{alias} has no earlier version to roll back to")
            return {
                "version": current["history"][-1],
                "history": current["history"][:-1],
                "updated": now(),
                "by": actor(),
            }

        current, document = self._swap_alias(name, alias, back)
        assert current is not None and document is not None
        self._record(
            name, "rollback", alias=alias, version=document["version"], previous=current["version"]
        )
        return document

    def _advance_latest(self, name: str, version: int) -> None:
        """Move `latest` forward to `version` unless a newer one got there first."""

        def forward(current: Alias) -> Alias:
            if current is not None and current["version"] >= version:
                return None
            return {"version": version, "history": [], "updated": now(), "by": actor()}

        self._swap_alias(name, LATEST, forward)

    def _swap_alias(
        self, name: str, alias: str, change: Callable[[Alias], Alias]
    ) -> tuple[Alias, Alias]:
        """Compare-and-swap: write `change(current)` unless another writer moved the alias
        meanwhile, then try again on what it wrote. `change` returning None writes nothing.
        Returns the alias as it was read and as written."""
        while True:
            current, etag = self._read_alias(name, alias)
            document = change(current)
            if document is None:
                return current, None
            try:
                self._write_alias(name, alias, document, etag)
                return current, document
            except PreconditionFailed:
                continue

    @staticmethod
    def _check_movable_alias(alias: str) -> None:
        validate_name(alias, "alias")
        if alias == LATEST:
            raise RegistryError("alias 'latest' is maintained by the registry and cannot be moved")

    def _write_alias(
        self, name: str, alias: str, document: dict[str, Any], etag: str | None
    ) -> None:
        data = json.dumps(document, indent=2).encode()
        if etag is None:
            self.store.put(alias_key(name, alias), data, create_only=True)
        else:
            self.store.put(alias_key(name, alias), data, if_match=etag)
