"""ftray: a fine-tuning launcher and model registry for teams that run Ray.

The Python API under the `ftray` command:

    from ftray import load_spec, train, tune, compare, check_data
    result = train(load_spec("job.yaml", ["strategy.kind=adapter"]))
"""

from __future__ import annotations

from typing import Any

from ftray.errors import FtrayError
from ftray.spec import JobSpec, load_spec

__version__ = "0.1.0"
__all__ = ["FtrayError", "JobSpec", "check_data", "compare", "load_spec", "train", "tune"]


_ENTRY_POINTS = {
    "train": "ftray.train",
    "tune": "ftray.tune",
    "compare": "ftray.compare",
    "check_data": "ftray.datacheck",
}


def __getattr__(name: str) -> Any:
    # Heavy entry points (torch, Ray) load on first use, so `import ftray` stays cheap.
    if name not in _ENTRY_POINTS:
        raise AttributeError(f"module 'ftray' has no attribute {name!r}")
    import importlib

    function = getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    # Importing `ftray.train` binds the submodule to `ftray.train`; the function must win, or
    # `from ftray import train` would hand out the module.
    globals()[name] = function
    return function
