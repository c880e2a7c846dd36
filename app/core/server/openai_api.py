"""The OpenAI chat-completions shape, in and out: requests become GenerateRequests, parsed
events become completions and chunks. Pure functions, so every refusal is easy to test.

Parameters (docs/REMOTE.md lists them for users):
- used: model, messages, max_tokens / max_completion_tokens, temperature, top_p, stop, seed, stream,
  stream_options.include_usage, reasoning_effort (gpt-oss: reaches the system message), tools,
  tool_choice ("none" leaves the tools out; "auto", "required" and a named function are passed to
  the model as tools, which it may or may not call).
- ignored (accepted, no effect): frequency_penalty, presence_penalty, user, metadata, store,
  parallel_tool_calls, service_tier. llama-server's extensions top_k, min_p and ignore_eos are applied.
- refused with 400: n > 1, logprobs / top_logprobs, logit_bias, response_format other than text,
  audio, modalities, prediction — what would silently give a different answer than asked for.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from app.core.engine.types import GenerateRequest, Sampling
from app.core.formats.base import (
    AnswerDelta,
    Conversation,
    GenerationStats,
    Message,
    ParsedEvent,
    PreambleDelta,
    ReasoningDelta,
    ToolCallEvent,
    ToolCallRequest,
)

ROLES = ("system", "developer", "user", "assistant", "tool")
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "minimal": "low"}
MAX_MESSAGES = 10_000
MAX_STOP = 4
REFUSED = ("logprobs", "top_logprobs", "logit_bias", "audio", "modalities", "prediction")


class ApiError(Exception):
    """An error in the OpenAI shape: the HTTP status and the `error` object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass(frozen=True)
class ChatRequest:
    request: GenerateRequest
    model: str
    stream: bool
    include_usage: bool


def _number(body: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not lo <= value <= hi
    ):
        raise bad(f"'{key}' must be a number from {lo:g} to {hi:g}.", key)
    return float(value)


