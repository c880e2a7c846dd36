"""The tool loop of the chat service: approval, running, errors the model reads, the round cap,
Stop, persistence and the rebuilt prompt.

The model here is scripted at the backend boundary (a fake): no tool-trained model can run on
this machine, and these cases need a model that calls exactly what the test says, round after
round. The tools, the store, the registry and the approvals are real; the same loop runs against
real llama.cpp in tests/e2e/test_tool_loop_engine.py.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app.core.chat.prompt import prompt_conversation
from app.core.chat.service import ChatService, ReplyNotice, ReplyOutcome, ServiceEvent, ToolCallUpdate
from app.core.engine.types import CancelToken, GenerateRequest, LoadResult
from app.core.formats.base import (
    AnswerDelta,
    Conversation,
    Done,
    Event,
    GenerationStats,
    Message,
    PreambleDelta,
    ReasoningDelta,
    RenderOptions,
    ToolCallEvent,
)
from app.core.formats.harmony import HarmonyFormat
from app.core.store import ChatStore
from app.core.tools.approval import Approvals, Decision
from app.core.tools.base import ToolOutput, ToolSet, ToolSpec
from app.core.tools.loop import MAX_ROUNDS
from app.core.tools.registry import ToolRegistry

HEADER = " to=functions.calculator<|channel|>commentary json"


class ScriptedModel:
    """Plays one list of events per generation (a round), and records every request."""

    def __init__(self, rounds: list[list[Event]]) -> None:
        self.rounds = rounds
        self.requests: list[GenerateRequest] = []

    loaded = True
    result: LoadResult | None = None

    def load(self, *_a: Any, **_k: Any) -> LoadResult:
        raise AssertionError("not used")

    def generate(self, request: GenerateRequest, cancel: CancelToken | None = None) -> Iterator[Event]:
        self.requests.append(request)
        script = self.rounds[min(len(self.requests) - 1, len(self.rounds) - 1)]
        yield from script

    def cancel(self) -> None:
        pass

    def interrupt_load(self) -> None:
        pass

    def save_session(self) -> None:
        pass

    def open_session(self, session: str) -> None:
        pass

    def unload(self) -> None:
        pass

    def close(self) -> None:
        pass


def call_round(name: str = "calculator", arguments: str = '{"expression": "6*7"}') -> list[Event]:
    return [
        ReasoningDelta("Need math."),
        ToolCallEvent(name, arguments, f"functions.{name}", header=HEADER.replace("calculator", name)),
        Done(GenerationStats(prompt_tokens=100, prompt_tokens_evaluated=100, generated_tokens=12), "tool_call"),
    ]


FINAL: list[Event] = [
    ReasoningDelta("Got it."),
    AnswerDelta("It is 42."),
    Done(GenerationStats(prompt_tokens=140, prompt_tokens_evaluated=20, generated_tokens=5), "stop"),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    s = ChatStore(tmp_path / "chat.sqlite3")
    yield s
    s.close()


class Run:
    """One turn through a real ChatService; the listener answers approvals as told."""

    def __init__(self, store: ChatStore, model: ScriptedModel, answer: Decision | None = Decision.ONCE) -> None:
        self.store = store
        self.model = model
        self.answer = answer
        self.events: queue.Queue[ServiceEvent] = queue.Queue()
        self.service = ChatService(store, model, listener=self.events.put, emit_interval=0.01)

    def turn(
        self, question: str, tools: ToolSet, approvals: Approvals | None = None, **kw: Any
    ) -> tuple[ReplyOutcome, list[ServiceEvent]]:
        conv = self.store.create_conversation()
        self.store.add_message(conv.id, "user", question)
        job, _ = self.service.start_turn(conv.id, tools=tools, approvals=approvals, **kw)
        seen: list[ServiceEvent] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            event = self.events.get(timeout=60)
            seen.append(event)
            if isinstance(event, ToolCallUpdate) and event.needs_approval:
                if self.answer is None:
                    self.service.cancel(job)
                else:
                    self.service.decide(job, event.call.call_id, self.answer)
            if isinstance(event, ReplyOutcome):
                return event, seen
        raise AssertionError("the reply did not finish")

    def close(self) -> None:
        self.service.shutdown(10)


def builtin_tools() -> ToolSet:
    return ToolRegistry().toolset(["builtin/*"])


def test_a_call_runs_and_the_model_continues_to_a_final_answer(store: ChatStore) -> None:
    model = ScriptedModel([call_round(), FINAL])
    run = Run(store, model)
    try:
        outcome, events = run.turn("What is 6*7?", builtin_tools(), Approvals())
    finally:
        run.close()
    assert outcome.state == "complete" and outcome.answer == "It is 42."
    [call] = outcome.calls
    assert (call.status, call.result, call.approval, call.server, call.tool) == (
        "done",
        "42",
        "always",
        "builtin",
        "calculator",
    )
    assert call.reasoning == "Need math." and call.header == HEADER
    assert not any(isinstance(e, ToolCallUpdate) and e.needs_approval for e in events)  # the calculator is safe
    # Round 2 saw the call as generated and its result as the tool message.
    second = model.requests[1].conversation
    assert [m.role for m in second.messages] == ["user", "assistant", "tool"]
    assert second.messages[1].tool_calls[0].header == HEADER and second.messages[1].thinking == "Need math."
    assert second.messages[2].content == "42"
    assert {t["function"]["name"] for t in second.tools} == {"current_time", "calculator"}
    assert [r["prompt_tokens_evaluated"] for r in outcome.stats["tool_rounds"]] == [100, 20]
    # Stored: the message keeps the final round's texts, the call the first round's.
    [_, reply] = store.messages(outcome.conversation_id or 0)
    assert (reply.content, reply.reasoning, reply.state) == ("It is 42.", "Got it.", "complete")
    assert store.tool_calls([reply.id])[reply.id] == [call]


def test_the_rebuilt_prompt_is_what_the_last_round_saw(store: ChatStore, tmp_path: Path) -> None:
    """Reopened (a new ChatStore on the same file), the conversation renders the same bytes for
    the tool round as the loop sent, and the next turn drops the finished turn's reasoning."""
    model = ScriptedModel([call_round(), FINAL])
    run = Run(store, model)
    try:
        outcome, _ = run.turn("What is 6*7?", builtin_tools(), Approvals())
    finally:
        run.close()
    fmt = HarmonyFormat()
    options = RenderOptions(date="2026-12-02")
    sent = fmt.render(model.requests[1].conversation, options)
    with ChatStore(store.path) as reopened:
        cid = outcome.conversation_id or 0
        conv = reopened.get_conversation(cid)
        assert conv is not None
        messages = reopened.messages(cid)
        calls = reopened.tool_calls([m.id for m in messages])
        during = prompt_conversation(
            conv, messages, calls, current=messages[-1].id, tools=model.requests[1].conversation.tools
        )
        assert fmt.render(during, options) == sent
        after = fmt.render(prompt_conversation(conv, messages, calls, tools=during.tools), options)
    assert sent.endswith(
        "<|start|>user<|message|>What is 6*7?<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>Need math.<|end|>"
        f'<|start|>assistant{HEADER}<|message|>{{"expression": "6*7"}}<|call|>'
        "<|start|>functions.calculator to=assistant<|channel|>commentary<|message|>42<|end|>"
        "<|start|>assistant"
    )
    assert "Need math." not in after and after.endswith(
        f'<|start|>assistant{HEADER}<|message|>{{"expression": "6*7"}}<|call|>'
        "<|start|>functions.calculator to=assistant<|channel|>commentary<|message|>42<|end|>"
        "<|start|>assistant<|channel|>final<|message|>It is 42.<|end|><|start|>assistant"
    )


