"""What the model sees of a stored conversation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.formats.base import Conversation as PromptConversation
from app.core.formats.base import Message as PromptMessage
from app.core.store import Conversation as StoredConversation
from app.core.store import Message as StoredMessage
from app.core.store import ToolCall


def prompt_conversation(
    conversation: StoredConversation,
    messages: list[StoredMessage],
    calls: Mapping[int, list[ToolCall]] | None = None,
    *,
    current: int | None = None,
    tools: tuple[dict[str, Any], ...] = (),
) -> PromptConversation:
    """What the model sees: the system prompt, then each user message with its reply.

    A user message whose reply failed (or was stopped before it said anything) is left out with
    that reply, so a failed turn never poisons the next one (e.g. a 1 MB paste that did not fit,
    or two user messages in a row, which many chat templates reject). The last user message —
    the one being answered — always goes in. Earlier reasoning is not sent back.

    A reply's tool rounds (`calls`, by message id) go in before its answer, as they were
    generated; `current` is the reply being generated, whose rounds so far go in without an
    answer (the generation continues after the last tool result). The same function builds the
    prompt of every round and of a conversation reopened later, so both render the same bytes.
    """
    from app.core.tools.loop import rounds_as_messages

    calls = calls or {}
    out: list[PromptMessage] = []
    if conversation.system_prompt.strip():
        out.append(PromptMessage("system", conversation.system_prompt))
    for i, message in enumerate(messages):
        if message.role != "user":
            continue
        reply = messages[i + 1] if i + 1 < len(messages) and messages[i + 1].role == "assistant" else None
        is_last = all(m.role != "user" for m in messages[i + 1 :])
        if reply is not None and reply.id == current:
            out.append(PromptMessage("user", message.content))
            out += rounds_as_messages(calls.get(reply.id, []))
            continue
        if reply is None:
            if is_last:
                out.append(PromptMessage("user", message.content))
            continue
        if reply.state == "error" or not reply.content.strip():
            continue
        out.append(PromptMessage("user", message.content))
        out += rounds_as_messages(calls.get(reply.id, []))
        out.append(PromptMessage("assistant", reply.content))
    return PromptConversation(tuple(out), tools=tools)
