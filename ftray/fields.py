"""Reading one field of a data row, with an error that names the file, the row and the field.
Each task's `read_example` is built from these."""

from __future__ import annotations

from typing import Any

from ftray.errors import FtrayError


def text_value(row: dict[str, Any], name: str, at: str, allow_empty: bool = False) -> str:
    value = row.get(name)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        state = "missing" if value is None else "empty" if value == "" else "not a string"
        raise FtrayError(f"{at}: field {name!r} is {state}")
    return value


def label_value(row: dict[str, Any], name: str, at: str) -> str:
    value = row.get(name)
    if value is None or value == "":
        raise FtrayError(f"{at}: field {name!r} is missing")
    if isinstance(value, (dict, list)):
        raise FtrayError(f"{at}: field {name!r} must be a single value")
    return str(value)


def string_list(row: dict[str, Any], name: str, at: str) -> list[str]:
    value = row.get(name)
    if isinstance(value, str):  # CSV cells: whitespace-separated
        value = value.split()
    if not isinstance(value, list) or not value:
        raise FtrayError(f"{at}: field {name!r} must be a non-empty list")
    return [str(v) for v in value]
