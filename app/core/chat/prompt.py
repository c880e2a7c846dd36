"""What the model sees of a stored conversation."""

from __future__ import annotations

from app.core.formats.base import Conversation as PromptConversation
from app.core.formats.base import Message as PromptMessage
from app.core.store import Conversation as StoredConversation
from app.core.store import Message as StoredMessage


def prompt_conversation(conversation: StoredConversation, messages: list[StoredMessage]) -> PromptConversation:
    """What the model sees: the system prompt, then each user message with its reply.

    A user message whose reply failed (or was stopped before it said anything) is left out with
    that reply, so a failed turn never poisons the next one (e.g. a 1 MB paste that did not fit,
    or two user messages in a row, which many chat templates reject). The last user message —
    the one being answered — always goes in. Earlier reasoning is not sent back.
    """

    out: list[PromptMessage] = []
    if conversation.system_prompt.strip():
        out.append(PromptMessage("system", conversation.system_prompt))
    for i, message in enumerate(messages):
        if message.role != "user":
            continue
        reply = messages[i + 1] if i + 1 < len(messages) and messages[i + 1].role == "assistant" else None
        is_last = all(m.role != "user" for m in messages[i + 1 :])
        if reply is None:
            if is_last:
                out.append(PromptMessage("user", message.content))
            continue
        if reply.state == "error" or not reply.content.strip():
            continue
        out.append(PromptMessage("user", message.content))
        out.append(PromptMessage("assistant", reply.content))
    return PromptConversation(tuple(out))
