"""End to end through the window with the real engine and the starter model: send and stream,
stop, regenerate, edit and resend, switch conversation while streaming, close while streaming,
restart and find everything again."""

from __future__ import annotations

from pathlib import Path

import psutil
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.chat.service import ReplyOutcome
from app.core.engine import Sampling
from app.core.store import ChatStore
from app.gui.chat.messages import AssistantMessageWidget, UserMessageWidget
from app.gui.main_window import MainWindow
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, WindowFactory, load

GREEDY = Sampling(temperature=0.0, seed=1)
COUNT_TO_40 = ", ".join(str(i) for i in range(1, 41))


def type_and_send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    window.composer.edit.setFocus()
    qtbot.keyClicks(window.composer.edit, text)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)


def wait_reply(qtbot: QtBot, window: MainWindow) -> ReplyOutcome:
    """Wait for the reply under way to finish (tests/gui/test_remote_and_api.py uses it)."""
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        pass
    outcome = blocker.args[0]
    assert isinstance(outcome, ReplyOutcome)
    return outcome


def send_and_wait(qtbot: QtBot, window: MainWindow, text: str) -> ReplyOutcome:
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        type_and_send(qtbot, window, text)
    outcome = blocker.args[0]
    assert isinstance(outcome, ReplyOutcome)
    return outcome


def counting_conversation(store: ChatStore) -> int:
    """A conversation whose next reply (greedy) is a long run of numbers: the base starter model
    copies the pattern of the previous answer, ~150 tokens, so Stop lands mid-reply."""
    conv = store.create_conversation("Counting")
    store.add_message(conv.id, "user", "Count from 1 to 40.")
    store.add_message(conv.id, "assistant", COUNT_TO_40)
    return conv.id


def start_long_reply(qtbot: QtBot, window: MainWindow, store: ChatStore) -> int:
    """Open the counting conversation, send, and wait until text has streamed into the view."""
    conv_id = counting_conversation(store)
    window.sidebar.refresh()
    window.session.open(conv_id)
    window.session.sampling = GREEDY
    with qtbot.waitSignal(window.engine.events, timeout=SIGNAL_TIMEOUT_MS):
        type_and_send(qtbot, window, "Now count from 1 to 400.")
    assert window.session.streaming and window.composer.streaming
    return conv_id


def test_send_streams_the_reply_into_the_view_and_the_store(
    qtbot: QtBot, starter_window: MainWindow, store: ChatStore
) -> None:
    window = starter_window
    window.session.sampling = GREEDY
    window.session.max_tokens = 24
    assert "context" in window.header.plan_label.text() and window.header.state == "loaded"
    batches: list[list] = []
    shown: list[str] = []

    def on_events(_job: int, events: list) -> None:
        batches.append(events)
        reply = window.view.last_assistant()
        shown.append(reply.answer_text() if reply else "")

    window.engine.events.connect(on_events)
    outcome = send_and_wait(qtbot, window, "Hello! What is the sea?")
    window.engine.events.disconnect(on_events)

    assert outcome.state == "complete" and outcome.error is None and outcome.save_error is None
    assert batches, "no events reached the GUI thread"
    assert outcome.stats is not None and outcome.stats["generated_tokens"] > 0
    # Batches are coalesced: never more batches than tokens.
    assert len(batches) <= outcome.stats["generated_tokens"]
    user, reply = window.view.messages
    assert isinstance(user, UserMessageWidget) and user.text == "Hello! What is the sea?"
    assert isinstance(reply, AssistantMessageWidget)
    assert reply.answer_text() == outcome.answer
    assert reply.stats_label.text().startswith(f"{outcome.stats['generated_tokens']} tokens")
    assert window.session.conversation is not None
    stored = store.messages(window.session.conversation.id)
    assert [(m.role, m.state) for m in stored] == [("user", "complete"), ("assistant", "complete")]
    assert stored[1].stats is not None
    assert stored[1].content == outcome.answer and stored[1].stats["generated_tokens"] > 0
    assert window.sidebar.titles() == ["Hello! What is the sea?"]
    assert not window.composer.streaming and window.composer.text() == ""


