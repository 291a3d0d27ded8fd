"""`ftray train`: launch the per-worker loop on Ray Train and turn its best checkpoint into a model.

The driver checks the job (`ftray.plan`), starts a TorchTrainer whose workers each run
`ftray.loop.train_worker` inside DeepSpeed, shows progress, and finally copies the exported model
of the best evaluation into the output directory next to `ftray_result.json`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ftray import plugins, storage, tracking
from ftray.artefacts import register_output
from ftray.checkpointing import EXPORT_SCORE, MODEL_DIR
from ftray.data import Splits, load_splits, train_stream
from ftray.datacheck import DataReport, Finding, check_data
from ftray.errors import USER_ERRORS, FtrayError
from ftray.evaluate import output_files, score_examples
from ftray.model_card import write_model_card
from ftray.plan import Plan, plan_job
from ftray.progress import ProgressDisplay, make_sink
from ftray.results import RESULT_FILE, ModelResult, Timings
from ftray.runs import new_run_name, output_dir, resumable_run, run_uri
from ftray.runtime import (
    check_capacity,
    check_storage_reachable,
    cluster_capacity,
    node_portable,
    ray_runtime,
    why_workers_wait,
)
from ftray.spec import JobSpec
from ftray.streaming import train_dataset, whole_split_config
from registry import Registry


def ray_train_worker(config: dict[str, Any]) -> None:
    """The function Ray Train runs on each worker."""
    # Imported here, on the worker: the driver never loads the loop (or DeepSpeed through it).
    from ftray.loop import train_worker
    from ftray.session import RaySession

    plugins.install(config.get("plugins"))
    train_worker(JobSpec.model_validate(config["spec"]), RaySession(config.get("progress_sink")))


def build_trainer(
    spec: JobSpec,
    run: str,
    progress_sink: Any = None,
    callbacks: list | None = None,
    splits: Splits | None = None,
):
    """A TorchTrainer for the job (Tune trials build theirs with this too); `splits`, when the
    driver has them already, spare reading a streamed set's sample again."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    scaling = spec.scaling
    use_gpu = resolve_use_gpu(spec)
    datasets = streamed_datasets(spec, splits)
    return TorchTrainer(
        ray_train_worker,
        train_loop_config={
            "spec": node_portable(spec).model_dump(mode="json"),
            "progress_sink": progress_sink,
            "plugins": plugins.portable(),
        },
        scaling_config=ScalingConfig(
            num_workers=scaling.num_workers,
            use_gpu=use_gpu,
            resources_per_worker={
                "CPU": scaling.cpus_per_worker,
                **({"GPU": 1} if use_gpu else {}),
            },
            placement_strategy=scaling.placement_strategy,
        ),
        run_config=RunConfig(
            name=run,
            storage_path=spec.checkpoint.storage_path,
            failure_config=FailureConfig(max_failures=spec.checkpoint.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=spec.checkpoint.num_to_keep,
                checkpoint_score_attribute=EXPORT_SCORE,
                checkpoint_score_order="max",
            ),
            callbacks=callbacks or [],
        ),
        datasets=datasets or None,
        dataset_config=whole_split_config() if datasets else None,
    )


def streamed_datasets(spec: JobSpec, splits: Splits | None = None) -> dict[str, Any]:
    """{"train": the Ray Dataset} when the training set is streamed (`ftray.streaming`)."""
    if splits is None:
        if train_stream(spec.data) is None:  # not streamed: no need to read the data here
            return {}
        splits = load_splits(spec)
    return {"train": train_dataset(spec, splits)} if splits.stream else {}


def show_data_warnings(report: DataReport, console: Console) -> None:
    """`ftray data check`'s warnings, before the run: a score they undermine is not news later."""

    for finding in report.warnings:
        console.print(f"[yellow]data {finding.level}[/] {finding.check}: {finding.message}")


def resolve_use_gpu(spec: JobSpec) -> bool:
    if spec.scaling.use_gpu == "auto":
        return cluster_capacity().get("GPU", 0) > 0
    return bool(spec.scaling.use_gpu)


