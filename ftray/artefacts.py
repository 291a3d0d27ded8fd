"""Training outputs as registry versions, and registry versions back as models.

What a version stores depends on its kind:
- full: the transformers model directory;
- partial: only the tensors that differ from the base (`partial_model.safetensors`) plus config
  and tokenizer, and a reference to the base;
- adapter, prompt: the PEFT adapter directory, and a reference to the base.

The base model is itself registered once (content-addressed, so re-registering it stores
nothing) and referenced as `name:version`, which keeps a registry self-sufficient: a serving
node pulls everything it needs from it. With `registry.base: reference`, only the base's name
and fingerprint are recorded.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ftray.errors import FtrayError
from ftray.runs import RESULT_FILE

PARTIAL_FILE = "partial_model.safetensors"
PROMPT_PEFT_TYPES = {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING"}
STRATEGY_KINDS = {"full", "partial", "adapter", "prompt"}


def detect_kind(directory: Path, result: dict[str, Any] | None = None) -> str:
    adapter_config = directory / "adapter_config.json"
    if adapter_config.exists():
        peft_type = json.loads(adapter_config.read_text()).get("peft_type", "")
        return "prompt" if peft_type in PROMPT_PEFT_TYPES else "adapter"
    if (directory / "config.json").exists():
        strategy = (result or {}).get("strategy")
        return strategy if strategy in ("full", "partial") else "full"
    raise FtrayError(f"{directory}: neither a transformers model nor a PEFT adapter directory")


def read_result(directory: Path) -> dict[str, Any]:
    path = directory / RESULT_FILE
    return json.loads(path.read_text()) if path.exists() else {}


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
    result = read_result(directory)
    spec = result.get("spec") or {}
    kind = kind or detect_kind(directory, result)
    config = _read_json(directory / "config.json")
    task = result.get("task") or spec.get("model", {}).get("task")
    labels = result.get("labels")
    if labels is None and task != "causal-lm":
        labels = [config["id2label"][k] for k in sorted(config.get("id2label", {}), key=int)]
    base_name = spec.get("model", {}).get("name") or _adapter_base(directory)
    base_ref = None
    if kind in ("adapter", "prompt", "partial"):
        if not base_name:
            raise FtrayError(
                f"{directory}: a {kind} version needs its base model; none is recorded"
            )
        base_ref = resolve_base(registry, base_name, base)
    metrics = {k: v for k, v in (result.get("metrics") or {}).items() if k != "history"}
    test_metrics = result.get("test_metrics") or {}
    provenance = {
        "run": result.get("run"),
        "run_dir": result.get("run_dir"),
        "data": data_hashes(spec),
        "code": code_version(),
        **(lineage or {}),
    }
    with tempfile.TemporaryDirectory(prefix="ftray-register-") as scratch:
        source = directory
        if kind == "partial":
            source = write_partial(directory, Path(scratch), base_name, task, labels)
        return registry.register(
            source,
            name,
            kind,
            task=task,
            labels=labels,
            base=base_ref,
            metrics=metrics,
            test_metrics=test_metrics,
            spec=spec or None,
            lineage=provenance,
            aliases=aliases,
        )


def resolve_base(registry: Any, base_name: str, policy: str) -> dict[str, Any]:
    """The base reference a version records, registering the base itself when asked."""
    from ftray.models import resolve_model_path

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


def write_partial(
    directory: Path, scratch: Path, base_name: str, task: str, labels: list[str]
) -> Path:
    """A directory holding only the tensors the partial strategy changed, plus config and
    tokenizer: the base's frozen tensors are not stored again."""
    import torch
    from safetensors.torch import load_file, save_file

    from ftray.models import load_task_model

    tuned = {}
    for weights in sorted(directory.glob("*.safetensors")):
        tuned.update(load_file(str(weights)))
    base_state = load_task_model(base_name, task, labels).state_dict()
    changed = {
        k: v.contiguous()
        for k, v in tuned.items()
        if k not in base_state or not torch.equal(v, base_state[k].to(v.dtype))
    }
    save_file(changed, str(scratch / PARTIAL_FILE))
    for path in directory.iterdir():
        if path.is_file() and path.suffix != ".safetensors":
            (scratch / path.name).write_bytes(path.read_bytes())
    return scratch


def directory_fingerprint(path: Path) -> str:
    from registry.cache import sha256_file

    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}:{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def data_hashes(spec: dict[str, Any]) -> dict[str, str]:
    from registry.cache import sha256_file

    hashes = {}
    for split in ("train", "validation", "test"):
        path = (spec.get("data") or {}).get(split)
        if path and Path(path).is_file():
            hashes[split] = sha256_file(Path(path))
    return hashes


def code_version() -> dict[str, str]:
    import ftray

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


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _adapter_base(directory: Path) -> str | None:
    return _read_json(directory / "adapter_config.json").get("base_model_name_or_path")
