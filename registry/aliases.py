"""Aliases: named pointers to versions, moved by compare-and-swap, each move kept in history."""

from __future__ import annotations

import json
from typing import Any

from registry.errors import RegistryError
from registry.layout import actor, alias_key, now
from registry.reading import RegistryReader
from registry.refs import LATEST, Ref, validate_name
from registry.store import PreconditionFailed


class RegistryAliases(RegistryReader):
    def set_alias(self, name: str, alias: str, version: int) -> dict[str, Any]:
        """Point `name@alias` at `version` (compare-and-swap; the old target joins its history)."""
        self._check_movable_alias(alias)
        self.resolve(Ref(name, version=version))
        while True:
            current, etag = self._read_alias(name, alias)
            history = [*current["history"], current["version"]] if current else []
            document = {"version": version, "history": history, "updated": now(), "by": actor()}
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
                "updated": now(),
                "by": actor(),
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

    def _advance_latest(self, name: str, version: int) -> None:
        """Move `latest` forward to `version` unless a newer one got there first."""
        while True:
            current, etag = self._read_alias(name, LATEST)
            if current is not None and current["version"] >= version:
                return
            document = {"version": version, "history": [], "updated": now(), "by": actor()}
            try:
                self._write_alias(name, LATEST, document, etag)
                return
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
