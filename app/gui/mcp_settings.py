"""Settings → Tools: the MCP servers (add, edit, remove, turn on and off, import an `mcpServers`
file, start one to check it) with a status line each, and the tools that are always allowed
(revocable).

Servers start on a thread of their own (`Check`), never on the GUI thread; the status lines are
read from the manager on a timer (the manager's status changes on its servers' threads).
Secret-looking environment values and headers go to the keyring, never into the settings.
"""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core import secrets
from app.core.store import ChatStore, StoreError
from app.core.tools.approval import Approvals
from app.core.tools.mcp import McpManager
from app.core.tools.mcp_config import (
    SETTING,
    McpConfigError,
    McpServerConfig,
    load_configs,
    parse_mcp_servers,
    secret_key,
)
from app.gui.theme import named

PYTHON_SETTING = "tools_python"  # the opt-in Python tool is offered in the tools menu


def _pairs(text: str, separator: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if separator in line:
            key, _, value = line.partition(separator)
            if key.strip():
                out[key.strip()] = value.strip()
    return out


class ServerEditor(QDialog):
    """Add or edit one server: a command (stdio) or a URL (streamable HTTP)."""

    def __init__(self, config: McpServerConfig | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("MCP server")
        self.original = config
        form = QFormLayout(self)
        self.name = QLineEdit(config.name if config else "")
        self.name.setAccessibleName("Server name")
        self.kind = QComboBox()
        self.kind.addItem("Command (stdio)", "stdio")
        self.kind.addItem("URL (streamable HTTP)", "http")
        self.kind.setAccessibleName("How to reach the server")
        self.command = QLineEdit(shlex.join([config.command, *config.args]) if config and config.command else "")
        self.command.setAccessibleName("Command and arguments")
        self.command.setPlaceholderText("npx -y @modelcontextprotocol/server-filesystem /home/me/notes")
        self.url = QLineEdit(config.url if config else "")
        self.url.setAccessibleName("Server URL")
        self.url.setPlaceholderText("http://127.0.0.1:8000/mcp")
        self.values = QPlainTextEdit()
        self.values.setAccessibleName("Environment variables or headers")
        self.values.setPlaceholderText("KEY=value, one a line (secret-looking ones go to the keyring)")
        if config:
            plain = config.env if config.transport == "stdio" else config.headers
            sep = "=" if config.transport == "stdio" else ": "
            self.values.setPlainText("\n".join(f"{k}{sep}{v}" for k, v in plain.items()))
            self.kind.setCurrentIndex(self.kind.findData(config.transport))
        self.secret_note = named(QLabel(), "Muted")
        self.secret_note.setWordWrap(True)
        if config and config.secrets:
            self.secret_note.setText(f"In the keyring: {', '.join(config.secrets)} (leave out to keep them).")
        self.error = named(QLabel(), "ErrorLabel")
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        form.addRow("Command", self.command)
        form.addRow("URL", self.url)
        form.addRow("Values", self.values)
        form.addRow("", self.secret_note)
        form.addRow("", self.error)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._save)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self._kind_changed()
        self.result_config: McpServerConfig | None = None
        self.result_secrets: dict[str, str] = {}

    def _kind_changed(self) -> None:
        stdio = self.kind.currentData() == "stdio"
        self.command.setEnabled(stdio)
        self.url.setEnabled(not stdio)

    def _save(self) -> None:
        try:
            config, secret = self.config()
        except (McpConfigError, ValueError) as exc:
            self.error.setText(str(exc))
            self.error.setVisible(True)
            return
        self.result_config, self.result_secrets = config, secret
        self.accept()

    def config(self) -> tuple[McpServerConfig, dict[str, str]]:
        stdio = self.kind.currentData() == "stdio"
        kept = self.original.secrets if self.original else ()
        enabled = self.original.enabled if self.original else True
        if stdio:
            words = shlex.split(self.command.text())
            base = McpServerConfig(
                self.name.text().strip(), command=words[0] if words else "", args=tuple(words[1:]), secrets=kept
            )
            config, secret = base.with_secrets_split(_pairs(self.values.toPlainText(), "="), {})
        else:
            base = McpServerConfig(self.name.text().strip(), url=self.url.text().strip(), secrets=kept)
            config, secret = base.with_secrets_split({}, _pairs(self.values.toPlainText(), ":"))
        from dataclasses import replace

        return replace(config, enabled=enabled).check(), secret


class McpServersPanel(QWidget):
    changed = Signal()

    def __init__(
        self, store: ChatStore, manager: McpManager, approvals: Approvals, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.store, self.manager, self.approvals = store, manager, approvals
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.python = QCheckBox("Let the model run Python programs (in a separate process; asks every time)")
        self.python.setAccessibleName("Offer the Python tool")
        self.python.setChecked(bool(store.get_setting(PYTHON_SETTING, False)))
        self.python.toggled.connect(self._on_python)
        layout.addWidget(self.python)
        self.list = QListWidget()
        self.list.setAccessibleName("MCP servers")
        self.list.setMinimumHeight(90)
        layout.addWidget(self.list)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add…")
        self.edit_button = QPushButton("Edit…")
        self.remove_button = QPushButton("Remove")
        self.check_button = QPushButton("Check")
        self.import_button = QPushButton("Import…")
        self.add_button.setAccessibleName("Add an MCP server")
        self.edit_button.setAccessibleName("Edit the selected MCP server")
        self.remove_button.setAccessibleName("Remove the selected MCP server")
        self.check_button.setAccessibleName("Start the selected MCP server and list its tools")
        self.import_button.setAccessibleName("Import MCP servers from an mcpServers JSON file")
        for b in (self.add_button, self.edit_button, self.remove_button, self.check_button, self.import_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.message = named(QLabel(), "NoticeLabel")
        self.message.setWordWrap(True)
        self.message.setVisible(False)
        layout.addWidget(self.message)
        layout.addWidget(named(QLabel("Always allowed without asking:"), "Muted"))
        allowed_row = QHBoxLayout()
        self.allowed = QListWidget()
        self.allowed.setAccessibleName("Tools always allowed")
        self.allowed.setMaximumHeight(80)
        self.revoke_button = QPushButton("Revoke")
        self.revoke_button.setAccessibleName("Ask again before the selected tool runs")
        allowed_row.addWidget(self.allowed, 1)
        allowed_row.addWidget(self.revoke_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(allowed_row)
        self.add_button.clicked.connect(lambda: self.edit(None))
        self.edit_button.clicked.connect(lambda: self.edit(self.selected()))
        self.remove_button.clicked.connect(self.remove)
        self.check_button.clicked.connect(self.check)
        self.import_button.clicked.connect(self._choose_import)
        self.revoke_button.clicked.connect(self.revoke)
        self.list.itemChanged.connect(self._on_item_changed)
        self._timer = QTimer(self)
        self._timer.setInterval(400)
        self._timer.timeout.connect(self.refresh_status)
        self._timer.start()
        self.reload()

    # -- the list ---------------------------------------------------------------------------

    def configs(self) -> list[McpServerConfig]:
        return self.manager.configs()

    def selected(self) -> McpServerConfig | None:
        item = self.list.currentItem()
        name = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return next((c for c in self.configs() if c.name == name), None)

    def reload(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for config in self.configs():
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, config.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if config.enabled else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self.refresh_status()
        self.allowed.clear()
        self.allowed.addItems(self.approvals.always_allowed())

    def status_line(self, name: str) -> str:
        config = next((c for c in self.configs() if c.name == name), None)
        if config is not None and not config.enabled:
            return "Turned off."
        return self.manager.status(name).sentence()

    def refresh_status(self) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            name = str(item.data(Qt.ItemDataRole.UserRole))
            config = next((c for c in self.configs() if c.name == name), None)
            where = (config.url or shlex.join([config.command, *config.args])) if config else ""
            text = f"{name} — {where[:80]}\n{self.status_line(name)}"
            if item.text() != text:
                self.list.blockSignals(True)
                item.setText(text)
                self.list.blockSignals(False)

    # -- changes ----------------------------------------------------------------------------

    def _save(self, configs: list[McpServerConfig]) -> bool:
        try:
            self.store.set_setting(SETTING, [c.to_json() for c in configs])
        except StoreError as exc:
            self._say(str(exc))
            return False
        self.manager.set_configs(configs)
        self.reload()
        self.changed.emit()
        return True

    def _store_secrets(self, name: str, values: dict[str, str]) -> bool:
        for key, value in values.items():
            try:
                secrets.set_secret(secret_key(name, key), value)
            except secrets.SecretsError as exc:
                self._say(str(exc))
                return False
        return True

    def edit(self, config: McpServerConfig | None) -> None:
        editor = ServerEditor(config, self)
        if editor.exec() != QDialog.DialogCode.Accepted or editor.result_config is None:
            return
        self.apply_edit(config, editor.result_config, editor.result_secrets)

    def apply_edit(self, old: McpServerConfig | None, new: McpServerConfig, secret: dict[str, str]) -> bool:
        others = [c for c in self.configs() if old is None or c.name != old.name]
        if any(c.name == new.name for c in others):
            self._say(f"There is already a server named {new.name!r}.")
            return False
        if not self._store_secrets(new.name, secret):
            return False
        position = next(
            (i for i, c in enumerate(self.configs()) if old is not None and c.name == old.name), len(others)
        )
        others.insert(position, new)
        return self._save(others)

    def remove(self) -> None:
        config = self.selected()
        if config is None:
            return
        for name in config.secrets:
            secrets.delete_secret(secret_key(config.name, name))
        self._save([c for c in self.configs() if c.name != config.name])

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.ItemDataRole.UserRole)
        on = item.checkState() == Qt.CheckState.Checked
        from dataclasses import replace

        self._save([replace(c, enabled=on) if c.name == name else c for c in self.configs()])

    def check(self) -> None:
        """Start the selected server on a thread of its own; its status line says how it went."""
        config = self.selected()
        if config is None or not config.enabled:
            return
        threading.Thread(
            target=self.manager.connection, args=(config.name,), name="hearth-mcp-check", daemon=True
        ).start()

    def _choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import MCP servers", "", "JSON (*.json);;All files (*)")
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> bool:
        try:
            found = parse_mcp_servers(path.read_bytes()[: 1 << 21])
        except OSError as exc:
            self._say(f"The file could not be read: {exc.strerror or exc}.")
            return False
        except McpConfigError as exc:
            self._say(str(exc))
            return False
        configs = self.configs()
        added = 0
        for config, secret in found:
            if any(c.name == config.name for c in configs):
                continue
            if not self._store_secrets(config.name, secret):
                return False
            configs.append(config)
            added += 1
        skipped = len(found) - added
        if self._save(configs):
            self._say(
                f"Imported {added} server{'s' if added != 1 else ''}"
                + (f"; {skipped} already here." if skipped else ".")
            )
        return True

    def _on_python(self, on: bool) -> None:
        try:
            self.store.set_setting(PYTHON_SETTING, on)
        except StoreError as exc:
            self._say(str(exc))
        self.changed.emit()

    def revoke(self) -> None:
        item = self.allowed.currentItem()
        if item is not None:
            self.approvals.revoke(item.text())
            self.reload()

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(True)


def saved_manager(store: ChatStore) -> McpManager:
    configs, _problems = load_configs(store.get_setting(SETTING, []))
    return McpManager(configs)
