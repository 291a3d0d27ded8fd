"""Training outputs as registry versions.

What a version stores is its strategy's choice (`Strategy.package`): a whole model directory, a
PEFT adapter directory, or only the tensors that changed. Strategies whose versions are relative
to a base (`needs_base`) reference it: the base model is itself registered once
(content-addressed, so re-registering it stores nothing) and referenced as `name:version`, which
keeps a registry self-sufficient: a serving node pulls everything it needs from it. With
`registry.base: reference`, only the base's name and fingerprint are recorded.

The manifest records the strategy that trained the version (`{kind, method, config}`) so that
nothing downstream has to guess it from files.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import ftray
from ftray.errors import FtrayError
from ftray.model_card import write_model_card
from ftray.model_files import ModelFiles, strategy_record
from ftray.models import resolve_model_path
from ftray.results import MODEL_CARD, ModelResult
from ftray.strategies import STRATEGIES, get_strategy, validate_config
from registry.cache import sha256_file


def detect_kind(directory: Path) -> str:
    """The strategy of a directory ftray did not train (no `ftray_result.json`): a PEFT
    adapter's strategy recognises it, anything else with a config.json is a whole model."""
    for strategy in STRATEGIES.values():
        if strategy.recognises(directory):
            return strategy.kind
    if (directory / "config.json").exists():
        return "full"
    raise FtrayError(f"{directory}: neither a transformers model nor a PEFT adapter directory")


def recorded_strategy(
    directory: Path, result: ModelResult | None, kind: str | None
) -> dict[str, Any]:
    """The strategy that trained a directory: its spec's section when ftray trained it."""
    section = result.spec.get("strategy") if result else None
    if section and (kind is None or section.get("kind") == kind):
        return strategy_record(validate_config(section))
    chosen = get_strategy(kind or (result.strategy if result else None) or detect_kind(directory))
    return strategy_record(chosen.config_from_files(directory))


def register_output(
    registry: Any,
    directory: str | Path,
    name: str,
    *,
    kind: str | None = None,
    aliases: list[str] | tuple[str, ...] = (),
    base: str = "register",
    lineage: dict[str, Any] | None = None,
) -> Any:
    """Register a training output (or any model/adapter directory) as the next version of
    `name`; reads `ftray_result.json` when present for task, labels, metrics, spec and run."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FtrayError(f"{directory}: no such directory")
    result = ModelResult.read(directory)
    if result and not (directory / MODEL_CARD).exists():  # trained by an ftray before cards
        write_model_card(directory, result)
    spec = result.spec if result else {}
    record = recorded_strategy(directory, result, kind)
    strategy = get_strategy(record["kind"])
    task = result.task if result else None
    labels = result.labels if result else _config_labels(directory)
    base_name = (result.model_name if result else None) or _adapter_base(directory)
    base_ref = None
    if strategy.needs_base:
        if not base_name:
            raise FtrayError(
                f"{directory}: a {strategy.kind} version needs its base model; none is recorded"
            )
        base_ref = resolve_base(registry, base_name, base)
    provenance = {
        "run": result.run if result else None,
        "run_dir": result.run_dir if result else None,
        "data": data_hashes(spec),
        "code": code_version(),
        **(lineage or {}),
    }
    files = ModelFiles(directory, strategy.kind, task or "", labels, _base_path(base_name))
    with tempfile.TemporaryDirectory(prefix="ftray-register-") as scratch:
        return registry.register(
            strategy.package(files, Path(scratch)),
            name,
            strategy.kind,
            task=task,
            labels=labels,
            base=base_ref,
            strategy=record,
            # The run's history stays in its result file; the version keeps the chosen scores.
            metrics={k: v for k, v in result.metrics.items() if k != "history"} if result else {},
            test_metrics=result.test_metrics if result else {},
            spec=spec or None,
            lineage=provenance,
            aliases=aliases,
        )


def _base_path(base_name: str | None) -> Path | None:

    return Path(resolve_model_path(base_name)) if base_name else None


def resolve_base(registry: Any, base_name: str, policy: str) -> dict[str, Any]:
    """The base reference a version records, registering the base itself when asked."""

    if policy not in ("register", "reference"):
        return {"ref": str(registry.resolve(policy).ref)}  # an explicit registry reference
    path = Path(resolve_model_path(base_name))
    if not path.is_dir():
        return {"name": base_name}  # a hub id: nothing local to fingerprint or register
    if policy == "reference":
        return {"name": base_name, "fingerprint": directory_fingerprint(path)}
    manifest = registry.register(path, base_registry_name(base_name), "base", reuse_identical=True)
    return {"ref": manifest.ref, "name": base_name}


def base_registry_name(base_name: str) -> str:
    """A registry name for a base model: the bundled/hub name, or a directory's own name."""
    candidate = Path(base_name).name if "/" in base_name and Path(base_name).exists() else base_name
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in candidate).strip("-.")
    return cleaned[:128] or "base"


def directory_fingerprint(path: Path) -> str:

    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}:{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def data_hashes(spec: dict[str, Any]) -> dict[str, str]:

    hashes = {}
    for split in ("train", "validation", "test"):
        path = (spec.get("data") or {}).get(split)
        if path and Path(path).is_file():
            hashes[split] = sha256_file(Path(path))
    return hashes


def code_version() -> dict[str, str]:

    version = {"ftray": ftray.__version__}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        if commit.returncode == 0:
            version["git"] = commit.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return version


def _config_labels(directory: Path) -> list[str]:
    """A classification model's labels, from its config (for a model ftray did not train)."""
    id2label = _read_json(directory / "config.json").get("id2label", {})
    return [id2label[k] for k in sorted(id2label, key=int)]


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _adapter_base(directory: Path) -> str | None:
    return _read_json(directory / "adapter_config.json").get("base_model_name_or_path")
