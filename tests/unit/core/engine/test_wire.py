"""The frames between the app and its engine process."""

from __future__ import annotations

import io
import struct

import pytest

from app.core.engine.types import GenerateRequest, Sampling
from app.core.engine.wire import (
    WireError,
    decode_done,
    decode_event,
    decode_request,
    encode_done,
    encode_event,
    encode_request,
    read_frame,
    write_frame,
)
from app.core.formats.base import (
    AnswerDelta,
    Conversation,
    Done,
    GenerationStats,
    Message,
    ParsedEvent,
    PreambleDelta,
    ReasoningDelta,
    ToolCallEvent,
    ToolCallRequest,
)


def roundtrip(message: dict) -> dict | None:
    buf = io.BytesIO()
    write_frame(buf, message)
    buf.seek(0)
    return read_frame(buf)


def test_frames_round_trip_any_text_including_lone_surrogates() -> None:
    text = "naïve 日本語 😀 \ud800 <|start|> \x00"
    assert roundtrip({"t": "x", "text": text}) == {"t": "x", "text": text}


def test_several_frames_in_a_row_then_the_end() -> None:
    buf = io.BytesIO()
    for i in range(3):
        write_frame(buf, {"i": i})
    buf.seek(0)
    assert [read_frame(buf) for _ in range(4)] == [{"i": 0}, {"i": 1}, {"i": 2}, None]


@pytest.mark.parametrize(
    "raw, why",
    [
        (struct.pack("<I", 10) + b"{}", "ended inside"),
        (struct.pack("<I", 3) + b"abc", "not JSON"),
        (struct.pack("<I", 2) + b"[]", "not a JSON object"),
        (struct.pack("<I", 0xFFFFFFFF), "claims"),
        (b"\x01\x00", "ended inside"),
    ],
)
def test_a_bad_frame_is_refused_not_trusted(raw: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        read_frame(io.BytesIO(raw))


def test_events_round_trip() -> None:
    events: list[ParsedEvent] = [
        ReasoningDelta("think"),
        AnswerDelta("answer"),
        PreambleDelta("pre"),
        ToolCallEvent("get_weather", '{"city":"Paris"}', "functions.get_weather"),
    ]
    assert [decode_event(encode_event(e)) for e in events] == events


@pytest.mark.parametrize("item", [None, [], ["r"], ["x", "y"], ["r", 5], ["t", "a", "b"], "r"])
def test_a_malformed_event_is_refused(item: object) -> None:
    with pytest.raises(WireError):
        decode_event(item)


def test_done_round_trips_and_unknown_stats_are_dropped() -> None:
    done = Done(GenerationStats(prompt_tokens=5, generated_tokens=3, tokens_per_s=1.5), "length", None)
    assert decode_done(encode_done(done)) == done
    odd = decode_done({"stats": {"prompt_tokens": 2, "evil": "x", "generated_tokens": "3"}, "stop": "stop"})
    assert odd.stats == GenerationStats(prompt_tokens=2)


def test_requests_round_trip() -> None:
    conv = Conversation(
        (
            Message("system", "Be brief."),
            Message("user", "hi \ud83d"),
            Message("assistant", "", thinking="t", tool_calls=(ToolCallRequest("f", "{}", "call_1"),)),
            Message("tool", "42", name="f", tool_call_id="call_1"),
        ),
        tools=({"type": "function", "function": {"name": "f"}},),
    )
    request = GenerateRequest(
        conv,
        effort="high",
        date="2026-12-01",
        max_tokens=7,
        sampling=Sampling(temperature=0.0, seed=3),
        ignore_eos=True,
    )
    assert decode_request(encode_request(request)) == request
    assert decode_request(encode_request(GenerateRequest(conv))).sampling is None


def test_a_malformed_request_is_refused() -> None:
    with pytest.raises(WireError):
        decode_request({"messages": [{"content": "no role"}]})
    with pytest.raises(WireError):
        decode_request({"messages": [{"role": "user"}], "sampling": {"temperature": float("nan")}})
