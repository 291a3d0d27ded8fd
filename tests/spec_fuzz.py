"""Job specs mutated by hypothesis: a valid spec with one field replaced, removed or added, the
value drawn from wrong types, huge and non-finite numbers, odd unicode and path tricks.

Shared by the bounded test (`tests/test_spec_fuzz.py`) and the longer run in `bench/fuzz_specs.py`.
A spec is *handled* when it loads, or when loading (and `ftray data check`) fails with ftray's
own one-line error; anything else (another exception, a message over several lines) is a bug.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from ftray.datacheck import check_data
from ftray.errors import USER_ERRORS
from ftray.spec import load_spec

PATH_TRICKS = [
    "../../../../etc/passwd",
    "/dev/zero",
    "~",
    "",
    ".",
    "s3://",
    "s3://bucket/../../x",
    "data/\x00train.jsonl",
    "C:\\data\\train.jsonl",
    "file:///etc/hosts",
    "a" * 5000,
]
ODD_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # YAML cannot carry lone surrogates
    max_size=40,
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    ODD_TEXT,
    st.sampled_from(PATH_TRICKS),
    st.lists(st.one_of(st.integers(), ODD_TEXT), max_size=4),
    st.dictionaries(ODD_TEXT, st.integers(), max_size=3),
)


# Fields that reach the file system, S3 or a URL: path tricks go there on purpose.
PATH_FIELDS = [
    ("data", "train"),
    ("data", "validation"),
    ("data", "test"),
    ("model", "name"),
    ("checkpoint", "storage_path"),
    ("checkpoint", "output_dir"),
    ("registry", "uri"),
    ("deepspeed", "config"),
    ("name",),
]


def leaf_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(node, dict) and node:
        return [p for key, value in node.items() for p in leaf_paths(value, (*prefix, key))]
    return [prefix]


@st.composite
def mutated_specs(draw: Any, valid: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(valid)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(leaf_paths(spec)))
        if not path:
            break
        parent = spec
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "remove", "add", "path"]))
        if action == "path":
            *sections, field = draw(st.sampled_from(PATH_FIELDS))
            target = spec
            for section in sections:
                target = target.setdefault(section, {}) if isinstance(target, dict) else {}
            if isinstance(target, dict):
                target[field] = draw(st.sampled_from(PATH_TRICKS))
        elif action == "replace":
            parent[path[-1]] = draw(VALUES)
        elif action == "remove":
            del parent[path[-1]]
        else:
            parent[draw(ODD_TEXT)] = draw(VALUES)
    return spec


def handled(spec: dict[str, Any], directory: Path) -> str:
    """'valid', 'refused' (one line of ftray's), or raises AssertionError naming the bug."""
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    try:
        loaded = load_spec(path)
        check_data(loaded)
    except USER_ERRORS as exc:
        message = str(exc)
        assert message and "\n" not in message, f"a multi-line error: {message!r}"
        return "refused"
    except Exception as exc:
        raise AssertionError(
            f"{type(exc).__name__}: {exc} for spec {json.dumps(spec, default=str)[:400]}"
        ) from exc
    return "valid"
