"""The DeepSpeed config for a job: ZeRO stage, batch geometry, clipping, precision; a user JSON
given as `deepspeed.config` overrides any key (nested sections merge)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftray.errors import FtrayError
from ftray.spec import JobSpec


def deepspeed_config(spec: JobSpec, world_size: int, bf16_supported: bool) -> dict[str, Any]:
    """`bf16_supported`: the worker's device trains in bf16 (what `bf16: auto` turns on)."""
    train = spec.train
    overrides = user_overrides(spec)
    # Autocast keeps the weights in fp32, however it is asked for (deepspeed.autocast or the
    # JSON's torch_autocast), so `bf16: auto` stays off under it; a JSON's bf16 section wins.
    autocast = overrides.get("torch_autocast", {}).get("enabled", spec.deepspeed.autocast)
    bf16 = spec.deepspeed.bf16 is True or (
        spec.deepspeed.bf16 == "auto"
        and bf16_supported
        and not spec.deepspeed.fp16
        and not autocast
    )
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": train.batch_size,
        "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "train_batch_size": train.batch_size * train.gradient_accumulation_steps * world_size,
        "zero_optimization": {"stage": spec.deepspeed.zero_stage},
        "bf16": {"enabled": bf16},
        "torch_autocast": {"enabled": spec.deepspeed.autocast, "dtype": "bfloat16"},
        # Dynamic loss scaling keeps fp16's small gradients from underflowing.
        "fp16": {"enabled": spec.deepspeed.fp16, "loss_scale": 0, "initial_scale_power": 16},
        # ftray passes its own AdamW; DeepSpeed runs it under every ZeRO stage.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
    if train.max_grad_norm:
        config["gradient_clipping"] = train.max_grad_norm
    return _merge(config, overrides)


def user_overrides(spec: JobSpec) -> dict[str, Any]:
    if not spec.deepspeed.config:
        return {}
    path = Path(spec.deepspeed.config)
    try:
        overrides = json.loads(path.read_text())
    except FileNotFoundError:
        raise FtrayError(f"deepspeed.config: file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise FtrayError(f"deepspeed.config: {path.name} line {exc.lineno}: {exc.msg}") from None
    if not isinstance(overrides, dict):
        raise FtrayError(f"deepspeed.config: {path.name} must hold a JSON object")
    stage = overrides.get("zero_optimization", {}).get("stage", 0)
    if stage not in (0, 1, 2, 3):
        raise FtrayError(f"deepspeed.config: zero_optimization.stage {stage!r} is not one of 0-3")
    return overrides


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
