"""Bad input gets a clear message and loses nothing: blank messages, a 1 MB paste, any script,
Send and Stop hammered, a model file deleted while loaded, a second copy of the app."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.store import ChatStore
from app.gui.app import SingleInstance
from app.gui.chat.messages import USER_PREVIEW_CHARS, AssistantMessageWidget, UserMessageWidget
from app.gui.main_window import MainWindow
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, WindowFactory, load
from tests.gui.test_chat_flow import send_and_wait


def test_a_blank_message_cannot_be_sent(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    window = make_window(store)
    assert not window.composer.button.isEnabled()
    qtbot.keyClicks(window.composer.edit, "  ")
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    assert not window.composer.button.isEnabled()
    assert store.list_conversations() == [] and window.view.messages == []


def test_a_one_megabyte_paste_is_stored_shown_in_part_and_refused_by_the_model(
    qtbot: QtBot, starter_window: MainWindow, store: ChatStore
) -> None:
    window = starter_window
    huge = ("All work and no play makes Jack a dull boy. " * 24_000)[: 1024 * 1024]
    window.composer.set_text(huge)
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)
    outcome = blocker.args[0]
    assert outcome.state == "error" and "tokens long" in outcome.error and "context" in outcome.error
    user, reply = window.view.messages
    assert isinstance(user, UserMessageWidget) and user.text == huge  # the whole text, for Copy and Edit
    assert len(user.label.text()) < USER_PREVIEW_CHARS * 1.1  # the bubble shows a part
    assert isinstance(reply, AssistantMessageWidget) and reply.notice.text() == outcome.error
    assert reply.retry_button.isVisibleTo(reply)
    stored = store.messages(outcome.conversation_id)
    assert stored[0].content == huge and stored[1].state == "error"
    # The failed turn does not poison the next message: it is left out of the prompt.
    window.session.max_tokens = 4
    nxt = send_and_wait(qtbot, window, "A short question instead.")
    assert nxt.state == "complete" and nxt.stats["prompt_tokens"] < 1000


def test_emoji_rtl_and_combining_text_round_trip(qtbot: QtBot, starter_window: MainWindow, store: ChatStore) -> None:
    window = starter_window
    window.session.max_tokens = 4
    text = "שלום 👋🏽 مرحبا — e\u0301te\u0301 Z\u0351\u036b\u0343a\u0310lgo 家族 🇵🇹"
    window.composer.set_text(text)
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)
    conv_id = blocker.args[0].conversation_id
    assert store.messages(conv_id)[0].content == text
    user = window.view.messages[0]
    assert isinstance(user, UserMessageWidget) and user.label.text() == text
    conversation = store.get_conversation(conv_id)
    assert conversation is not None and conversation.title == text


def test_send_and_stop_pressed_rapidly_leave_a_consistent_state(
    qtbot: QtBot, starter_window: MainWindow, store: ChatStore
) -> None:
    window = starter_window
    finished: list = []
    window.session.replyFinished.connect(finished.append)
    for i in range(5):
        window.composer.set_text(f"Message {i}")
        qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)  # Send
        qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)  # Stop
        qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)  # Stop again, or Send of nothing

        def all_finished(count: int = i + 1) -> bool:
            return len(finished) == count

        qtbot.waitUntil(all_finished, timeout=SIGNAL_TIMEOUT_MS)
    assert all(o.state in ("stopped", "complete") for o in finished)
    conversation = window.session.conversation
    assert conversation is not None
    conv_id = conversation.id
    stored = store.messages(conv_id)
    assert [m.role for m in stored] == ["user", "assistant"] * 5
    assert all(m.state in ("stopped", "complete") for m in stored if m.role == "assistant")
    assert not window.session.streaming and not window.composer.streaming
    assert len(window.view.messages) == 10


def test_a_model_file_deleted_while_loaded(
    qtbot: QtBot,
    make_window: WindowFactory,
    store: ChatStore,
    tiny_gptoss_path: Path,
    starter_path: Path,
    tmp_path: Path,
) -> None:
    copy = tmp_path / "doomed.gguf"
    shutil.copy(tiny_gptoss_path, copy)
    window = make_window(store)
    load(qtbot, window, copy)
    copy.unlink()
    window.session.max_tokens = 4
    outcome = send_and_wait(qtbot, window, "Still there?")
    assert outcome.state == "complete"  # the weights are in memory: the open chat goes on
    with qtbot.waitSignal(window.modelFailed, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        window.load_model(window.header.entries()[0].__class__(str(copy), "doomed", copy, 0))
    assert "doomed.gguf" in blocker.args[0]
    assert window.banner.isVisible() and "could not be loaded" in window.banner.label.text()
    assert "Still using" in window.banner.label.text() and window.header.state == "loaded"
    # And the app goes on: another model loads fine.
    load(qtbot, window, starter_path)
    assert window.header.state == "loaded"


def test_a_second_instance_brings_the_first_forward(qtbot: QtBot, qapp: object, tmp_path: Path) -> None:
    name = f"hearth-test-{tmp_path.name}"
    first = SingleInstance(name)
    assert not first.activate_running(timeout_ms=200)  # nobody is listening yet
    assert first.listen()
    try:
        second = SingleInstance(name)
        with qtbot.waitSignal(first.activated, timeout=10_000):
            assert second.activate_running()
    finally:
        first.close()
    assert not SingleInstance(name).activate_running(timeout_ms=200)
