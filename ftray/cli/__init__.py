"""The `ftray` command line; each module adds one group of commands to `cli`.

Commands import what they run inside the command (ftray's API, and through it torch, Ray,
transformers): `ftray --help`, `ftray registry list` and the like start in ~0.2 s instead of the
several seconds those imports take. That is why this package's function-local imports are there.
"""

from importlib.metadata import entry_points

from ftray.cli import (  # noqa: F401  (registers their commands)
    cluster,
    evaluating,
    registry,
    training,
    tuning,
)
from ftray.cli.base import cli, main

# Commands other packages add (serving's `serve` and `predict`): loading one registers it on
# `cli`. Through entry points, so ftray depends on none of them.
for command_module in entry_points(group="ftray.commands"):
    command_module.load()

__all__ = ["cli", "main"]
