"""`ftray tune`: Ray Tune over job-spec fields, ASHA early stopping, the winner registered.

Each trial is a Ray Train run (Ray 2.60 Train V2: the trial function launches a TorchTrainer and
metrics reach Tune through `TuneReportCallback`), with its own workers and DeepSpeed settings,
stored under `<storage>/<experiment>/trials/`. One Tune iteration is one evaluation, so ASHA's
rungs are counted in evaluations (epochs, unless `train.eval_steps` is set). After the search the
best trial's best model is exported and, with `registry.register_as`, registered with its
lineage (experiment, trial id, config).
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ftray import ray_internals, storage, tracking
from ftray.checkpointing import EVAL_FILE
from ftray.errors import FtrayError
from ftray.model_card import write_model_card
from ftray.plan import Plan, plan_job
from ftray.progress import make_sink
from ftray.results import TUNE_RESULT, ModelResult, TrialRow, TuneResult, TuneWinner
from ftray.runs import (
    TRIALS_DIR,
    best_exported_checkpoint,
    checkpoint_steps,
    new_run_name,
    output_dir,
    resumable_run,
    run_uri,
    trial_run,
    trial_run_name,
)
from ftray.runtime import (
    check_capacity,
    check_storage_reachable,
    cluster_capacity,
    node_portable,
    ray_runtime,
)
from ftray.schedule import schedule_for
from ftray.search_space import check_search_space, ray_param_space, trial_spec
from ftray.spec import JobSpec
from ftray.tasks import metric_mode
from ftray.train import (
    build_trainer,
    copy_model,
    fit,
    register_result,
    resolve_use_gpu,
    score_test_split,
)


def run_trial(
    config: dict[str, Any], spec_json: dict[str, Any], experiment_uri: str, progress_sink: Any
) -> None:
    """One trial: the trial's spec, trained by its own TorchTrainer, reporting to Tune."""
    from ray import tune as ray_tune
    from ray.tune.integration.ray_train import TuneReportCallback

    spec = trial_spec(JobSpec.model_validate(spec_json), config)
    spec.checkpoint.storage_path = storage.join(experiment_uri, TRIALS_DIR)
    # A restored experiment reruns an unfinished trial under the same name, so its TorchTrainer
    # resumes from the trial's last checkpoint instead of starting over.
    run = trial_run_name(ray_tune.get_context().get_trial_id())
    fit(build_trainer(spec, run, progress_sink, callbacks=[TuneReportCallback()]))


def tune(
    spec: JobSpec,
    *,
    address: str | None = None,
    resume: bool = False,
    verbose: bool = False,
    progress: bool = True,
    kind: str = "tune",
    tracker: tracking.Tracking | None = None,
) -> TuneResult:
    """Search `spec.tune.search_space`; returns the result also written to tune_result.json.
    `kind` names the experiment (`<name>-<kind>-<timestamp>`); `tracker`, a tracking run the
    caller owns, replaces the experiment's own as the trials' parent (`ftray compare`)."""
    started = time.time()
    metric = spec.tune.metric or spec.metric
    mode = spec.tune.mode or ("max" if metric_mode(metric) == "max" else "min")
    # Trials optimise what Tune ranks them by: their early stopping and the model they export.
    spec = spec.model_copy(deep=True)
    spec.train.early_stopping.metric, spec.train.early_stopping.mode = metric, mode
    check_search_space(spec)
    plan = plan_job(spec)
    max_t = spec.tune.scheduler.max_t or evaluations_per_trial(spec, plan.splits.train_rows)
    experiment = resumable_run(spec, kind, TUNE_RESULT) if resume else new_run_name(spec, kind)
    console = Console(stderr=True)
    if progress:
        verb = "resuming" if resume else "tuning"
        console.print(
            f"[bold]ftray[/] {verb} [cyan]{experiment}[/]: {spec.tune.num_samples} samples, "
            f"{spec.tune.scheduler.kind} over {max_t} evaluations, {metric} ({mode})"
        )
    owned = nullcontext(tracker) if tracker else tracking.tracked(spec, experiment, kind=kind)
    with owned as parent:
        streamed = plan.splits.stream is not None
        leaderboard, steps = run_trials(
            spec, experiment, metric, mode, max_t, console, resume, address, verbose, progress,
            parent, streamed,
        )  # fmt: skip
        account_compute(leaderboard, steps, spec, plan.splits.train_rows, run_uri(spec, experiment))
        summary = experiment_result(spec, experiment, metric, mode, max_t, leaderboard)
        finished = [row for row in leaderboard if row.best is not None]
        if finished:
            summary.best, summary.registered = export_and_register(
                spec, experiment, finished[0], plan, parent
            )
        summary.wall_s = time.time() - started
        result_path = storage.join(summary.experiment_dir, TUNE_RESULT)
        storage.write_text(result_path, summary.model_dump_json(indent=2))
        log_experiment(parent, summary, result_path)
    if not finished:
        raise FtrayError(f"every trial failed; first error: {leaderboard[0].error}")
    return summary


