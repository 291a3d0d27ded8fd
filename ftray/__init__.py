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


def __getattr__(name: str) -> Any:
    # Heavy entry points (torch, Ray) load on first use, so `import ftray` stays cheap.
    if name == "train":
        from ftray.train import train

        return train
    if name == "check_data":
        from ftray.datacheck import check_data

        return check_data
    if name == "tune":
        from ftray.tune import tune

        return tune
    if name == "compare":
        from ftray.compare import compare

        return compare
    raise AttributeError(f"module 'ftray' has no attribute {name!r}")
