"""The `ftray` command line; each module adds one group of commands to `cli`."""

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