@pytest.mark.parametrize(
    ("name", "arguments", "status", "for_model"),
    [
        ("calculator", '{"expression": ', "failed", "Error: The arguments are not valid JSON"),
        ("calculator", "[1, 2]", "failed", "Error: The arguments must be a JSON object."),
        (
            "no_such_tool",
            "{}",
            "failed",
            "Error: There is no tool named 'no_such_tool'; the tools offered are: current_time, calculator.",
        ),
        ("calculator", '{"expression": "1/0"}', "failed", "Error: Division by zero."),
    ],
)
def test_bad_calls_become_results_the_model_reads(
    store: ChatStore, name: str, arguments: str, status: str, for_model: str
) -> None:
    model = ScriptedModel([call_round(name, arguments), FINAL])
    run = Run(store, model)
    try:
        outcome, _ = run.turn("?", builtin_tools(), Approvals())
    finally:
        run.close()
    [call] = outcome.calls
    assert call.status == status and call.result is not None and call.result.startswith(for_model)
    assert call.error and call.error in call.result  # the user sees the same sentence
    assert model.requests[1].conversation.messages[-1].content == call.result
    assert outcome.answer == "It is 42."


def slow_tools(seconds: float, timeout_s: float) -> ToolSet:
    spec = ToolSpec("wait", "test", "wait", "Waits.", timeout_s=timeout_s)

    def run(_args: dict[str, Any], cancel: CancelToken) -> ToolOutput:
        cancel.wait(seconds)
        return ToolOutput("waited")

    def boom(_args: dict[str, Any], _cancel: CancelToken) -> ToolOutput:
        raise RuntimeError("kaput")

    raising = ToolSpec("boom", "test", "boom", "Raises.")
    return ToolSet((spec, raising), {"wait": run, "boom": boom})


