"""The job spec: one YAML file validated by pydantic, plus `--set a.b=c` overrides.

Relative paths in the spec (data files, model directories, DeepSpeed JSON, local storage) are
resolved against the spec file's directory at load time, so a loaded spec is self-contained and
can travel to Ray workers as plain JSON.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ftray.errors import FtrayError
from ftray.storage import is_directory
from ftray.strategies import StrategyConfig, get_strategy, validate_config
from registry.errors import RegistryError
from registry.refs import LATEST, validate_name


def tasks() -> Any:
    """The task plugins. They import torch and transformers, which reading a spec does not need
    until a task is looked up; commands that never validate one start faster without them."""
    import ftray.tasks

    return ftray.tasks


NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSpec(Section):
    name: str = "all-MiniLM-L6-v2"  # local directory, bundled model name, or hub id
    task: str = "sequence-classification"  # a built-in task or one added with register_task
    labels: list[str] | None = None  # inferred from the training data when omitted
    max_length: int = Field(128, gt=0)

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        known = tasks().TASKS
        if task not in known:
            raise ValueError(f"{task!r} is not one of {', '.join(known)}")
        return task

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None:
            if not labels:
                raise ValueError("must list at least one label")
            duplicates = sorted({x for x in labels if labels.count(x) > 1})
            if duplicates:
                raise ValueError(f"lists {', '.join(duplicates)} more than once")
        return labels


class DataChecksSpec(Section):
    """Thresholds of `ftray data check`'s findings about whether scores will hold on new text."""

    near_duplicate_jaccard: float = Field(0.8, gt=0, le=1)  # over word shingles
    near_duplicate_max_share: float = Field(0.1, ge=0, le=1)  # of held-out rows, else warn
    shortcut_precision: float = Field(0.98, gt=0.5, le=1)
    shortcut_min_coverage: float = Field(0.02, gt=0, le=1)  # of training rows
    shortcut_max_share: float = Field(0.1, ge=0, le=1)  # of rows holding a shortcut, else warn
    template_max_share: float = Field(0.5, ge=0, le=1)
    min_distinct_trigram_share: float = Field(0.3, ge=0, le=1)
    entity_overlap_max_share: float = Field(0.5, ge=0, le=1)  # NER


class ChatSpec(Section):
    """How chat rows read: OpenAI `messages` by default; ShareGPT is
    {messages_field: conversations, role_key: from, content_key: value,
    roles: {human: user, gpt: assistant}}."""

    messages_field: str = "messages"
    role_key: str = "role"
    content_key: str = "content"
    roles: dict[str, str] = Field(default_factory=dict)  # the data's role names -> OpenAI's
    # A Jinja chat template, or a built-in name (zephyr); default: the tokenizer's own. It is
    # saved with the model, so serving renders chats the way training did.
    template: str | None = None
    loss_on: Literal["assistant", "last", "all"] = "assistant"  # assistant turns, the last, all


class DataSpec(Section):
    train: str
    validation: str | None = None  # else a seeded, label-stratified split of `train`
    validation_split: float = Field(0.2, gt=0, lt=1)
    # The test split is scored once, on the model the validation split chose, and never used for
    # early stopping, checkpoint choice or tuning: it is the honest estimate of quality.
    test: str | None = None  # else a seeded, label-stratified split of `train` if test_split > 0
    test_split: float = Field(0.0, ge=0, lt=1)
    format: Literal["auto", "jsonl", "csv", "parquet"] = "auto"
    text_field: str = "text"
    label_field: str = "label"
    tokens_field: str = "tokens"
    tags_field: str = "tags"
    prompt_field: str = "prompt"
    completion_field: str = "completion"
    # causal-lm rows: prompt/completion pairs, plain text (loss on all of it) or chat messages;
    # auto: a row with the chat messages field is a chat, any other a prompt/completion pair.
    layout: Literal["auto", "prompt-completion", "text", "chat"] = "auto"
    chat: ChatSpec = ChatSpec()
    group_field: str | None = None  # per-slice metrics (e.g. a demographic or product group)
    max_slice_gap: float = Field(0.1, ge=0, le=1)  # flag slices this far below the best one
    fraction: float = Field(1.0, gt=0, le=1)  # train on a seeded subset (data-efficiency studies)
    # Stream the training set through Ray Data instead of reading it into every worker; auto:
    # when it is remote (s3://) or large (ftray.sources.STREAM_ABOVE_BYTES).
    streaming: bool | Literal["auto"] = "auto"
    shuffle_buffer: int = Field(10_000, gt=0)  # rows a streaming worker shuffles among
    seed: int = 0
    checks: DataChecksSpec = DataChecksSpec()