def test_stop_mid_reply_keeps_the_partial_reply(qtbot: QtBot, starter_window: MainWindow, store: ChatStore) -> None:
    window = starter_window
    conv_id = start_long_reply(qtbot, window, store)
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)  # Send became Stop
    outcome: ReplyOutcome = blocker.args[0]
    assert outcome.state == "stopped" and outcome.stop_reason == "cancelled"
    assert outcome.stats is not None and 0 < outcome.stats["generated_tokens"] < 150
    reply = store.messages(conv_id)[-1]
    assert reply.state == "stopped" and reply.content == outcome.answer and reply.content.strip()
    shown = window.view.last_assistant()
    assert shown is not None and shown.notice.text().startswith("Stopped.")
    assert shown.answer_text() == outcome.answer
    assert not window.composer.streaming and window.composer.button.accessibleName() == "Send"


def test_escape_stops_the_reply(qtbot: QtBot, starter_window: MainWindow, store: ChatStore) -> None:
    window = starter_window
    start_long_reply(qtbot, window, store)
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        qtbot.keyClick(window.composer.edit, Qt.Key.Key_Escape)
    assert blocker.args[0].state == "stopped"


def capture_prompts(window: MainWindow) -> list[list[tuple[str, str]]]:
    """Record the prompt of every reply the chat service is asked for: (role, content) pairs."""
    prompts: list[list[tuple[str, str]]] = []
    service = window.engine.service
    original = service.start_reply

    def spy(request, *args, **kwargs):
        prompts.append([(m.role, m.content) for m in request.conversation.messages])
        return original(request, *args, **kwargs)

    service.start_reply = spy  # type: ignore[method-assign]
    return prompts


def test_regenerate_keeps_the_earlier_reply_as_an_alternative(
    qtbot: QtBot, starter_window: MainWindow, store: ChatStore
) -> None:
    window = starter_window
    window.session.max_tokens = 12
    window.session.sampling = Sampling(temperature=1.0, seed=7)
    first = send_and_wait(qtbot, window, "Tell me a fact about cats.")
    assert window.session.conversation is not None
    conv_id = window.session.conversation.id
    reply = window.view.last_assistant()
    assert reply is not None and reply.regenerate_button.isVisibleTo(reply)
    assert not reply.switcher.isVisibleTo(reply)  # one reply: no "‹ 1/1 ›"
    prompts = capture_prompts(window)
    window.session.sampling = Sampling(temperature=1.0, seed=8)
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(reply.regenerate_button, Qt.MouseButton.LeftButton)
    second: ReplyOutcome = blocker.args[0]
    assert second.state == "complete" and second.message_id != first.message_id
    assert prompts[-1] == [("user", "Tell me a fact about cats.")]  # the old reply is not in the prompt
    stored = store.messages(conv_id)
    assert [m.role for m in stored] == ["user", "assistant"] and stored[1].id == second.message_id
    assert [type(w).__name__ for w in window.view.messages] == ["UserMessageWidget", "AssistantMessageWidget"]
    shown = window.view.last_assistant()
    assert shown is not None and shown.message_id == second.message_id
    assert shown.switcher.isVisibleTo(shown) and shown.switcher.text() == "‹ 2/2 ›"
    # The earlier reply is kept: "‹" shows it, and the next turn's prompt is built from it.
    qtbot.mouseClick(shown.switcher.previous, Qt.MouseButton.LeftButton)
    back = window.view.last_assistant()
    assert back is not None and back.message_id == first.message_id and back.answer_text() == first.answer
    assert back.switcher.text() == "‹ 1/2 ›" and store.messages(conv_id)[1].id == first.message_id
    send_and_wait(qtbot, window, "And another one?")
    assert prompts[-1] == [
        ("user", "Tell me a fact about cats."),
        ("assistant", first.answer),
        ("user", "And another one?"),
    ]
    assert {m.id for m in store.all_messages(conv_id)} >= {first.message_id, second.message_id}


def test_edit_keeps_the_earlier_branch(qtbot: QtBot, starter_window: MainWindow, store: ChatStore) -> None:
    window = starter_window
    window.session.max_tokens = 12
    old = send_and_wait(qtbot, window, "What is the capital of Frnace?")
    assert window.session.conversation is not None
    conv_id = window.session.conversation.id
    user = window.view.last_user()
    assert user is not None and user.edit_button.isVisibleTo(user)
    qtbot.mouseClick(user.edit_button, Qt.MouseButton.LeftButton)
    assert window.composer.editing == user.message_id and window.composer.edit_banner.isVisible()
    assert window.composer.text() == "What is the capital of Frnace?"
    window.composer.edit.selectAll()
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS):
        type_and_send(qtbot, window, "What is the capital of France?")
    stored = store.messages(conv_id)
    assert [(m.role, m.content if m.role == "user" else "") for m in stored] == [
        ("user", "What is the capital of France?"),
        ("assistant", ""),
    ]
    assert all(m.id > user.message_id for m in stored)
    assert window.composer.editing is None and not window.composer.edit_banner.isVisible()
    assert [w.text for w in window.view.messages if isinstance(w, UserMessageWidget)] == [
        "What is the capital of France?"
    ]
    edited = window.view.last_user()
    assert edited is not None and edited.switcher.text() == "‹ 2/2 ›"
    # The earlier question and its reply are still there, one click away.
    qtbot.mouseClick(edited.switcher.previous, Qt.MouseButton.LeftButton)
    question, answer = window.view.messages
    assert isinstance(question, UserMessageWidget) and question.text == "What is the capital of Frnace?"
    assert isinstance(answer, AssistantMessageWidget) and answer.message_id == old.message_id
    assert question.switcher.text() == "‹ 1/2 ›"