def _int(body: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise bad(f"'{key}' must be a whole number from {lo:,} to {hi:,}.", key)
    return value


def _text(content: Any, where: str) -> str:
    """Message content: a string, or a list of text parts (other parts are refused)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad(f"{where}: only text content is supported (parts of type 'text').", where)
            parts.append(part["text"])
        return "".join(parts)
    raise bad(f"{where}: 'content' must be a string or a list of text parts.", where)


def _tool_calls(raw: Any, where: str) -> tuple[ToolCallRequest, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad(f"{where}: 'tool_calls' must be a list.", where)
    calls: list[ToolCallRequest] = []
    for i, call in enumerate(raw):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise bad(f"{where}.tool_calls[{i}]: a call needs a function with a name.", where)
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            raise bad(f"{where}.tool_calls[{i}]: 'arguments' must be a JSON string.", where)
        call_id = call.get("id")
        calls.append(ToolCallRequest(function["name"], arguments, call_id if isinstance(call_id, str) else None))
    return tuple(calls)


def _messages(raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise bad("'messages' must be a non-empty list.", "messages")
    if len(raw) > MAX_MESSAGES:
        raise bad(f"'messages' holds more than {MAX_MESSAGES:,} messages.", "messages")
    out: list[Message] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(f"{where} must be an object.", where)
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"{where}: unknown role {str(role)[:40]!r}; use one of {', '.join(ROLES)}.", where)
        name = m.get("name")
        tool_call_id = m.get("tool_call_id")
        thinking = m.get("reasoning_content")
        out.append(
            Message(
                role=role,
                content=_text(m.get("content"), where),
                thinking=thinking if isinstance(thinking, str) and thinking else None,
                tool_calls=_tool_calls(m.get("tool_calls"), where) if role == "assistant" else (),
                name=name if isinstance(name, str) else None,
                tool_call_id=tool_call_id if isinstance(tool_call_id, str) else None,
            )
        )
    if out[-1].role not in ("user", "tool"):
        raise bad("The last message must come from the user (or be a tool result).", "messages")
    return tuple(out)


def _tools(body: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    tools, choice = body.get("tools"), body.get("tool_choice")
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise bad("'tools' must be a list.", "tools")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
        ):
            raise bad(f"tools[{i}] must be a function with a name.", "tools")
    if choice == "none":
        return ()
    if choice not in (None, "auto", "required") and not isinstance(choice, dict):
        raise bad("'tool_choice' must be 'none', 'auto', 'required' or a function.", "tool_choice")
    return tuple(tools)


def parse_chat_request(body: Any, served: tuple[str, ...]) -> ChatRequest:
    """Validate a chat-completions body against the model(s) served; raises ApiError(400)."""
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("'model' is required.", "model")
    if model not in served:
        raise bad(
            f"There is no model '{model[:80]}' here; GET /v1/models lists {', '.join(served) or 'none'}.",
            "model",
            "model_not_found",
        )
    for key in REFUSED:
        if body.get(key) not in (None, False):
            raise bad(f"'{key}' is not supported by this server.", key, "unsupported_parameter")
    n = body.get("n")
    if n not in (None, 1):
        raise bad("Only one choice per request is supported ('n' must be 1).", "n", "unsupported_parameter")
    response_format = body.get("response_format")
    if response_format is not None and (not isinstance(response_format, dict) or response_format.get("type") != "text"):
        raise bad("Only the 'text' response format is supported.", "response_format", "unsupported_parameter")
    max_tokens = _int(body, "max_completion_tokens", 1, 1 << 20)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1, 1 << 20)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (
        not isinstance(stop, list) or len(stop) > MAX_STOP or not all(isinstance(s, str) and s for s in stop)
    ):
        raise bad(f"'stop' must be a string or a list of up to {MAX_STOP} non-empty strings.", "stop")
    effort = body.get("reasoning_effort", "medium")
    if effort not in EFFORTS:
        raise bad("'reasoning_effort' must be 'low', 'medium' or 'high'.", "reasoning_effort")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("'stream' must be true or false.", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad("'stream_options' must be an object.", "stream_options")
    seed = _int(body, "seed", -(1 << 63), (1 << 63) - 1)
    temperature = _number(body, "temperature", 0.0, 2.0)
    top_p = _number(body, "top_p", 0.0, 1.0)
    top_k = _int(body, "top_k", 0, 1 << 20)
    min_p = _number(body, "min_p", 0.0, 1.0)
    sampling: Sampling | None = None
    if any(v is not None for v in (seed, temperature, top_p, top_k, min_p)):
        sampling = _sampling(temperature, top_p, top_k, min_p, seed)
    request = GenerateRequest(
        Conversation(_messages(body.get("messages")), _tools(body)),
        effort=EFFORTS[effort],
        max_tokens=max_tokens,
        sampling=sampling,
        stop=tuple(stop or ()),
        ignore_eos=body.get("ignore_eos") is True,  # llama-server's extension (benchmarks)
    )
    return ChatRequest(request, model, stream, bool(options.get("include_usage")))


def _sampling(
    temperature: float | None, top_p: float | None, top_k: int | None, min_p: float | None, seed: int | None
) -> Sampling:
    """The caller's values over OpenAI's defaults for a chat API (temperature 1, top-p 1, no
    other truncation); llama.cpp takes a 32-bit seed."""
    return Sampling(
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        top_k=0 if top_k is None else top_k,
        min_p=0.0 if min_p is None else min_p,
        seed=None if seed is None else seed & 0xFFFFFFFF,
    )


# ---- out ------------------------------------------------------------------------------------


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def finish_reason(stop_reason: str) -> str:
    return {"length": "length", "tool_call": "tool_calls"}.get(stop_reason, "stop")


def usage(stats: GenerationStats) -> dict[str, Any]:
    cached = max(0, stats.prompt_tokens - stats.prompt_tokens_evaluated)
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.generated_tokens,
        "total_tokens": stats.prompt_tokens + stats.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def tool_call_json(call: ToolCallEvent, index: int) -> dict[str, Any]:
    return {
        "index": index,
        "id": f"call_{secrets.token_hex(8)}",
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


class CompletionBuilder:
    """Collects a reply's events into one chat.completion (non-streaming)."""

    def __init__(self, model: str) -> None:
        self.id, self.model, self.created = completion_id(), model, int(time.time())
        self.answer: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[ToolCallEvent] = []

    def add(self, event: ParsedEvent) -> None:
        if isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, (AnswerDelta, PreambleDelta)):
            self.answer.append(event.text)
        elif isinstance(event, ToolCallEvent):
            self.calls.append(event)

    def result(self, stats: GenerationStats, stop_reason: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.answer) or None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [
                {k: v for k, v in tool_call_json(c, i).items() if k != "index"} for i, c in enumerate(self.calls)
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(stop_reason)}],
            "usage": usage(stats),
        }


class ChunkBuilder:
    """A reply's events as chat.completion.chunk objects (streaming)."""

    def __init__(self, model: str) -> None:
        self.id, self.model, self.created = completion_id(), model, int(time.time())
        self.calls = 0

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def first(self) -> dict[str, Any]:
        return self.chunk({"role": "assistant", "content": ""})

    def event(self, event: ParsedEvent) -> dict[str, Any] | None:
        if isinstance(event, ReasoningDelta):
            return self.chunk({"reasoning_content": event.text})
        if isinstance(event, (AnswerDelta, PreambleDelta)):
            return self.chunk({"content": event.text})
        if isinstance(event, ToolCallEvent):
            self.calls += 1
            return self.chunk({"tool_calls": [tool_call_json(event, self.calls - 1)]})
        return None

    def last(self, stop_reason: str) -> dict[str, Any]:
        return self.chunk({}, finish_reason(stop_reason))

    def usage(self, stats: GenerationStats) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage(stats),
        }
