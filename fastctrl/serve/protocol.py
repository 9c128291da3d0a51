"""The OpenAI chat-completions schema the server speaks, and fastctrl's one extension.

Requests follow ``POST /v1/chat/completions`` (messages of text and ``image_url`` parts, greedy
decoding, ``max_tokens`` / ``max_completion_tokens``, ``stream``). A request's latency budget
rides in one namespaced object, ``"fastctrl": {"budget_ms": ..., "task_type": ...}`` (the
``extra_body`` of the ``openai`` client), or in vLLM's per-request field ``"vllm_xargs":
{"fastctrl_budget_ms": ..., "fastctrl_task_type": ...}``, so one client works against this
server and a vLLM server with the fastctrl plugin. Errors are OpenAI-style:
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

VLLM_BUDGET_KEY = "fastctrl_budget_ms"
VLLM_TASK_KEY = "fastctrl_task_type"


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str = Field(max_length=64 * 1024 * 1024)
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]


class FastctrlOptions(BaseModel):
    """The ``fastctrl`` object of a request."""

    model_config = ConfigDict(extra="forbid")
    budget_ms: float | None = None
    """End-to-end latency budget in ms, counted from the request's arrival."""
    task_type: str | None = None
    """The request's task type (a name the controller was trained on), if the client knows."""

    @field_validator("budget_ms")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError("budget_ms must be a finite number > 0")
        return v


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0)
    n: int = Field(default=1, ge=1, le=1)
    fastctrl: FastctrlOptions | None = None
    vllm_xargs: dict[str, str | int | float | bool] | None = None

    @model_validator(mode="after")
    def _greedy_only(self) -> ChatCompletionRequest:
        if self.temperature not in (None, 0.0):
            raise ValueError("temperature: only greedy decoding (0) is served")
        return self

    def options(self) -> FastctrlOptions:
        """The budget and task type, from ``fastctrl`` or else from ``vllm_xargs``."""
        opts = self.fastctrl or FastctrlOptions()
        xargs = self.vllm_xargs or {}
        budget, task = opts.budget_ms, opts.task_type
        if budget is None and VLLM_BUDGET_KEY in xargs:
            budget = xargs[VLLM_BUDGET_KEY]  # validated below, like the fastctrl field
        if task is None and VLLM_TASK_KEY in xargs:
            task = str(xargs[VLLM_TASK_KEY])
        return FastctrlOptions(budget_ms=budget, task_type=task)

    def new_tokens(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorBody


class FastctrlResult(BaseModel):
    """What the server spent on one request, beside the completion."""

    config: dict[str, int]
    """The config the request ran (knob -> value)."""
    budget_ms: float
    """The request's budget (end to end, from arrival)."""
    remaining_budget_ms: float
    """What was left of it when its batch started (after queueing and the processor)."""
    latency_scale: float
    """This host's latency over the profile's (measured on answered requests): the controller
    decided on ``remaining_budget_ms / latency_scale``, in the profile's milliseconds."""
    decided_by: Literal["controller", "lookup_table", "static", "full", "cheapest"]
    decision_ms: float
    """Feature pooling + the decision engine, inside the model's forward."""
    queue_ms: float
    """From arrival to the start of its batch."""
    prep_ms: float
    """Its batch's processor call (prompt tokens, image pixels)."""
    model_ms: float
    """Its group's answer, prefill to the last token (the decision excluded)."""
    total_ms: float
    deadline_met: bool
    batch_size: int


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ChoiceMessage
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    id: str = Field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    fastctrl: FastctrlResult


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "fastctrl"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def chunk(
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of a streamed answer."""
    out: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if extra:
        out.update(extra)
    return out
