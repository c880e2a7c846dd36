"""Export a stored chat (the branch shown) as Markdown or as JSON in the OpenAI messages shape —
the shape `hearth prompt` and `hearth ask --conversation` read (app.core.conversation_file) — and
import such a JSON file as a new chat. Qt-free; the window runs these on a background thread."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from app.core.conversation_file import ConversationFileError, load_conversation
from app.core.store import ChatStore, StoreError
from app.core.store import Conversation as StoredConversation
from app.core.store import Message as StoredMessage

FORMAT_NAME = "hearth-chat"  # marks Hearth's own exports (other readers ignore unknown keys)
MAX_IMPORT_BYTES = 64 * 1024 * 1024


class ChatExportError(ValueError):
    """The chat cannot be exported or imported; the message is one sentence for the user."""


def _shown(messages: list[StoredMessage]) -> list[StoredMessage]:
    """What an export keeps: the messages of the branch shown, without empty failed replies."""
    return [m for m in messages if m.content or m.reasoning or m.role == "user"]


def to_openai(conversation: StoredConversation, messages: list[StoredMessage]) -> dict[str, Any]:
    """{"messages": [...]} in the OpenAI shape (a system message first when the chat has a system
    prompt; an assistant's reasoning as "thinking"), with the title and model alongside."""
    out: list[dict[str, Any]] = []
    if conversation.system_prompt.strip():
        out.append({"role": "system", "content": conversation.system_prompt})
    for m in _shown(messages):
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.role == "assistant" and m.reasoning:
            item["thinking"] = m.reasoning
        out.append(item)
    return {"format": FORMAT_NAME, "title": conversation.title, "model": conversation.model, "messages": out}


def to_markdown(conversation: StoredConversation, messages: list[StoredMessage]) -> str:
    """The chat as a Markdown document: the title, the system prompt, then each turn under a
    heading (an assistant's reasoning folded in a <details> block)."""
    parts = [f"# {conversation.title}"]
    if conversation.system_prompt.strip():
        quoted = "\n".join(f"> {line}" if line else ">" for line in conversation.system_prompt.splitlines())
        parts.append(f"**System prompt**\n\n{quoted}")
    for m in _shown(messages):
        heading = {"user": "You", "assistant": "Assistant", "system": "System", "tool": "Tool"}.get(m.role, m.role)
        if m.role == "assistant" and m.model:
            heading += f" · {Path(m.model).stem if ('/' in m.model or chr(92) in m.model) else m.model}"
        body = m.content
        if m.role == "assistant" and m.reasoning:
            body = f"<details><summary>Thinking</summary>\n\n{m.reasoning}\n\n</details>\n\n{body}"
        if m.state in ("stopped", "interrupted", "error"):
            body += f"\n\n*({m.state})*"
        parts.append(f"## {heading}\n\n{body}")
    return "\n\n".join(parts).rstrip() + "\n"


def export_chat(store: ChatStore, conversation_id: int, path: str | Path) -> Path:
    """Write the chat to `path`: Markdown for .md / .markdown, else JSON. Atomic (a temporary file
    renamed), so a failed write leaves no half file."""
    conversation = store.get_conversation(conversation_id)
    if conversation is None:
        raise ChatExportError("That chat no longer exists.")
    target = Path(path)
    messages = store.messages(conversation_id)
    if target.suffix.lower() in (".md", ".markdown"):
        text = to_markdown(conversation, messages)
    else:
        text = json.dumps(to_openai(conversation, messages), ensure_ascii=False, indent=2) + "\n"
    tmp = target.with_name(f".{target.name}.writing")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ChatExportError(f"The chat could not be saved to {target}: {exc.strerror or exc}.") from None
    return target


def import_chat(store: ChatStore, path: str | Path) -> tuple[StoredConversation, int]:
    """A JSON file in the OpenAI messages shape (a list, or {"messages": [...]}) becomes a new
    chat: system messages its system prompt, user and assistant messages its turns (thinking kept).
    Returns the chat and how many messages were left out (tool calls and results: the window's
    chats have no tools)."""
    p = Path(path)
    if p.suffix.lower() in (".md", ".markdown"):
        raise ChatExportError(f"{p.name} is Markdown, which is for reading: import the JSON export of a chat instead.")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ChatExportError(f"Cannot read {p}: {exc.strerror or exc}.") from None
    if size > MAX_IMPORT_BYTES:
        raise ChatExportError(f"{p.name} is too large to be a chat ({size // 1_000_000} MB).")
    try:
        conversation = load_conversation(p)
    except ConversationFileError as exc:
        raise ChatExportError(str(exc)) from None
    title, model = p.stem, None
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(raw, dict):
            if isinstance(raw.get("title"), str) and raw["title"].strip():
                title = raw["title"].strip()[:200]
            if isinstance(raw.get("model"), str):
                model = raw["model"]
    except (OSError, ValueError, RecursionError):
        pass  # load_conversation read it already; the title is only a nicety
    system = "\n\n".join(m.content for m in conversation.messages if m.role == "system" and m.content)
    turns = [m for m in conversation.messages if m.role in ("user", "assistant") and not m.tool_calls]
    skipped = len(conversation.messages) - len(turns) - sum(1 for m in conversation.messages if m.role == "system")
    if not turns:
        raise ChatExportError(f"{p.name} has no user or assistant messages to import.")
    try:
        chat = store.create_conversation(title, system_prompt=system, model=model)
    except StoreError as exc:
        raise ChatExportError(str(exc)) from None
    try:
        for m in turns:
            store.add_message(chat.id, m.role, m.content, reasoning=m.thinking or "")
    except StoreError as exc:
        try:
            store.delete_conversation(chat.id)  # no half-imported chat
        except StoreError:
            pass
        raise ChatExportError(str(exc)) from None
    return store.get_conversation(chat.id) or chat, skipped
