"""`hearth ask --tools … --mcp … [--yes]`: bad input as one sentence (a real subprocess), and the
terminal's tool loop (`_tool_stream`) with the real engine, the built-in calculator, a real stdio
MCP server and approval read from standard input.

What is scripted: the tiny gpt-oss's sampling is forced per round by a grammar
(tests/fixtures/tool_model.py), the stand-in for a tool-trained model.
"""

from __future__ import annotations

import argparse
import io
import json
import queue
import sys
from pathlib import Path

import pytest

from app.cli import _ask_tools, _tool_stream
from app.core.chat.service import ChatService, Loaded, LoadFailed, ServiceEvent
from app.core.engine.types import GenerateRequest
from app.core.formats.base import AnswerDelta, Conversation, Done, Message
from tests.e2e.test_cli_headless import hearth, one_sentence
from tests.fixtures.tool_model import ADD_CALL, CALCULATOR_CALL, FINAL, GrammarScript

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def servers_file(tmp_path: Path) -> Path:
    path = tmp_path / "servers.json"
    entry = {"command": sys.executable, "args": ["-m", "tests.fixtures.mcp_server"], "env": {"PYTHONPATH": str(ROOT)}}
    path.write_text(json.dumps({"mcpServers": {"math": entry}}))
    return path


@pytest.mark.parametrize(
    ("argv", "stdin", "expected"),
    [
        (
            ("ask", "--tools", "calculator,shell", "hi"),
            None,
            "Unknown tool 'shell'; the built-in tools are: time, calculator, python.",
        ),
        (("ask", "--mcp", "/no/such/servers.json", "hi"), None, "The file /no/such/servers.json cannot be read"),
        (("ask", "--tools", "calculator", "-"), b"hi", "tool calls cannot be approved there: add --yes."),
    ],
)
def test_bad_tool_arguments_are_sentences(
    tmp_path: Path, argv: tuple[str, ...], stdin: bytes | None, expected: str
) -> None:
    assert expected in one_sentence(hearth(*argv, home=tmp_path, stdin=stdin))


def test_a_bad_mcp_file_is_a_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"mcpServers": {"x": {"url": "ftp://nope"}}}')
    assert "must start with http" in one_sentence(hearth("ask", "--mcp", str(bad), "hi", home=tmp_path))


def test_the_terminal_tool_loop_asks_on_stdin(
    tiny_gptoss_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = argparse.Namespace(tools="calculator", mcp=str(servers_file(tmp_path)), yes=False, question="What?")
    tools, manager = _ask_tools(args)
    assert [s.name for s in tools.specs][:2] == ["calculator", "add"]
    backend = GrammarScript([CALCULATOR_CALL, ADD_CALL, FINAL])
    loads: queue.Queue[ServiceEvent] = queue.Queue()
    service = ChatService(None, backend, listener=loads.put, ctx_cap=4096)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # the user answers "y" to the MCP tool
    out = io.StringIO()
    try:
        service.load(tiny_gptoss_path)
        while not isinstance(event := loads.get(timeout=300), (Loaded, LoadFailed)):
            pass
        assert isinstance(event, Loaded), event
        request = GenerateRequest(Conversation((Message("user", "What is 6 times 7?"),)))
        events = list(_tool_stream(service, request, tools, args, out))
    finally:
        service.shutdown()
        manager.stop_all()
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == "It is 42."
    assert isinstance(events[-1], Done) and events[-1].stop_reason == "stop"
    assert out.getvalue() == "[tool done] calculator: 42\n[tool done] add: 42\n"
    assert sys.stdin.read() == ""  # the one answer was read: only the MCP tool asked
