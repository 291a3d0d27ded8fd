"""Live progress on the driver: rank 0 pushes events to a small actor; the driver polls it and
draws a rich progress bar (step, epoch, loss, validation metrics, ETA) on stderr."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

POLL_S = 1.0
# When no worker has started after this long, and then as often again, the display asks Ray why
# (`slow_start`): a cluster short of resources otherwise looks like a bar that never moves.
SLOW_START_S = 60.0


def make_sink() -> Any:
    """An actor that buffers progress events; it takes no CPU from the workers."""
    import ray

    @ray.remote(num_cpus=0)
    class ProgressSink:
        def __init__(self) -> None:
            self.events: list[dict] = []

        def push(self, event: dict) -> None:
            self.events.append(event)

        def drain(self) -> list[dict]:
            events, self.events = self.events, []
            return events

    return ProgressSink.remote()  # type: ignore[attr-defined]  # added by @ray.remote


# What an evaluation line shows after the selection metric, so that it fits 80 columns; every
# metric is in the result, the trackers and `ftray report`.
EVAL_LINE_KEYS = ("val_loss", "train_loss", "slice_gap")


def format_metrics(row: dict[str, Any], metric: str | None = None) -> str:
    keys = [k for k in (metric, *EVAL_LINE_KEYS) if k and k in row]
    return "  ".join(f"{key} {_short(row[key])}" for key in dict.fromkeys(keys))


def _short(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


class ProgressDisplay:
    """Draws the events of one run while `trainer.fit()` blocks the main thread."""

    def __init__(
        self,
        sink: Any,
        title: str,
        enabled: bool = True,
        metric: str | None = None,
        listeners: Sequence[Callable[[dict[str, Any]], None]] = (),
        slow_start: Callable[[], str | None] | None = None,
    ) -> None:
        self.sink, self.title, self.enabled, self.metric = sink, title, enabled, metric
        self.listeners = listeners  # e.g. a tracker's on_event, on the polling thread
        self.slow_start = slow_start  # what the workers wait for, when they are slow to start
        self._began = time.monotonic()
        self._next_start_note = self._began + SLOW_START_S
        self.console = Console(stderr=True)
        self.events: list[dict] = []  # everything seen, for the result (start-up time...)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=12),
            TextColumn("step {task.completed}/{task.total}"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            disable=not enabled,
        )
        # The run's name is on the line above: the bar keeps its 80 columns for the numbers.
        self._task = self._progress.add_task("training", total=None, status="starting workers")

    def __enter__(self) -> ProgressDisplay:
        self._progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()
        self._progress.stop()

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self._poll()
            if time.monotonic() >= self._next_start_note:
                self._note_slow_start()

    def _note_slow_start(self) -> None:
        self._next_start_note += SLOW_START_S
        if not (self.enabled and self.slow_start) or any(e["kind"] == "start" for e in self.events):
            return
        reason = self.slow_start()  # asks Ray's State API: only when it will be shown
        if reason:
            waited = time.monotonic() - self._began
            self._progress.console.print(f"  workers not started after {waited:.0f} s: {reason}")

    def _poll(self) -> None:
        import ray

        try:
            events = ray.get(self.sink.drain.remote(), timeout=10)
        except Exception:  # the display must never take the run down
            return
        for event in events:
            event["received_at"] = time.time()
            self.events.append(event)
            for listener in self.listeners:
                listener(event)
            if self.enabled:
                self._show(event)

    def _show(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "start":
            resumed = event.get("resumed_from")
            note = f", resumed at step {resumed['step']}" if resumed else ""
            self._progress.update(
                self._task,
                total=event["total_steps"],
                completed=resumed["step"] if resumed else 0,
                status=f"{event['world_size']} workers{note}",
            )
        elif kind == "step":
            self._progress.update(
                self._task,
                completed=event["step"],
                status=f"epoch {event['epoch']:.2f}  loss {event['loss']:.3f}",
            )
        elif kind == "eval":
            row = event["metrics"]
            self._progress.console.print(
                f"  epoch {row['epoch']} step {row['step']}  " + format_metrics(row, self.metric)
            )