def test_a_tool_that_times_out_or_raises(store: ChatStore) -> None:
    approvals = Approvals()
    for spec in slow_tools(0, 1).specs:
        approvals.remember(spec, Decision.ALWAYS)
    model = ScriptedModel([call_round("wait", "{}"), FINAL])
    run = Run(store, model)
    try:
        outcome, _ = run.turn("?", slow_tools(30, 0.3), approvals)
        [call] = outcome.calls
        assert call.status == "failed" and "did not finish within 0.3 seconds" in (call.error or "")
        model.rounds, model.requests = [call_round("boom", "{}"), FINAL], []
        outcome, _ = run.turn("?", slow_tools(0, 5), approvals)
        [call] = outcome.calls
        assert call.status == "failed" and call.error == "The tool failed: RuntimeError: kaput"
    finally:
        run.close()


def test_deny_tells_the_model_and_allow_always_is_remembered_for_the_chat(store: ChatStore) -> None:
    approvals = Approvals(store)
    tools = slow_tools(0, 5)
    model = ScriptedModel([call_round("wait", "{}"), FINAL])
    run = Run(store, model, answer=Decision.DENY)
    try:
        outcome, events = run.turn("?", tools, approvals)
        [call] = outcome.calls
        assert (call.status, call.approval) == ("denied", "denied")
        assert "denied" in model.requests[1].conversation.messages[-1].content
        assert [e.call.status for e in events if isinstance(e, ToolCallUpdate)] == ["waiting", "waiting", "denied"]
        run.answer = Decision.ALWAYS_IN_CHAT
        model.requests = []
        outcome, events = run.turn("?", tools, approvals)
        assert outcome.calls[0].status == "done" and outcome.calls[0].approval == "always"
        cid = outcome.conversation_id
        assert approvals.allowed(tools.specs[0], cid) and not approvals.allowed(tools.specs[0], (cid or 0) + 1)
        assert Approvals(store).allowed(tools.specs[0], cid)  # kept in the store
    finally:
        run.close()