def experiment_result(
    spec: JobSpec, experiment: str, metric: str, mode: str, max_t: int, leaderboard: list[TrialRow]
) -> TuneResult:
    """The experiment's result, its leaderboard ranked (best first, failed trials last)."""
    leaderboard.sort(key=lambda row: rank_key(row, mode))
    return TuneResult(
        experiment=experiment,
        experiment_dir=run_uri(spec, experiment),
        metric=metric,
        mode=mode,
        scheduler=spec.tune.scheduler.model_dump(),
        searcher=spec.tune.searcher,
        max_t=max_t,
        trials=len(leaderboard),
        stopped_by_scheduler=sum(row.stopped == "scheduler" for row in leaderboard),
        trial_epochs=round(sum(row.epochs for row in leaderboard), 2),
        evaluations=sum(row.evaluations for row in leaderboard),
        leaderboard=leaderboard,
    )


def log_experiment(parent: tracking.Tracking, summary: TuneResult, result_path: str) -> None:
    """The experiment's run: the winner's score and the leaderboard (tune_result.json)."""
    if not parent:
        return
    if summary.best is not None:
        parent.log_metrics({f"best_{summary.metric}": summary.best.metric}, 0)
        test = summary.best.test_metrics or {}
        parent.log_metrics({f"test_{k}": v for k, v in test.items()}, 0)
    if "://" not in result_path:
        parent.log_artifact(result_path)
    if summary.registered:
        parent.set_tags({"ftray.registry_ref": summary.registered["ref"]})


def run_trials(
    spec: JobSpec,
    experiment: str,
    metric: str,
    mode: str,
    max_t: int,
    console: Console,
    resume: bool,
    address: str | None,
    verbose: bool,
    progress: bool,
    parent: tracking.Tracking,
    streamed: bool,
) -> tuple[list[TrialRow], dict[str, int]]:
    """The experiment's trials on Ray: a leaderboard row each, and the steps each trial ran. A
    streamed training set keeps one CPU free for Ray Data's read and tokenize tasks."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard/CSV files
    import ray

    with ray_runtime(address, verbose):
        per_trial = trial_cpus(spec)
        check_capacity(
            int(max(s.scaling.num_workers for s in candidate_specs(spec))),
            spec.scaling.cpus_per_worker,
            resolve_use_gpu(spec),
            streamed=streamed,
            strategy=spec.scaling.placement_strategy,
        )
        check_storage_reachable(spec.checkpoint.storage_path, spec.checkpoint.shared_filesystem)
        free_cpus = cluster_capacity().get("CPU", 1) - (1 if streamed else 0)
        concurrency = spec.tune.max_concurrent_trials or max(1, int(free_cpus // per_trial))
        table = TrialTable(list(spec.tune.search_space), metric, mode, console, enabled=progress)
        # Trials report their steps here; a trial stopped by the scheduler runs on until its
        # actor exits, and only these events (not Tune's last result) show how far it got.
        sink = make_sink()
        callbacks = [table, TrialTracking(spec, parent)]
        tuner = build_tuner(
            spec, experiment, metric, mode, max_t, concurrency, callbacks, resume, sink
        )
        with table:
            results = tuner.fit()
        steps = steps_run(ray.get(sink.drain.remote()))
    return [trial_row(r, metric, mode) for r in results], steps


def export_and_register(
    spec: JobSpec, experiment: str, winner: TrialRow, plan: Plan, parent: tracking.Tracking
) -> tuple[TuneWinner, dict[str, Any] | None]:
    """The winner's model exported and scored on the test split; registered when asked."""
    best = export_winner(spec, experiment, winner, plan.splits.labels, test=plan.splits.test)
    registered = None
    if spec.registry.register_as:
        lineage: dict[str, Any] = {
            "experiment": experiment,
            "trial": winner.trial,
            "config": winner.config,
        }
        if parent:
            lineage["tracking"] = parent.links()
        registered = register_result(spec, Path(best.output_dir), lineage)
    return best, registered


