"""Plugins registered in this process, carried to the Ray processes a job starts.

A strategy registered with `register_strategy`, or a task with `register_task`, exists in the
driver's process only; Ray Train workers, Tune trials and Serve replicas are other processes.
The driver hands `portable()` to each of them with the job (Ray pickles the objects) and they
`install` it before reading the spec. A plugin defined in a module the workers cannot import (a
script, a notebook, a test file) travels by value: its module is registered with Ray's
cloudpickle for that.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from ftray import strategies, tasks
from ftray.discovery import built_in

Plugin = strategies.Strategy | tasks.Task


def added() -> list[Plugin]:
    """The strategies and tasks registered on top of ftray's own."""
    found: list[Plugin] = list(strategies.STRATEGIES.values())
    found += tasks.TASKS.values()
    return [p for p in found if not built_in(p, "ftray")]


def portable() -> list[Plugin]:
    """`added()`, ready to be pickled into another process."""
    plugins = added()
    if plugins:
        from ray import cloudpickle

        for plugin in plugins:
            module = sys.modules[type(plugin).__module__]
            if module.__name__ != "__main__":  # cloudpickle sends __main__ by value already
                cloudpickle.register_pickle_by_value(module)
    return plugins


def install(plugins: Iterable[Any] | None) -> None:
    """Register, in this process, the plugins the driver sent."""
    for plugin in plugins or ():
        if isinstance(plugin, tasks.Task):
            if tasks.TASKS.get(plugin.name) is not plugin:
                tasks.register_task(plugin)
        elif strategies.STRATEGIES.get(plugin.kind) is not plugin:
            strategies.register_strategy(plugin)