def test_stop_while_waiting_for_approval_ends_the_reply(store: ChatStore) -> None:
    model = ScriptedModel([call_round("wait", "{}"), FINAL])
    run = Run(store, model, answer=None)
    try:
        outcome, _ = run.turn("?", slow_tools(0, 5), Approvals())
    finally:
        run.close()
    assert outcome.state == "stopped" and outcome.calls[0].status == "cancelled"
    assert len(model.requests) == 1  # no round after Stop


def test_stop_cancels_a_running_tool(store: ChatStore) -> None:
    approvals = Approvals()
    tools = slow_tools(60, 120)
    approvals.remember(tools.specs[0], Decision.ALWAYS)
    model = ScriptedModel([call_round("wait", "{}"), FINAL])
    run = Run(store, model)
    try:
        conv = store.create_conversation()
        store.add_message(conv.id, "user", "?")
        job, _ = run.service.start_turn(conv.id, tools=tools, approvals=approvals)
        while True:
            event = run.events.get(timeout=30)
            if isinstance(event, ToolCallUpdate) and event.call.status == "running":
                started = time.monotonic()
                run.service.cancel(job)
            if isinstance(event, ReplyOutcome):
                break
    finally:
        run.close()
    assert time.monotonic() - started < 10
    assert event.state == "stopped" and event.calls[0].status == "cancelled"


def test_the_round_cap_stops_with_a_clear_message(store: ChatStore) -> None:
    model = ScriptedModel([call_round()])  # calls the calculator for ever
    run = Run(store, model)
    try:
        outcome, events = run.turn("?", builtin_tools(), Approvals())
    finally:
        run.close()
    assert len(model.requests) == MAX_ROUNDS + 1 and len(outcome.calls) == MAX_ROUNDS
    assert outcome.error is not None and f"{MAX_ROUNDS} times" in outcome.error
    assert any(isinstance(e, ReplyNotice) and e.text == outcome.error for e in events)
    [_, reply] = store.messages(outcome.conversation_id or 0)
    assert reply.error == outcome.error


def test_without_a_toolset_calls_come_back_unrun(store: ChatStore) -> None:
    """The API server's path: the client's own tools are in the conversation, nothing runs, the
    caller gets the call (as OpenAI does)."""
    model = ScriptedModel([call_round(), FINAL])
    service = ChatService(None, model, emit_interval=0.01)
    tools = ({"type": "function", "function": {"name": "calculator", "parameters": {"type": "object"}}},)
    try:
        events = list(service.stream(GenerateRequest(Conversation((Message("user", "?"),), tools=tools))))
    finally:
        service.shutdown(10)
    assert len(model.requests) == 1
    assert [e for e in events if isinstance(e, ToolCallEvent)] == [
        ToolCallEvent("calculator", '{"expression": "6*7"}', "functions.calculator")
    ]
    assert isinstance(events[-1], Done) and events[-1].stop_reason == "tool_call"


def test_preamble_goes_with_the_round(store: ChatStore) -> None:
    rounds: list[list[Event]] = [[PreambleDelta("Let me compute."), *call_round()], FINAL]
    model = ScriptedModel(rounds)
    run = Run(store, model)
    try:
        outcome, _ = run.turn("?", builtin_tools(), Approvals())
    finally:
        run.close()
    assert outcome.calls[0].preamble == "Let me compute." and outcome.answer == "It is 42."
    assert model.requests[1].conversation.messages[1].content == "Let me compute."


def test_registry_budget_and_unknown_servers() -> None:
    registry = ToolRegistry()
    assert registry.toolset(None).specs == () and registry.toolset([]).specs == ()
    small = registry.toolset(["builtin/*"], budget_tokens=150)
    assert [s.name for s in small.specs] == ["current_time"] and small.left_out == ("builtin/calculator",)
    assert "1 tool left out" in small.notices()[0] and "builtin/calculator" in small.notices()[0]
    only = registry.toolset(["builtin/calculator", "nowhere/*"])
    assert [s.name for s in only.specs] == ["calculator"]
    assert only.problems and "nowhere" in only.problems[0]


