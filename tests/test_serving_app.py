"""The Serve application's options, the shipped config file and the API's request checks,
without starting Ray."""

import pytest
import yaml
from conftest import ROOT
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from serving.app import ServeOptions, build_app
from serving.endpoint import chat_prompt, usage
from serving.schema import ApiError, Limits, PredictRequest, check_sizes


def test_the_shipped_serve_config_is_valid_for_ray_and_for_ftray():
    config = yaml.safe_load((ROOT / "serving" / "serve_config.yaml").read_text())
    deploy = ServeDeploySchema.model_validate(config)
    [application] = deploy.applications
    assert application.import_path == "serving.app:build_app"
    options = ServeOptions.model_validate(application.args)
    assert options.refs == ["sentiment@production"]


def test_refs_may_come_comma_separated_from_serve_run():
    assert ServeOptions.model_validate({"refs": "a@prod, b:2"}).refs == ["a@prod", "b:2"]


@pytest.mark.parametrize(
    "args, field",
    [
        ({"refs": []}, "refs"),
        ({"refs": ["a:1"], "capacity": 0}, "capacity"),
        ({"refs": ["a:1"], "replica": 2}, "replica"),
        ({"refs": ["a:1"], "batch_wait_ms": -1}, "batch_wait_ms"),
    ],
)
def test_bad_options_are_rejected_by_name(args, field):
    with pytest.raises(ValidationError, match=field):
        ServeOptions.model_validate(args)


def test_build_app_autoscales_the_deployment_when_asked():
    deployment = build_app({"refs": ["a:1"], "replicas": 1, "max_replicas": 3})._bound_deployment
    assert deployment.name == "endpoint"
    assert deployment._deployment_config.autoscaling_config.max_replicas == 3


def test_size_limits_answer_413_naming_the_limit():
    limits = Limits(max_inputs=2, max_chars=5)
    check_sizes(["short", "ok"], limits)
    with pytest.raises(ApiError, match="3 inputs") as many:
        check_sizes(["a", "b", "c"], limits)
    with pytest.raises(ApiError, match="6 characters") as long:
        check_sizes(["sixsix"], limits)
    assert many.value.status == long.value.status == 413


def test_predict_requests_take_one_text_or_a_list_and_reject_unknown_fields_and_empty_inputs():
    assert PredictRequest.model_validate({"model": "a", "inputs": "one"}).inputs == ["one"]
    assert PredictRequest.model_validate({"model": "a", "inputs": ["x", "y"]}).inputs == ["x", "y"]
    with pytest.raises(ValidationError, match="inputs"):
        PredictRequest.model_validate({"model": "a", "inputs": 5})
    with pytest.raises(ValidationError, match="inputs"):
        PredictRequest.model_validate({"model": "a", "inputs": []})
    with pytest.raises(ValidationError, match="input\\b"):
        PredictRequest.model_validate({"model": "a", "input": ["x"]})


def test_chat_messages_become_one_prompt_and_usage_adds_up():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert chat_prompt(messages) == "Be brief.\nHi"
    outputs = [
        {"prompt_tokens": 3, "completion_tokens": 2},
        {"prompt_tokens": 4, "completion_tokens": 1},
    ]
    assert usage(outputs) == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def streamed_request(chunks: list[bytes], content_length: int | None = None):
    """A Starlette request whose body arrives in `chunks`; `received` lists what was read."""
    from starlette.requests import Request

    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    pending, received = list(chunks), []

    async def receive():
        chunk = pending.pop(0) if pending else b""
        received.append(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    scope = {"type": "http", "method": "POST", "path": "/v1/predict", "headers": headers}
    return Request(scope, receive), received


def test_an_oversized_body_is_refused_before_it_is_read():
    import asyncio

    from serving.endpoint import read_body

    request, received = streamed_request([b"x" * 500] * 10, content_length=5000)
    with pytest.raises(ApiError, match="over 1000 bytes") as declared:
        asyncio.run(read_body(request, 1000))
    assert declared.value.status == 413 and received == []  # refused on Content-Length alone

    request, received = streamed_request([b"x" * 500] * 10)  # no Content-Length: a stream
    with pytest.raises(ApiError, match="over 1000 bytes"):
        asyncio.run(read_body(request, 1000))
    assert len(received) == 3  # stopped at the chunk that passed the limit, not at the end

    request, _ = streamed_request([b'{"model": ', b'"a", "inputs": ["x"]}'])
    assert asyncio.run(read_body(request, 1000)) == b'{"model": "a", "inputs": ["x"]}'


def test_the_body_limit_leaves_room_for_the_largest_valid_request():
    import json

    limits = Limits()
    largest = {"model": "m" * 200, "inputs": ["\u0001" * limits.max_chars] * limits.max_inputs}
    assert len(json.dumps(largest).encode()) <= limits.max_body_bytes


def test_a_bug_is_answered_as_json_500_and_the_app_answers_the_next_request():
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from serving.endpoint import BugsAnswerJson

    app = FastAPI()
    app.add_middleware(BugsAnswerJson)

    @app.get("/bug")
    async def bug() -> dict:
        raise KeyError("a bug of ours")

    @app.get("/fine")
    async def fine() -> dict:
        return {"ok": True}

    client = TestClient(app, raise_server_exceptions=False)
    response = client.get("/bug")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert client.get("/fine").json() == {"ok": True}
