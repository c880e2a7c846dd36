"""A gpt-oss model in the window (the tiny synthetic one: real llama.cpp, random weights):
the reasoning-effort switch, and a reply shown exactly as it was stored, reasoning included."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.engine import Sampling
from app.core.store import ChatStore
from tests.gui.conftest import WindowFactory, load
from tests.gui.test_chat_flow import send_and_wait


def test_effort_switch_shows_for_gpt_oss_and_is_saved_per_conversation(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, tiny_gptoss_path: Path, starter_path: Path
) -> None:
    window = make_window(store)
    load(qtbot, window, starter_path)
    assert not window.header.effort.isVisibleTo(window)  # not a gpt-oss model
    load(qtbot, window, tiny_gptoss_path)
    effort = window.header.effort
    assert effort.isVisibleTo(window) and effort.effort() == "medium"
    qtbot.mouseClick(effort.buttons["high"], Qt.MouseButton.LeftButton)
    window.session.max_tokens = 24
    window.session.sampling = Sampling(seed=3)
    outcome = send_and_wait(qtbot, window, "Think hard: what is 2 + 2?")
    assert outcome.conversation_id is not None
    conversation = store.get_conversation(outcome.conversation_id)
    assert conversation is not None and conversation.effort == "high"
    assert outcome.state == "complete"

    # Whatever the random model wrote, the window shows what the store holds.
    stored = store.messages(outcome.conversation_id)[-1]
    reply = window.view.last_assistant()
    assert reply is not None
    assert reply.answer_text() == stored.content == outcome.answer
    assert reply.reasoning_text() == stored.reasoning == outcome.reasoning
    assert reply.thinking.isVisible() == bool(stored.reasoning)

    # A new chat starts from the last choice; each conversation keeps its own.
    window.new_chat()
    assert effort.effort() == "high"
    qtbot.mouseClick(effort.buttons["low"], Qt.MouseButton.LeftButton)
    window.session.open(outcome.conversation_id)
    assert effort.effort() == "high"
    window.new_chat()
    assert effort.effort() == "low"
