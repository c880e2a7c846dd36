"""Tool calls through the window, with real widgets, the real engine process running the tiny
gpt-oss, the built-in calculator and a real stdio MCP server (tests/fixtures/mcp_server.py).

What is scripted: the tiny model's sampling is forced per round by a llama.cpp grammar into the
calls a tool-trained model would make (tests/fixtures/tool_model.py); nothing else is faked.
Flow: call → card → (Allow once | Deny) → the MCP tool runs → result → the model continues →
final answer stored → reopened, the cards come back from the store.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from app.core.store import ChatStore
from app.core.tools.approval import Decision
from app.core.tools.base import ToolSpec
from app.core.tools.mcp_config import SETTING, McpServerConfig
from app.gui.chat.messages import AssistantMessageWidget
from app.gui.chat.tool_card import ToolCard
from app.gui.workers import EngineController
from tests.fixtures.tool_model import ADD_CALL, CALCULATOR_CALL, FINAL, GrammarScript
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, WindowFactory, load
from tests.gui.test_chat_flow import type_and_send, wait_reply

ROOT = Path(__file__).resolve().parents[2]


def configure_math_server(store: ChatStore) -> None:
    server = McpServerConfig(
        name="math",
        command=sys.executable,
        args=("-m", "tests.fixtures.mcp_server"),
        env={"PYTHONPATH": str(ROOT)},
        start_timeout_s=300,  # a busy 2-core machine can take long to import the SDK in the server
    )
    store.set_setting(SETTING, [server.to_json()])


def _spec(server: str, tool: str) -> ToolSpec:
    return ToolSpec(tool, server, tool)


def cards(reply: AssistantMessageWidget) -> list[ToolCard]:
    return [reply.tool_cards[k] for k in sorted(reply.tool_cards)]


def test_allow_once_deny_and_reopen(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, tiny_gptoss_path: Path
) -> None:
    configure_math_server(store)
    backend = GrammarScript([CALCULATOR_CALL, ADD_CALL, FINAL])
    window = make_window(store, engine=EngineController(store, backend=backend, ctx_cap=4096))
    load(qtbot, window, tiny_gptoss_path)

    # The per-chat tools menu: the calculator and the math server, turned on for this chat.
    button = window.composer.tools_button
    assert button.isVisibleTo(window)
    entries = dict(window.session.tool_entries())
    assert entries["builtin/calculator"] == "Calculator" and entries["math/*"] == "math (MCP)"
    button.menu_.aboutToShow.emit()
    actions = {a.text(): a for a in button.menu_.actions()}
    actions["Calculator"].setChecked(True)
    actions["math (MCP)"].setChecked(True)
    assert window.session.chat_tools() == ["builtin/calculator", "math/*"]
    assert button.text() == "Tools: Calculator, math (MCP)"

    type_and_send(qtbot, window, "What is 6 times 7?")
    reply = window.view.last_assistant()
    assert reply is not None
    # The calculator is safe and runs at once; the MCP tool waits in its card, not in a dialog.
    qtbot.waitUntil(lambda: len(reply.tool_cards) == 2 and cards(reply)[1].waiting_for_user, timeout=SIGNAL_TIMEOUT_MS)
    calc, add = cards(reply)
    assert calc.status.text().startswith("Done in") and calc.title.text() == "CALCULATOR · BUILTIN"
    assert add.title.text() == "ADD · MATH" and add.status.text() == "Waiting for you"
    assert window.composer.hint.text() == "Waiting for your approval"
    assert '"a": 2' in add.arguments.toPlainText()
    assert QGuiApplication.focusWindow() is not None and add.allow_once.hasFocus()  # keyboard reachable
    qtbot.mouseClick(add.allow_once, Qt.MouseButton.LeftButton)
    outcome = wait_reply(qtbot, window)
    assert outcome.state == "complete" and outcome.answer == "It is 42."
    assert add.status.text().startswith("Done in") and not add.waiting_for_user
    assert not add.result_shown  # collapsed by default
    qtbot.mouseClick(add.result_toggle, Qt.MouseButton.LeftButton)
    assert add.result_shown and add.result is not None and add.result.toPlainText() == "42"
    assert reply.answer_text() == "It is 42."  # Copy copies the answer, not the tool plumbing
    first_chat = outcome.conversation_id
    stored = store.tool_calls([outcome.message_id or 0])[outcome.message_id or 0]
    assert [(c.name, c.status, c.approval) for c in stored] == [
        ("calculator", "done", "always"),
        ("add", "done", "once"),
    ]

    # Deny, in a new chat with the same tools.
    window.new_chat()
    window.session.set_chat_tools(["builtin/calculator", "math/*"])
    type_and_send(qtbot, window, "And again?")
    reply2 = window.view.last_assistant()
    assert reply2 is not None and reply2 is not reply
    qtbot.waitUntil(
        lambda: len(reply2.tool_cards) == 2 and cards(reply2)[1].waiting_for_user, timeout=SIGNAL_TIMEOUT_MS
    )
    qtbot.mouseClick(cards(reply2)[1].deny, Qt.MouseButton.LeftButton)
    outcome2 = wait_reply(qtbot, window)
    assert cards(reply2)[1].status.text() == "Denied" and outcome2.calls[1].status == "denied"
    assert outcome2.answer == "It is 42.", (outcome2.error, outcome2.stats)  # the model went on without the tool
    assert "denied" in (backend.requests[-1].conversation.messages[-1].content)

    # Always allow in this chat: the next turn of this chat runs the MCP tool without asking.
    type_and_send(qtbot, window, "Once more?")
    reply3 = window.view.last_assistant()
    assert reply3 is not None and reply3 is not reply2
    qtbot.waitUntil(
        lambda: len(reply3.tool_cards) == 2 and cards(reply3)[1].waiting_for_user, timeout=SIGNAL_TIMEOUT_MS
    )
    qtbot.mouseClick(cards(reply3)[1].allow_chat, Qt.MouseButton.LeftButton)
    assert wait_reply(qtbot, window).calls[1].approval == "always"
    type_and_send(qtbot, window, "And the last time?")
    outcome4 = wait_reply(qtbot, window)
    reply4 = window.view.last_assistant()
    assert reply4 is not None and not any(c.waiting_for_user for c in cards(reply4))
    assert [(c.status, c.approval) for c in outcome4.calls] == [("done", "always"), ("done", "always")]
    assert window.session.approvals is not None
    assert not window.session.approvals.allowed(_spec("math", "add"), first_chat)  # only in that chat

    # Reopen the first chat: its cards come back from the store.
    window.session.open(first_chat)
    again = window.view.last_assistant()
    assert again is not None and again is not reply
    assert [c.status.text()[:7] for c in cards(again)] == ["Done in", "Done in"]
    assert again.answer_text() == "It is 42."

    # Regenerate across the tool loop: a new alternative with its own calls; the old one keeps its own.
    again.set_pinned(True)
    qtbot.mouseClick(again.regenerate_button, Qt.MouseButton.LeftButton)
    regenerated = window.view.last_assistant()
    assert regenerated is not None and regenerated is not again
    qtbot.waitUntil(
        lambda: len(regenerated.tool_cards) == 2 and cards(regenerated)[1].waiting_for_user, timeout=SIGNAL_TIMEOUT_MS
    )
    qtbot.mouseClick(cards(regenerated)[1].allow_once, Qt.MouseButton.LeftButton)
    outcome5 = wait_reply(qtbot, window)
    assert outcome5.answer == "It is 42." and outcome5.message_id != outcome.message_id
    assert regenerated.switcher.text() == "‹ 2/2 ›"
    both = store.tool_calls([outcome.message_id or 0, outcome5.message_id or 0])
    assert [len(v) for v in both.values()] == [2, 2]


def call_of(tool: str, arguments: str) -> str:
    return (
        "<|channel|>analysis<|message|>Try it.<|end|>"
        f"<|start|>assistant to=functions.{tool}<|channel|>commentary json<|message|>{arguments}<|call|>"
    )


def test_malformed_arguments_a_crashing_server_and_a_timeout_show_on_the_card(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, tiny_gptoss_path: Path
) -> None:
    """Each failure is an error result the model reads (it goes on to its answer) and a sentence
    on the card; the server that crashed starts again for the next call."""
    server = McpServerConfig(
        name="math",
        command=sys.executable,
        args=("-m", "tests.fixtures.mcp_server"),
        env={"PYTHONPATH": str(ROOT)},
        call_timeout_s=1.5,
        start_timeout_s=300,  # a busy 2-core machine can take long to import the SDK in the server
    )
    store.set_setting(SETTING, [server.to_json()])
    backend = GrammarScript([call_of("calculator", '{"expression": 6*7}'), FINAL])
    window = make_window(store, engine=EngineController(store, backend=backend, ctx_cap=4096))
    load(qtbot, window, tiny_gptoss_path)
    window.session.registry  # noqa: B018 (made on first use)
    assert window.session.approvals is not None
    for tool in ("crash", "slow"):
        window.session.approvals.remember(ToolSpec(tool, "math", tool), Decision.ALWAYS)

    def turn(question: str) -> tuple[ToolCard, str]:
        window.new_chat()
        window.session.set_chat_tools(["builtin/calculator", "math/*"])
        type_and_send(qtbot, window, question)
        outcome = wait_reply(qtbot, window)
        reply = window.view.last_assistant()
        assert reply is not None and outcome.answer == "It is 42."  # the model went on
        assert reply._notice_row is None or not reply.notice.text(), reply.notice.text()  # every server started
        [card] = cards(reply)
        return card, outcome.calls[0].result or ""

    card, for_model = turn("Malformed?")
    assert card.status.text() == "Failed" and "not valid JSON" in card.error.text()
    assert for_model.startswith("Error: The arguments are not valid JSON")

    backend.rounds = [call_of("crash", "{}"), FINAL]
    card, for_model = turn("Crash?")
    assert card.status.text() == "Failed" and "stopped during the call" in card.error.text()
    assert card.title.text() == "CRASH · MATH"

    backend.rounds = [call_of("slow", '{"seconds": 30}'), FINAL]
    card, for_model = turn("Slow?")
    assert card.status.text() == "Failed" and "1.5 seconds" in card.error.text()
    assert window.mcp is not None and window.mcp.status("math").state == "ready"  # started again after the crash


def test_after_a_restart_a_chat_shows_its_tool_cards_from_the_store(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    """No model needed: a stored conversation with calls (as the loop writes them) opens in a new
    window with its cards, statuses and results, and the answer alone in the reply."""
    from app.core.store import ToolCall

    conv = store.create_conversation("Weather")
    store.add_message(conv.id, "user", "Weather in Paris and 6*7?")
    reply = store.begin_reply(conv.id, "m")
    store.add_tool_call(
        ToolCall(
            reply,
            0,
            0,
            "call_0_0",
            "get_weather",
            '{"city": "Paris"}',
            server="web",
            tool="get-weather",
            status="done",
            approval="once",
            result="Rain, 12 °C",
            duration_s=0.8,
        )  # fmt: skip
    )
    store.add_tool_call(
        ToolCall(
            reply,
            1,
            0,
            "call_1_0",
            "calculator",
            '{"expression": "6*7"}',
            server="builtin",
            tool="calculator",
            status="failed",
            result="Error: x",
            error="Division by zero.",
        )  # fmt: skip
    )
    store.finish_reply(reply, "Rainy; and 42.", "", {}, "complete")
    window = make_window(store)
    window.session.open(conv.id)
    shown = window.view.last_assistant()
    assert shown is not None
    weather, calc = cards(shown)
    assert (weather.title.text(), weather.status.text()) == ("GET_WEATHER · WEB", "Done in 0.8 s")
    assert (calc.status.text(), calc.error.text()) == ("Failed", "Division by zero.")
    assert shown.answer_text() == "Rainy; and 42."
    qtbot.mouseClick(weather.result_toggle, Qt.MouseButton.LeftButton)
    assert weather.result is not None and weather.result.toPlainText() == "Rain, 12 °C"


def test_stop_while_a_card_waits_for_approval(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, tiny_gptoss_path: Path
) -> None:
    configure_math_server(store)
    backend = GrammarScript([ADD_CALL, FINAL])
    window = make_window(store, engine=EngineController(store, backend=backend, ctx_cap=4096))
    load(qtbot, window, tiny_gptoss_path)
    window.session.set_chat_tools(["math/add"])
    type_and_send(qtbot, window, "Add?")
    reply = window.view.last_assistant()
    assert reply is not None
    qtbot.waitUntil(lambda: len(reply.tool_cards) == 1 and cards(reply)[0].waiting_for_user, timeout=SIGNAL_TIMEOUT_MS)
    assert window.composer.streaming
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS) as finished:
        qtbot.mouseClick(window.composer.button, Qt.MouseButton.LeftButton)  # Stop
    outcome = finished.args[0]
    assert outcome.state == "stopped" and outcome.calls[0].status == "cancelled"
    assert cards(reply)[0].status.text() == "Stopped" and not cards(reply)[0].waiting_for_user
    assert len(backend.requests) == 1 and window.composer.hint.text() != "Waiting for your approval"


def test_a_server_that_cannot_start_is_said_in_the_reply(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, tiny_gptoss_path: Path
) -> None:
    store.set_setting(SETTING, [McpServerConfig(name="ghost", command="hearth-no-such-mcp-server").to_json()])
    backend = GrammarScript([FINAL])
    window = make_window(store, engine=EngineController(store, backend=backend, ctx_cap=4096))
    load(qtbot, window, tiny_gptoss_path)
    window.session.set_chat_tools(["builtin/calculator", "ghost/*"])
    type_and_send(qtbot, window, "Hello?")
    outcome = wait_reply(qtbot, window)
    reply = window.view.last_assistant()
    assert reply is not None and outcome.answer == "It is 42."
    assert "The MCP server 'ghost' could not be used: the command 'hearth-no-such-mcp-server' was not found." in (
        reply.notice.text()
    )
    assert [t["function"]["name"] for t in backend.requests[0].conversation.tools] == ["calculator"]


def test_the_round_cap_ends_the_reply_with_a_sentence_in_the_window(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, tiny_gptoss_path: Path
) -> None:
    """A model that never stops calling tools: after MAX_ROUNDS rounds the reply ends, the window
    says why under the reply, and every round's card is there; reopened, the sentence stays."""
    from app.core.tools.loop import MAX_ROUNDS

    backend = GrammarScript([CALCULATOR_CALL] * (MAX_ROUNDS + 2) + [FINAL])
    window = make_window(store, engine=EngineController(store, backend=backend, ctx_cap=4096))
    load(qtbot, window, tiny_gptoss_path)
    window.new_chat()
    window.session.set_chat_tools(["builtin/calculator"])
    type_and_send(qtbot, window, "Keep calculating.")
    outcome = wait_reply(qtbot, window)
    assert outcome.stop_reason == "tool_limit", outcome
    assert outcome.error and f"{MAX_ROUNDS} times" in outcome.error
    reply = window.view.last_assistant()
    assert reply is not None and len(cards(reply)) == MAX_ROUNDS
    assert all(card.status.text().startswith("Done") for card in cards(reply))
    assert f"{MAX_ROUNDS} times" in reply.notice.text()
    conversation = window.session.conversation
    assert conversation is not None
    window.new_chat()
    window.session.open(conversation.id)
    again = window.view.last_assistant()
    assert again is not None and len(cards(again)) == MAX_ROUNDS
    assert f"{MAX_ROUNDS} times" in again.notice.text()
