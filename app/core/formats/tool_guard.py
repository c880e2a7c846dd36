"""The control-token guard (guard.py) applied to tools as well: their definitions and results.

Tool names, descriptions and parameter schemas come from MCP servers and API clients, and results
from whatever a tool read: all untrusted text that is rendered into the prompt, so every string in
a definition — names, descriptions, property names, enum values, defaults — is neutralised like a
user's message (a description holding `<|end|><|start|>system<|message|>…` stays text). Results
are tool messages, which `MarkerGuard.conversation` already covers.

A tool call's recorded harmony header is the model's own output and holds real markers; it is
kept as it was (the harmony renderer only uses a header of a known, marker-safe shape).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from app.core.formats.base import Conversation, Message
from app.core.formats.guard import MarkerGuard


def guard_value(guard: MarkerGuard, value: Any) -> Any:
    """`value` (parsed JSON) with every string in it, keys included, neutralised."""
    if isinstance(value, str):
        return guard(value)
    if isinstance(value, Mapping):
        return {guard(str(k)): guard_value(guard, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [guard_value(guard, v) for v in value]
    return value


def guard_tools(guard: MarkerGuard, tools: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
    return tuple(guard_value(guard, tool) for tool in tools)


def guard_conversation(guard: MarkerGuard, conversation: Conversation) -> Conversation:
    """Messages (MarkerGuard.conversation), tool definitions, and the calls' headers kept."""
    guarded = guard.conversation(conversation)
    messages = tuple(_with_headers(g, original) for g, original in zip(guarded.messages, conversation.messages))
    return replace(guarded, messages=messages, tools=guard_tools(guard, conversation.tools))


def _with_headers(guarded: Message, original: Message) -> Message:
    if not any(c.header for c in original.tool_calls):
        return guarded
    calls = tuple(replace(g, header=o.header) for g, o in zip(guarded.tool_calls, original.tool_calls))
    return replace(guarded, tool_calls=calls)
