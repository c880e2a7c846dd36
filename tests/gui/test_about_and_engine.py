"""About (F1, and Settings → About Hearth…): the version, the llama.cpp build and the engine in
use, the licence notices; Settings → Engine: the forced llama.cpp build, saved, with the current
choice and its reason. The build choice is looked up on a thread of its own (the first time it
starts a child process per build): the tests wait for its signal like the window does."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app import __version__
from app.core import llama_builds
from app.core.store import ChatStore
from app.gui.about import AboutDialog, app_icon
from app.gui.settings import SettingsDialog
from tests.gui.conftest import WindowFactory, load
from tests.gui.test_settings import open_settings


@pytest.fixture(autouse=True)
def _no_gpu_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """This installation carries no GPU build (CI exports HEARTH_LLAMA_BUILDS for the Vulkan tests)."""
    monkeypatch.delenv(llama_builds.BUILDS_ENV, raising=False)
    monkeypatch.delenv(llama_builds.VK_DEVICES_ENV, raising=False)


def test_the_app_and_its_windows_have_the_icon(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    icon = app_icon()
    assert not icon.isNull() and {s.width() for s in icon.availableSizes()} >= {16, 32, 64, 256}
    window = make_window(store)
    qtbot.waitUntil(lambda: not window.windowIcon().isNull(), timeout=5_000)  # set after the first frame
    assert window.windowIcon().cacheKey() == icon.cacheKey()


def test_about_shows_version_build_engine_and_notices(qtbot: QtBot, themed_app: QApplication) -> None:
    dialog = AboutDialog("CPU only (no supported GPU), 4,096-token context, 2 threads.")
    qtbot.addWidget(dialog)
    assert dialog.title.text() == f"Hearth {__version__}"
    assert dialog.build.text().startswith("Checking")  # not known yet: nothing blocked the GUI thread
    # The label, not the lookup's signal: the lookup's thread may emit before a waiter connects.
    qtbot.waitUntil(lambda: not dialog.build.text().startswith("Checking"), timeout=60_000)
    text = dialog.build.text()
    assert text.startswith("CPU build (llama-cpp-python 0.3.") and "CPU: " in text
    assert dialog.engine.text().startswith("CPU only")
    notices = dialog.notices.toPlainText()
    assert "GNU Lesser General Public License" in notices and "llama.cpp and ggml" in notices


def test_f1_opens_about_with_the_loaded_models_plan(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, starter_path: Path
) -> None:
    window = make_window(store)
    load(qtbot, window, starter_path)
    seen: list[str] = []

    def step() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, AboutDialog):
            QTimer.singleShot(20, step)
            return
        seen.append(dialog.engine.text())
        dialog.accept()

    QTimer.singleShot(0, step)
    qtbot.keyClick(window, Qt.Key.Key_F1)
    assert seen and seen[0] == window.engine.result.plan.reason and "context" in seen[0]  # type: ignore[union-attr]


def test_settings_engine_choice_is_saved_and_explained(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot
) -> None:
    window = make_window(store)
    states: list[str] = []

    def act(dialog: SettingsDialog) -> None:
        labels = [dialog.engine.itemText(i) for i in range(dialog.engine.count())]
        assert labels[:2] == ["Automatic", "CPU"]
        assert "Vulkan (not in this installation)" in labels  # no GPU build in this environment
        assert dialog.engine.currentData() is None  # automatic until chosen
        qtbot.waitUntil(lambda: dialog.engine_state.text().startswith("In use:"), timeout=60_000)
        with qtbot.wait_signal(dialog.lookup.ready, timeout=60_000):
            dialog.engine.setCurrentIndex(dialog.engine.findData("vulkan"))
        states.append(dialog.engine_state.text())

    open_settings(qtbot, window, act)
    assert llama_builds.preferred_build() == "vulkan"
    (state,) = states
    assert state.startswith("In use: CPU: Vulkan was chosen in Settings, but this installation has no Vulkan build.")
    assert state.endswith("Takes effect the next time a model loads.")
