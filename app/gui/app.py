"""QApplication setup, one instance per user, and the window's life from start to exit.

Start-up does nothing slow before the window shows: the store opens (SQLite, milliseconds), the
window appears, and only then does the engine thread begin loading the model. One Hearth per data
folder: the first holds a lock file and, once its window is up, listens on a local socket; a later
start that finds the lock taken asks that socket to bring the first window forward, and exits.
Python's cyclic garbage collector is paused until the first frame (start-up creates many objects
and frees almost none; `hearth` pauses it before the window's imports).

Qt's own messages go to the log (qInstallMessageHandler), not to stderr. A chat database Hearth
must refuse (damaged, or another program's) is never touched; the user is offered to move it aside
(it is kept under another name) and start with an empty one — `--move-damaged-database` does that
where nobody can answer a question (offscreen).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

if TYPE_CHECKING:
    from PySide6.QtNetwork import QLocalServer
    from PySide6.QtWidgets import QMessageBox

    from app.core.store import ChatStore, DamagedDatabaseError

from app.core import locks, paths

log = logging.getLogger("hearth.gui")
qt_log = logging.getLogger("hearth.qt")

APP_NAME = "Hearth"
DESKTOP_ID = "io.github.hearth_chat.Hearth"  # resources/linux/<id>.desktop, the AppStream id
ACTIVATE = b"activate\n"
STARTUP_PROBE_ENV = "HEARTH_STARTUP_PROBE"
STARTUP_PROBE_LINE = "hearth: window shown"
LOCK_NAME = ".window.lock"
AFTER_FIRST_FRAME_MS = 100
ANSWER_WAIT_S = 5.0  # how long a second start waits for the first one to answer (it may be starting)


def ensure_platform() -> None:
    """Without a display (CI, SSH) use Qt's offscreen platform instead of aborting."""
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ["QT_QPA_PLATFORM"] = "offscreen"


