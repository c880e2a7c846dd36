"""Settings sections for the network features the user turns on: remote engines (OpenAI-compatible
servers whose models join the model picker) and the local API (the window serving its model).

Every network call runs on a thread of its own and comes back as a queued signal; nothing here
waits on the network on the GUI thread.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core import remotes
from app.core.engine.types import EngineError
from app.core.store import ChatStore, StoreError
from app.gui.theme import named

if TYPE_CHECKING:
    from app.gui.api_server import ApiServerController

SERVER_ROLE = Qt.ItemDataRole.UserRole


class ModelsLookup(QObject):
    """Lists a server's models on a thread; `ready(server, models, error)` on the GUI thread."""

    ready = Signal(str, object, str)  # server, list[RemoteModel], "" or a sentence
    _done = Signal(str, object, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._done.connect(self.ready, Qt.ConnectionType.QueuedConnection)

    def start(self, server: str) -> None:
        threading.Thread(target=self._run, args=(server,), name="hearth-remote-models", daemon=True).start()

    def _run(self, server: str) -> None:
        try:
            models = remotes.list_models(server)
        except EngineError as exc:
            self._done.emit(server, [], str(exc))
        except Exception as exc:  # a bug must not end the thread silently
            import logging

            logging.getLogger("hearth.gui.remote").exception("listing %s failed", server)
            self._done.emit(server, [], f"The server's models could not be listed ({type(exc).__name__}).")
        else:
            self._done.emit(server, models, "")


class EnginesPanel(QWidget):
    """Remote servers: add by address (and key), remove; a status line per server."""

    changed = Signal()  # the servers or their models changed: the picker should refresh
    modelsListed = Signal(str, object)  # server, list[RemoteModel]

    def __init__(self, store: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        self.list.setAccessibleName("Remote servers")
        self.list.setMaximumHeight(96)
        layout.addWidget(self.list)
        row = QHBoxLayout()
        self.url = QLineEdit()
        self.url.setPlaceholderText("http://gpu-box.local:8080")
        self.url.setAccessibleName("Server address")
        self.key = QLineEdit()
        self.key.setPlaceholderText("API key (optional)")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setAccessibleName("Server API key")
        self.add_button = QPushButton("Add")
        self.add_button.setAccessibleName("Add the server")
        self.add_button.clicked.connect(self._add)
        self.url.returnPressed.connect(self._add)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setAccessibleName("Remove the selected server")
        self.remove_button.clicked.connect(self._remove)
        row.addWidget(self.url, 3)
        row.addWidget(self.key, 2)
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        layout.addLayout(row)
        self.status = named(
            QLabel(
                "llama-server, vLLM, Ollama, LM Studio or another Hearth: their models join the model "
                "picker. Chats with them leave this computer."
            ),
            "Muted",
        )
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.lookup = ModelsLookup(self)
        self.lookup.ready.connect(self._on_models)
        self._states: dict[str, str] = {}
        self._errors: dict[str, str] = {}  # the last sentence per server, in its tooltip
        for server in remotes.servers(store):
            self._states[server] = "checking…"
            self.lookup.start(server)
        self._show()

    def _show(self) -> None:
        self.list.clear()
        for server in remotes.servers(self.store):
            item = QListWidgetItem(f"{remotes.RemoteModel(server, '').host}  ·  {self._states.get(server, '')}")
            item.setData(SERVER_ROLE, server)
            item.setToolTip("\n".join(filter(None, (server, self._errors.get(server)))))
            self.list.addItem(item)
        self.remove_button.setEnabled(self.list.count() > 0)

    def _add(self) -> None:
        try:
            server = remotes.add_server(self.store, self.url.text(), self.key.text() or None)
        except (EngineError, StoreError) as exc:
            self.status.setText(str(exc))
            return
        except Exception as exc:  # SecretsError: no usable keyring
            self.status.setText(f"The API key could not be kept: {exc}")
            return
        self.url.clear()
        self.key.clear()
        self._states[server] = "checking…"
        self.status.setText(f"Asking {remotes.RemoteModel(server, '').host} for its models…")
        self._show()
        self.lookup.start(server)
        self.changed.emit()

    def _remove(self) -> None:
        item = self.list.currentItem() or self.list.item(0)
        if item is None:
            return
        server = str(item.data(SERVER_ROLE))
        try:
            remotes.remove_server(self.store, server)
        except StoreError as exc:
            self.status.setText(str(exc))
            return
        self._states.pop(server, None)
        self.status.setText(f"Removed {server}.")
        self._show()
        self.modelsListed.emit(server, [])
        self.changed.emit()

    def _on_models(self, server: str, models: list[remotes.RemoteModel], error: str) -> None:
        if server not in remotes.servers(self.store):
            return
        if error:
            self._states[server] = "not ready (see below)"
            self._errors[server] = error
            self.status.setText(error)
        else:
            self._errors.pop(server, None)
            count = len(models)
            self._states[server] = f"ready · {count} model{'s' if count != 1 else ''}"
            self.status.setText(
                f"{remotes.RemoteModel(server, '').host} offers {count} model(s); see the model picker."
            )
        self._show()
        self.modelsListed.emit(server, models)


class ApiPanel(QWidget):
    """The local API switch, its port, whether other computers may connect (with a key)."""

    def __init__(self, api: ApiServerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.api = api
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.enabled = QCheckBox("Serve an OpenAI-compatible API")
        self.enabled.setAccessibleName("Serve the local API")
        self.enabled.setChecked(api.running)
        self.port = QSpinBox()
        self.port.setRange(1024, 65535)
        self.port.setValue(api.port)
        self.port.setPrefix("port ")
        self.port.setAccessibleName("API port")
        row.addWidget(self.enabled)
        row.addStretch(1)
        row.addWidget(self.port)
        layout.addLayout(row)
        self.public = QCheckBox("Let other computers connect (they need the API key)")
        self.public.setAccessibleName("Let other computers connect")
        self.public.setChecked(api.public)
        layout.addWidget(self.public)
        keys = QHBoxLayout()
        self.key_button = QPushButton("New API key…")
        self.key_button.setAccessibleName("Make a new API key")
        self.key_button.clicked.connect(self._new_key)
        self.key_text = QLineEdit()
        self.key_text.setReadOnly(True)
        self.key_text.setAccessibleName("The new API key")
        self.key_text.setVisible(False)
        keys.addWidget(self.key_button)
        keys.addWidget(self.key_text, 1)
        layout.addLayout(keys)
        self.status = named(QLabel(), "Muted")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.enabled.toggled.connect(self._apply)
        self.public.toggled.connect(self._apply)
        self.port.editingFinished.connect(self._apply)
        api.failed.connect(self._on_failed)
        self._show_state()

    def _has_key(self) -> bool:
        from app.cli_serve import API_KEY_NAME
        from app.core import secrets

        return secrets.get_secret(API_KEY_NAME) is not None

    def _new_key(self) -> None:
        import secrets as random

        from app.cli_serve import API_KEY_NAME
        from app.core import secrets

        key = "hk-" + random.token_urlsafe(32)
        try:
            secrets.set_secret(API_KEY_NAME, key)
        except Exception as exc:
            self.status.setText(f"The key could not be kept in the system keyring: {exc}")
            return
        self.key_text.setText(key)
        self.key_text.setVisible(True)
        self.key_text.selectAll()
        self.status.setText("Copy the key now: it is shown only once. Clients send it as 'Authorization: Bearer KEY'.")
        if self.api.running and self.public.isChecked():
            self._apply()  # the running server takes the new key

    def _apply(self) -> None:
        if not self.enabled.isChecked():
            if self.api.running:
                self.api.stop()
            self._show_state()
            return
        if self.public.isChecked() and not self._has_key():
            self.status.setText("Other computers need an API key: make one with New API key…, then turn this on.")
            self.public.blockSignals(True)
            self.public.setChecked(False)
            self.public.blockSignals(False)
        if self.api.running and self.api.server is not None:
            same = self.api.server.port == self.port.value() and self.api.public == self.public.isChecked()
            if same:
                return
        if self.api.start(self.port.value(), self.public.isChecked()):
            self._show_state()
        else:
            self.enabled.blockSignals(True)
            self.enabled.setChecked(False)
            self.enabled.blockSignals(False)

    def _on_failed(self, message: str) -> None:
        self.status.setText(message)

    def _show_state(self) -> None:
        server = self.api.server
        if server is None:
            self.status.setText("Off. Scripts and other apps can use the loaded model through it when it is on.")
        else:
            key = " (API key required)" if server.host != "127.0.0.1" else " (this computer only)"
            self.status.setText(f"Serving at {server.url}/v1{key}. API requests wait behind your replies.")
