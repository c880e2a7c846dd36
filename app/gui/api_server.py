"""The local API inside the window (Settings → Local API): the same server as `hearth serve`,
over the window's own chat service, so API requests share the loaded model and queue behind the
user's reply. Off by default; the choice (and the port, and whether other computers may connect)
is remembered, and the server starts again with the window when it was on."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal

from app.core.store import ChatStore, StoreError

if TYPE_CHECKING:
    from app.core.server.app import ServerState
    from app.core.server.runner import ApiServer
    from app.gui.workers import EngineController

log = logging.getLogger("hearth.gui.api")

SETTING_ENABLED = "api.enabled"
SETTING_PORT = "api.port"
SETTING_PUBLIC = "api.public"  # listen on every address (needs the API key)
DEFAULT_PORT = 8080


class ApiServerController(QObject):
    stateChanged = Signal(str)  # the chip's text ("" while off)
    failed = Signal(str)  # a sentence: the server could not start
    _changed = Signal(object)  # ServerState, from the server's thread, delivered queued

    def __init__(self, store: ChatStore, engine: EngineController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store, self.engine = store, engine
        self.server: ApiServer | None = None
        self._changed.connect(self._on_state, Qt.ConnectionType.QueuedConnection)

    # -- settings -------------------------------------------------------------------------------

    def setting(self, key: str, default: object) -> object:
        try:
            return self.store.get_setting(key, default)
        except StoreError:
            return default

    @property
    def port(self) -> int:
        value = self.setting(SETTING_PORT, DEFAULT_PORT)
        return value if isinstance(value, int) and 0 < value < 65536 else DEFAULT_PORT

    @property
    def public(self) -> bool:
        return self.setting(SETTING_PUBLIC, False) is True

    @property
    def running(self) -> bool:
        return self.server is not None

    def restore(self) -> None:
        """At start-up: serve again if the user left the server on."""
        if self.setting(SETTING_ENABLED, False) is True:
            self.start()

    # -- on / off -------------------------------------------------------------------------------

    def start(self, port: int | None = None, public: bool | None = None) -> bool:
        """Start serving (restarting with new settings when already on). False, with `failed`
        emitted, when it cannot: the port is taken, or other computers would need a key."""
        from app.cli_serve import API_KEY_NAME
        from app.core import secrets
        from app.core.server.app import ServerState
        from app.core.server.runner import ApiServer, ServerError

        port = self.port if port is None else port
        public = self.public if public is None else public
        self.stop(remember=False)
        host = "0.0.0.0" if public else "127.0.0.1"
        key = secrets.get_secret(API_KEY_NAME) if public else None
        state = ServerState(on_change=self._changed.emit)
        try:
            server = ApiServer(self.engine.service, host=host, port=port, api_key=key, state=state)
            server.start()
        except ServerError as exc:
            self.failed.emit(str(exc))
            self.stateChanged.emit("")
            return False
        self.server = server
        self._remember(True, port, public)
        log.info("API serving at %s (key: %s)", server.url, "yes" if key else "no")
        self._on_state(state)
        return True

    def stop(self, *, remember: bool = True) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()
        if remember:
            self._remember(False, self.port, self.public)
        self.stateChanged.emit("")

    def shutdown(self) -> None:
        """The window closes: stop serving, keep the choice for the next start."""
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def _remember(self, enabled: bool, port: int, public: bool) -> None:
        try:
            self.store.set_setting(SETTING_ENABLED, enabled)
            self.store.set_setting(SETTING_PORT, port)
            self.store.set_setting(SETTING_PUBLIC, public)
        except StoreError as exc:
            self.failed.emit(str(exc))

    # -- the chip -------------------------------------------------------------------------------

    def chip_text(self, state: ServerState | None = None) -> str:
        if self.server is None:
            return ""
        state = state or self.server.state
        where = "" if self.server.host == "127.0.0.1" else " (network)"
        parts = [f"API on :{self.server.port}{where}"]
        if state.running:
            parts.append("answering")
        if state.waiting:
            parts.append(f"{state.waiting} waiting")
        return " · ".join(parts)

    def _on_state(self, state: ServerState) -> None:
        self.stateChanged.emit(self.chip_text(state))