def candidate_specs(spec: JobSpec) -> list[JobSpec]:
    """The trial specs at each finite value of the space (for resource and schedule sizing)."""
    specs = [spec]
    for key, distribution in spec.tune.search_space.items():
        kind, values = next(iter(distribution.items()))
        if kind in ("choice", "grid") and (key.startswith("scaling.") or key.startswith("train.")):
            specs += [trial_spec(spec, {key: v}) for v in values]
    return specs


def trial_cpus(spec: JobSpec) -> float:
    return max(s.scaling.num_workers * s.scaling.cpus_per_worker for s in candidate_specs(spec))


def evaluations_per_trial(spec: JobSpec, train_examples: int) -> int:
    """ASHA's max_t: the most evaluations any trial of the space runs."""

    return max(
        schedule_for(s.train, train_examples, s.scaling.num_workers).evaluations
        for s in candidate_specs(spec)
    )


def build_tuner(
    spec: JobSpec,
    experiment: str,
    metric: str,
    mode: str,
    max_t: int,
    concurrency: int,
    callbacks: list[Callback],
    resume: bool,
    sink: Any,
) -> Any:
    from ray import tune as ray_tune

    experiment_uri = run_uri(spec, experiment)
    trainable = ray_tune.with_parameters(
        run_trial,
        spec_json=node_portable(spec).model_dump(mode="json"),
        experiment_uri=experiment_uri,
        progress_sink=sink,
    )
    # The trial function only drives its TorchTrainer, whose workers reserve the CPUs; Tune
    # refuses an empty request, and one byte of memory is none to speak of.
    trainable = ray_tune.with_resources(trainable, {"memory": 1})
    if resume:
        if not ray_tune.Tuner.can_restore(experiment_uri):
            raise FtrayError(f"--resume: {experiment_uri} holds no Tune experiment to restore")
        return ray_tune.Tuner.restore(
            experiment_uri, trainable=trainable, resume_unfinished=True, resume_errored=True
        )
    return ray_tune.Tuner(
        trainable,
        param_space=ray_param_space(spec),
        tune_config=ray_tune.TuneConfig(
            metric=metric,
            mode=mode,
            num_samples=spec.tune.num_samples,
            scheduler=make_scheduler(spec, max_t),
            search_alg=make_searcher(spec, concurrency),
            # A stopped trial's actor must exit rather than wait to be reused: its exit takes the
            # trial's Train controller and workers with it, which is what stops the compute.
            reuse_actors=False,
        ),
        run_config=ray_tune.RunConfig(
            name=experiment,
            storage_path=spec.checkpoint.storage_path,
            verbose=0,
            callbacks=callbacks,
            failure_config=ray_tune.FailureConfig(max_failures=spec.tune.max_failures),
        ),
    )


