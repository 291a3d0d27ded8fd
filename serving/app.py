"""The ftray Serve application.

serve run serving.app:build_app refs=sentiment@production registry=s3://bucket/ftray
serve deploy serving/serve_config.yaml
ftray serve sentiment@production             (the same, with local Ray started for you)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ftray import plugins
from serving.endpoint import Endpoint


class ServeOptions(BaseModel):
    """The application's arguments (`serve run ... key=value` or a config file's `args`)."""

    model_config = ConfigDict(extra="forbid")
    refs: list[str] = Field(min_length=1)  # NAME:VERSION or NAME@ALIAS
    registry: str | None = None  # default: $FTRAY_REGISTRY, ~/.ftray/registry
    capacity: int = Field(4, gt=0)  # versions kept loaded per replica (LRU)
    max_batch_size: int = Field(16, gt=0)  # 1 turns dynamic batching off
    batch_wait_ms: float = Field(1.0, ge=0)
    replicas: int = Field(1, gt=0)
    num_cpus: float = Field(1.0, gt=0)  # per replica; also its torch threads
    num_gpus: float = Field(0.0, ge=0)  # per replica; > 0 serves on the GPU
    # Autoscale replicas from `replicas` up to this.
    max_replicas: int | None = Field(None, gt=0)
    token: str | None = None  # require "Authorization: Bearer <token>"
    # Alias polling; 0 turns it off (POST /v1/reload still works).
    poll_interval_s: float = Field(10.0, ge=0)
    max_inputs: int = Field(256, gt=0)
    max_chars: int = Field(4096, gt=0)
    max_tokens: int = Field(256, gt=0)

    @field_validator("refs", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return (
            [ref.strip() for ref in value.split(",") if ref.strip()]
            if isinstance(value, str)
            else value
        )


def build_app(args: dict[str, Any]) -> Any:
    """The application: one deployment whose replicas answer HTTP with the models they hold."""
    options = ServeOptions.model_validate(args)
    scaling: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": options.num_cpus, "num_gpus": options.num_gpus}
    }
    if options.max_replicas:
        scaling["autoscaling_config"] = {
            "min_replicas": options.replicas,
            "max_replicas": options.max_replicas,
            "target_ongoing_requests": 8,
        }
    else:
        scaling["num_replicas"] = options.replicas
    limits = {
        "max_inputs": options.max_inputs,
        "max_chars": options.max_chars,
        "max_tokens": options.max_tokens,
    }
    models = {
        "capacity": options.capacity,
        "max_batch_size": options.max_batch_size,
        "batch_wait_s": options.batch_wait_ms / 1000,
    }
    # Endpoint is a Serve Deployment (its decorator's return type is lost to mypy).
    return Endpoint.options(**scaling).bind(  # type: ignore[attr-defined]
        options.refs,
        options.registry,
        options.token,
        options.poll_interval_s,
        limits,
        models,
        plugins.portable(),
    )
