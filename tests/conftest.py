"""Shared fixtures: the example datasets and tiny random models built once per test session."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ftray.spec import JobSpec, spec_from_dict

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The examples' first, templated generators' data: small and fast to learn, which is what unit
# and integration tests want; the data checks' tests also use it as the "scores lie" case.
TEMPLATED = Path(__file__).resolve().parent / "data"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece vocabulary of the sentiment and NER examples."""
    from ftray.tiny_models import build_tiny_model

    texts = [r["text"] for r in read_jsonl(TEMPLATED / "templated-sentiment/train.jsonl")]
    texts += [" ".join(r["tokens"]) for r in read_jsonl(TEMPLATED / "templated-ner/train.jsonl")]
    return build_tiny_model(tmp_path_factory.mktemp("models") / "bert", texts, "bert")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    from ftray.tiny_models import build_tiny_model

    rows = read_jsonl(EXAMPLES / "causal-lm/data/train.jsonl")
    texts = [r["prompt"] + r["completion"] for r in rows]
    return build_tiny_model(tmp_path_factory.mktemp("models") / "llama", texts, "llama")


def sentiment_raw(model: Path, /, **sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "sentiment-test",
        "model": {"name": str(model), "max_length": 48},
        "data": {
            "train": str(TEMPLATED / "templated-sentiment/train.jsonl"),
            "validation": str(TEMPLATED / "templated-sentiment/validation.jsonl"),
            "group_field": "group",
        },
        "strategy": {"kind": "full"},
        # Tiny random models plateau early; tests that want early stopping turn it on.
        "train": {
            "epochs": 1,
            "batch_size": 32,
            "learning_rate": 1e-3,
            "early_stopping": {"patience": 0},
        },
        "scaling": {"num_workers": 1},
    }
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return raw


def ner_raw(model: Path, /, **sections: Any) -> dict[str, Any]:
    raw = sentiment_raw(model, **sections)
    raw["name"] = "ner-test"
    raw["model"]["task"] = "token-classification"
    raw["data"].update(
        train=str(TEMPLATED / "templated-ner/train.jsonl"),
        validation=str(TEMPLATED / "templated-ner/validation.jsonl"),
    )
    return raw


def clm_raw(model: Path, /, **sections: Any) -> dict[str, Any]:
    raw = sentiment_raw(model, **sections)
    raw["name"] = "clm-test"
    raw["model"]["task"] = "causal-lm"
    raw["data"].update(
        train=str(EXAMPLES / "causal-lm/data/train.jsonl"),
        validation=str(EXAMPLES / "causal-lm/data/validation.jsonl"),
    )
    return raw


def make_spec(raw: dict[str, Any], tmp_path: Path | None = None) -> JobSpec:
    if tmp_path is not None:
        raw.setdefault("checkpoint", {})["storage_path"] = str(tmp_path / "runs")
    return spec_from_dict(raw)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 HTTP endpoint on 127.0.0.1 (moto's server) with a bucket `ftray-test`; boto3
    (and so ftray) reaches it through AWS_ENDPOINT_URL and throwaway credentials."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    boto3.client("s3").create_bucket(Bucket="ftray-test")
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


S3_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
