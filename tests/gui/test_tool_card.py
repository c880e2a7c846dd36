"""The tool-call card as a widget: statuses, the approval buttons and what they answer, the
result collapsed and shown as plain text (never HTML), long arguments and results bounded."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.store import ToolCall
from app.gui.chat.tool_card import DISPLAY_CHARS, ToolCard

CALL = ToolCall(7, 0, 0, "call_0_0", "fetch", '{"url": "https://example.org", "n": 2}', server="web", tool="fetch")


def test_approval_buttons_answer_and_hide(qtbot: QtBot) -> None:
    card = ToolCard(CALL)
    qtbot.addWidget(card)
    card.show()
    card.update_call(CALL, needs_approval=True)
    assert card.waiting_for_user and card.status.text() == "Waiting for you"
    assert [b.isVisible() for b in (card.allow_once, card.allow_chat, card.allow_always, card.deny)] == [True] * 4
    assert card.allow_once.accessibleName() == "Allow this tool call once"
    assert card.title.text() == "FETCH · WEB" and card.accessibleName() == "Tool call fetch · web: Waiting for you"
    assert card.arguments.toPlainText() == '{\n  "url": "https://example.org",\n  "n": 2\n}'
    for button, answer in ((card.allow_always, "always"), (card.allow_chat, "chat"), (card.deny, "deny")):
        card.update_call(CALL, needs_approval=True)
        with qtbot.waitSignal(card.decided) as got:
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert got.args == ["call_0_0", answer] and not card.waiting_for_user
    card.update_call(CALL, needs_approval=True, ask_every_time=True)
    assert not card.allow_chat.isVisible() and not card.allow_always.isVisible()


def test_results_are_plain_text_collapsed_and_bounded(qtbot: QtBot) -> None:
    html = "<b>bold</b><script>alert(1)</script>" + "x" * (DISPLAY_CHARS + 10)
    done = replace(CALL, status="done", duration_s=0.42, result=html[:100], result_full=html)
    card = ToolCard(done)
    qtbot.addWidget(card)
    card.show()
    assert card.status.text() == "Done in 0.4 s" and not card.result_shown
    qtbot.mouseClick(card.result_toggle, Qt.MouseButton.LeftButton)
    assert card.result_shown and card.result is not None
    shown = card.result.toPlainText()
    assert shown.startswith("<b>bold</b><script>") and len(shown) < DISPLAY_CHARS + 100  # text, cut for display
    assert card.result_toggle.accessibleName() == "Hide the tool's result"
    failed = replace(CALL, status="failed", error="The tool did not finish within 2 seconds and was stopped.")
    card.update_call(failed)
    assert card.status.text() == "Failed" and card.error.text().startswith("The tool did not finish")
    assert ToolCard(replace(CALL, status="denied")).status.text() == "Denied"
    assert ToolCard(replace(CALL, status="cancelled")).status.text() == "Stopped"


def test_a_reply_stopped_by_the_round_cap_keeps_its_sentence(qtbot: QtBot) -> None:
    from app.core.store import Message
    from app.gui.chat.messages import AssistantMessageWidget

    widget = AssistantMessageWidget(3)
    qtbot.addWidget(widget)
    widget.show()
    capped = "The model asked for tools 8 times in this reply; Hearth stopped it there."
    widget.show_stored(Message(3, 1, "assistant", "", "", None, "m", "complete", capped, 1.0))
    assert widget.notice.text() == capped and widget.notice_row.isVisible()
