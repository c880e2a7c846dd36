"""Settings → Tool servers (MCP), with real widgets, a real MCP server (tests/fixtures/mcp_server.py)
and an in-memory keyring (never the user's): add, check (status line), turn off, edit, remove,
import an mcpServers file, revoke an always-allowed tool."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox
from pytestqt.qtbot import QtBot

from app.core.engine.types import CancelToken
from app.core.store import ChatStore
from app.core.tools.approval import Approvals
from app.core.tools.mcp import McpManager
from app.core.tools.mcp_config import SETTING
from app.gui.mcp_settings import McpServersPanel, ServerEditor
from tests.fixtures.keyring import MemoryKeyring

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def panel(qtbot: QtBot, store: ChatStore, memory_keyring: MemoryKeyring) -> Iterator[McpServersPanel]:
    manager = McpManager([])
    widget = McpServersPanel(store, manager, Approvals(store))
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    manager.stop_all()


def fill(editor: ServerEditor, name: str, command: str, values: str) -> None:
    editor.name.setText(name)
    editor.command.setText(command)
    editor.values.setPlainText(values)
    editor.buttons.button(QDialogButtonBox.StandardButton.Save).click()


def test_add_check_turn_off_and_remove(
    qtbot: QtBot, panel: McpServersPanel, store: ChatStore, memory_keyring: MemoryKeyring
) -> None:
    editor = ServerEditor(None, panel)
    fill(editor, "", "x", "")
    assert editor.error.isVisibleTo(editor) and "cannot be used" in editor.error.text()
    fill(editor, "math", f"{sys.executable} -m tests.fixtures.mcp_server", f"PYTHONPATH={ROOT}\nAPI_KEY=k-1")
    assert editor.result_config is not None
    assert panel.apply_edit(None, editor.result_config, editor.result_secrets)
    saved = store.get_setting(SETTING)
    assert [s["name"] for s in saved] == ["math"] and "k-1" not in json.dumps(saved)
    assert memory_keyring.store[("Hearth", "mcp/math/API_KEY")] == "k-1"
    item = panel.list.item(0)
    assert "Not started" in item.text()

    panel.list.setCurrentRow(0)
    qtbot.mouseClick(panel.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Ready with 8 tools." in panel.list.item(0).text(), timeout=30_000)
    # The secret reached the server's environment through the keyring.
    conn = panel.manager.connection("math")
    assert conn is not None and conn.call("env", {"name": "API_KEY"}, CancelToken()).text == "k-1"

    panel.list.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert store.get_setting(SETTING)[0]["enabled"] is False
    assert "Turned off." in panel.list.item(0).text()

    panel.list.setCurrentRow(0)
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    assert panel.list.count() == 0 and store.get_setting(SETTING) == []
    assert ("Hearth", "mcp/math/API_KEY") not in memory_keyring.store


def test_a_server_that_cannot_start_says_why(qtbot: QtBot, panel: McpServersPanel) -> None:
    editor = ServerEditor(None, panel)
    fill(editor, "ghost", "hearth-no-such-mcp-server --x", "")
    assert editor.result_config is not None and panel.apply_edit(None, editor.result_config, {})
    panel.list.setCurrentRow(0)
    qtbot.mouseClick(panel.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Failed: " in panel.list.item(0).text(), timeout=30_000)
    assert "not found" in panel.list.item(0).text()


def test_edit_keeps_the_position_and_refuses_a_duplicate_name(panel: McpServersPanel) -> None:
    first = ServerEditor(None, panel)
    fill(first, "a", "cmd-a", "")
    assert first.result_config is not None and panel.apply_edit(None, first.result_config, {})
    second = ServerEditor(None, panel)
    fill(second, "b", "cmd-b", "")
    assert second.result_config is not None and panel.apply_edit(None, second.result_config, {})
    edit = ServerEditor(panel.configs()[0], panel)
    assert edit.command.text() == "cmd-a"
    fill(edit, "a2", "cmd-a --flag", "")
    assert edit.result_config is not None and panel.apply_edit(panel.configs()[0], edit.result_config, {})
    assert [(c.name, c.args) for c in panel.configs()] == [("a2", ("--flag",)), ("b", ())]
    clash = ServerEditor(panel.configs()[1], panel)
    fill(clash, "a2", "cmd-b", "")
    assert clash.result_config is not None and not panel.apply_edit(panel.configs()[1], clash.result_config, {})
    assert "already a server named 'a2'" in panel.message.text()


def test_import_of_an_mcp_servers_file(tmp_path: Path, panel: McpServersPanel, memory_keyring: MemoryKeyring) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "files": {"command": "npx", "args": ["-y", "server-fs", "/tmp"], "env": {"GITHUB_TOKEN": "ghp_1"}},
                    "web": {"url": "http://127.0.0.1:9/mcp"},
                }
            }
        )
    )
    assert panel.import_file(path)
    assert [c.name for c in panel.configs()] == ["files", "web"] and panel.message.text() == "Imported 2 servers."
    assert memory_keyring.store[("Hearth", "mcp/files/GITHUB_TOKEN")] == "ghp_1"
    assert panel.import_file(path) and panel.message.text() == "Imported 0 servers; 2 already here."
    path.write_text("{nope")
    assert not panel.import_file(path) and "not JSON" in panel.message.text()


def test_revoke_an_always_allowed_tool(panel: McpServersPanel, store: ChatStore) -> None:
    assert [panel.allowed.item(i).text() for i in range(panel.allowed.count())] == [
        "builtin/calculator",
        "builtin/time",
    ]
    panel.allowed.setCurrentRow(0)
    panel.revoke_button.click()
    assert [panel.allowed.item(i).text() for i in range(panel.allowed.count())] == ["builtin/time"]
    assert "builtin/calculator" in store.get_setting("tool_approvals")["revoked"]


def test_the_python_tool_is_opt_in(panel: McpServersPanel, store: ChatStore) -> None:
    from app.core.tools.registry import ToolRegistry

    assert not panel.python.isChecked() and store.get_setting("tools_python") is None
    panel.python.setChecked(True)
    assert store.get_setting("tools_python") is True
    registry = ToolRegistry(python=bool(store.get_setting("tools_python")))
    [python] = [s for s, _ in registry.builtin() if s.tool == "python"]
    assert python.ask_every_time and not panel.approvals.allowed(python)