def train(
    spec: JobSpec,
    *,
    address: str | None = None,
    resume: bool = False,
    verbose: bool = False,
    progress: bool = True,
) -> ModelResult:
    """Train the job on Ray; returns the result also written to `ftray_result.json`."""
    started = time.time()
    console = Console(stderr=True)
    plan = plan_job(spec)
    run = resumable_run(spec) if resume else new_run_name(spec)
    data_report = check_data(spec, plan.splits)  # for the console now, the card later
    if progress:
        verb = "resuming" if resume else "training"
        console.print(
            f"[bold]ftray[/] {verb} [cyan]{run}[/] ({spec.strategy.kind}): {plan.summary()}"
        )
        show_data_warnings(data_report, console)
    with tracking.tracked(spec, run, kind="train") as tracker:
        with ray_runtime(address, verbose):
            use_gpu = resolve_use_gpu(spec)
            scaling, streamed = spec.scaling, plan.splits.stream is not None
            check_capacity(
                scaling.num_workers,
                scaling.cpus_per_worker,
                use_gpu,
                streamed=streamed,
                strategy=scaling.placement_strategy,
            )
            check_storage_reachable(spec.checkpoint.storage_path, spec.checkpoint.shared_filesystem)
            sink = make_sink()
            trainer = build_trainer(spec, run, sink, splits=plan.splits)
            launched = time.time()
            listeners = [tracker.on_event]
            with ProgressDisplay(
                sink,
                run,
                enabled=progress,
                metric=spec.metric,
                listeners=listeners,
                slow_start=why_workers_wait,
            ) as display:
                result = fit(trainer)
        destination = output_dir(spec, run)
        best = export_best(result.best_checkpoints, destination)
        summary = summarize(spec, plan, run, best, result.metrics, display.events, launched)
        summary.output_dir = str(destination)
        summary.timings.plan_s = launched - started
        summary.tracking = tracker.links() or None
        finish(spec, plan, summary, tracker, data_report.findings)
        summary.timings.total_s = time.time() - started
        write_result(spec, summary)
    return summary


def finish(
    spec: JobSpec,
    plan: Plan,
    summary: ModelResult,
    tracker: tracking.Tracking,
    findings: list[Finding],
) -> None:
    """After the choice: the test split's score, the model card, registration, and the
    tracker's last entries (test metrics, the result and the model as artifacts)."""
    destination = Path(summary.output_dir or "")
    if plan.splits.test:
        summary.test_metrics = score_test_split(spec, plan.splits.test, destination, summary)
        summary.test_examples = len(plan.splits.test)
    write_result(spec, summary)
    write_model_card(destination, summary, findings)
    if spec.registry.register_as:
        lineage = {"tracking": summary.tracking} if summary.tracking else None
        summary.registered = register_result(spec, destination, lineage)
        tracker.set_tags({"ftray.registry_ref": summary.registered["ref"]})
    last_step = summary.history[-1]["step"] if summary.history else 0
    tracker.log_metrics({f"test_{k}": v for k, v in summary.test_metrics.items()}, last_step)
    tracker.log_artifact(destination, "model")


def score_test_split(
    spec: JobSpec, test: list[dict[str, Any]], destination: Path, summary: ModelResult
) -> dict[str, Any]:
    """The chosen model's metrics on the test split: scored once, after every choice is made."""

    files = output_files(destination, summary)
    scores = score_examples(files, test, spec.data, where="data.test")
    return scores.metrics


def write_result(spec: JobSpec, summary: ModelResult) -> None:
    """Beside the model, and in the run directory (where `--resume` sees a finished run)."""
    assert summary.output_dir is not None and summary.run_dir is not None
    summary.write(summary.output_dir)
    storage.write_text(storage.join(summary.run_dir, RESULT_FILE), summary.to_json())


