"""Reasoning in `<think>…</think>` tags (Qwen3, DeepSeek-R1 and friends), split from the answer.

Two tools: `ThinkParser`, the incremental parser a reply is streamed through, and `strip_think`,
which splits a stored reply in one go. Both rest on `MarkerScanner`, which cuts streamed text into
plain text and marker strings whatever the chunk boundaries (the harmony parser uses it too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from app.core.formats.base import AnswerDelta, ParsedEvent, ReasoningDelta

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# A piece of scanned text: (is_marker, text).
Piece = tuple[bool, str]


class MarkerScanner:
    """Splits a stream of text into plain text and exact marker strings, incrementally.

    Only a tail that could still grow into a marker is held back between feeds, so each feed costs
    O(len(chunk)) and the text a reader sees is never more than one marker-length behind.
    Anything that turns out not to be a marker (a stray "<|" in code, say) comes out as text.
    """

    def __init__(self, markers: Iterable[str]) -> None:
        self._markers = tuple(sorted({m for m in markers if m}, key=len, reverse=True))
        if not self._markers:
            raise ValueError("MarkerScanner needs at least one marker")
        self._longest = len(self._markers[0])
        first_chars = sorted({m[0] for m in self._markers})
        self._candidate = re.compile("|".join(re.escape(c) for c in first_chars))
        self._pending = ""

    @property
    def pending(self) -> str:
        """The held-back tail (a possible marker start); never longer than the longest marker."""
        return self._pending

    def feed(self, text: str) -> list[Piece]:
        s = self._pending + text
        self._pending = ""
        pieces: list[Piece] = []
        text_start = 0
        pos = 0
        n = len(s)
        while True:
            found = self._candidate.search(s, pos)
            if found is None:
                break
            i = found.start()
            marker = next((m for m in self._markers if s.startswith(m, i)), None)
            if marker is not None:
                if i > text_start:
                    pieces.append((False, s[text_start:i]))
                pieces.append((True, marker))
                pos = text_start = i + len(marker)
                continue
            # Near the end, the tail may be the first part of a marker still arriving.
            if n - i < self._longest:
                tail = s[i:]
                if any(m.startswith(tail) for m in self._markers):
                    self._pending = tail
                    n = i
                    break
            pos = i + 1
        if n > text_start:
            pieces.append((False, s[text_start:n]))
        return pieces

    def flush(self) -> list[Piece]:
        """The stream ended: a held-back tail was only text after all."""
        tail, self._pending = self._pending, ""
        return [(False, tail)] if tail else []


class ThinkParser:
    """Streams `<think>` text as ReasoningDelta and everything else as AnswerDelta.

    `started_in_think` is for templates that open the `<think>` block in the prompt itself, so
    the reply begins inside the reasoning. Leading whitespace of the reasoning and of the answer
    is dropped (models put newlines after the tags); a stray `</think>` outside a block is dropped.
    """

    def __init__(self, started_in_think: bool = False) -> None:
        self._scanner = MarkerScanner((THINK_OPEN, THINK_CLOSE))
        self._in_think = started_in_think
        self._at_segment_start = True  # still skipping the segment's leading whitespace

    def feed(self, text: str) -> list[ParsedEvent]:
        return self._consume(self._scanner.feed(text))

    def finish(self) -> list[ParsedEvent]:
        return self._consume(self._scanner.flush())

    def _consume(self, pieces: list[Piece]) -> list[ParsedEvent]:
        events: list[ParsedEvent] = []
        for is_marker, text in pieces:
            if is_marker:
                # Inside a block only its end matters; outside, only a start. Any other tag is
                # shown as written inside reasoning and dropped outside (a stray close tag).
                if self._in_think and text == THINK_CLOSE:
                    self._in_think = False
                    self._at_segment_start = True
                elif not self._in_think and text == THINK_OPEN:
                    self._in_think = True
                    self._at_segment_start = True
                elif self._in_think:
                    self._emit(text, events)
                continue
            self._emit(text, events)
        return events

    def _emit(self, text: str, events: list[ParsedEvent]) -> None:
        if self._at_segment_start:
            text = text.lstrip()
            if not text:
                return
            self._at_segment_start = False
        if self._in_think:
            if events and isinstance(events[-1], ReasoningDelta):
                events[-1] = ReasoningDelta(events[-1].text + text)
            else:
                events.append(ReasoningDelta(text))
        elif events and isinstance(events[-1], AnswerDelta):
            events[-1] = AnswerDelta(events[-1].text + text)
        else:
            events.append(AnswerDelta(text))


def strip_think(text: str) -> tuple[str, str]:
    """Split a complete stored reply into (reasoning, answer), both stripped.

    A reply whose first tag is `</think>` began inside a block the template had opened, so what
    precedes it is reasoning. An unclosed block is all reasoning (the reply was cut off).
    """
    close_at = text.find(THINK_CLOSE)
    open_at = text.find(THINK_OPEN)
    started_in_think = close_at != -1 and (open_at == -1 or open_at > close_at)
    parser = ThinkParser(started_in_think=started_in_think)
    reasoning: list[str] = []
    answer: list[str] = []
    for event in (*parser.feed(text), *parser.finish()):
        if isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, AnswerDelta):
            answer.append(event.text)
    return "".join(reasoning).strip(), "".join(answer).strip()
