"""Settings (Ctrl+,): appearance applied at once and remembered, the models folder, the token
(an in-memory keyring, never the user's: tests/gui/conftest.py installs one for every GUI test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.core import paths
from app.core.store import ChatStore
from app.gui import theme
from app.gui.settings import SettingsDialog
from tests.fixtures.keyring import MemoryKeyring
from tests.gui.conftest import WindowFactory


@pytest.fixture
def light_again() -> Iterator[None]:
    """The tests share one application: put the light theme back afterwards."""
    yield
    manager = theme.manager()
    if manager is not None:
        manager.set_mode("light")


def open_settings(qtbot: QtBot, window: object, act: object) -> None:
    """Press Ctrl+, and run `act(dialog)` once the modal dialog is up; it closes the dialog."""

    def step() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, SettingsDialog):
            QTimer.singleShot(20, step)
            return
        try:
            act(dialog)  # type: ignore[operator]
        finally:
            dialog.accept()

    QTimer.singleShot(0, step)
    qtbot.keyClick(window, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)


def test_appearance_applies_at_once_and_is_remembered(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, light_again: None
) -> None:
    window = make_window(store)
    seen: list[bool] = []

    def act(dialog: SettingsDialog) -> None:
        assert dialog.theme.currentData() == "light"  # the tests force light
        dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
        seen.append(theme.current().dark)
        assert dialog.notice.isHidden()

    open_settings(qtbot, window, act)
    assert seen == [True]
    assert store.get_setting(theme.SETTING_THEME) == "dark"
    assert QApplication.palette().window().color().name() == theme.DARK.window


def test_models_folder_and_token_from_settings(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    window = make_window(store)
    chosen = tmp_path / "models-elsewhere"
    states: list[str] = []

    def act(dialog: SettingsDialog) -> None:
        qtbot.waitUntil(lambda: "No token saved" in dialog.token_state.text(), timeout=10_000)
        assert not dialog.default_folder.isEnabled()
        dialog._set_folder(str(chosen))
        states.append(dialog.folder.text())
        assert dialog.default_folder.isEnabled() and str(chosen) in dialog.notice.text()
        dialog._set_folder(None)
        states.append(dialog.folder.text())

    open_settings(qtbot, window, act)
    assert states == [str(chosen), str(paths.data_dir() / "models")]
    assert paths.models_dir() == paths.data_dir() / "models"


def test_saved_chat_state_cap_from_settings(make_window: WindowFactory, store: ChatStore, qtbot: QtBot) -> None:
    from app.core.engine import kvcache

    state = kvcache.cache_root() / "somemodel" / "c1-1.kv"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"x" * 4096)
    window = make_window(store)
    seen: list[str] = []

    def act(dialog: SettingsDialog) -> None:
        assert dialog.kv_cap.currentData() == kvcache.DEFAULT_CAP_BYTES
        dialog.kv_cap.setCurrentIndex(dialog.kv_cap.findData(0))
        seen.append(dialog.kv_state.text())

    open_settings(qtbot, window, act)
    assert kvcache.configured_cap() == 0 and not state.exists()
    assert seen == ["Freed 4 kB. Takes effect the next time a model loads."]