def test_approvals_defaults_and_revoking(store: ChatStore) -> None:
    approvals = Approvals(store)
    registry = ToolRegistry(python=True)
    specs = {s.name: s for s, _ in registry.builtin()}
    assert approvals.allowed(specs["calculator"]) and not approvals.allowed(specs["python"])
    approvals.remember(specs["python"], Decision.ALWAYS)
    assert not approvals.allowed(specs["python"])  # asks every time, whatever was clicked
    approvals.revoke("builtin/calculator")
    assert not Approvals(store).allowed(specs["calculator"])
    assert "builtin/calculator" not in approvals.always_allowed()


def test_threads_are_left_behind_by_no_test() -> None:
    assert not [t for t in threading.enumerate() if t.name.startswith("hearth-chat-service")]


# A Qwen-style template (the shape of Qwen3's for tool calls and results, shortened).
QWEN_LIKE = (
    "{% for m in messages %}"
    "{% if m.role == 'assistant' and m.tool_calls %}"
    "<|im_start|>assistant\n{{ m.content }}"
    "{% for c in m.tool_calls %}"
    '<tool_call>\n{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments }}}\n</tool_call>'
    "{% endfor %}<|im_end|>\n"
    "{% elif m.role == 'tool' %}"
    "<|im_start|>user\n<tool_response>\n{{ m.content }}\n</tool_response><|im_end|>\n"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_template_model_s_rounds_rebuild_from_the_store(store: ChatStore) -> None:
    """The same loop for a `<tool_call>` model: its rounds go back through the model's own
    template, in the round's order, the same during the reply and once it is reopened."""
    from app.core.formats.template import TemplateFormat

    model = ScriptedModel([[ToolCallEvent("calculator", '{"expression": "6*7"}'), *call_round()[2:]], FINAL])
    run = Run(store, model)
    try:
        outcome, _ = run.turn("6*7?", builtin_tools(), Approvals())
    finally:
        run.close()
    fmt = TemplateFormat("qwen-like", QWEN_LIKE)
    options = RenderOptions()
    cid = outcome.conversation_id or 0
    conv = store.get_conversation(cid)
    assert conv is not None
    messages = store.messages(cid)
    calls = store.tool_calls([m.id for m in messages])
    during = prompt_conversation(conv, messages, calls, current=messages[-1].id)
    assert (
        fmt.render(during, options)
        == fmt.render(replace(model.requests[1].conversation, tools=()), options)
        == (
            "<|im_start|>user\n6*7?<|im_end|>\n"
            "<|im_start|>assistant\n"
            '<tool_call>\n{"name": "calculator", "arguments": {"expression": "6*7"}}\n</tool_call>'
            "<|im_end|>\n<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
        )
    )
    after = fmt.render(prompt_conversation(conv, messages, calls), options)
    assert after.endswith(
        "</tool_response><|im_end|>\n<|im_start|>assistant\nIt is 42.<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_5_mb_result_is_cut_for_the_model_and_kept_for_the_user(store: ChatStore) -> None:
    spec = ToolSpec("big", "test", "big", "A big result.")
    whole = "x" * 5_000_000
    tools = ToolSet((spec,), {"big": lambda _a, _c: ToolOutput(whole)})
    approvals = Approvals()
    approvals.remember(spec, Decision.ALWAYS)
    model = ScriptedModel([call_round("big", "{}"), FINAL])
    run = Run(store, model)
    try:
        outcome, _ = run.turn("?", tools, approvals)
    finally:
        run.close()
    [call] = outcome.calls
    assert call.status == "done" and call.result is not None and len(call.result) < 16_200
    assert "5,000,000 characters" in call.result
    assert model.requests[1].conversation.messages[-1].content == call.result
    [stored] = store.tool_calls([outcome.message_id or 0])[outcome.message_id or 0]
    assert stored.result_full == whole
