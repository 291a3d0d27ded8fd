"""Model names and references: `NAME:VERSION` (immutable) or `NAME@ALIAS` (movable)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.errors import RegistryError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME = 128
LATEST = "latest"


def validate_name(name: str, what: str = "model name") -> str:
    """Names become object keys: no '/', no '..', nothing empty or over 128 characters."""
    if not name:
        raise RegistryError(f"{what} is empty")
    if len(name) > MAX_NAME:
        raise RegistryError(
            f"{what} {name[:20]!r}... is {len(name)} characters (at most {MAX_NAME})"
        )
    if not NAME.match(name) or ".." in name:
        raise RegistryError(
            f"{what} {name!r} is invalid: use letters, digits, '.', '_' and '-', starting with a "
            "letter or digit, without '..' or '/'"
        )
    return name


@dataclass(frozen=True)
class Ref:
    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return (
            f"{self.name}:{self.version}"
            if self.version is not None
            else f"{self.name}@{self.alias}"
        )


def parse_ref(text: str) -> Ref:
    """`name:3`, `name@production`, or `name` (meaning `name@latest`)."""
    if ":" in text:
        name, _, version = text.partition(":")
        if not version.isdigit() or int(version) < 1:
            raise RegistryError(f"reference {text!r}: the version after ':' must be a number >= 1")
        return Ref(validate_name(name), version=int(version))
    name, _, alias = text.partition("@")
    return Ref(validate_name(name), alias=validate_name(alias, "alias") if alias else LATEST)
