"""Chat widgets driven with real event objects: streaming Markdown, the Thinking section, the
composer's keys, code blocks and links."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.core.formats.base import AnswerDelta, ReasoningDelta, ToolCallEvent
from app.core.store import ChatStore
from app.gui.chat import blocks
from app.gui.chat.blocks import CodeBlock, LiveProse, MarkdownView, ProseBlock
from app.gui.chat.composer import Composer
from app.gui.chat.messages import AssistantMessageWidget, stats_text

REPLY = "Intro paragraph.\n\n```python\nprint('hi')\n```\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"


def kinds(view: MarkdownView) -> list[str]:
    return [type(w).__name__ for w in view.block_widgets()]


def prose_texts(view: MarkdownView) -> list[str]:
    texts = []
    for w in view.block_widgets():
        assert isinstance(w, ProseBlock)
        texts.append(w.text())
    return texts


def test_streamed_markdown_ends_as_the_static_render(qtbot: QtBot, themed_app: QApplication) -> None:
    streamed, static = MarkdownView(), MarkdownView()
    qtbot.addWidget(streamed)
    qtbot.addWidget(static)
    for i in range(0, len(REPLY), 4):
        streamed.append(REPLY[i : i + 4])
        streamed.flush()
    streamed.finish()
    static.set_text(REPLY)
    assert kinds(streamed) == ["ProseBlock", "CodeBlock", "ProseBlock", "ProseBlock"]
    # A stored text joins consecutive prose blocks into one label (fewer widgets), same content.
    assert kinds(static) == ["ProseBlock", "CodeBlock", "ProseBlock"]
    assert streamed.text() == static.text() == REPLY

    def plain(view: MarkdownView) -> list[str]:
        from PySide6.QtGui import QTextDocument

        out = []
        for w in view.block_widgets():
            assert isinstance(w, (ProseBlock, CodeBlock))
            doc = QTextDocument()
            doc.setHtml(w.text() if isinstance(w, ProseBlock) else "")
            out.append(doc.toPlainText().split() if isinstance(w, ProseBlock) else w.code.split())
        return [word for words in out for word in words]

    assert plain(streamed) == plain(static)


def test_streaming_reuses_closed_block_widgets(qtbot: QtBot, themed_app: QApplication) -> None:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.append("First paragraph.\n\nSecond")
    view.flush()
    first = view.block_widgets()[0]
    for word in (" paragraph", " keeps", " growing."):
        view.append(word)
        view.flush()
    widgets = view.block_widgets()
    assert widgets[0] is first  # the closed block was not rebuilt
    assert isinstance(widgets[1], LiveProse)  # the open block, until it closes
    assert len(widgets) == 2 and "Second paragraph keeps growing." in widgets[1].shown_text()


def test_thinking_is_live_then_folds_when_the_answer_starts(qtbot: QtBot, themed_app: QApplication) -> None:
    reply = AssistantMessageWidget(1)
    qtbot.addWidget(reply)
    reply.show()
    reply.start()
    assert reply.waiting.isVisible() and not reply.thinking.isVisible()

    reply.add_events([ReasoningDelta("The user asks about "), ReasoningDelta("tides.")])
    reply.flush()
    assert reply.thinking.isVisible() and reply.thinking.live and reply.thinking.expanded
    assert reply.thinking.header_text().startswith("Thinking")
    assert reply.thinking.body.isVisible() and not reply.waiting.isVisible()

    reply.add_events([AnswerDelta("Tides come from the **Moon**.")])
    reply.flush()
    assert not reply.thinking.live and not reply.thinking.expanded
    assert not reply.thinking.body.isVisible()
    assert reply.thinking.header_text().startswith("Thought for ")

    reply.finish(
        "complete",
        {"generated_tokens": 12, "tokens_per_s": 30.0, "time_to_first_token_s": 0.25, "thinking_s": 4.2},
        None,
    )
    assert reply.thinking.text() == "The user asks about tides."
    assert reply.answer_text() == "Tides come from the **Moon**."
    assert reply.stats_label.text() == "12 tokens · 30.0 tok/s · 0.2 s to first token"
    # The header keeps the time measured when the answer began.
    assert reply.thinking.header_text().startswith("Thought for ")


def test_thinking_toggles_by_click_and_keyboard(qtbot: QtBot, themed_app: QApplication) -> None:
    reply = AssistantMessageWidget(1)
    qtbot.addWidget(reply)
    reply.show()
    reply.start()
    reply.add_events([ReasoningDelta("Hidden reasoning."), AnswerDelta("Answer.")])
    reply.finish("complete", {"generated_tokens": 3, "thinking_s": 4.2}, None)
    header = reply.thinking.header
    assert header.text() == "Thought for 4.2 s" and "collapsed" in header.accessibleName()
    qtbot.mouseClick(header, Qt.MouseButton.LeftButton)
    assert reply.thinking.expanded and reply.thinking.body.isVisible()
    assert "expanded" in header.accessibleName()
    header.setFocus()
    qtbot.keyClick(header, Qt.Key.Key_Space)
    assert not reply.thinking.expanded and not reply.thinking.body.isVisible()


def test_a_stored_reply_keeps_its_thinking_collapsed_and_renders_it_on_demand(
    qtbot: QtBot, themed_app: QApplication, store: ChatStore
) -> None:
    conv = store.create_conversation()
    store.add_message(conv.id, "user", "q")
    stored = store.add_message(
        conv.id,
        "assistant",
        "The answer.",
        reasoning="Step one. Step two.",
        stats={"generated_tokens": 5, "thinking_s": 1.5},
    )
    reply = AssistantMessageWidget(stored.id)
    qtbot.addWidget(reply)
    reply.show_stored(stored)
    reply.show()
    assert reply.thinking.isVisible() and not reply.thinking.expanded
    assert reply.thinking.header_text() == "Thought for 1.5 s"
    assert reply.thinking.view.block_widgets() == []  # not rendered until opened
    reply.thinking.toggle()
    assert prose_texts(reply.thinking.view)[0].endswith("<p>Step one. Step two.</p>\n")


def test_a_tool_call_and_an_error_are_explained_inline(qtbot: QtBot, themed_app: QApplication) -> None:
    reply = AssistantMessageWidget(1)
    qtbot.addWidget(reply)
    reply.show()
    reply.start()
    reply.add_events([ToolCallEvent("get_weather", "{}")])
    assert "get_weather" in reply.notice.text() and reply.notice_row.isVisible()
    reply.finish("error", None, "llama.cpp failed while generating: boom")
    assert reply.notice.objectName() == "ErrorLabel" and "boom" in reply.notice.text()
    assert reply.retry_button.isVisibleTo(reply)


def test_stats_text() -> None:
    assert stats_text(None) == ""
    assert stats_text({"generated_tokens": 0}) == ""
    assert stats_text({"generated_tokens": 1412, "tokens_per_s": 38.54, "time_to_first_token_s": 0.4}) == (
        "1,412 tokens · 38.5 tok/s · 0.4 s to first token"
    )
    warm = {"generated_tokens": 5, "time_to_first_token_s": 0.1, "prompt_tokens": 1300, "prompt_tokens_evaluated": 12}
    assert stats_text(warm).endswith("· 1,288 of 1,300 prompt tokens cached")
    reopened = {**warm, "prompt_tokens_restored": 1288}
    assert stats_text(reopened).endswith("· 1,288 of 1,300 prompt tokens from the saved chat state")


def test_composer_keys(qtbot: QtBot, themed_app: QApplication) -> None:
    composer = Composer()
    qtbot.addWidget(composer)
    composer.show()
    sent: list[str] = []
    stops: list[bool] = []
    composer.sendRequested.connect(sent.append)
    composer.stopRequested.connect(lambda: stops.append(True))
    assert not composer.button.isEnabled()  # nothing typed
    qtbot.keyClicks(composer.edit, "   ")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert sent == [] and not composer.button.isEnabled()  # blank is not sent
    composer.edit.clear()
    qtbot.keyClicks(composer.edit, "line one")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(composer.edit, "line two")
    one_line = composer.edit.height()
    for _ in range(12):
        qtbot.keyClick(composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert composer.edit.height() > one_line  # grows...
    grown = composer.edit.height()
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert composer.edit.height() == grown  # ...up to about 8 lines
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert sent == ["line one\nline two" + "\n" * 13] and composer.text() == ""
    composer.set_streaming(True)
    assert composer.button.isEnabled() and composer.button.accessibleName() == "Stop"
    qtbot.keyClicks(composer.edit, "typed while streaming")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert len(sent) == 1  # Enter does not send while a reply streams
    qtbot.keyClick(composer.edit, Qt.Key.Key_Escape)
    qtbot.mouseClick(composer.button, Qt.MouseButton.LeftButton)
    assert stops == [True, True]


def test_code_block_copy_button_copies_the_source(qtbot: QtBot, themed_app: QApplication) -> None:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_text("```python\nx = '<long line>' + " + "'y' * 80 + " * 6 + "'z'\n```")
    [code] = view.block_widgets()
    assert isinstance(code, CodeBlock) and code.language_label.text() == "python"
    qtbot.mouseClick(code.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == code.code and code.code.startswith("x = '<long line>'")
    assert code.copy_button.text() == "Copied ✓"  # feedback, then the label comes back
    qtbot.waitUntil(lambda: code.copy_button.text() == "Copy", timeout=5_000)


def test_links_open_only_on_click_and_only_web_or_mail(monkeypatch: object, themed_app: QApplication) -> None:
    opened: list[str] = []
    monkeypatch.setattr(blocks.QDesktopServices, "openUrl", lambda url: opened.append(url.toString()))  # type: ignore[attr-defined]
    label = ProseBlock('<p><a href="https://example.com/x">x</a></p>')
    assert opened == []  # rendering a link fetches nothing
    label.linkActivated.emit("https://example.com/x")
    label.linkActivated.emit("file:///etc/passwd")
    label.linkActivated.emit("javascript:alert(1)")
    assert opened == ["https://example.com/x"]
    assert label.focusPolicy() != Qt.FocusPolicy.NoFocus  # a link is reachable by keyboard


def test_long_replies_stay_laid_out_when_the_window_resizes(qtbot: QtBot, themed_app: QApplication) -> None:
    """Closed blocks are grouped in chunks with a fixed height (see blocks._Chunk); whatever
    the width, every block must fit inside its chunk, one under the other."""
    from PySide6.QtWidgets import QScrollArea

    text = "\n\n".join(f"Paragraph {i} " + "with several words " * (i % 7 + 1) for i in range(40))
    text += "\n\n```python\n" + "x = 1  # a long line " * 12 + "\n```\n\nThe end."
    area = QScrollArea()
    area.setWidgetResizable(True)
    view = MarkdownView()
    area.setWidget(view)
    qtbot.addWidget(area)
    area.resize(800, 600)
    area.show()

    def assert_fits() -> None:
        chunks = [c for c in view.findChildren(blocks._Chunk) if c.isVisible()]
        assert len(chunks) > 1 and chunks[0].sealed
        for chunk in chunks:
            bottom = 0
            for widget in chunk.widgets():
                geometry = widget.geometry()
                assert geometry.top() >= bottom  # no overlap
                assert geometry.height() >= widget.heightForWidth(geometry.width()) or isinstance(widget, CodeBlock)
                bottom = geometry.bottom()
            assert bottom < chunk.height()  # nothing clipped

    for i in range(0, len(text), 40):  # streamed: a stored text joins its paragraphs into one block
        view.append(text[i : i + 40])
        view.flush()
    view.finish()
    qtbot.waitUntil(lambda: view.block_widgets()[0].width() > 700, timeout=10_000)
    assert_fits()
    area.resize(420, 600)
    qtbot.waitUntil(lambda: view.block_widgets()[0].width() < 420, timeout=10_000)
    qtbot.wait(50)
    assert_fits()


def test_the_chat_view_places_messages_one_under_the_other_as_they_build_grow_and_refit(
    qtbot: QtBot, themed_app: QApplication, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The view places messages itself (no layout): whatever was built, streamed or refitted,
    each built message sits MESSAGE_SPACING under the one before at the height its content needs,
    the canvas is exactly as tall as the messages, and a reply streaming at the bottom stays in view."""
    from app.gui.chat.view import MESSAGE_SPACING, ChatView

    store = ChatStore(tmp_path / "chats.sqlite3")
    conv = store.create_conversation("long")
    for i in range(60):
        store.add_message(conv.id, "user", f"Question {i}: " + "why? " * (i % 9 + 1))
        store.add_message(conv.id, "assistant", f"Answer {i}.\n\n" + REPLY + "word " * (i * 7 % 50))
    messages = store.messages(conv.id)
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    view.show_messages(messages)
    qtbot.waitUntil(lambda: not view.busy(), timeout=20_000)

    def assert_placed() -> None:
        slots = view._slots
        built = [s for s in slots if s.holder is not None]
        assert built, "nothing was built"
        y = view._headroom  # the blank reserve above the first message (none once the top was in view)
        for slot in slots:
            assert slot.y == y
            if slot.holder is not None:
                holder = slot.holder
                assert holder.geometry().y() == y and holder.width() == view.canvas.width()
                assert holder.height() == holder._box.totalHeightForWidth(holder.width())  # nothing clipped
            y += slot.height() + MESSAGE_SPACING
        assert view.canvas.height() == y - MESSAGE_SPACING

    assert_placed()
    bar = view.verticalScrollBar()
    assert bar.value() == bar.maximum() and view.sticks_to_bottom
    shifted: list[int] = []
    shift = view._shift_above

    def recording_shift(index: int, delta: int) -> None:
        shifted.append(delta)
        shift(index, delta)

    monkeypatch.setattr(view, "_shift_above", recording_shift)
    for _ in range(12):  # scrolled up a step at a time: what the user reads stays where it is
        bar.setValue(bar.value() - 300)
        first = view._visible_range(0)[0]
        slot, offset = view._slots[first], view._view_top() - view._slots[first].y
        qtbot.waitUntil(lambda: not view.busy(), timeout=20_000)
        assert view._view_top() - slot.y == offset
        assert_placed()
    assert shifted, "no message built above the view grew into the headroom"
    bar.setValue(0)  # the top comes into view: built there, what the user reads stays put
    qtbot.waitUntil(lambda: not view.busy(), timeout=20_000)
    assert view._slots[0].holder is not None and bar.value() <= view._slots[0].bottom()
    assert view._headroom == 0 and view._slots[0].y == 0  # no blank space above the first message
    assert_placed()
    view.resize(520, 700)  # narrower: every built message refits
    qtbot.waitUntil(lambda: not view.busy() and all(not s.needs_fit for s in view._slots), timeout=20_000)
    assert_placed()
    view.scroll_to_bottom()
    reply = view.add_assistant(10_000)
    reply.start()
    before = view.canvas.height()
    for i in range(40):
        reply.add_events([AnswerDelta(f"Streamed sentence number {i} of the reply. ")])
        reply.flush()
        qtbot.wait(5)
    qtbot.waitUntil(lambda: view.canvas.height() > before + 60, timeout=10_000)
    assert_placed()
    assert bar.value() == bar.maximum()  # followed to the bottom while it grew
    view.show_messages(messages[:12])  # another chat: the old messages go with their canvas
    qtbot.waitUntil(lambda: not view.busy(), timeout=20_000)
    assert_placed()
    assert len(view._slots) == 12 and view.canvas.isVisible()
    assert [c for c in view.column.findChildren(QWidget) if type(c).__name__ == "_Canvas"] == [view.canvas]