def register_result(
    spec: JobSpec, output: Path, lineage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Register the trained model as the spec's `registry.register_as`; the model stays on disk
    whatever happens, and a failure says so."""

    assert spec.registry.register_as, "only called for a spec that registers its model"
    try:
        registry = Registry.open(spec.registry.uri)
        manifest = register_output(
            registry,
            output,
            spec.registry.register_as,
            aliases=spec.registry.aliases,
            base=spec.registry.base,
            lineage=lineage,
        )
    except USER_ERRORS as exc:
        raise FtrayError(
            f"training finished (model in {output}) but registering it failed: {exc}"
        ) from None
    return {
        "ref": manifest.ref,
        "aliases": list(spec.registry.aliases),
        "registry": registry.uri,
        "bytes_uploaded": registry.bytes_uploaded,
    }


def fit(trainer: Any) -> Any:
    """trainer.fit(), with a worker's failure turned into one line naming its cause."""
    from ray.train import TrainingFailedError

    try:
        return trainer.fit()
    except TrainingFailedError as exc:
        raise FtrayError(f"training failed: {failure_cause(exc)}") from None


def failure_cause(exc: BaseException) -> str:
    failures = getattr(exc, "worker_failures", None) or {}
    cause: Any = next(iter(failures.values()), None) or getattr(exc, "controller_failure", None)
    cause = cause or exc
    while getattr(cause, "cause", None) is not None:  # RayTaskError wraps the worker's exception
        cause = cause.cause
    text = str(cause).strip().splitlines()
    return text[-1] if text else type(cause).__name__


def export_best(best_checkpoints: list, destination: Path) -> dict[str, Any]:
    """Copy the best checkpoint's exported model to `destination` (replacing it whole);
    returns the metrics reported with that checkpoint."""
    exported = [(c, m) for c, m in best_checkpoints or [] if m.get(EXPORT_SCORE, -1) >= 0]
    if not exported:
        raise FtrayError("training finished without a checkpoint holding an exported model")
    checkpoint, metrics = max(exported, key=lambda pair: pair[1][EXPORT_SCORE])
    copy_model(checkpoint, destination)
    return metrics


def copy_model(checkpoint: Any, destination: Path) -> None:
    """Copy a checkpoint's `model/` (local or s3://) to `destination`, replacing it whole."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        with checkpoint.as_directory() as directory:
            shutil.copytree(Path(directory) / MODEL_DIR, staging, dirs_exist_ok=True)
        if destination.exists():
            shutil.rmtree(destination)
        staging.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def summarize(
    spec: JobSpec,
    plan: Plan,
    run: str,
    best: dict[str, Any],
    final: dict[str, Any],
    events: list[dict],
    launched: float,
) -> ModelResult:
    """The run's result: the best evaluation's metrics (what the exported model scores), the
    history of every evaluation, and what it cost."""
    # The worker's own stamp: the display receives an event up to a poll later.
    first_step = next((e["at"] for e in events if e["kind"] == "step"), None)
    return ModelResult(
        run=run,
        run_dir=run_uri(spec, run),
        task=spec.model.task,
        strategy=spec.strategy.kind,
        metric=spec.metric,
        mode=spec.mode,
        metrics={k: v for k, v in best.items() if k != "history"},
        history=final.get("history", []),
        epochs_run=final.get("epoch"),
        stopped_early=final.get("stopped_early", False),
        resumed_from=final.get("resumed_from"),
        worker_nodes=final.get("worker_nodes"),
        trainable_params=plan.trainable_params,
        total_params=plan.total_params,
        trainable_pct=round(100 * plan.trainable_share, 4),
        labels=plan.splits.labels,
        groups=plan.splits.groups,
        train_examples=plan.splits.train_rows,  # all of a streamed set (estimated for JSONL/CSV)
        validation_examples=len(plan.splits.validation),
        timings=Timings(
            startup_s=(first_step - launched) if first_step else None,
            step_time_s=final.get("step_time_s"),
            samples_per_second=final.get("samples_per_second"),
            tokens_per_second=final.get("tokens_per_second"),
        ),
        spec=spec.model_dump(mode="json"),
    )
