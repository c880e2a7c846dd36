"""The sidebar over a real store: grouping, rename, delete with undo, search, keyboard."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QListWidgetItem
from pytestqt.qtbot import QtBot

from app.core.store import ChatStore
from app.gui.chat.messages import UserMessageWidget
from app.gui.sidebar import Sidebar, group_label
from tests.gui.conftest import WindowFactory


def seed(store: ChatStore) -> dict[str, int]:
    ids = {}
    for title, text in (
        ("Sourdough schedule", "feed the starter twice"),
        ("Lisbon trip", "pastéis de nata"),
        ("Attention", "ÉTÉ in CAPITALS"),
    ):
        conv = store.create_conversation(title)
        store.add_message(conv.id, "user", text)
        ids[title] = conv.id
    return ids


def item_for(sidebar: Sidebar, conversation_id: int) -> QListWidgetItem:
    item = sidebar.item_for(conversation_id)
    assert item is not None
    return item


def title_of(store: ChatStore, conversation_id: int) -> str:
    conversation = store.get_conversation(conversation_id)
    assert conversation is not None
    return conversation.title


def test_group_labels() -> None:
    today = dt.date(2025, 8, 10)
    at = lambda d: dt.datetime.combine(d, dt.time(12)).timestamp()  # noqa: E731
    assert group_label(at(today), today) == "Today"
    assert group_label(at(today - dt.timedelta(days=1)), today) == "Yesterday"
    assert group_label(at(today - dt.timedelta(days=5)), today) == "Previous 7 days"
    assert group_label(at(today - dt.timedelta(days=30)), today) == "Older"


def test_conversations_are_listed_by_last_activity_under_a_group_header(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    ids = seed(store)
    store.add_message(ids["Sourdough schedule"], "user", "one more")  # most recent activity
    window = make_window(store)
    assert window.sidebar.titles() == ["Sourdough schedule", "Attention", "Lisbon trip"]
    header = window.sidebar.list.item(0)
    assert header.text() == "Today" and header.flags() == Qt.ItemFlag.NoItemFlags


def test_click_opens_a_conversation(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    ids = seed(store)
    window = make_window(store)
    item = item_for(window.sidebar, ids["Lisbon trip"])
    rect = window.sidebar.list.visualItemRect(item)
    qtbot.mouseClick(window.sidebar.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.session.conversation is not None and window.session.conversation.id == ids["Lisbon trip"]
    assert window.windowTitle() == "Lisbon trip — Hearth"
    [only] = window.view.messages
    assert isinstance(only, UserMessageWidget) and only.text == "pastéis de nata"


def test_rename_in_place_with_f2(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    ids = seed(store)
    window = make_window(store)
    sidebar = window.sidebar
    sidebar.list.setFocus()
    sidebar.list.setCurrentItem(item_for(sidebar, ids["Attention"]))
    qtbot.keyClick(sidebar.list, Qt.Key.Key_F2)
    editor = sidebar.list.focusWidget()
    assert editor is not sidebar.list  # the in-place editor is open
    editor.selectAll()  # type: ignore[attr-defined]
    qtbot.keyClicks(editor, "Attention   is all you need")
    with qtbot.waitSignal(sidebar.conversationRenamed, timeout=10_000) as blocker:
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert blocker.args == [ids["Attention"], "Attention is all you need"]
    assert title_of(store, ids["Attention"]) == "Attention is all you need"
    assert "Attention is all you need" in sidebar.titles()


def test_rename_to_blank_keeps_the_old_title(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    ids = seed(store)
    window = make_window(store)
    window.sidebar.rename(ids["Attention"], "   ")
    assert title_of(store, ids["Attention"]) == "Attention"


def test_delete_hides_at_once_and_undo_brings_it_back(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    ids = seed(store)
    window = make_window(store)
    window.session.open(ids["Lisbon trip"])
    sidebar = window.sidebar
    sidebar.list.setFocus()
    sidebar.list.setCurrentItem(item_for(sidebar, ids["Lisbon trip"]))
    qtbot.keyClick(sidebar.list, Qt.Key.Key_Delete)
    assert "Lisbon trip" not in sidebar.titles() and sidebar.undo_bar.isVisible()
    assert window.session.conversation is None  # the open conversation was left
    assert store.get_conversation(ids["Lisbon trip"]) is not None  # not gone yet
    qtbot.mouseClick(sidebar.undo_button, Qt.MouseButton.LeftButton)
    assert "Lisbon trip" in sidebar.titles() and not sidebar.undo_bar.isVisible()
    assert store.get_conversation(ids["Lisbon trip"]) is not None


def test_delete_is_committed_when_the_undo_offer_ends(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    ids = seed(store)
    window = make_window(store)
    window.sidebar._undo_timer.setInterval(50)
    window.sidebar.delete(ids["Attention"])
    qtbot.waitUntil(lambda: store.get_conversation(ids["Attention"]) is None, timeout=10_000)
    assert not window.sidebar.undo_bar.isVisible() and "Attention" not in window.sidebar.titles()


def test_a_pending_delete_is_committed_when_the_window_closes(make_window: WindowFactory, store: ChatStore) -> None:
    ids = seed(store)
    window = make_window(store)
    window.sidebar.delete(ids["Attention"])
    window.close()
    assert store.get_conversation(ids["Attention"]) is None
    assert store.get_conversation(ids["Lisbon trip"]) is not None


def test_search_by_title_and_by_message_text(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    seed(store)
    window = make_window(store)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.sidebar.search.hasFocus()
    qtbot.keyClicks(window.sidebar.search, "lisbon")
    qtbot.waitUntil(lambda: window.sidebar.titles() == ["Lisbon trip"], timeout=10_000)
    window.sidebar.search.setText("été")  # message text, any case (QTest types ASCII only)
    qtbot.waitUntil(lambda: window.sidebar.titles() == ["Attention"], timeout=10_000)
    window.sidebar.search.setText("no such words")
    qtbot.waitUntil(lambda: window.sidebar.titles() == [], timeout=10_000)
    assert window.sidebar.empty_label.text() == "No matches." and window.sidebar.empty_label.isVisible()
    window.sidebar.search.clear()
    qtbot.waitUntil(lambda: len(window.sidebar.titles()) == 3, timeout=10_000)


def test_keyboard_new_chat_and_sidebar_toggle(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    ids = seed(store)
    window = make_window(store)
    window.session.open(ids["Attention"])
    qtbot.keyClick(window.focusWidget(), Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.session.conversation is None and window.view.empty.isVisible()
    assert window.composer.edit.hasFocus()
    qtbot.keyClick(window.focusWidget(), Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    assert not window.sidebar.isVisible()
    qtbot.keyClick(window.focusWidget(), Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    assert window.sidebar.isVisible()


def test_the_rename_editor_is_tall_enough_to_show_the_title(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    ids = seed(store)
    window = make_window(store)
    sidebar = window.sidebar
    sidebar.begin_rename(item_for(sidebar, ids["Lisbon trip"]))
    editor = sidebar.list.findChild(QLineEdit, "RenameEdit")
    assert editor is not None and editor.isVisible()
    assert editor.text() == "Lisbon trip" and editor.selectedText() == "Lisbon trip"
    # The text area (inside padding and border) fits a line of text: it was 12 px tall.
    text_height = editor.fontMetrics().height()
    assert editor.contentsRect().height() >= text_height and editor.height() >= text_height + 4
    qtbot.keyClicks(editor, "Porto")
    assert editor.text() == "Porto"
    with qtbot.waitSignal(sidebar.conversationRenamed, timeout=10_000):
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert title_of(store, ids["Lisbon trip"]) == "Porto"


def test_long_titles_end_in_an_ellipsis_and_never_scroll_sideways(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    long_title = "A very long conversation title about " + "many different things " * 8
    conv = store.create_conversation(long_title)
    store.add_message(conv.id, "user", "x")
    window = make_window(store)
    sidebar = window.sidebar
    qtbot.waitUntil(lambda: sidebar.list.viewport().width() > 100, timeout=10_000)
    item = item_for(sidebar, conv.id)
    rect = sidebar.list.visualItemRect(item)
    assert rect.width() <= sidebar.list.viewport().width()
    assert sidebar.list.horizontalScrollBar().maximum() == 0
    assert not sidebar.list.horizontalScrollBar().isVisible()
    assert sidebar.list.textElideMode() == Qt.TextElideMode.ElideRight
    assert item.toolTip() == long_title  # the whole title on hover


def test_escape_clears_the_search(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    seed(store)
    window = make_window(store)
    window.focus_search()
    qtbot.keyClicks(window.sidebar.search, "lisbon")
    qtbot.waitUntil(lambda: window.sidebar.titles() == ["Lisbon trip"], timeout=10_000)
    qtbot.keyClick(window.sidebar.search, Qt.Key.Key_Escape)
    assert window.sidebar.search.text() == ""
    qtbot.waitUntil(lambda: len(window.sidebar.titles()) == 3, timeout=10_000)


def test_the_sidebar_comes_back_as_it_was_left(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    window = make_window(store)
    assert window.sidebar.isVisible()
    window.close()  # saved while the window is already hidden: the sidebar "is" hidden too then
    again = make_window(store)
    assert again.sidebar.isVisible()
    again.toggle_sidebar()
    again.close()
    third = make_window(store)
    assert not third.sidebar.isVisible() and third.sidebar.isHidden()


def test_opening_a_chat_keeps_the_rows_and_a_change_rebuilds_them(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    """Opening a chat changes only the selection: the rows are not rebuilt (with 400 chats the
    rebuild and its layout took ~30 ms of the GUI thread each time a chat opened). A new message
    or a refused rename still shows what the store holds."""
    ids = seed(store)
    window = make_window(store)
    sidebar = window.sidebar
    before = item_for(sidebar, ids["Attention"])
    window.session.open(ids["Lisbon trip"])
    assert item_for(sidebar, ids["Attention"]) is before  # the same row object: no rebuild
    current = sidebar.list.currentItem()
    assert current is not None and current.data(Qt.ItemDataRole.UserRole) == ids["Lisbon trip"]
    window.session.open(ids["Attention"])
    current = sidebar.list.currentItem()
    assert current is not None and current.data(Qt.ItemDataRole.UserRole) == ids["Attention"]

    store.add_message(ids["Lisbon trip"], "user", "and the trams")  # it moves to the top
    sidebar.refresh()
    assert sidebar.titles() == ["Lisbon trip", "Attention", "Sourdough schedule"]
    item_for(sidebar, ids["Attention"]).setText("   ")  # as the editor leaves a blank title
    sidebar.rename(ids["Attention"], "   ")  # refused: the row shows the stored title again
    assert sidebar.titles() == ["Lisbon trip", "Attention", "Sourdough schedule"]