def make_scheduler(spec: JobSpec, max_t: int) -> Any:
    """ASHA, stopping weak trials at its rungs of `max_t` evaluations, or FIFO (none stopped)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    settings = spec.tune.scheduler
    if settings.kind != "asha":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_t,
        grace_period=min(settings.grace_period, max_t),
        reduction_factor=settings.reduction_factor,
    )


def make_searcher(spec: JobSpec, concurrency: int) -> Any:
    """The search algorithm, holding the concurrency limit itself: Tune silently ignores
    `max_concurrent_trials` for a variant generator passed in."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    if spec.tune.searcher == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return ConcurrencyLimiter(OptunaSearch(seed=spec.tune.seed), max_concurrent=concurrency)
    return BasicVariantGenerator(random_state=spec.tune.seed, max_concurrent=concurrency)


def trial_row(result: Any, metric: str, mode: str) -> TrialRow:
    """One leaderboard row: config, best metric, how far it ran and why it stopped."""
    metrics = result.metrics or {}
    history = metrics.get("history") or []
    scores = [row[metric] for row in history if isinstance(row.get(metric), (int, float))]
    scores = [s for s in scores if not math.isnan(s)]
    best = (max if mode == "max" else min)(scores) if scores else None
    if result.error is not None:
        stopped = "error"
    elif metrics.get("stopped_early"):
        stopped = "early stopping"
    elif metrics.get("step", 0) < metrics.get("total_steps", 0):
        stopped = "scheduler"
    else:
        stopped = "completed"
    config = dict(result.config or {})
    named = ray_internals.trial_id_from_dirname(Path(result.path).name) if result.path else None
    return TrialRow(
        trial=metrics.get("trial_id") or named or "?",
        config=config,
        strategy=config.get("strategy.kind"),
        best=best,
        epochs=metrics.get("epoch", 0),
        steps=metrics.get("step", 0),
        evaluations=len(history),
        history=history,
        stopped=stopped,
        wall_s=metrics.get("time_total_s"),
        error=str(result.error).strip().splitlines()[-1] if result.error is not None else None,
    )


def steps_run(events: list[dict[str, Any]]) -> dict[str, int]:
    """The furthest optimizer step each run reported in its progress events."""
    furthest: dict[str, int] = {}
    for event in events:
        step = event.get("step") or event.get("metrics", {}).get("step") or 0
        furthest[event["run"]] = max(furthest.get(event["run"], 0), step)
    return furthest


def account_compute(
    rows: list[TrialRow],
    steps: dict[str, int],
    spec: JobSpec,
    examples: int,
    experiment_uri: str,
) -> None:
    """Count each trial's compute by the steps it really ran — a trial the scheduler stopped
    trains on until its actor exits — from its progress events and its checkpoints, in epochs
    of its own schedule."""

    for row in rows:
        run = trial_run(experiment_uri, row.trial)
        saved = checkpoint_steps(run)
        row.steps = max([row.steps, steps.get(trial_run_name(row.trial), 0), *saved])
        trial = trial_spec(spec, row.config)
        per_epoch = schedule_for(trial.train, examples, trial.scaling.num_workers).steps_per_epoch
        row.epochs = round(row.steps / per_epoch, 2)


def rank_key(row: TrialRow, mode: str) -> tuple:
    if row.best is None:
        return (1, 0.0)
    return (0, -row.best if mode == "max" else row.best)


