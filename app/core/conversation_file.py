"""Read a conversation given in the OpenAI messages shape (a file or a parsed JSON value).

Accepted: a JSON list of messages, or an object {"messages": [...], "tools": [...]}; each message
has a role, a content (a string, or a list of {"type": "text", "text": ...} parts), and for the
assistant optionally "thinking" and "tool_calls".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.core.formats.base import ROLES, Conversation, Message, ToolCallRequest


class ConversationFileError(ValueError):
    """The conversation cannot be read; the message is one sentence for the user."""


def load_conversation(path: str | Path) -> Conversation:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConversationFileError(f"Cannot read the conversation file {p}: {exc.strerror or exc}.") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConversationFileError(f"The conversation file {p} is not UTF-8 text.") from exc
    except json.JSONDecodeError as exc:
        raise ConversationFileError(
            f"The conversation file {p} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from exc
    return parse_conversation(data)


def parse_conversation(data: Any) -> Conversation:
    if isinstance(data, dict):
        messages, tools = data.get("messages"), data.get("tools") or []
    else:
        messages, tools = data, []
    if not isinstance(messages, list):
        raise ConversationFileError('A conversation must be a list of messages or an object with "messages".')
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ConversationFileError('"tools" must be a list of tool definitions (objects).')
    parsed = tuple(_message(i, m) for i, m in enumerate(messages, start=1))
    return Conversation(parsed, tuple(tools))


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise ConversationFileError(f"{where} has a content part that is not text; only text is supported.")
        return "".join(parts)
    raise ConversationFileError(f"{where} has a content that is neither text nor a list of text parts.")


def _message(index: int, m: Any) -> Message:
    where = f"Message {index}"
    if not isinstance(m, dict):
        raise ConversationFileError(f"{where} is not an object with a role and a content.")
    role = m.get("role")
    if role not in ROLES:
        raise ConversationFileError(f"{where} has the unknown role {role!r}; expected one of: {', '.join(ROLES)}.")
    calls = []
    for c in m.get("tool_calls") or []:
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ConversationFileError(f"{where} has a tool call without a function name.")
        args = fn.get("arguments", "{}")
        calls.append(ToolCallRequest(fn["name"], args if isinstance(args, str) else json.dumps(args), c.get("id")))
    thinking = m.get("thinking", m.get("reasoning_content"))
    return Message(
        role=role,
        content=_text(m.get("content"), where),
        thinking=_text(thinking, where) or None,
        tool_calls=tuple(calls),
        name=m.get("name") if isinstance(m.get("name"), str) else None,
        tool_call_id=m.get("tool_call_id") if isinstance(m.get("tool_call_id"), str) else None,
    )
