"""What the tool loop adds to the engine's wire: call headers both ways, the grammar."""

from __future__ import annotations

import io

from app.core.engine.types import GenerateRequest
from app.core.engine.wire import decode_event, decode_request, encode_event, encode_request, read_frame, write_frame
from app.core.formats.base import Conversation, Message, ToolCallEvent, ToolCallRequest


def through_pipe(message: dict) -> dict:
    buffer = io.BytesIO()
    write_frame(buffer, message)
    buffer.seek(0)
    got = read_frame(buffer)
    assert got is not None
    return got


def test_a_call_event_keeps_its_header() -> None:
    event = ToolCallEvent("f", '{"a":1}', "functions.f", header=" to=functions.f<|channel|>commentary json")
    back = decode_event(through_pipe({"ev": encode_event(event)})["ev"])
    assert isinstance(back, ToolCallEvent) and back.header == event.header and back == event
    # An engine of the version before sends three fields.
    assert decode_event(["t", "f", "{}", "functions.f"]) == ToolCallEvent("f", "{}", "functions.f")


def test_a_request_keeps_call_headers_and_the_grammar() -> None:
    call = ToolCallRequest("f", "{}", "c1", "<|channel|>commentary to=functions.f <|constrain|>json")
    request = GenerateRequest(
        Conversation((Message("user", "?"), Message("assistant", tool_calls=(call,)), Message("tool", "r"))),
        grammar='root ::= "x"',
    )
    back = decode_request(through_pipe(encode_request(request)))
    assert back == request
    old = encode_request(request)
    old["messages"][1]["tool_calls"] = [["f", "{}", "c1"]]
    del old["grammar"]
    assert decode_request(old).conversation.messages[1].tool_calls == (ToolCallRequest("f", "{}", "c1"),)
    assert decode_request(old).grammar is None
