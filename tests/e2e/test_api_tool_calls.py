"""The API server's tools through the real `openai` client: a client's tool call comes back as
`tool_calls` (finish_reason "tool_calls") and is never run by Hearth, and the client's tool result
leads to the answer — the same harmony parser as the window's tool loop, with the loop left to
the client, as OpenAI does.

What is scripted: the tiny gpt-oss's sampling is forced per round by a grammar
(tests/fixtures/tool_model.py), the stand-in for a tool-trained model; the rest is real.
"""

from __future__ import annotations

import json
import queue
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from app.core.chat.service import ChatService, Loaded, LoadFailed, ServiceEvent
from app.core.server.runner import ApiServer
from tests.fixtures.tool_model import CALCULATOR_CALL, FINAL, GrammarScript

pytestmark = pytest.mark.slow

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate arithmetic.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    }
]


def test_tool_calls_come_back_to_the_client_and_its_results_lead_to_the_answer(tiny_gptoss_path: Path) -> None:
    backend = GrammarScript([CALCULATOR_CALL, FINAL])
    loads: queue.Queue[ServiceEvent] = queue.Queue()
    service = ChatService(None, backend, listener=loads.put, ctx_cap=4096)
    server = None
    try:
        service.load(tiny_gptoss_path)
        while not isinstance(event := loads.get(timeout=300), (Loaded, LoadFailed)):
            pass
        assert isinstance(event, Loaded), event
        server = ApiServer(service, port=0)
        server.start()
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)
        question = [{"role": "user", "content": "What is 6 times 7?"}]
        first = client.chat.completions.create(model=tiny_gptoss_path.stem, messages=question, tools=TOOLS)  # type: ignore[arg-type]
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        [call] = choice.message.tool_calls or []
        assert isinstance(call, ChatCompletionMessageFunctionToolCall)  # not a custom tool call
        assert call.function.name == "calculator" and json.loads(call.function.arguments) == {"expression": "6*7"}
        assert len(backend.requests) == 1  # Hearth ran nothing and did not go on by itself
        follow = [
            *question,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "42"},
        ]
        second = client.chat.completions.create(model=tiny_gptoss_path.stem, messages=follow, tools=TOOLS)  # type: ignore[arg-type]
        assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content == "It is 42."
        sent = backend.requests[-1].conversation.messages
        assert [m.role for m in sent] == ["user", "assistant", "tool"] and sent[-1].content == "42"
    finally:
        if server is not None:
            server.stop()
        service.shutdown()
