"""QApplication setup, one instance per user, and the window's life from start to exit.

Start-up does nothing slow before the window shows: the store opens (SQLite, milliseconds), the
window appears, and only then does the engine thread begin loading the model.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QMessageBox

from app.core import paths

APP_NAME = "Hearth"
ACTIVATE = b"activate\n"
STARTUP_PROBE_ENV = "HEARTH_STARTUP_PROBE"
STARTUP_PROBE_LINE = "hearth: window shown"


def ensure_platform() -> None:
    """Without a display (CI, SSH) use Qt's offscreen platform instead of aborting."""
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ["QT_QPA_PLATFORM"] = "offscreen"


def application(argv: Sequence[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    ensure_platform()
    app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName("hearth")
    return app


def server_name() -> str:
    """One name per data folder: two Hearths on one database meet; HEARTH_HOME ones do not."""
    digest = hashlib.sha256(str(paths.data_dir(create=False)).encode()).hexdigest()[:16]
    return f"hearth-{digest}"


class SingleInstance(QObject):
    """The first Hearth listens on a local socket; a second one asks it to come forward and exits."""

    activated = Signal()

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or server_name()
        self._server: QLocalServer | None = None

    def activate_running(self, timeout_ms: int = 500) -> bool:
        """True when another instance answered (it has been asked to show its window)."""
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

    def listen(self) -> bool:
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


def run(*, selftest: bool = False, model: str | None = None, argv: Sequence[str] | None = None) -> int:
    app = application(argv)
    if selftest:
        from app.gui.selftest import run_selftest

        return run_selftest(app, model)

    from app.core.store import ChatStore, StoreError
    from app.gui.main_window import MainWindow
    from app.gui.theme import ThemeManager

    instance = SingleInstance()
    if instance.activate_running():
        print("hearth: Hearth is already open; its window was brought forward.", file=sys.stderr)
        return 0
    instance.listen()
    themes = ThemeManager(app)
    try:
        store = ChatStore()
        store.recover_interrupted()
    except StoreError as exc:
        QMessageBox.critical(None, APP_NAME, str(exc))
        print(f"hearth: {exc}", file=sys.stderr)
        return 1
    window = MainWindow(store, model=model)
    instance.activated.connect(lambda: _bring_forward(window))
    themes.changed.connect(lambda _theme: window.on_theme_changed())
    window.show()
    if os.environ.get(STARTUP_PROBE_ENV):
        # bench/startup.py: report once the first frame is up, then leave.
        QTimer.singleShot(0, lambda: (print(STARTUP_PROBE_LINE, flush=True), app.quit()))
    try:
        return app.exec()
    finally:
        window.shutdown()
        instance.close()
        store.close()


def _bring_forward(window: QObject) -> None:
    from PySide6.QtWidgets import QWidget

    if isinstance(window, QWidget):
        window.showNormal()
        window.raise_()
        window.activateWindow()