def install_qt_log() -> Any:
    """Qt's messages (warnings of its plugins, style sheets, fonts) into the log, at their level. A
    handler that was there before (pytest-qt's, in tests) still gets each message; it is returned."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }
    previous: list[Any] = []

    def handler(kind: Any, context: Any, message: str) -> None:
        qt_log.log(levels.get(kind, logging.WARNING), "%s", message)
        if previous and callable(previous[0]):
            previous[0](kind, context, message)

    previous.append(qInstallMessageHandler(handler))
    return previous[0]


def application(argv: Sequence[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    ensure_platform()
    args = list(argv) if argv is not None else sys.argv[:1]
    # Fusion from the command line rather than setStyle(): the latter hands Python a QStyle,
    # whose wrapper and enums cost start-up time (see theme.ThemeManager.apply).
    app = QApplication([*args, "-style", "fusion"])
    app.setProperty(theme_style_property(), "fusion")
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName(DESKTOP_ID)
    # The icon is set after the first frame (MainWindow._set_icon): reading its PNGs costs start-up.
    return app


def theme_style_property() -> str:
    from app.gui.theme import STYLE_FROM_ARGV

    return STYLE_FROM_ARGV


def server_name() -> str:
    """One name per data folder: two Hearths on one database meet; HEARTH_HOME ones do not."""
    import hashlib  # here, not at the top: only used once the window is up (start-up time)

    digest = hashlib.sha256(str(paths.data_dir(create=False)).encode()).hexdigest()[:16]
    return f"hearth-{digest}"


class SingleInstance(QObject):
    """The first Hearth listens on a local socket; a second one asks it to come forward and exits."""

    activated = Signal()

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self._server: QLocalServer | None = None

    @property
    def name(self) -> str:
        # Worked out when first used (a second start, or listening after the first frame):
        # hashlib costs ~4 ms of start-up.
        if self._name is None:
            self._name = server_name()
        return self._name

    def activate_running(self, timeout_ms: int = 500) -> bool:
        """True when another instance answered (it has been asked to show its window)."""
        from PySide6.QtNetwork import QLocalSocket

        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(timeout_ms):
            return False
        socket.write(ACTIVATE)
        socket.waitForBytesWritten(timeout_ms)
        socket.disconnectFromServer()
        if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            socket.waitForDisconnected(timeout_ms)
        return True

    def activate_patiently(self, wait_s: float = ANSWER_WAIT_S) -> bool:
        """Keep asking while the first instance may still be bringing its window up."""
        deadline = time.monotonic() + wait_s
        while True:
            if self.activate_running():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def listen(self) -> bool:
        """Listen for later starts (call only while holding the window lock: a socket file left
        by an instance that crashed is then known to be stale and is removed)."""
        from PySide6.QtNetwork import QLocalServer

        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            # A socket file left by a crashed instance (nobody answered activate_running).
            QLocalServer.removeServer(self.name)
            if not server.listen(self.name):
                return False
        server.newConnection.connect(self._on_connection)
        self._server = server
        return True

    def _on_connection(self) -> None:
        assert self._server is not None
        while (socket := self._server.nextPendingConnection()) is not None:
            # The second instance writes one short line right after connecting; waiting for it
            # here (briefly) keeps sockets from outliving this call.
            if socket.bytesAvailable() or socket.waitForReadyRead(500):
                if bytes(socket.readAll().data()).startswith(ACTIVATE.strip()):
                    self.activated.emit()
            socket.abort()
            socket.deleteLater()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server.deleteLater()
            self._server = None


def window_lock() -> IO[str] | None:
    """The data folder's window lock, held for the process's life; None when another Hearth
    holds it."""
    return locks.try_lock(paths.data_dir() / LOCK_NAME)


def run(
    *,
    selftest: bool = False,
    model: str | None = None,
    argv: Sequence[str] | None = None,
    screenshot: str | None = None,
    move_damaged_database: bool = False,
) -> int:
    install_qt_log()
    app = application(argv)
    if selftest:
        from app.gui.selftest import run_selftest

        return run_selftest(app, model, screenshot)

    instance = SingleInstance()
    try:
        lock = window_lock()
    except OSError as exc:  # a read-only home folder, a full disk
        folder = paths.data_dir(create=False)
        return _fatal(
            f"Hearth cannot write to its data folder {folder} ({exc.strerror or exc}): make it writable, "
            "or start Hearth with HEARTH_HOME set to a folder you can write to."
        )
    if lock is None:
        if instance.activate_patiently():
            print("hearth: Hearth is already open; its window was brought forward.", file=sys.stderr)
            return 0
        # The other Hearth does not answer: open a second window; both work on the same database
        # safely (SQLite WAL, one writer at a time).

    from app.core.store import DamagedDatabaseError, StoreError
    from app.gui.main_window import MainWindow
    from app.gui.theme import ThemeManager

    themes = ThemeManager(app)
    try:
        store = open_store(ask_fresh_start if not move_damaged_database else lambda _exc: True)
    except DamagedDatabaseError as exc:
        return _fatal(f"{exc} {MOVE_ASIDE_HINT}" if QApplication.platformName() == "offscreen" else str(exc))
    except StoreError as exc:
        return _fatal(str(exc))
    from app.gui.theme import SETTING_THEME

    try:  # the Settings dialog's choice, applied before any widget exists (nothing to restyle)
        themes.set_mode(str(store.get_setting(SETTING_THEME, "system")))
    except StoreError:
        pass
    window = MainWindow(store, model=model)
    instance.activated.connect(lambda: _bring_forward(window))
    themes.changed.connect(lambda _theme: window.on_theme_changed())
    window.show()
    # After the first frame has been painted: listening needs QtNetwork, a later start waits for it.
    QTimer.singleShot(AFTER_FIRST_FRAME_MS, lambda: _after_first_frame(instance if lock is not None else None))
    if os.environ.get(STARTUP_PROBE_ENV):
        # bench/startup.py: report once the first frame is up, then leave.
        QTimer.singleShot(0, lambda: (print(STARTUP_PROBE_LINE, flush=True), app.quit()))
    try:
        return app.exec()
    finally:
        window.shutdown()
        instance.close()
        store.close()
        if lock is not None:
            locks.release(lock)


FRESH_START_BUTTON = "Move it aside and start fresh"
MOVE_ASIDE_HINT = "Start Hearth with --move-damaged-database to keep it under another name and start fresh."


def open_store(fresh_start: Callable[[DamagedDatabaseError], bool]) -> ChatStore:
    """The chat store; for a database Hearth refuses, `fresh_start(error)` decides whether to move it
    aside (kept, renamed) and start with an empty one. Raises StoreError otherwise."""
    from app.core.store import ChatStore, DamagedDatabaseError, move_aside

    try:
        store = ChatStore()
    except DamagedDatabaseError as exc:
        if not fresh_start(exc):
            raise
        kept = move_aside(exc.path)
        log.warning("the chat database %s was refused (%s); kept as %s, starting an empty one", exc.path, exc, kept)
        store = ChatStore()
    store.recover_interrupted()
    return store


def ask_fresh_start(exc: DamagedDatabaseError) -> bool:
    """Ask whether to move a refused database aside; offscreen nobody can answer, so the refusal
    stands (and the sentence says how to do it from the command line)."""
    if QApplication.platformName() == "offscreen":
        return False
    box, fresh = fresh_start_box(exc)
    box.exec()
    return box.clickedButton() is fresh


def fresh_start_box(exc: DamagedDatabaseError) -> tuple[QMessageBox, object]:
    """The question, with its "move aside" button."""
    from PySide6.QtWidgets import QMessageBox  # here: only a damaged database needs it (start-up time)

    box = QMessageBox(QMessageBox.Icon.Warning, APP_NAME, str(exc))
    box.setInformativeText(
        "Hearth can move it aside — it is kept, renamed, next to where it is — and start with an empty chat list."
    )
    fresh = box.addButton(FRESH_START_BUTTON, QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(fresh)
    return box, fresh


def _fatal(message: str) -> int:
    """One sentence on stderr and, where someone can see it, in a message box; exit code 1."""
    print(f"hearth: {message}", file=sys.stderr)
    if QApplication.platformName() != "offscreen":  # nobody could close the box there
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, APP_NAME, message)
    return 1


def _after_first_frame(instance: SingleInstance | None) -> None:
    gc.enable()
    if instance is not None:
        instance.listen()


def _bring_forward(window: QObject) -> None:
    from PySide6.QtWidgets import QWidget

    if isinstance(window, QWidget):
        window.showNormal()
        window.raise_()
        window.activateWindow()
