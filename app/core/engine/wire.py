"""Messages between the app and its engine process: length-prefixed JSON frames over pipes.

Each frame is a 4-byte little-endian length and that many bytes of JSON (ASCII-escaped, so a lone
surrogate in user text survives the trip). JSON rather than pickle: the engine process handles
untrusted model files, and nothing it sends back should be able to run code in the app.

Parent → child: {"op": "load", "path", "plan"}, {"op": "generate", "job", "request"},
{"op": "cancel", "job"}, {"op": "unload"}.
Child → parent: {"t": "ready"}, {"t": "loaded", ...}, {"t": "load_failed", "message"},
{"t": "events", "job", "ev": [...]}, {"t": "done", "job", "stats", "stop", "error"},
{"t": "failed", "job", "message", "kind"}, {"t": "unloaded"}.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, fields
from typing import IO, Any

from app.core.engine.types import GenerateRequest, Sampling
from app.core.formats.base import (
    AnswerDelta,
    Conversation,
    Done,
    GenerationStats,
    Message,
    ParsedEvent,
    PreambleDelta,
    ReasoningDelta,
    ToolCallEvent,
    ToolCallRequest,
)
from app.core.planner import LoadPlan, MemoryEstimate

MAX_FRAME = 256 << 20  # a conversation of many long messages fits; a corrupt length does not
_LENGTH = struct.Struct("<I")


class WireError(Exception):
    """The other side sent something that is not a frame of this protocol."""


def write_frame(out: IO[bytes], message: dict[str, Any]) -> None:
    data = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    if len(data) > MAX_FRAME:
        raise WireError(f"a message of {len(data):,} bytes is too large for the engine process")
    out.write(_LENGTH.pack(len(data)) + data)
    out.flush()


def _read_exactly(inp: IO[bytes], n: int) -> bytes | None:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        chunk = inp.read(remaining)
        if not chunk:
            if chunks:
                raise WireError("the stream ended inside a frame")
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(inp: IO[bytes]) -> dict[str, Any] | None:
    """The next message, or None at the end of the stream."""
    head = _read_exactly(inp, _LENGTH.size)
    if head is None:
        return None
    (n,) = _LENGTH.unpack(head)
    if n > MAX_FRAME:
        raise WireError(f"a frame claims {n:,} bytes")
    body = _read_exactly(inp, n) if n else b""
    if body is None:
        raise WireError("the stream ended inside a frame")
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise WireError(f"a frame is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise WireError("a frame is not a JSON object")
    return message


# ---- events ---------------------------------------------------------------------------------


def encode_event(event: ParsedEvent) -> list[str]:
    if isinstance(event, ReasoningDelta):
        return ["r", event.text]
    if isinstance(event, AnswerDelta):
        return ["a", event.text]
    if isinstance(event, PreambleDelta):
        return ["p", event.text]
    return ["t", event.name, event.arguments, event.recipient, event.header]


def decode_event(item: Any) -> ParsedEvent:
    if not isinstance(item, list) or not item or not all(isinstance(x, str) for x in item):
        raise WireError(f"not an event: {item!r:.80}")
    kind, *rest = item
    if kind == "r" and len(rest) == 1:
        return ReasoningDelta(rest[0])
    if kind == "a" and len(rest) == 1:
        return AnswerDelta(rest[0])
    if kind == "p" and len(rest) == 1:
        return PreambleDelta(rest[0])
    if kind == "t" and len(rest) in (3, 4):
        return ToolCallEvent(rest[0], rest[1], rest[2], *rest[3:])
    raise WireError(f"not an event: {item!r:.80}")


def encode_done(done: Done) -> dict[str, Any]:
    return {"stats": done.stats.as_dict(), "stop": done.stop_reason, "error": done.error}


def decode_stats(data: Any) -> GenerationStats:
    if not isinstance(data, dict):
        return GenerationStats()
    values: dict[str, Any] = {}
    for f in fields(GenerationStats):
        v = data.get(f.name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            values[f.name] = type(f.default)(v) if isinstance(f.default, (int, float)) else v
    return GenerationStats(**values)


def decode_done(message: dict[str, Any]) -> Done:
    error = message.get("error")
    return Done(
        decode_stats(message.get("stats")),
        str(message.get("stop") or "stop"),
        error if isinstance(error, str) else None,
    )


# ---- requests -------------------------------------------------------------------------------


def encode_request(request: GenerateRequest) -> dict[str, Any]:
    return {
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                "thinking": m.thinking,
                "tool_calls": [[c.name, c.arguments, c.id, c.header] for c in m.tool_calls],
                "name": m.name,
                "tool_call_id": m.tool_call_id,
            }
            for m in request.conversation.messages
        ],
        "tools": list(request.conversation.tools),
        "effort": request.effort,
        "date": request.date,
        "max_tokens": request.max_tokens,
        "sampling": request.sampling.to_dict() if request.sampling is not None else None,
        "ignore_eos": request.ignore_eos,
        "session": request.session,
        "stop": list(request.stop),
        "grammar": request.grammar,
    }


def decode_request(data: dict[str, Any]) -> GenerateRequest:
    try:
        messages = tuple(
            Message(
                role=str(m["role"]),
                content=str(m.get("content") or ""),
                thinking=m.get("thinking"),
                tool_calls=tuple(_call(c) for c in m.get("tool_calls") or ()),
                name=m.get("name"),
                tool_call_id=m.get("tool_call_id"),
            )
            for m in data["messages"]
        )
        sampling = data.get("sampling")
        return GenerateRequest(
            Conversation(messages, tuple(data.get("tools") or ())),
            effort=str(data.get("effort") or "medium"),
            date=data.get("date"),
            max_tokens=data.get("max_tokens"),
            sampling=Sampling.from_dict(sampling) if isinstance(sampling, dict) else None,
            ignore_eos=bool(data.get("ignore_eos")),
            session=str(data["session"]) if data.get("session") else None,
            stop=tuple(str(x) for x in data.get("stop") or ()),
            grammar=str(data["grammar"]) if data.get("grammar") else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"not a generate request ({exc})") from None


def _call(item: Any) -> ToolCallRequest:
    """[name, arguments, id] or [name, arguments, id, header]."""
    name, arguments, call_id, *header = item
    if len(header) > 1:
        raise ValueError("a tool call has too many fields")
    return ToolCallRequest(str(name), str(arguments), call_id, str(header[0]) if header else "")


# ---- load plans -----------------------------------------------------------------------------


def encode_plan(plan: LoadPlan) -> dict[str, Any]:
    return asdict(plan)


def decode_plan(data: dict[str, Any]) -> LoadPlan:
    try:
        memory = data.get("memory")
        known = {f.name for f in fields(LoadPlan)}
        values = {k: v for k, v in data.items() if k in known and k != "memory"}
        return LoadPlan(**values, memory=MemoryEstimate(**memory) if isinstance(memory, dict) else None)
    except (TypeError, ValueError) as exc:
        raise WireError(f"not a load plan ({exc})") from None
