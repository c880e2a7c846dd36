"""The local OpenAI-compatible API: `hearth serve`, or the Settings switch inside the window.

A Starlette app on uvicorn over the same chat service the window uses: an API request is one
more reply job in the service's queue, so it waits behind the user's reply and shares the model
that is loaded. Replies stream as server-sent events (`data: {...}`, then `data: [DONE]`); a client
that disconnects cancels its reply at once. Nothing here reads or writes files.

Security: it binds 127.0.0.1 unless told otherwise, and a server on any other address must have an
API key (Authorization: Bearer …). Request bodies are capped; the queue is bounded (429 beyond);
while a model loads, or with none, requests get 503. User text from the API goes through the same
control-token guard as the window's (the engine renders every prompt with it).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.core.server.openai_api import ApiError, ChunkBuilder, CompletionBuilder, parse_chat_request

if TYPE_CHECKING:
    from app.core.chat.service import ChatService, ServiceEvent

log = logging.getLogger("hearth.server")

MAX_BODY_BYTES = 8 << 20
DEFAULT_QUEUE_LIMIT = 8


@dataclass
class ServerState:
    """What the window shows of the server ("API on :8080 · 1 waiting")."""

    running: int = 0  # replies being generated for API clients (0 or 1)
    waiting: int = 0  # API requests queued behind other replies
    served: int = 0
    on_change: Callable[[ServerState], None] | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def change(self, running: int = 0, waiting: int = 0, served: int = 0) -> None:
        with self.lock:
            self.running += running
            self.waiting += waiting
            self.served += served
        if self.on_change is not None:
            self.on_change(self)


def model_id(service: ChatService) -> str | None:
    """The id the loaded model is served under: its file's stem (a remote model: its own name)."""
    result = service.result
    if result is None or not service.loaded:
        return None
    if result.info is not None:
        return result.info.path.stem
    return result.name


def create_app(
    service: ChatService,
    *,
    api_key: str | None = None,
    queue_limit: int = DEFAULT_QUEUE_LIMIT,
    max_body: int = MAX_BODY_BYTES,
    state: ServerState | None = None,
) -> Starlette:
    state = state or ServerState()

    def error(exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    def authorised(request: Request) -> bool:
        if not api_key:
            return True
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        return hmac.compare_digest(token.encode(), api_key.encode())

    def unauthorised() -> JSONResponse:
        return error(
            ApiError(
                401,
                "A valid API key is required (Authorization: Bearer …).",
                kind="authentication_error",
                code="invalid_api_key",
            )
        )

    async def health(request: Request) -> Response:
        status = "loading" if service.loading else ("ok" if service.loaded else "no model")
        return JSONResponse(
            {"status": status, "model": model_id(service), "waiting": state.waiting, "running": state.running}
        )

    async def models(request: Request) -> Response:
        if not authorised(request):
            return unauthorised()
        current = model_id(service)
        data = [{"id": current, "object": "model", "created": 0, "owned_by": "hearth"}] if current else []
        return JSONResponse({"object": "list", "data": data})

    async def read_body(request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body):
            raise ApiError(
                413, f"The request body is larger than {max_body // (1 << 20)} MB.", code="request_too_large"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise ApiError(
                    413, f"The request body is larger than {max_body // (1 << 20)} MB.", code="request_too_large"
                )
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except RecursionError:
            raise ApiError(400, "The request body is nested too deeply.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"The request body is not valid JSON ({str(exc)[:120]}).") from None

    async def chat(request: Request) -> Response:
        if not authorised(request):
            return unauthorised()
        try:
            body = await read_body(request)
            served = model_id(service)
            if service.loading:
                raise ApiError(
                    503, "A model is loading; try again in a moment.", kind="server_error", code="model_loading"
                )
            if served is None:
                raise ApiError(503, "No model is loaded.", kind="server_error", code="no_model")
            parsed = parse_chat_request(body, (served,))
            if state.waiting + state.running >= queue_limit:
                raise ApiError(
                    429,
                    f"{queue_limit} requests are already waiting; try again later.",
                    kind="rate_limit_error",
                    code="queue_full",
                )
        except ApiError as exc:
            return error(exc)
        except ClientDisconnect:
            return Response(status_code=499)
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[ServiceEvent] = asyncio.Queue()

        def listener(event: ServiceEvent) -> None:  # on the service's threads
            loop.call_soon_threadsafe(inbox.put_nowait, event)

        state.change(waiting=1)
        job = service.start_reply(parsed.request, listener=listener)
        if parsed.stream:
            return StreamingResponse(
                stream(job, inbox, parsed.model, parsed.include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        return await complete(request, job, inbox, parsed.model)

    async def events(job: int, inbox: asyncio.Queue[ServiceEvent]) -> AsyncGenerator[Any, None]:
        """The job's events as they come; the reply is cancelled if the consumer goes away."""
        from app.core.chat.service import ReplyEvents, ReplyOutcome

        started = finished = False
        try:
            while True:
                item = await inbox.get()
                if not started:
                    started = True
                    state.change(running=1, waiting=-1)
                if isinstance(item, ReplyEvents):
                    for event in item.events:
                        yield event
                elif isinstance(item, ReplyOutcome):
                    finished = True
                    yield item
                    return
        finally:
            if not finished:
                service.cancel(job)  # the client disconnected: free the engine now
            state.change(running=-1 if started else 0, waiting=0 if started else -1, served=1)

    async def stream(
        job: int, inbox: asyncio.Queue[ServiceEvent], model: str, include_usage: bool
    ) -> AsyncIterator[bytes]:
        from app.core.chat.service import ReplyOutcome

        builder = ChunkBuilder(model)
        yield sse(builder.first())
        async for item in events(job, inbox):
            if isinstance(item, ReplyOutcome):
                if item.error:
                    yield sse(
                        {
                            "error": {
                                "message": item.error,
                                "type": "server_error",
                                "param": None,
                                "code": item.stop_reason,
                            }
                        }
                    )
                else:
                    yield sse(builder.last(item.stop_reason))
                    if include_usage:
                        yield sse(builder.usage(_stats(item)))
                yield b"data: [DONE]\n\n"
                return
            chunk = builder.event(item)
            if chunk is not None:
                yield sse(chunk)

    async def complete(request: Request, job: int, inbox: asyncio.Queue[ServiceEvent], model: str) -> Response:
        from app.core.chat.service import ReplyOutcome

        builder = CompletionBuilder(model)
        gen = events(job, inbox)

        async def collect() -> ReplyOutcome:
            async for item in gen:
                if isinstance(item, ReplyOutcome):
                    return item
                builder.add(item)
            raise RuntimeError("the reply ended without an outcome")

        task = asyncio.ensure_future(collect())
        while not task.done():
            await asyncio.wait({task}, timeout=0.25)
            if not task.done() and await request.is_disconnected():
                task.cancel()
                await gen.aclose()  # cancels the reply
                return Response(status_code=499)
        outcome = task.result()
        if outcome.error:
            status = 503 if outcome.stop_reason == "crashed" else 500
            return error(ApiError(status, outcome.error, kind="server_error", code=outcome.stop_reason))
        return JSONResponse(builder.result(_stats(outcome), outcome.stop_reason))

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


def _stats(outcome: Any) -> Any:
    from app.core.formats.base import GenerationStats

    known = GenerationStats.__dataclass_fields__
    return GenerationStats(**{k: v for k, v in (outcome.stats or {}).items() if k in known})