class EarlyStoppingSpec(Section):
    metric: str | None = None  # also picks the best checkpoint; default: the task's main metric
    mode: Literal["max", "min"] | None = None  # inferred from the metric when omitted
    patience: int = Field(2, ge=0)  # evaluations without improvement before stopping; 0: never
    min_delta: float = Field(0.0, ge=0)


class TrainSpec(Section):
    epochs: int = Field(3, gt=0)
    max_steps: int | None = Field(None, gt=0)  # optimizer steps; caps `epochs`
    batch_size: int = Field(16, gt=0)  # per worker, per micro-step
    eval_batch_size: int | None = Field(None, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    learning_rate: float | None = Field(None, gt=0)  # default: the strategy's own
    head_learning_rate: float | None = Field(None, gt=0)  # the new task head; default: the same
    weight_decay: float = Field(0.01, ge=0)  # L2, decoupled (AdamW)
    l1: float = Field(0.0, ge=0)  # L1 penalty coefficient on trainable weights
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    max_grad_norm: float | None = Field(1.0, gt=0)
    eval_steps: int | None = Field(None, gt=0)  # evaluate every N optimizer steps; default: epoch
    # Recompute activations in the backward pass instead of keeping them: less memory, ~30% more
    # compute; the same gradients.
    gradient_checkpointing: bool = False
    # causal-lm: several examples share each max_length row, kept apart (positions restart,
    # attention stays within an example): no compute spent on padding. batch_size counts rows.
    packing: bool = False
    seed: int = 42
    early_stopping: EarlyStoppingSpec = EarlyStoppingSpec()


class ScalingSpec(Section):
    num_workers: int = Field(2, gt=0)
    use_gpu: bool | Literal["auto"] = "auto"
    cpus_per_worker: float = Field(1, gt=0)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"


class DeepSpeedSpec(Section):
    zero_stage: Literal[0, 1, 2, 3] = 0
    bf16: bool | Literal["auto"] = "auto"  # auto: on when training on GPUs
    fp16: bool = False  # mixed precision with loss scaling, for GPUs without bf16 (CUDA only)
    # bf16 autocast: weights, gradients and AdamW stay fp32, matmuls run in bf16 (DeepSpeed's
    # torch_autocast). Worth it on CPUs with AVX512-BF16 or AMX; validation is scored in fp32.
    autocast: bool = False
    config: str | None = None  # a DeepSpeed JSON file whose keys override the generated config


class CheckpointSpec(Section):
    storage_path: str = "~/ftray/runs"  # local directory or s3://bucket/prefix
    num_to_keep: int = Field(2, gt=0)
    max_failures: int = Field(1, ge=0)  # worker-group restarts from the last checkpoint
    output_dir: str | None = None  # default: <storage_path>/<run>/model (local storage only)
    # A local storage_path on a multi-node cluster is refused unless every node mounts it.
    shared_filesystem: bool = False


class RegistrySpec(Section):
    uri: str | None = (
        None  # s3://bucket/prefix or a directory; default FTRAY_REGISTRY, ~/.ftray/registry
    )
    register_as: str | None = None  # register the best model under this name when set
    aliases: list[str] = Field(default_factory=list)  # moved to the new version, e.g. [candidate]
    # Adapter, prompt and partial versions reference their base: "register" stores the base in
    # the registry once (re-registering it stores nothing), "reference" records its name and
    # fingerprint only, or give a registry reference (name:version).
    base: str = "register"

    @field_validator("register_as")
    @classmethod
    def _valid_model_name(cls, name: str | None) -> str | None:
        if name is not None:
            try:
                validate_name(name)
            except RegistryError as exc:
                raise ValueError(str(exc)) from None
        return name

    @field_validator("aliases")
    @classmethod
    def _movable_aliases(cls, aliases: list[str]) -> list[str]:
        for alias in aliases:
            try:
                validate_name(alias, "alias")
            except RegistryError as exc:
                raise ValueError(str(exc)) from None
            if alias == LATEST:
                raise ValueError("'latest' is maintained by the registry; pick another alias")
        return aliases


class MlflowSpec(Section):
    uri: str | None = None  # default: MLFLOW_TRACKING_URI, else MLflow's own (./mlruns)
    experiment: str | None = None  # default: the job's name


class TensorBoardSpec(Section):
    dir: str = "~/ftray/tensorboard"  # event files: <dir>/<run>, a trial's <dir>/<exp>/<trial>


class WandbSpec(Section):
    project: str | None = None  # default: WANDB_PROJECT, else the job's name
    mode: Literal["online", "offline", "disabled"] | None = None  # default: WANDB_MODE, online
    dir: str | None = None  # where W&B keeps its run files; default: its own (./wandb)


class TrackingSpec(Section):
    """Experiment trackers the driver logs each run to; any subset, none by default."""

    mlflow: MlflowSpec | None = None
    tensorboard: TensorBoardSpec | None = None
    wandb: WandbSpec | None = None


DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice", "grid")


class SchedulerSpec(Section):
    kind: Literal["asha", "fifo"] = "asha"
    grace_period: int = Field(1, gt=0)  # evaluations every trial gets before it can be stopped
    reduction_factor: float = Field(3.0, gt=1)
    max_t: int | None = Field(None, gt=0)  # evaluations; default: what one trial runs


class TuneSpec(Section):
    # spec field path -> one distribution, e.g. train.learning_rate: {loguniform: [1e-5, 1e-3]}
    search_space: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    num_samples: int = Field(8, gt=0)  # samples of the space (each grid point this many times)
    metric: str | None = None  # default: train.early_stopping.metric
    mode: Literal["max", "min"] | None = None
    searcher: Literal["random", "grid", "optuna"] = "random"
    seed: int = 0
    scheduler: SchedulerSpec = SchedulerSpec()
    max_concurrent_trials: int | None = Field(None, gt=0)  # default: as many as the cluster fits
    max_failures: int = Field(1, ge=0)  # retries of a failed trial

    @field_validator("search_space")
    @classmethod
    def _distributions(
        cls, space: dict[str, dict[str, list[Any]]]
    ) -> dict[str, dict[str, list[Any]]]:
        for key, distribution in space.items():
            if len(distribution) != 1 or next(iter(distribution)) not in DISTRIBUTIONS:
                raise ValueError(f"{key}: give exactly one of {', '.join(DISTRIBUTIONS)}")
            kind, values = next(iter(distribution.items()))
            if kind in ("choice", "grid"):
                if not values:
                    raise ValueError(f"{key}: {kind} needs at least one value")
                continue
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if len(values) != 2 or not numeric or values[0] > values[1]:
                raise ValueError(f"{key}: {kind} needs [low, high] with low <= high")
            if kind == "loguniform" and values[0] <= 0:
                raise ValueError(f"{key}: loguniform needs low > 0")
            if kind == "randint" and not all(isinstance(v, int) for v in values):
                raise ValueError(f"{key}: randint needs integer bounds")
        return space


class JobSpec(Section):
    name: str = "ftray-job"
    model: ModelSpec = ModelSpec()
    data: DataSpec
    # Any registered strategy's config; serialised as its own type, not as the base class.
    strategy: SerializeAsAny[StrategyConfig] = Field(
        default_factory=lambda: validate_config({"kind": "adapter"})
    )
    train: TrainSpec = TrainSpec()
    scaling: ScalingSpec = ScalingSpec()
    deepspeed: DeepSpeedSpec = DeepSpeedSpec()
    checkpoint: CheckpointSpec = CheckpointSpec()
    registry: RegistrySpec = RegistrySpec()
    tune: TuneSpec = TuneSpec()
    tracking: TrackingSpec = TrackingSpec()

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise ValueError("use 1-128 letters, digits, '.', '_' or '-', starting alphanumeric")
        return name

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy_config(cls, raw: Any) -> StrategyConfig:
        """The kind picks the config type, among built-in and registered strategies alike."""
        try:
            return validate_config(raw)
        except FtrayError as exc:
            raise PydanticCustomError("strategy", str(exc)) from None
        except ValidationError as exc:
            kind = get_strategy(raw["kind"]).config_type
            message = describe_validation_error(exc, kind, ("strategy",))
            raise PydanticCustomError("strategy", message) from None

    @model_validator(mode="after")
    def _metrics_are_reported(self) -> JobSpec:
        task = self.model.task
        metrics = tasks().get_task(task).metrics
        for where, metric in (
            ("train.early_stopping.metric", self.train.early_stopping.metric),
            ("tune.metric", self.tune.metric),
        ):
            if metric is not None and metric not in metrics:
                raise ValueError(
                    f"{where}: {metric!r} is not reported for {task} (one of {', '.join(metrics)})"
                )
        return self

    @model_validator(mode="after")
    def _options_fit(self) -> JobSpec:
        if self.train.packing:
            if not tasks().get_task(self.model.task).packs:
                raise ValueError(f"train.packing: {self.model.task} examples are not packed")
            if get_strategy(self.strategy.kind).logit_offset(self.strategy, self.model.task):
                raise ValueError(
                    f"train.packing: {self.strategy.kind} prepends virtual tokens to every row, "
                    "which packed examples cannot share; set packing: false"
                )
        if self.deepspeed.fp16 and self.deepspeed.bf16 is True:
            raise ValueError("deepspeed.fp16: pick fp16 or bf16, not both")
        if self.deepspeed.autocast and (self.deepspeed.fp16 or self.deepspeed.bf16 is True):
            raise ValueError(
                "deepspeed.autocast: autocast keeps fp32 weights; it cannot be combined with "
                "bf16: true or fp16: true"
            )
        return self

    @property
    def metric(self) -> str:
        """The objective: early stopping, best checkpoint and tuning all optimise it."""
        return self.train.early_stopping.metric or tasks().default_metric(self.model.task)

    @property
    def mode(self) -> str:
        return self.train.early_stopping.mode or tasks().metric_mode(self.metric)

    @property
    def learning_rate(self) -> float:
        return self.train.learning_rate or get_strategy(self.strategy.kind).default_learning_rate


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> JobSpec:
    """Read a YAML job spec, apply `a.b=c` overrides, validate, and resolve relative paths."""
    path = Path(path)
    raw = read_raw_spec(path, overrides)
    return spec_from_dict(raw, source=str(path), base_dir=path.resolve().parent)


def read_raw_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The YAML job spec as written, with the overrides applied; not yet validated."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FtrayError(f"{path}: job spec not found") from None
    except OSError as exc:
        raise FtrayError(f"{path}: cannot read job spec: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise FtrayError(f"{path}: {where}: malformed YAML: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise FtrayError(f"{path}: a job spec is a mapping of sections, got {type(raw).__name__}")
    for override in overrides:
        apply_override(raw, override)
    return raw


def spec_from_dict(
    raw: dict[str, Any], source: str = "job spec", base_dir: Path | None = None
) -> JobSpec:
    """Validate a plain dict as a job spec; `base_dir` anchors relative paths."""
    _refuse_nul_bytes(raw, source)
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise FtrayError(f"{source}: {describe_validation_error(exc)}") from None
    if base_dir is not None:
        _resolve_paths(spec, base_dir)
    return spec


def _refuse_nul_bytes(node: Any, source: str, where: str = "") -> None:
    """No text in a spec may hold a NUL byte: every path and name reaches the OS or a URL."""
    if isinstance(node, dict):
        for key, value in node.items():
            _refuse_nul_bytes(value, source, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _refuse_nul_bytes(value, source, f"{where}[{index}]")
    elif isinstance(node, str) and "\x00" in node:
        raise FtrayError(f"{source}: {where}: contains a NUL byte")


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply `a.b.c=value` to a raw spec dict; the value is parsed as YAML (numbers, lists...)."""
    key, sep, value = override.partition("=")
    if not sep or not all(key.strip().split(".")):
        raise FtrayError(f"--set {override!r}: expected key.path=value")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        raise FtrayError(f"--set {override!r}: value is not valid YAML") from None
    set_field(raw, key.strip(), parsed, f"--set {override!r}")


def set_field(raw: dict[str, Any], key: str, value: Any, what: str = "") -> None:
    """Set the dotted field `key` of a raw spec dict, creating sections on the way.

    A section's knobs belong to its `kind`: setting a different kind starts the section afresh
    (`strategy.kind=prompt` drops the file's LoRA rank); knobs set after it apply.
    """
    parts = key.split(".")
    section = raw.get(parts[0])
    if parts[1:] == ["kind"] and isinstance(section, dict) and section.get("kind") != value:
        raw[parts[0]] = {}
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise FtrayError(f"{what or key}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def _resolve_paths(spec: JobSpec, base_dir: Path) -> None:
    def local(value: str) -> str:
        candidate = Path(value).expanduser()
        return str(candidate if candidate.is_absolute() else (base_dir / candidate).resolve())

    spec.data.train = local(spec.data.train)
    if spec.data.validation:
        spec.data.validation = local(spec.data.validation)
    if spec.data.test:
        spec.data.test = local(spec.data.test)
    if spec.deepspeed.config:
        spec.deepspeed.config = local(spec.deepspeed.config)
    model_dir = Path(spec.model.name).expanduser()
    if not model_dir.is_absolute() and is_directory(base_dir / model_dir):
        spec.model.name = str((base_dir / model_dir).resolve())
    if "://" not in spec.checkpoint.storage_path:
        spec.checkpoint.storage_path = local(spec.checkpoint.storage_path)
    if spec.checkpoint.output_dir:
        spec.checkpoint.output_dir = local(spec.checkpoint.output_dir)
    if spec.registry.uri and "://" not in spec.registry.uri:
        spec.registry.uri = local(spec.registry.uri)
    tracking = spec.tracking
    if tracking.tensorboard:
        tracking.tensorboard.dir = local(tracking.tensorboard.dir)
    if tracking.wandb and tracking.wandb.dir:
        tracking.wandb.dir = local(tracking.wandb.dir)
    if tracking.mlflow and tracking.mlflow.uri and "://" not in tracking.mlflow.uri:
        tracking.mlflow.uri = local(tracking.mlflow.uri)  # a file store, relative to the spec


def describe_validation_error(
    exc: ValidationError, root: type[BaseModel] | None = None, prefix: tuple[str, ...] = ()
) -> str:
    """The first pydantic error as one line: the dotted field, then what is wrong with it."""
    error = exc.errors()[0]
    kind = error["type"]
    if kind == "strategy":  # already described, field included, by the strategy's validator
        return error["msg"]
    loc = [*prefix, *(str(p) for p in error["loc"])]
    where = ".".join(loc) or "spec"
    if kind == "extra_forbidden":
        allowed = _fields_at(root or JobSpec, [str(p) for p in error["loc"]][:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown field {where!r}{hint}"
    if kind == "literal_error":
        return f"{where}: {error['input']!r} is not one of {error['ctx']['expected']}"
    if kind == "missing":
        return f"{where}: required field is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if loc else message


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The field names allowed at `loc`, for 'unknown field' hints."""
    for part in loc:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            inner = [a for a in typing.get_args(annotation) if isinstance(a, type)]
            models = [a for a in inner if issubclass(a, BaseModel)]
            if not models:
                return []
            model = models[0]
    return list(model.model_fields)
