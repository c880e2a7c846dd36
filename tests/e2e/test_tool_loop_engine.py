"""The tool loop with real llama.cpp: the tiny gpt-oss model in the engine process writes real
harmony tool calls, a built-in tool and a real MCP server (stdio, the mcp SDK) run them, and
generation goes on to a final answer that is stored.

What is scripted: the tiny model's random weights cannot choose to call a tool, so each round's
sampling is constrained by a llama.cpp grammar (GBNF) forcing the harmony sequence a
tool-trained gpt-oss would write (`GrammarScript` below sets `GenerateRequest.grammar` per round:
that is the only stand-in, for "a model trained to use tools"). Rendering, tokenizing, the KV
cache, parsing, approval, the tools, the store are all real.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.chat.prompt import prompt_conversation
from app.core.chat.service import ChatService, Loaded, LoadFailed, ReplyOutcome, ServiceEvent, ToolCallUpdate
from app.core.engine.types import Sampling
from app.core.formats.base import RenderOptions
from app.core.formats.harmony import HarmonyFormat
from app.core.store import ChatStore
from app.core.tools.approval import Approvals, Decision
from app.core.tools.mcp import McpManager
from app.core.tools.mcp_config import McpServerConfig
from app.core.tools.registry import ToolRegistry
from tests.fixtures.tiny_gptoss import tiny_gptoss_path  # noqa: F401  (fixture)
from tests.fixtures.tool_model import ADD_CALL, CALCULATOR_CALL, FINAL, GrammarScript

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SEEDED = Sampling(temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, seed=5)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    s = ChatStore(tmp_path / "chat.sqlite3")
    yield s
    s.close()


def test_calls_run_and_the_model_answers_with_kv_reuse(store: ChatStore, tiny_gptoss_path: Path) -> None:  # noqa: F811
    backend = GrammarScript([CALCULATOR_CALL, ADD_CALL, FINAL])
    events: queue.Queue[ServiceEvent] = queue.Queue()
    service = ChatService(store, backend, listener=events.put, ctx_cap=2048)
    server = McpServerConfig(
        name="math",
        command=sys.executable,
        args=("-m", "tests.fixtures.mcp_server"),
        env={"PYTHONPATH": str(ROOT)},
    )
    manager = McpManager([server], secret_reader=lambda _k: None)
    try:
        service.load(tiny_gptoss_path)
        while not isinstance(loaded := events.get(timeout=120), (Loaded, LoadFailed)):
            pass
        assert isinstance(loaded, Loaded), loaded
        tools = ToolRegistry(manager).toolset(["builtin/calculator", "math/add"])
        assert [s.name for s in tools.specs] == ["calculator", "add"]
        conv = store.create_conversation()
        store.add_message(conv.id, "user", "What is 6 times 7?")
        job, message_id = service.start_turn(conv.id, tools=tools, approvals=Approvals(store))
        asked: list[str] = []
        while True:
            event = events.get(timeout=300)
            if isinstance(event, ToolCallUpdate) and event.needs_approval:
                asked.append(event.call.name)  # the MCP tool asks, the calculator does not
                service.decide(job, event.call.call_id, Decision.ONCE)
            if isinstance(event, ReplyOutcome):
                break
    finally:
        service.shutdown(30)
        manager.stop_all()
    assert asked == ["add"]
    assert event.state == "complete", event
    assert event.answer == "It is 42."
    calc, add = event.calls
    assert (calc.name, calc.status, calc.result, calc.reasoning) == ("calculator", "done", "42", "Need math.")
    assert calc.header == " to=functions.calculator<|channel|>commentary json"
    assert (add.name, add.server, add.status, add.result, add.approval) == ("add", "math", "done", "42", "once")
    # Each tool round keeps the KV cache of everything before it: the whole earlier prompt is
    # reused, and only the round's own generation, the tool result and the new generation prompt
    # are evaluated. (The tiny vocabulary re-tokenizes the grammar-forced bytes of the call with
    # its BPE merges, e.g. " t" in " to=", so the reuse ends inside the call here; a model
    # generating its own tokens keeps them up to the call.)
    rounds = event.stats["tool_rounds"]
    assert len(rounds) == 3
    for before, after in zip(rounds, rounds[1:]):
        reused = after["prompt_tokens"] - after["prompt_tokens_evaluated"]
        assert reused >= before["prompt_tokens"], rounds
        assert after["prompt_tokens_evaluated"] <= before["generated_tokens"] + 40, rounds
    # Stored, and rebuilt into the very prompt the last round was sent.
    conversation = store.get_conversation(conv.id)
    assert conversation is not None
    messages = store.messages(conv.id)
    assert messages[-1].id == message_id and messages[-1].content == "It is 42."
    calls = store.tool_calls([message_id])
    rebuilt = prompt_conversation(
        conversation, messages, calls, current=message_id, tools=backend.requests[-1].conversation.tools
    )
    fmt = HarmonyFormat()
    options = RenderOptions(date="2026-12-02")
    assert fmt.render(rebuilt, options) == fmt.render(backend.requests[-1].conversation, options)