def test_a_huge_reply_left_behind_is_deleted_a_piece_at_a_time(
    qtbot: QtBot, themed_app: QApplication, tmp_path: Path
) -> None:
    """Leaving a chat whose reply has hundreds of blocks: each slice of the view's clean-up
    deletes at most DIG_PIECE widgets (deleting the reply whole stalled the window ~140 ms), and
    in the end every one of them is gone."""
    from app.gui.chat.view import DIG_PIECE, ChatView

    store = ChatStore(tmp_path / "chats.sqlite3")
    conv = store.create_conversation("huge")
    store.add_message(conv.id, "user", "Write a lot.")
    store.add_message(conv.id, "assistant", "\n\n".join(f"Paragraph {i}.\n\n```\ncode {i}\n```" for i in range(150)))
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    view.show_messages(store.messages(conv.id))
    qtbot.waitUntil(lambda: not view.busy(), timeout=20_000)
    reply = view.last_assistant()
    assert reply is not None and len(reply.findChildren(QWidget)) > 5 * DIG_PIECE
    view._pump_timer.stop()
    view.clear()
    view._pump_timer.stop()
    counts = [len(QApplication.allWidgets())]
    for _ in range(10_000):
        if not view._graveyard:
            break
        view._dig(0.0)  # the slice's time is already up: one piece per call
        counts.append(len(QApplication.allWidgets()))
    assert not view._graveyard
    steps = [before - after for before, after in zip(counts, counts[1:])]
    assert max(steps) <= DIG_PIECE + 1
    assert counts[0] - counts[-1] > 5 * DIG_PIECE  # the reply's widgets were deleted
