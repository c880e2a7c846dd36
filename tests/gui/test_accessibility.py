"""Every control has an accessible name, and the window works from the keyboard."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QWidget,
)
from pytestqt.qtbot import QtBot

from app.core.store import ChatStore
from app.gui.main_window import MainWindow
from app.gui.theme import DARK, LIGHT
from tests.gui.conftest import WindowFactory

CONTROLS = (QAbstractButton, QComboBox, QLineEdit, QListWidget, QPlainTextEdit)


def test_every_control_has_an_accessible_name(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    conv = store.create_conversation("A chat")
    store.add_message(conv.id, "user", "Question?")
    store.add_message(
        conv.id,
        "assistant",
        "Answer with `code`.\n\n```python\nprint(1)\n```",
        reasoning="Hmm.",
        stats={"generated_tokens": 9},
    )
    window = make_window(store)
    window.session.open(conv.id)
    reply = window.view.last_assistant()
    assert reply is not None
    reply.thinking.set_expanded(True)
    # Widgets added to a shown window are shown from the event loop.
    qtbot.waitUntil(lambda: all(m.isVisibleTo(window) for m in window.view.messages), timeout=10_000)
    controls = [w for w in window.findChildren(QWidget) if isinstance(w, CONTROLS) and w.isVisibleTo(window)]
    assert len(controls) >= 14  # header, sidebar, composer, thinking, code block, message actions
    unnamed = [
        f"{type(w).__name__} {w.objectName()!r}"
        for w in controls
        if not (w.accessibleName() or (isinstance(w, QAbstractButton) and w.text().strip()))
    ]
    assert unnamed == []


def test_tab_reaches_the_main_controls(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    store.create_conversation("A chat")
    window = make_window(store)
    window.composer.edit.setFocus()
    reached: list[QWidget] = []
    for _ in range(60):
        focus = QApplication.focusWidget()
        assert focus is not None
        reached.append(focus)
        qtbot.keyClick(focus, Qt.Key.Key_Tab)
    for control in (
        window.composer.edit,
        window.sidebar.search,
        window.sidebar.list,
        window.sidebar.new_button,
        window.header.picker,
        window.header.system_button,
    ):
        assert control in reached, control.accessibleName()


def test_ctrl_l_focuses_the_composer_and_ctrl_shift_c_copies_the_last_reply(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    conv = store.create_conversation("A chat")
    store.add_message(conv.id, "user", "Question?")
    store.add_message(conv.id, "assistant", "The **answer**.")
    window = make_window(store)
    window.session.open(conv.id)
    window.sidebar.search.setFocus()
    qtbot.keyClick(window.sidebar.search, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.composer.edit.hasFocus()
    QApplication.clipboard().clear()
    qtbot.keyClick(
        window.composer.edit, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    assert QApplication.clipboard().text() == "The **answer**."


def first_block_text(window: MainWindow) -> str:
    """The rich text of the last reply's first block (a prose block: a label)."""
    reply = window.view.last_assistant()
    assert reply is not None
    block = reply.answer.block_widgets()[0]
    assert isinstance(block, QLabel)
    return block.text()


def test_a_theme_change_re_renders_the_open_conversation(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    from app.gui import theme

    conv = store.create_conversation("A chat")
    store.add_message(conv.id, "user", "Question?")
    store.add_message(conv.id, "assistant", "Plain answer.")
    window = make_window(store)
    window.session.open(conv.id)
    before = first_block_text(window)
    assert LIGHT.text in before
    try:
        theme._current = DARK
        window.on_theme_changed()
        after = first_block_text(window)
        assert DARK.text in after and LIGHT.text not in after
    finally:
        theme._current = LIGHT


def test_library_and_downloads_controls_have_names_and_open_by_keyboard(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    window = make_window(store)
    with qtbot.waitSignal(window.library.rowsChanged, timeout=60_000):
        qtbot.keyClick(window, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    page = window.library_page()
    assert window.pages.currentWidget() is page
    qtbot.waitUntil(lambda: bool(page.cards) and all(c.isVisible() for c in page.cards.values()), timeout=10_000)
    qtbot.keyClick(window, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    downloads = window.downloads_page()
    assert window.pages.currentWidget() is downloads
    for root in (page, downloads):
        controls = [w for w in root.findChildren(QWidget) if isinstance(w, CONTROLS) and w.isVisibleTo(root)]
        unnamed = [
            f"{type(w).__name__} {w.objectName()!r}"
            for w in controls
            if not (w.accessibleName() or (isinstance(w, QAbstractButton) and w.text().strip()))
        ]
        assert controls and unnamed == []
    window.new_chat()
    assert window.pages.currentWidget() is window.chat_pane
