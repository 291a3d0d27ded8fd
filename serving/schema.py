"""The HTTP API's requests, limits and errors.

Errors have OpenAI's shape, `{"error": {"message", "type", "code"}}`, so the official client reads
them; every bad request gets a 4xx and never reaches a model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema


class Limits(BaseModel):
    max_inputs: int = 256  # inputs per /v1/predict request (answered in passes of 64)
    max_chars: int = 4096  # characters per input (prompt, text, message content)
    max_tokens: int = 256  # completion tokens a request may ask for

    @property
    def max_body_bytes(self) -> int:
        """A whole body, checked before it is read: room for max_inputs x max_chars even when
        every character is JSON-escaped (\\uXXXX, 6 bytes), and no more."""
        return self.max_inputs * self.max_chars * 6 + 65536


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    # One text is taken as a list of one, as OpenAI's `input` is; `outputs` is a list either way.
    inputs: Annotated[
        list[str],
        BeforeValidator(_listed),
        Field(min_length=1),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    {"type": "string"},
                ],
                "description": "texts to answer, or one text",
            }
        ),
    ]


# A sampling seed torch's generators take: a 64-bit integer (a larger one failed a streamed
# completion after its headers were sent, found by the schemathesis fuzz).
Seed = Annotated[int, Field(ge=-(2**63), lt=2**64)] | None

# OpenAI's `stop`: one string or up to four, where the completion ends before them.
Stop = str | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=4)] | None


class StreamOptions(BaseModel):
    include_usage: bool = False  # a last chunk with the token counts, as OpenAI sends it


class CompletionRequest(BaseModel):
    """OpenAI's /v1/completions; the fields ftray does not use are accepted and ignored."""

    model: str
    prompt: str | Annotated[list[str], Field(min_length=1)]  # an empty list is a 422, not a 5xx
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: Seed = None
    stop: Stop = None
    n: int = Field(1, ge=1, le=1)
    stream: bool = False  # server-sent events in OpenAI's chunk format
    stream_options: StreamOptions | None = None


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(BaseModel):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: Seed = None
    stop: Stop = None
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring a route's JSON body. The handlers read bodies themselves (to
    check the size before parsing), so FastAPI cannot see them; clients and fuzzers should."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline(schema, definitions)}},
        }
    }


def inline(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with its `$ref`s to pydantic's `$defs` replaced by the definitions themselves."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return inline(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {key: inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [inline(item, definitions) for item in node]
    return node


class ApiError(Exception):
    """Turned into a JSON error response with this status by the endpoint."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "code": self.code}}


def check_sizes(texts: list[str], limits: Limits, what: str = "inputs") -> None:
    if len(texts) > limits.max_inputs:
        raise ApiError(
            413,
            f"{len(texts)} {what}; at most {limits.max_inputs} per request",
            code="too_many_inputs",
        )
    for index, text in enumerate(texts):
        if len(text) > limits.max_chars:
            raise ApiError(
                413,
                f"{what}[{index}] has {len(text)} characters; at most {limits.max_chars}",
                code="input_too_long",
            )
