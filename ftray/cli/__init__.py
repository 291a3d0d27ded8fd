"""The `ftray` command line; each module adds one group of commands to `cli`.

Commands import what they run inside the command (ftray's API, and through it torch, Ray,
transformers): `ftray --help`, `ftray registry list` and the like start in ~0.2 s instead of the
several seconds those imports take. That is why this package's function-local imports are there.
"""

from ftray.cli import (  # noqa: F401  (registers their commands)
    cluster,
    evaluating,
    registry,
    serving,
    training,
    tuning,
)
from ftray.cli.base import cli, main

__all__ = ["cli", "main"]
