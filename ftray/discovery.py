"""How plugin packages (`ftray.strategies`, `ftray.tasks`) find their built-in members and take
new ones: one module per plugin, each exporting one object; outside plugins by registration."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any, TypeVar

from ftray.errors import FtrayError

P = TypeVar("P")


def discover(package: str, paths: Iterable[str], attribute: str) -> list[Any]:
    """`attribute` of every module in the package, except `base` and private modules."""
    found = []
    for info in sorted(pkgutil.iter_modules(paths), key=lambda m: m.name):
        if info.name != "base" and not info.name.startswith("_"):
            found.append(getattr(importlib.import_module(f"{package}.{info.name}"), attribute))
    return found


def built_in(plugin: object, package: str) -> bool:
    return type(plugin).__module__.startswith(f"{package}.")


def add(registry: dict[str, P], key: str, plugin: P, package: str, what: str) -> P:
    """Register `plugin` under `key`; a built-in one of that name is not replaced."""
    existing = registry.get(key)
    if existing is not None and built_in(existing, package):
        raise FtrayError(f"{what} {key!r} is built in; give yours another name")
    registry[key] = plugin
    return plugin
