"""The Serve deployment: HTTP requests checked, references resolved, answered by the replica's
models.

    GET  /healthz                     200 when the replica answers
    GET  /v1/models                   served references and the versions they resolve to
    POST /v1/predict                  {"model": REF, "inputs": [...]}
    POST /v1/completions              OpenAI-compatible, causal-LM models; `stream` for SSE
    POST /v1/chat/completions         the same, the messages rendered by the chat template
    POST /v1/reload                   resolve aliases now (they are also polled)

Aliases are resolved to immutable `name:version` references here, polled every
`poll_interval_s`; a request is answered by the version it resolved to, so an alias move switches
new requests without a restart while requests in flight finish on the old version. Every
response names the version that answered.

One deployment, so a request costs one Serve hop (proxy -> replica): a separate gateway
deployment in front of the models cost a second hop, ~5 ms on two cores. With several replicas
the proxy sends a request carrying a `serve_multiplexed_model_id: NAME:VERSION` header to a
replica that holds that version.
"""

# No `from __future__ import annotations`: FastAPI must see `Request` as a class, not a string,
# in the methods Serve rebinds.
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from ray import serve

from ftray import plugins
from ftray.errors import first_line
from ftray.tasks import get_task
from registry import Registry
from serving.models import Models
from serving.schema import (
    ApiError,
    ChatCompletionRequest,
    CompletionRequest,
    Limits,
    PredictRequest,
    check_sizes,
    request_body,
)


# Helpers sit above the deployment: its methods did not see names defined below it.
def chat_prompt(messages: list[dict[str, str]]) -> str:
    """The messages as one prompt. Models trained by ftray on prompt/completion pairs have no chat
    template; their prompt is the messages' contents in order."""
    return "\n".join(message["content"] for message in messages)


def event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def stream_choice(text: str, finish_reason: str | None, chat: bool) -> dict[str, Any]:
    if chat:
        delta = {"content": text} if text else {}
        return {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}


def usage(outputs: list[dict[str, Any]]) -> dict[str, int]:
    prompt = sum(o["prompt_tokens"] for o in outputs)
    completion = sum(o["completion_tokens"] for o in outputs)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


logger = logging.getLogger("ray.serve")
api = FastAPI(title="ftray", docs_url=None, redoc_url=None)


