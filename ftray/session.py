"""Where the training loop reports to: Ray Train, or a plain process (tests, torchrun, GPU boxes).

The loop needs four things from its host: its rank, a checkpoint to resume from, a way to report
metrics with a checkpoint, and somewhere to send progress events. Nothing else in `ftray.loop`
knows whether Ray is running.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from ftray.ray_internals import free_loopback_port
from ftray.runs import CHECKPOINT_PREFIX, checkpoint_name


class Session(Protocol):
    world_rank: int
    world_size: int
    local_rank: int
    node: str  # the node this worker runs on (Ray node id, or host name)

    def restore(self) -> Any:
        """Context manager yielding the directory of the checkpoint to resume from, or None."""

    def report(self, metrics: dict[str, Any], checkpoint: Path) -> None:
        """Persist `checkpoint` (every rank's files merge into one) with its metrics."""

    def progress(self, event: dict[str, Any]) -> None:
        """A progress event from rank 0 for the driver's display; must never block training."""

    def dataset_shard(self, name: str) -> Any:
        """This worker's shard of a dataset the driver streams (Ray Data), or None."""


class RaySession:
    """Inside a Ray Train worker; progress goes to a driver-side actor when one is given."""

    def __init__(self, progress_sink: Any = None) -> None:
        import ray
        import ray.train

        context = ray.train.get_context()
        self.world_rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.local_rank = context.get_local_rank()
        self.node = ray.get_runtime_context().get_node_id()
        self._run = context.get_experiment_name()  # one sink can serve many runs (Tune trials)
        self._sink = progress_sink

    @contextmanager
    def restore(self) -> Iterator[Path | None]:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield Path(directory)

    def report(self, metrics: dict[str, Any], checkpoint: Path) -> None:
        import ray.train

        name = checkpoint_name(metrics["step"])
        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(checkpoint),
            checkpoint_dir_name=name,
        )

    def progress(self, event: dict[str, Any]) -> None:
        if self._sink is not None and self.world_rank == 0:
            self._sink.push.remote({**event, "run": self._run})

    def dataset_shard(self, name: str) -> Any:
        import ray.train

        try:
            return ray.train.get_dataset_shard(name)
        except (KeyError, ValueError):  # the driver passed no such dataset
            return None


class LocalSession:
    """A plain process, alone or one of a torchrun group (it reads torchrun's RANK variables).

    Checkpoints are copied under `root/checkpoint_<step>`; a new session over the same root
    resumes from the newest one, as a Ray Train run does from its storage path.
    """

    def __init__(self, root: str | Path, on_progress: Callable[[dict], None] | None = None) -> None:
        self.root = Path(root)
        self.world_rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.node = socket.gethostname()
        self.reports: list[dict[str, Any]] = []
        self._on_progress = on_progress
        if "MASTER_ADDR" not in os.environ:  # alone: a one-process group for DeepSpeed
            os.environ.update(
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(free_loopback_port()),
                RANK="0",
                WORLD_SIZE="1",
                LOCAL_RANK="0",
            )

    def checkpoints(self) -> list[Path]:
        return sorted(self.root.glob(f"{CHECKPOINT_PREFIX}*"))

    @contextmanager
    def restore(self) -> Iterator[Path | None]:
        found = self.checkpoints()
        yield found[-1] if found else None

    def report(self, metrics: dict[str, Any], checkpoint: Path) -> None:
        target = self.root / checkpoint_name(metrics["step"])
        shutil.copytree(checkpoint, target, dirs_exist_ok=True)
        self.reports.append(metrics)

    def dataset_shard(self, name: str) -> Any:
        return None  # no Ray Data here: a streamed set is read whole (ftray.local)

    def progress(self, event: dict[str, Any]) -> None:
        if self._on_progress is not None and self.world_rank == 0:
            self._on_progress(event)
