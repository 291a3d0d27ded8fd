"""The `ftray` command line; each module adds one group of commands to `cli`."""

from ftray.cli import registry, serving, training, tuning  # noqa: F401  (registers their commands)
from ftray.cli.base import cli, main

__all__ = ["cli", "main"]
