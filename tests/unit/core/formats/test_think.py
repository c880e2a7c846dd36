"""ThinkParser (streamed <think>…</think> replies), strip_think and the MarkerScanner under both."""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import pairwise

import pytest

from app.core.formats.base import AnswerDelta, ParsedEvent, ReasoningDelta
from app.core.formats.think import MarkerScanner, ThinkParser, strip_think


def normalise(events: Sequence[ParsedEvent]) -> list[ParsedEvent]:
    out: list[ParsedEvent] = []
    for e in events:
        assert isinstance(e, (ReasoningDelta, AnswerDelta))
        assert e.text, "no empty deltas"
        if out and type(out[-1]) is type(e):
            out[-1] = type(e)(out[-1].text + e.text)
        else:
            out.append(e)
    return out


def parse_chunks(chunks: Sequence[str], started_in_think: bool = False) -> list[ParsedEvent]:
    parser = ThinkParser(started_in_think=started_in_think)
    events: list[ParsedEvent] = []
    for c in chunks:
        events += parser.feed(c)
    events += parser.finish()
    return normalise(events)


# (reply, started_in_think, expected events)
OUTPUTS: dict[str, tuple[str, bool, list[ParsedEvent]]] = {
    # Qwen3 / DeepSeek-R1 shape: the model opens and closes the block itself.
    "qwen3": (
        "<think>\nThe user greets me. Reply kindly.\n</think>\n\nHello! How can I help?",
        False,
        [ReasoningDelta("The user greets me. Reply kindly.\n"), AnswerDelta("Hello! How can I help?")],
    ),
    # The template already wrote "<think>\n": the reply starts inside the reasoning.
    "opened_by_template": (
        "Let me compute 2 < 3 and 3 > 2.\n</think>\n\nYes: 2 < 3.",
        True,
        [ReasoningDelta("Let me compute 2 < 3 and 3 > 2.\n"), AnswerDelta("Yes: 2 < 3.")],
    ),
    "no_thinking": (
        "Just an answer with <b>html</b> and a </thin tag-ish",
        False,
        [AnswerDelta("Just an answer with <b>html</b> and a </thin tag-ish")],
    ),
    "empty_think": ("<think>\n\n</think>\n\nAnswer.", False, [AnswerDelta("Answer.")]),
    "cut_off_in_thinking": (
        "<think>Still thinking about <thi",
        False,
        [ReasoningDelta("Still thinking about <thi")],
    ),
    "cut_off_in_answer": (
        "<think>t</think>The answer <",
        False,
        [ReasoningDelta("t"), AnswerDelta("The answer <")],
    ),
    "stray_close": ("Answer</think> more", False, [AnswerDelta("Answer more")]),
    "literal_open_inside": (
        "<think>about <think> tags</think>ok",
        False,
        [ReasoningDelta("about <think> tags"), AnswerDelta("ok")],
    ),
    "unicode": (
        "<think>日本語 ✓</think>\n答え ✓",
        False,
        [ReasoningDelta("日本語 ✓"), AnswerDelta("答え ✓")],
    ),
    "empty": ("", False, []),
}


@pytest.mark.parametrize("key", OUTPUTS)
def test_whole_output(key: str) -> None:
    text, started, expected = OUTPUTS[key]
    assert parse_chunks([text], started) == expected


@pytest.mark.parametrize("key", OUTPUTS)
def test_every_split_point_gives_the_same_events(key: str) -> None:
    text, started, expected = OUTPUTS[key]
    for i in range(len(text) + 1):
        assert parse_chunks([text[:i], text[i:]], started) == expected, (text[:i], text[i:])


@pytest.mark.parametrize("key", OUTPUTS)
def test_char_by_char_and_random_splits_give_the_same_events(key: str) -> None:
    text, started, expected = OUTPUTS[key]
    assert parse_chunks(list(text), started) == expected
    rng = random.Random(key)
    for _ in range(200):
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(1, 10))))
        chunks = [text[a:b] for a, b in pairwise([0, *cuts, len(text)])]
        assert parse_chunks(chunks, started) == expected, chunks


def test_deltas_are_streamed_as_they_arrive() -> None:
    p = ThinkParser()
    assert p.feed("<thi") == []
    assert p.feed("nk>\nHmm") == [ReasoningDelta("Hmm")]
    assert p.feed(", 1 <") == [ReasoningDelta(", 1 ")]
    assert p.feed(" 2") == [ReasoningDelta("< 2")]
    assert p.feed("</think") == []
    assert p.feed(">\n\n") == []
    assert p.feed("Yes") == [AnswerDelta("Yes")]
    assert p.finish() == []


def test_started_in_think_defaults_to_false() -> None:
    assert parse_chunks(["plain"]) == [AnswerDelta("plain")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>\nreason\n</think>\n\nanswer\n", ("reason", "answer")),
        ("reason</think>answer", ("reason", "answer")),  # the template opened the block
        ("just an answer", ("", "just an answer")),
        ("<think>cut off", ("cut off", "")),
        ("", ("", "")),
        ("a <think>b</think> c", ("b", "a c")),
    ],
)
def test_strip_think(text: str, expected: tuple[str, str]) -> None:
    assert strip_think(text) == expected


def test_scanner_holds_back_only_a_possible_marker_start() -> None:
    s = MarkerScanner(("<|end|>", "<|start|>"))
    assert s.feed("ab<") == [(False, "ab")]
    assert s.pending == "<"
    assert s.feed("|e") == []
    assert s.feed("nd|>c<|x") == [(True, "<|end|>"), (False, "c<|x")]
    assert s.pending == ""
    assert s.feed("<|<|start|>") == [(False, "<|"), (True, "<|start|>")]
    assert s.feed("<|sta") == []
    assert s.flush() == [(False, "<|sta")]
    assert s.flush() == []


def test_scanner_needs_a_marker() -> None:
    with pytest.raises(ValueError):
        MarkerScanner(())
