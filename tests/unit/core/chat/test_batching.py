"""Batches of events: joined, sent a few dozen times a second, never held back by a stall."""

from __future__ import annotations

import threading
import time

from app.core.chat.batching import Batcher
from app.core.formats.base import AnswerDelta, ParsedEvent, PreambleDelta, ReasoningDelta, ToolCallEvent, coalesce


def test_coalesce_joins_runs_of_one_kind_and_keeps_order() -> None:
    batch: list[ParsedEvent] = []
    for event in (
        ReasoningDelta("a"),
        ReasoningDelta("b"),
        AnswerDelta("c"),
        AnswerDelta("d"),
        ToolCallEvent("f", "{}"),
        PreambleDelta("e"),
        PreambleDelta("f"),
        ReasoningDelta("g"),
    ):
        coalesce(batch, event)
    assert batch == [
        ReasoningDelta("ab"),
        AnswerDelta("cd"),
        ToolCallEvent("f", "{}"),
        PreambleDelta("ef"),
        ReasoningDelta("g"),
    ]


def test_a_fast_stream_is_sent_in_few_batches_with_nothing_lost() -> None:
    sent: list[list[ParsedEvent]] = []
    with Batcher(sent.append, interval=0.05) as batcher:
        for i in range(2000):
            batcher.add(AnswerDelta(str(i % 10)))
    text = "".join(e.text for batch in sent for e in batch if isinstance(e, AnswerDelta))
    assert text == "".join(str(i % 10) for i in range(2000))
    assert len(sent) < 200  # joined, not one batch per token


def test_the_first_event_is_not_held_for_an_interval() -> None:
    sent: list[tuple[float, list[ParsedEvent]]] = []
    with Batcher(lambda events: sent.append((time.monotonic(), events)), interval=60) as batcher:
        batcher.add(AnswerDelta("first"))
        assert sent and sent[0][1] == [AnswerDelta("first")]  # sent from add(), not by the flusher
        batcher.add(AnswerDelta("second"))  # within the interval: held (until close here)
        assert len(sent) == 1


def test_text_before_a_stall_is_sent_without_waiting_for_the_next_token() -> None:
    arrived = threading.Event()
    sent: list[list[ParsedEvent]] = []

    def send(events: list[ParsedEvent]) -> None:
        sent.append(events)
        arrived.set()

    with Batcher(send, interval=0.05) as batcher:
        batcher.add(AnswerDelta("first"))  # sent at once: nothing was sent for an interval
        arrived.wait(2)
        arrived.clear()
        batcher.add(AnswerDelta("second"))  # too soon: pending, then the generation stalls
        assert arrived.wait(5), "the pending text was held until the next token"
    assert [e for batch in sent for e in batch] == [AnswerDelta("first"), AnswerDelta("second")]


def test_on_tick_runs_while_nothing_arrives() -> None:
    ticks: list[float] = []
    with Batcher(lambda _events: None, interval=0.02, on_tick=lambda: ticks.append(time.monotonic())):
        deadline = time.monotonic() + 5
        while len(ticks) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(ticks) >= 3
