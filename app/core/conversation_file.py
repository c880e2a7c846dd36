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
    except RecursionError:
        raise ConversationFileError(f"The conversation file {p} is nested too deeply to be a conversation.") from None
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
    try:
        json.dumps(tools, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError, TypeError, ValueError):
        raise ConversationFileError('"tools" holds text that is not valid Unicode or is nested too deeply.') from None
    parsed = tuple(_message(i, m) for i, m in enumerate(messages, start=1))
    return Conversation(parsed, tuple(tools))


def _checked(value: str, where: str) -> str:
    """JSON may spell a lone surrogate ("\\ud800"), which no tokenizer, database or UTF-8 file can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConversationFileError(
            f"{where} holds a character that is not valid Unicode text (a lone surrogate at character {exc.start + 1})."
        ) from None
    return value


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _checked(value, where)
    if isinstance(value, list):
        parts = []
        for part in value:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(_checked(part["text"], where))
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
    raw_calls = m.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise ConversationFileError(f'{where} has "tool_calls" that is not a list of tool calls.')
    for c in raw_calls:
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ConversationFileError(f"{where} has a tool call without a function name.")
        args = fn.get("arguments", "{}")
        try:
            args_text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            raise ConversationFileError(f"{where} has tool call arguments that cannot be written as JSON.") from None
        call_id = c.get("id") if isinstance(c.get("id"), str) else None
        calls.append(ToolCallRequest(_checked(fn["name"], where), _checked(args_text, where), call_id))
    thinking = m.get("thinking", m.get("reasoning_content"))
    return Message(
        role=role,
        content=_text(m.get("content"), where),
        thinking=_text(thinking, where) or None,
        tool_calls=tuple(calls),
        name=_checked(m["name"], where) if isinstance(m.get("name"), str) else None,
        tool_call_id=_checked(m["tool_call_id"], where) if isinstance(m.get("tool_call_id"), str) else None,
    )