def test_cancel_edit_restores_nothing_lost(qtbot: QtBot, starter_window: MainWindow, store: ChatStore) -> None:
    window = starter_window
    window.session.max_tokens = 4
    send_and_wait(qtbot, window, "Hi")
    user = window.view.last_user()
    assert user is not None
    window.session.begin_edit(user.message_id)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Escape)
    assert window.composer.editing is None and window.composer.text() == ""
    assert window.session.conversation is not None
    assert len(store.messages(window.session.conversation.id)) == 2


def test_switching_conversation_while_streaming_stops_and_keeps_the_reply(
    qtbot: QtBot, starter_window: MainWindow, store: ChatStore
) -> None:
    window = starter_window
    other = store.create_conversation("Another chat")
    store.add_message(other.id, "user", "An older question")
    conv_id = start_long_reply(qtbot, window, store)
    window.sidebar.refresh()
    item = window.sidebar.item_for(other.id)
    assert item is not None
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        rect = window.sidebar.list.visualItemRect(item)
        qtbot.mouseClick(window.sidebar.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        # The switch is immediate: the other conversation shows and the composer is free.
        assert window.session.conversation is not None and window.session.conversation.id == other.id
        assert not window.composer.streaming
        assert [w.text for w in window.view.messages if isinstance(w, UserMessageWidget)] == ["An older question"]
    outcome: ReplyOutcome = blocker.args[0]
    assert outcome.state == "stopped" and outcome.conversation_id == conv_id
    stopped = store.messages(conv_id)[-1]
    assert stopped.state == "stopped" and stopped.content.strip()
    window.session.open(conv_id)
    reply = window.view.last_assistant()
    assert reply is not None and reply.answer_text() == stopped.content and "Stopped." in reply.notice.text()


def test_closing_the_window_while_streaming_saves_the_partial_reply(
    qtbot: QtBot, starter_window: MainWindow, store: ChatStore
) -> None:
    window = starter_window
    conv_id = start_long_reply(qtbot, window, store)
    pid = window.engine.service.backend_pid
    window.close()  # blocks until the service thread has ended and the engine process exited
    assert not window.engine.service.running
    assert pid is not None and not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    reply = store.messages(conv_id)[-1]
    assert reply.role == "assistant" and reply.state == "stopped" and reply.content.strip()


def test_restart_finds_everything_again(
    qtbot: QtBot, make_window: WindowFactory, tmp_path: Path, starter_path: Path
) -> None:
    path = tmp_path / "restart.sqlite3"
    store = ChatStore(path)
    window = make_window(store)
    load(qtbot, window, starter_path)
    window.session.max_tokens = 10
    window.resize(760, 520)  # within the offscreen screen (800 x 600): restoring clamps to it
    outcome = send_and_wait(qtbot, window, "Remember this: blue teapot")
    assert outcome.conversation_id is not None
    window.sidebar.rename(outcome.conversation_id, "Teapot chat")
    window.close()
    store.close()

    store2 = ChatStore(path)
    try:
        again = make_window(store2, resize=False)
        assert again.sidebar.titles() == ["Teapot chat"]
        assert (again.width(), again.height()) == (760, 520)  # the window size came back
        again.session.open(outcome.conversation_id)
        user, reply = again.view.messages
        assert isinstance(user, UserMessageWidget) and user.text == "Remember this: blue teapot"
        assert isinstance(reply, AssistantMessageWidget) and reply.answer_text() == outcome.answer
        assert reply.stats_label.text().startswith(f"{outcome.stats['generated_tokens']} tokens")
        again.close()
    finally:
        store2.close()
