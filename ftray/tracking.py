"""Experiment tracking: each run in MLflow, TensorBoard and/or Weights & Biases (`tracking:`).

The driver logs, not the workers: rank 0's progress events (`ftray.progress`) and Tune's trial
results already reach it, so one process logs each run once, workers need no tracker installed,
and a TensorBoard directory is on the machine that asked for it. A run gets the flattened spec
as params, the cluster's facts when the workers start, every evaluation's metrics at its step
(train loss and learning rate in between), the test metrics, and the result and model as
artifacts (MLflow). Its ids and URLs (`links`) go into the result and the registry manifest;
the registry ref and the Ray job id go back onto the run as tags.

With no `tracking:` section nothing is imported and nothing touches the network.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from ftray.errors import FtrayError, first_line
from ftray.spec import JobSpec, MlflowSpec, TensorBoardSpec, WandbSpec

log = logging.getLogger(__name__)

# The Ray job a run was submitted as (`ftray submit` sets it in the job's environment).
SUBMISSION_ENV = "FTRAY_SUBMISSION_ID"
# Tune's bookkeeping in a trial's results: not the model's metrics.
TUNE_BOOKKEEPING = frozenset(
    {"training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "pid", "done"}
)
# Positions, not measurements: the step is what metrics are logged against.
STEP_KEYS = frozenset({"step", "total_steps", "best_step", "export_step"})


class Backend(Protocol):
    """One tracker's run."""

    def log_params(self, params: dict[str, str]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def log_artifact(self, path: Path, folder: str = "") -> None: ...
    def link(self) -> dict[str, str]: ...
    def finish(self, failed: bool) -> None: ...


class Tracking:
    """One run, in every tracker the spec names. Logging failures after the start are logged
    once per tracker and ignored: a tracker's hiccup must not cost a training run."""

    def __init__(self, backends: dict[str, Backend], name: str) -> None:
        self.backends, self.name = backends, name
        self.broken: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.backends)

    def links(self) -> dict[str, dict[str, str]]:
        return {name: backend.link() for name, backend in self.backends.items()}

    def log_params(self, params: dict[str, Any]) -> None:
        self._each("log_params", {k: _param_text(v) for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        numbers = flat_numbers(metrics)
        if numbers:
            self._each("log_metrics", numbers, step)

    def set_tags(self, tags: dict[str, str]) -> None:
        self._each("set_tags", tags)

    def log_artifact(self, path: str | Path, folder: str = "") -> None:
        self._each("log_artifact", Path(path), folder)

    def finish(self, failed: bool = False) -> None:
        self._each("finish", failed)

    def on_event(self, event: dict[str, Any]) -> None:
        """A progress event of rank 0 (`ftray.loop`), as the driver receives it."""
        kind = event.get("kind")
        if kind == "start":
            self.log_params({f"run.{k}": v for k, v in system_facts(event).items()})
        elif kind == "step":
            self.log_metrics({"train_loss_step": event["loss"], "lr": event["lr"]}, event["step"])
        elif kind == "eval":
            numbers = event.get("numbers") or event["metrics"]
            self.log_metrics(numbers, int(event["metrics"]["step"]))

    def _each(self, method: str, *args: Any) -> None:
        for name, backend in self.backends.items():
            if name in self.broken:
                continue
            try:
                getattr(backend, method)(*args)
            except Exception as exc:  # a tracker outage is reported, never fatal mid-run
                self.broken.add(name)
                log.warning(
                    "tracking.%s: %s failed; not logging there again: %s", name, method, exc
                )


def start(
    spec: JobSpec,
    run: str,
    *,
    kind: str,
    parent: Tracking | None = None,
    params: dict[str, Any] | None = None,
) -> Tracking:
    """Open `run` in every tracker of `spec.tracking` (none: an empty, inert Tracking); a
    tracker that cannot start is one line naming it. `parent` nests the run (a Tune trial)."""
    tags = {"ftray.kind": kind, "ftray.job": spec.name, "ftray.strategy": spec.strategy.kind}
    tags["ftray.task"] = spec.model.task
    if os.environ.get(SUBMISSION_ENV):
        tags["ray.job_id"] = os.environ[SUBMISSION_ENV]
    backends: dict[str, Backend] = {}
    starters = {"mlflow": MlflowRun, "tensorboard": TensorBoardRun, "wandb": WandbRun}
    for name, starter in starters.items():
        settings = getattr(spec.tracking, name)
        if settings is None:
            continue
        parent_run = parent.backends.get(name) if parent else None
        try:
            backends[name] = starter(settings, spec, run, tags, parent_run)
        except ImportError as exc:
            raise FtrayError(
                f"tracking.{name}: {exc.name} is not installed; pip install 'ftray[tracking]'"
            ) from None
        except Exception as exc:
            for opened in backends.values():
                opened.finish(failed=True)
            raise FtrayError(f"tracking.{name}: cannot start a run: {first_line(exc)}") from None
    tracking = Tracking(backends, run)
    if tracking:
        tracking.log_params({**flat_spec(spec), **(params or {})})
    return tracking


@contextmanager
def tracked(
    spec: JobSpec, run: str, *, kind: str, parent: Tracking | None = None
) -> Iterator[Tracking]:
    """`start`, and finish the run however the block ends (failed on an exception)."""
    tracking = start(spec, run, kind=kind, parent=parent)
    try:
        yield tracking
    except BaseException:
        tracking.finish(failed=True)
        raise
    tracking.finish()


def flat_spec(spec: JobSpec) -> dict[str, Any]:
    """The spec as dotted params (`train.learning_rate`); the strategy's name is `strategy`."""
    flat = dict(_flatten(spec.model_dump(mode="json", exclude={"tracking"})))
    flat["strategy"] = spec.strategy.kind
    return flat


def flat_numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics dict, nested ones as `slices/<group>/f1`, under names
    every tracker accepts; booleans, strings, lists and Tune's bookkeeping are left out."""
    numbers = {}
    for key, value in _flatten(metrics, "/"):
        if key in TUNE_BOOKKEEPING or key in STEP_KEYS or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            numbers[_metric_name(key)] = float(value)
    return numbers


def system_facts(start_event: dict[str, Any]) -> dict[str, Any]:
    """What the cluster gave the run, from rank 0's start event."""
    nodes = start_event.get("worker_nodes") or []
    return {
        "workers": start_event.get("world_size"),
        "nodes": len(set(nodes)),
        "device": start_event.get("device"),
        "trainable_params": start_event.get("trainable_params"),
        "total_params": start_event.get("total_params"),
        "total_steps": start_event.get("total_steps"),
    }


def _flatten(value: Any, separator: str = ".", prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(inner, separator, f"{prefix}{separator}{key}" if prefix else key)
    else:
        yield prefix, value


def _metric_name(key: str) -> str:
    # MLflow's rule (the strictest): letters, digits, and _ - . space / : only.
    return re.sub(r"[^\w\-. /:]", "_", key)


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text[:6000]  # MLflow's limit for a param value


class MlflowRun:
    """A run through MLflow's client API (no global active run: trials log concurrently)."""

    BATCH = 100  # params per log_batch call MLflow accepts
    experiment_id: str
    run_id: str
    uri: str

    def __init__(
        self,
        settings: MlflowSpec,
        spec: JobSpec,
        run: str,
        tags: dict[str, str],
        parent: MlflowRun | None,
    ) -> None:
        # MLflow writes "View run ... at" to stdout on every finish: ftray prints the link.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        from mlflow.tracking import MlflowClient

        uri = settings.uri or os.environ.get("MLFLOW_TRACKING_URI") or None
        self.client = MlflowClient(tracking_uri=uri)
        self.uri = str(self.client.tracking_uri)
        if parent is not None:
            self.experiment_id = parent.experiment_id
            tags = {**tags, "mlflow.parentRunId": parent.run_id}
        else:
            self.experiment_id = self._experiment(settings.experiment or spec.name)
        created = self.client.create_run(self.experiment_id, run_name=run, tags=tags)
        self.run_id = created.info.run_id

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:  # created by a concurrent run meanwhile
            again = self.client.get_experiment_by_name(name)
            if again is None:
                raise
            return again.experiment_id

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), self.BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + self.BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, value, now, step) for key, value in metrics.items()]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start : start + 1000])

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def log_artifact(self, path: Path, folder: str = "") -> None:
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), folder or path.name)
        else:
            self.client.log_artifact(self.run_id, str(path), folder or None)

    def link(self) -> dict[str, str]:
        link = {"run_id": self.run_id, "experiment_id": self.experiment_id, "uri": self.uri}
        if self.uri.startswith("http"):
            base = self.uri.rstrip("/")
            link["url"] = f"{base}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
        return link

    def finish(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


class TensorBoardRun:
    """Event files under `<dir>/<run>` (a trial's under its experiment's folder)."""

    log_dir: str

    def __init__(
        self,
        settings: TensorBoardSpec,
        spec: JobSpec,
        run: str,
        tags: dict[str, str],
        parent: TensorBoardRun | None,
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        root = Path(parent.log_dir) if parent else Path(settings.dir).expanduser()
        self.log_dir = str(root / run)
        self.writer = SummaryWriter(log_dir=self.log_dir)
        self.set_tags(tags)

    def log_params(self, params: dict[str, str]) -> None:
        rows = "\n".join(f"| {key} | {value} |" for key, value in sorted(params.items()))
        self.writer.add_text("params", "| param | value |\n|---|---|\n" + rows)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.writer.add_text(f"tags/{key}", value)

    def log_artifact(self, path: Path, folder: str = "") -> None:
        """TensorBoard keeps no files; the run's result is in its output directory."""

    def link(self) -> dict[str, str]:
        return {"log_dir": self.log_dir}

    def finish(self, failed: bool) -> None:
        self.writer.close()


class WandbRun:
    """A W&B run (offline mode writes its files under `dir` and touches no network); a trial
    joins its experiment's group."""

    run: Any

    def __init__(
        self,
        settings: WandbSpec,
        spec: JobSpec,
        run: str,
        tags: dict[str, str],
        parent: WandbRun | None,
    ) -> None:
        import wandb

        if settings.dir:
            Path(settings.dir).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=settings.project or os.environ.get("WANDB_PROJECT") or spec.name,
            mode=settings.mode or os.environ.get("WANDB_MODE") or "online",  # type: ignore[arg-type]
            name=run,
            group=parent.run.name if parent else None,
            dir=settings.dir,
            tags=[f"{key}={value}"[:64] for key, value in tags.items()],
            reinit="create_new",  # trials run side by side in this one process
            settings=wandb.Settings(silent=True, console="off"),
        )

    def log_params(self, params: dict[str, str]) -> None:
        self.run.config.update(params, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.run.tags = (*(self.run.tags or ()), *(f"{k}={v}"[:64] for k, v in tags.items()))
        self.run.summary.update(tags)

    def log_artifact(self, path: Path, folder: str = "") -> None:
        if path.is_file():  # a model directory stays out: W&B would copy every weight file
            import wandb

            name = re.sub(r"[^\w\-.]", "_", f"{self.run.name}-{path.stem}")
            artifact = wandb.Artifact(name, type=folder or "result")
            artifact.add_file(str(path))
            self.run.log_artifact(artifact)

    def link(self) -> dict[str, str]:
        link = {"run_id": self.run.id, "dir": str(self.run.dir)}
        if not self.run.offline and self.run.url:  # an offline run has none (and warns)
            link["url"] = self.run.url
        return link

    def finish(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)
