"""ftray: a fine-tuning launcher and model registry for teams that run Ray.

The Python API under the `ftray` command:

    from ftray import load_spec, train, tune, compare, check_data, evaluate
    result = train(load_spec("job.yaml", ["strategy.kind=adapter"]))
    scores = evaluate(result.output_dir, "held-out.jsonl")  # result: a ModelResult
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from ftray.errors import FtrayError
from ftray.spec import JobSpec, load_spec

__version__ = "0.1.0"
__all__ = [
    "FtrayError",
    "JobSpec",
    "check_data",
    "compare",
    "evaluate",
    "load_spec",
    "train",
    "tune",
]


_ENTRY_POINTS = {
    "train": "ftray.train",
    "tune": "ftray.tune",
    "compare": "ftray.compare",
    "check_data": "ftray.datacheck",
    "evaluate": "ftray.evaluate",
}


class _Package(ModuleType):
    """Importing a submodule binds it to the package attribute of the same name, so importing
    `ftray.train` anywhere would turn `from ftray import train` into the module. For the entry
    points that binding is dropped; the function is what the name means."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _ENTRY_POINTS and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    # Heavy entry points (torch, Ray) load on first use, so `import ftray` stays cheap.
    if name not in _ENTRY_POINTS:
        raise AttributeError(f"module 'ftray' has no attribute {name!r}")
    import importlib

    function = getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    globals()[name] = function  # looked up once
    return function