def export_winner(
    spec: JobSpec,
    experiment: str,
    winner: TrialRow,
    labels: list[str],
    destination: Path | None = None,
    test: list[dict[str, Any]] | None = None,
) -> TuneWinner:
    """Copy a trial's best model out (by default to the experiment's output directory), with an
    ftray_result.json the registry reads; score it on the test split when there is one (after
    the choice: the test split never ranks trials)."""
    from ray.train import Checkpoint

    run = trial_run(run_uri(spec, experiment), winner.trial)
    checkpoint = best_exported_checkpoint(run)
    if checkpoint is None:
        raise FtrayError(f"trial {winner.trial} left no exported model under {run}")
    destination = destination or output_dir(spec, experiment)
    copy_model(Checkpoint(path=checkpoint), destination)
    trial = trial_spec(spec, winner.config)
    evaluation = json.loads((destination / EVAL_FILE).read_text())
    result = ModelResult(
        run=f"{experiment}/{trial_run_name(winner.trial)}",
        run_dir=run,
        task=trial.model.task,
        strategy=trial.strategy.kind,
        labels=labels,
        metrics=evaluation,
        config=winner.config,
        metric=trial.metric,
        mode=trial.mode,
        history=winner.history,
        spec=trial.model_dump(mode="json"),
        output_dir=str(destination),
    )
    if test:
        result.test_metrics = score_test_split(trial, test, destination, result)
        result.test_examples = len(test)
    result.write(destination)
    write_model_card(destination, result)
    return TuneWinner(
        trial=winner.trial,
        config=winner.config,
        metric=winner.best,
        output_dir=str(destination),
        metrics=evaluation,
        test_metrics=result.test_metrics or None,
    )


class TrialTable(Callback):
    """A live rich table of the trials while Tune runs (a Tune callback, on the driver)."""

    def __init__(
        self, keys: list[str], metric: str, mode: str, console: Console, enabled: bool = True
    ) -> None:
        self.keys, self.metric, self.mode, self.enabled = keys, metric, mode, enabled
        self.rows: dict[str, dict[str, Any]] = {}
        self.live: Live | None = Live(self._render(), console=console, refresh_per_second=2)

    def __getstate__(self) -> dict[str, Any]:
        # Tune stores its callbacks with the experiment; the live display stays on this driver.
        return {**self.__dict__, "live": None, "enabled": False}

    def __enter__(self) -> TrialTable:
        if self.enabled and self.live:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled and self.live:
            self.live.update(self._render())
            self.live.stop()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self._update(trial, "running", result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._update(trial, "done", trial.last_result)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._update(trial, "error", trial.last_result)

    def _update(self, trial: Any, status: str, result: dict[str, Any] | None) -> None:
        result = result or {}
        row = self.rows.setdefault(trial.trial_id, {"config": trial.config, "best": None})
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and not math.isnan(value):
            better = row["best"] is None or (
                value > row["best"] if self.mode == "max" else value < row["best"]
            )
            row["best"] = value if better else row["best"]
        row.update(
            status=status, iterations=result.get("training_iteration", row.get("iterations", 0))
        )
        if self.enabled and self.live:
            self.live.update(self._render())

    def _render(self) -> Table:
        table = Table("trial", *self.keys, "evals", self.metric, "status", title="trials")
        for column in table.columns:
            column.overflow = "fold"  # long values wrap rather than lose their ends
        for trial_id, row in self.rows.items():
            values = [_short(row["config"].get(k)) for k in self.keys]
            best = f"{row['best']:.4f}" if row["best"] is not None else "-"
            table.add_row(trial_id, *values, str(row.get("iterations", 0)), best, row["status"])
        return table


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class TrialTracking(Callback):
    """Each trial as a tracking run of its own, nested under the experiment's (a Tune
    callback, on the driver): its trial spec as params, each evaluation's metrics."""

    def __init__(self, spec: JobSpec, parent: tracking.Tracking) -> None:
        self.spec, self.parent = spec, parent
        self.runs: dict[str, tracking.Tracking] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Tune stores its callbacks with the experiment; open runs stay with this driver.
        return {**self.__dict__, "parent": tracking.Tracking({}, ""), "runs": {}}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self.parent or trial.trial_id in self.runs:
            return
        self.runs[trial.trial_id] = tracking.start(
            trial_spec(self.spec, trial.config),
            trial_run_name(trial.trial_id),
            kind="trial",
            parent=self.parent,
            params={"trial_id": trial.trial_id},
        )

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        run = self.runs.get(trial.trial_id)
        if run is not None:
            run.log_metrics(result, int(result.get("step") or result["training_iteration"]))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, failed=True)

    def _finish(self, trial: Any, failed: bool) -> None:
        run = self.runs.pop(trial.trial_id, None)
        if run is not None:
            run.finish(failed)
