"""The HTTP face of the server (FastAPI): ``POST /v1/chat/completions``, ``GET /v1/models``,
``GET /health``, ``GET /metrics``.

A request is checked here (schema, model name, budget, task type, images, sizes) and every
refusal is an OpenAI-style error JSON with a 4xx status naming the field; then it becomes a
:class:`~.runner.Job` with its deadline and waits for the :class:`~.scheduler.Scheduler`. A
client that disconnects while its request waits cancels it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .media import MediaError, MediaLimits, load_image
from .protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ChoiceMessage,
    FastctrlResult,
    ModelCard,
    ModelList,
    Usage,
    chunk,
)
from .runner import Answer, Job
from .scheduler import Refused, Scheduler
from .telemetry import Telemetry


class BadRequest(Exception):  # noqa: N818 (an HTTP outcome)
    def __init__(self, message: str, param: str | None, status: int = 400, kind: str = "") -> None:
        super().__init__(message)
        self.param, self.status = param, status
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")


@dataclass
class ServerState:
    """What the routes need: the scheduler and the server's settings."""

    scheduler: Scheduler
    telemetry: Telemetry
    model_name: str
    default_budget_ms: float
    default_max_tokens: int = 16
    max_tokens_limit: int = 64
    max_images: int = 1
    max_prompt_chars: int = 4096
    max_body_bytes: int = 16 * 1024 * 1024
    media: MediaLimits = field(default_factory=MediaLimits)
    task_types: tuple[str, ...] | None = None
    """Task types a request may name (the controller's); None: any."""
    task_required: bool = False
    """A request must name its task type (a lookup table decides by it)."""
    api_key: str | None = None
    drain_s: float = 30.0
    request_log: TextIO | None = None
    """Where each answered request's ``fastctrl`` object is logged, one JSON line each."""