@api.exception_handler(ApiError)
async def api_error(request: Request, error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


class BugsAnswerJson:
    """A bug of ours is logged and answered as JSON; the replica lives on.

    Plain ASGI, not `@api.middleware("http")`: Starlette's BaseHTTPMiddleware runs every request
    in a task of its own behind memory streams, and with it (and the token check on a worker
    thread) batches under 16 clients filled to 4-5 inputs instead of 13-14."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = False

        async def watched(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if scope["type"] != "http" or started:  # too late for an answer of our own
                raise
            logger.exception("request failed")
            failure = ApiError(500, "internal error; see the replica's log", kind="server_error")
            await JSONResponse(failure.body(), status_code=failure.status)(scope, receive, send)


api.add_middleware(BugsAnswerJson)


async def authorized(request: Request) -> None:
    """The bearer token the replica was started with (`api.state.token`), when it has one.
    A coroutine, so FastAPI runs it on the loop, not on a worker thread per request."""
    token = request.app.state.token
    given = request.headers.get("authorization", "").encode()
    # Constant-time: how long the comparison takes says nothing about how much of a guess matched.
    if token and not hmac.compare_digest(given, f"Bearer {token}".encode()):
        raise ApiError(401, "missing or wrong bearer token", kind="authentication_error")


async def parse(request: Request, schema: type[BaseModel], max_bytes: int) -> Any:
    """The body as `schema`; one error line naming the field (the first one wrong). A body over
    `max_bytes` is refused with 413 by its Content-Length before any of it is read, or as soon
    as what arrives passes the limit; so JSON parsing and validation only ever see bounded
    input, and the per-field limits (`check_sizes`) apply after."""
    try:
        body = json.loads(await read_body(request, max_bytes))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "body"
        raise ApiError(422, f"{where}: {error['msg']}") from None


async def read_body(request: Request, max_bytes: int) -> bytes:
    too_large = ApiError(413, f"the request body is over {max_bytes} bytes (limits.max_body_bytes)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


AUTHORIZED = [Depends(authorized)]


@serve.deployment(
    name="endpoint", max_ongoing_requests=128, logging_config={"enable_access_log": False}
)
@serve.ingress(api)
class Endpoint:
    def __init__(
        self,
        refs: list[str],
        registry_uri: str | None,
        token: str | None = None,
        poll_interval_s: float = 10.0,
        limits: dict[str, int] | None = None,
        models: dict[str, Any] | None = None,
        added_plugins: list[Any] | None = None,
    ) -> None:

        plugins.install(added_plugins)  # strategies and tasks the driver registered
        api.state.token = token
        self.limits = Limits(**(limits or {}))
        self.registry = Registry.open(registry_uri)
        self.models = Models(self.registry, **(models or {}))
        self.resolved = {ref: self.registry.resolve(ref).ref for ref in refs}
        self.tasks: dict[str, str] = {}  # name:version -> task, filled as versions are described
        self._lock = threading.Lock()
        if poll_interval_s > 0:
            threading.Thread(target=self._poll, args=(poll_interval_s,), daemon=True).start()

    # ---- references

    def resolve_now(self) -> dict[str, str]:
        fresh = {ref: self.registry.resolve(ref).ref for ref in self.resolved}
        with self._lock:
            self.resolved = fresh
        return fresh

    def _poll(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            try:
                self.resolve_now()
            except Exception:  # keep serving the last known versions
                continue

    def route(self, requested: str) -> str:
        """The served reference a request names (exactly, or by model name) -> name:version."""
        with self._lock:
            resolved = dict(self.resolved)
        if requested in resolved:
            return resolved[requested]
        by_name = [ref for ref in resolved if ref.split("@")[0].split(":")[0] == requested]
        if len(by_name) == 1:
            return resolved[by_name[0]]
        raise ApiError(
            404,
            f"unknown model {requested!r}; served: {', '.join(sorted(resolved))}",
            code="model_not_found",
        )

    async def task_of(self, version: str) -> str:
        if version not in self.tasks:
            self.tasks[version] = (await self.models.describe(version))["task"]
        return self.tasks[version]

    async def run(
        self, version: str, inputs: list[str], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        try:
            return await self.models.predict(version, inputs, options)
        except Exception as exc:  # the model could not answer: not the client's fault
            message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ApiError(
                503, f"{version} could not answer: {message}", kind="server_error"
            ) from None

    async def stats(self) -> dict[str, Any]:
        """For handles (tests, benchmarks): what the replica's models hold and how they batch."""
        return await self.models.stats()

    # ---- endpoints

    @api.get("/healthz")
    async def healthz(self) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @api.get("/v1/models", dependencies=AUTHORIZED)
    async def list_models(self) -> JSONResponse:
        with self._lock:
            resolved = dict(self.resolved)
        data = [
            {"id": ref, "object": "model", "owned_by": "ftray", "resolved": version}
            for ref, version in sorted(resolved.items())
        ]
        return JSONResponse({"object": "list", "data": data})

    @api.post("/v1/reload", dependencies=AUTHORIZED)
    async def reload(self) -> JSONResponse:
        try:
            return JSONResponse({"models": self.resolve_now()})
        except Exception as exc:
            raise ApiError(503, f"cannot read the registry: {exc}", kind="server_error") from None

    @api.post("/v1/predict", dependencies=AUTHORIZED, openapi_extra=request_body(PredictRequest))
    async def predict(self, request: Request) -> JSONResponse:
        body = await parse(request, PredictRequest, self.limits.max_body_bytes)
        check_sizes(body.inputs, self.limits)
        version = self.route(body.model)
        task = await self.task_of(version)
        outputs = await self.run(version, body.inputs, {})
        return JSONResponse(
            {"model": version, "requested": body.model, "task": task, "outputs": outputs}
        )

    @api.post(
        "/v1/completions", dependencies=AUTHORIZED, openapi_extra=request_body(CompletionRequest)
    )
    async def completions(self, request: Request) -> Response:
        body = await parse(request, CompletionRequest, self.limits.max_body_bytes)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        check_sizes(prompts, self.limits, "prompt")
        version = await self.causal_version(body.model)
        generation = self.generation(body.max_tokens, body)
        if body.stream:
            if len(prompts) != 1:
                raise ApiError(400, "stream: one prompt per streamed request", code="stream")
            usage_too = bool(body.stream_options and body.stream_options.include_usage)
            chunks = self.sse(version, prompts[0], generation, chat=False, usage_too=usage_too)
            return StreamingResponse(chunks, media_type="text/event-stream")
        outputs = await self.run(version, prompts, generation)
        choices = [
            {
                "index": i,
                "text": o["completion"],
                "finish_reason": o["finish_reason"],
                "logprobs": None,
            }
            for i, o in enumerate(outputs)
        ]
        return JSONResponse(
            {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": version,
                "choices": choices,
                "usage": usage(outputs),
            }
        )

    @api.post(
        "/v1/chat/completions",
        dependencies=AUTHORIZED,
        openapi_extra=request_body(ChatCompletionRequest),
    )
    async def chat_completions(self, request: Request) -> Response:
        body = await parse(request, ChatCompletionRequest, self.limits.max_body_bytes)
        check_sizes([m.content for m in body.messages], self.limits, "messages")
        version = await self.causal_version(body.model)
        prompt, templated = await self.render_chat(version, [m.model_dump() for m in body.messages])
        max_tokens = body.max_completion_tokens or body.max_tokens or 16
        generation = {**self.generation(max_tokens, body), "special_tokens": not templated}
        if body.stream:
            usage_too = bool(body.stream_options and body.stream_options.include_usage)
            chunks = self.sse(version, prompt, generation, chat=True, usage_too=usage_too)
            return StreamingResponse(chunks, media_type="text/event-stream")
        [output] = await self.run(version, [prompt], generation)
        message = {"role": "assistant", "content": output["completion"]}
        choice = {"index": 0, "message": message, "finish_reason": output["finish_reason"]}
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": version,
                "usage": usage([output]),
                "choices": [choice],
            }
        )

    async def render_chat(self, version: str, messages: list[dict[str, str]]) -> tuple[str, bool]:
        """The prompt the model sees, and whether a template rendered it: its tokenizer's chat
        template over the messages, roles and all, ending where the assistant's turn begins
        (the special tokens in it are the template's, as in training); a version without a
        template (a prompt/completion model) gets the contents in order, as it was trained."""
        tokenizer = await self.models.tokenizer_of(version)
        if not getattr(tokenizer, "chat_template", None):
            return chat_prompt(messages), False
        try:
            prompt = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return str(prompt), True
        except Exception as exc:  # a template that raises, or one that rejects these messages
            message = f"messages: {version}'s chat template cannot render them: {first_line(exc)}"
            raise ApiError(400, message) from None

    async def sse(
        self, version: str, prompt: str, generation: dict[str, Any], chat: bool, usage_too: bool
    ) -> AsyncIterator[bytes]:
        """Server-sent events in OpenAI's chunk format, as the official client reads them: a
        chunk per piece of text, one with the finish reason, optionally the usage, `[DONE]`."""
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        head = {
            "id": ident,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": version,
        }
        if chat:
            opening = {"index": 0, "delta": {"role": "assistant", "content": ""}}
            yield event({**head, "choices": [{**opening, "finish_reason": None}]})
        async for piece in self.models.stream(version, prompt, generation):
            if "text" in piece:
                yield event({**head, "choices": [stream_choice(piece["text"], None, chat)]})
                continue
            reason = piece["finish_reason"]
            yield event({**head, "choices": [stream_choice("", reason, chat)]})
            if usage_too:
                yield event({**head, "choices": [], "usage": usage([piece])})
        yield b"data: [DONE]\n\n"

    async def causal_version(self, requested: str) -> str:
        version = self.route(requested)
        task = await self.task_of(version)
        if not get_task(task).generates:
            raise ApiError(
                400, f"{requested} is a {task} model; use /v1/predict", code="wrong_task"
            )
        return version

    def generation(self, max_tokens: int, body: CompletionRequest | ChatCompletionRequest) -> dict:
        """The sampling options of a request (`ftray.generation.Sampling`)."""
        if max_tokens > self.limits.max_tokens:
            raise ApiError(
                413,
                f"max_tokens {max_tokens} is over the limit of {self.limits.max_tokens}",
                code="too_many_tokens",
            )
        return {
            "max_new_tokens": max_tokens,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "seed": body.seed,
            "stop": body.stop,
        }