def error(
    message: str,
    status: int,
    param: str | None = None,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    kind = kind or {
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
        503: "service_unavailable",
    }.get(status, "invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


class Guard:
    """Stamps each request's arrival (before its body is read: reading it counts against the
    budget) and refuses an oversized body or a wrong API key before any routing.

    A plain ASGI middleware: Starlette's ``@app.middleware("http")`` wraps every request and
    response in extra tasks and streams, which cost more than the rest of this server's
    per-request work."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["arrival"] = time.perf_counter()
        headers = dict(scope.get("headers") or ())
        size = headers.get(b"content-length", b"").decode("latin-1")
        refusal = None
        if size.isdigit() and int(size) > self.state.max_body_bytes:
            refusal = error(f"the body is {size} bytes, over {self.state.max_body_bytes}", 413)
        elif self.state.api_key and scope.get("path", "").startswith("/v1/"):
            auth = headers.get(b"authorization", b"").decode("latin-1")
            if auth != f"Bearer {self.state.api_key}":
                refusal = error("missing or wrong API key (Authorization: Bearer ...)", 401)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(state: ServerState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.scheduler.start()
        yield
        await asyncio.get_running_loop().run_in_executor(None, state.scheduler.stop, state.drain_s)
        if state.request_log is not None:
            state.request_log.close()

    app = FastAPI(title="fastctrl", lifespan=lifespan)
    app.state.fastctrl = state

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        msg = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            return error(f"the body is not valid JSON: {msg}", 400)
        return error(f"{'.'.join(loc) or 'body'}: {msg}", 400, ".".join(loc) or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(str(exc.detail), exc.status_code)

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, exc: BadRequest) -> JSONResponse:
        return error(str(exc), exc.status, exc.param, exc.kind)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        return error(f"internal error: {type(exc).__name__}: {exc}", 500)

    app.add_middleware(Guard, state=state)

    @app.get("/health")
    async def health() -> Response:
        if state.scheduler._stopping:
            return error("shutting down", 503)
        return JSONResponse({"status": "ok", "queue_depth": state.scheduler.depth})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.telemetry.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=state.model_name)])

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatCompletionRequest, request: Request) -> Response:
        job = to_job(
            state, body, request.state.arrival
        )  # cheap (a data URL's decode): no thread hop
        task = asyncio.ensure_future(state.scheduler.submit(job))
        if body.stream:
            return StreamingResponse(
                stream(state, body, job, task, request), media_type="text/event-stream"
            )
        if not await answered(task, request):
            return Response(status_code=499)
        try:
            answer = task.result()
        except Refused as r:
            return refused(r)
        return JSONResponse(completion(state, body, job, answer).model_dump())

    return app


async def answered(task: asyncio.Future[Answer], request: Request) -> bool:
    """Wait for the request's answer (or refusal); False, with the request cancelled, if the
    client went away first."""
    while not task.done():
        await asyncio.wait({task}, timeout=0.05)
        if not task.done() and await request.is_disconnected():
            task.cancel()
            return False
    return True


def refused(r: Refused) -> JSONResponse:
    headers = {"Retry-After": str(r.retry_after)} if r.retry_after is not None else None
    return error(str(r), r.status, r.param, headers=headers)


def to_job(state: ServerState, body: ChatCompletionRequest, arrival: float) -> Job:
    """Check a request and turn it into a job (its images decoded)."""
    if body.model != state.model_name:
        raise BadRequest(
            f"model {body.model!r} is not served here; this server serves {state.model_name!r}",
            "model",
            404,
            "not_found_error",
        )
    try:
        opts = body.options()
    except ValueError as e:
        raise BadRequest(f"vllm_xargs.fastctrl_budget_ms: {e}", "vllm_xargs", 400) from None
    budget = opts.budget_ms if opts.budget_ms is not None else state.default_budget_ms
    task = opts.task_type
    if task is None and state.task_required:
        raise BadRequest(
            f"fastctrl.task_type is required here (one of {list(state.task_types or ())}): "
            "this server decides by a lookup table of task type x budget",
            "fastctrl.task_type",
        )
    if task is not None and state.task_types is not None and task not in state.task_types:
        raise BadRequest(
            f"task_type {task!r} is unknown; known: {list(state.task_types)}", "fastctrl.task_type"
        )
    n_new = body.new_tokens(state.default_max_tokens)
    if n_new > state.max_tokens_limit:
        raise BadRequest(
            f"max_tokens {n_new} is over this server's limit of {state.max_tokens_limit}",
            "max_tokens",
        )
    images, messages, chars = [], [], 0
    for i, m in enumerate(body.messages):
        if isinstance(m.content, str):
            chars += len(m.content)
            messages.append({"role": m.role, "content": m.content})
            continue
        parts: list[dict[str, Any]] = []
        for k, part in enumerate(m.content):
            if part.type == "text":
                chars += len(part.text)
                parts.append({"type": "text", "text": part.text})
            else:
                param = f"messages[{i}].content[{k}].image_url"
                if len(images) == state.max_images:
                    raise BadRequest(f"more than {state.max_images} image(s) in one request", param)
                try:
                    images.append(load_image(part.image_url.url, state.media, param))
                except MediaError as e:
                    raise BadRequest(str(e), e.param, e.status) from None
                parts.append({"type": "image"})
        messages.append({"role": m.role, "content": parts})
    if not images:
        raise BadRequest("the request has no image; send one image_url part", "messages")
    if chars > state.max_prompt_chars:
        raise BadRequest(
            f"the prompt has {chars} characters, over the limit of {state.max_prompt_chars}",
            "messages",
            413,
        )
    text = state.scheduler.runner.processor.render_chat(messages)
    return Job(uuid.uuid4().hex, text, images, float(budget), task, n_new, arrival)


def result(job: Job, a: Answer) -> FastctrlResult:
    total = (a.finished - job.arrival) * 1e3
    return FastctrlResult(
        config=a.config,
        budget_ms=job.budget_ms,
        remaining_budget_ms=a.remaining_budget_ms,
        latency_scale=a.latency_scale,
        decided_by=a.decided_by,
        decision_ms=a.decision_ms,
        queue_ms=(a.started - job.arrival) * 1e3,
        prep_ms=a.prep_ms,
        model_ms=a.model_ms,
        total_ms=total,
        deadline_met=total <= job.budget_ms,
        batch_size=a.batch_size,
    )


def completion(
    state: ServerState, body: ChatCompletionRequest, job: Job, a: Answer
) -> ChatCompletion:
    res = result(job, a)
    observe(state, res)
    return ChatCompletion(
        model=state.model_name,
        choices=[Choice(message=ChoiceMessage(content=a.text), finish_reason=a.finish_reason)],
        usage=Usage(
            prompt_tokens=a.prompt_tokens,
            completion_tokens=len(a.token_ids),
            total_tokens=a.prompt_tokens + len(a.token_ids),
        ),
        fastctrl=res,
    )


def observe(state: ServerState, res: FastctrlResult) -> None:
    t = state.telemetry
    t.requests.labels("answered").inc()
    t.deadlines.labels(str(res.deadline_met).lower()).inc()
    t.latency_ms.observe(res.total_ms)
    if state.request_log is not None:
        state.request_log.write(json.dumps(res.model_dump()) + "\n")


async def stream(
    state: ServerState,
    body: ChatCompletionRequest,
    job: Job,
    task: asyncio.Future[Answer],
    request: Request,
) -> AsyncIterator[str]:
    """Server-sent events of a chat completion: the answer's pieces as the tokens decode,
    sent once the request's batch is answered (it decodes as one), then the finish chunk
    with the ``fastctrl`` object, then ``[DONE]``."""
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    try:
        if not await answered(task, request):
            return
        try:
            a = task.result()
        except Refused as r:
            yield f"data: {json.dumps(json.loads(refused(r).body))}\n\n"
            return
        res = result(job, a)
        observe(state, res)
        yield f"data: {json.dumps(chunk(cid, state.model_name, created, {'role': 'assistant'}, None))}\n\n"
        tok = state.scheduler.runner.processor
        sent = ""
        for k in range(1, len(a.token_ids) + 1):
            text = tok.decode(a.token_ids[:k])
            piece, sent = text[len(sent) :], text
            if piece:
                yield f"data: {json.dumps(chunk(cid, state.model_name, created, {'content': piece}, None))}\n\n"
        yield (
            "data: "
            + json.dumps(
                chunk(
                    cid,
                    state.model_name,
                    created,
                    {},
                    a.finish_reason,
                    {"fastctrl": res.model_dump()},
                )
            )
            + "\n\n"
        )
        yield "data: [DONE]\n\n"
    finally:
        if not task.done():
            task.cancel()
