"""Tool calls written as `<tool_call>{"name": …, "arguments": {…}}</tool_call>` in the answer text:
the convention of Qwen (2.5, 3), Hermes and other models whose chat template offers tools that way.

`ToolTagParser` wraps a format's own stream parser (the `<think>` parser) and turns each tagged
block of the answer into a ToolCallEvent, so such a model's calls reach the tool loop and the API
server exactly as a gpt-oss call does. `tool_calls_in_text` does the same for a finished text.
"""

from __future__ import annotations

import json

from app.core.formats.base import AnswerDelta, ParsedEvent, StreamParser, ToolCallEvent
from app.core.formats.think import MarkerScanner

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"


def uses_tool_tags(template_source: str) -> bool:
    """Whether a chat template asks for calls in `<tool_call>` tags (Qwen, Hermes)."""
    return TOOL_CALL_OPEN in template_source


def call_from_tag_body(body: str) -> ToolCallEvent:
    """The call in one `<tool_call>` block. A body that is not a JSON object with a name still
    becomes a call (with no name), so the tool loop can tell the model what was wrong."""
    text = body.strip()
    try:
        data = json.loads(text)
    except ValueError:
        return ToolCallEvent("", text, "")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return ToolCallEvent("", text, "")
    arguments = data.get("arguments", data.get("parameters", {}))
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    name = data["name"]
    return ToolCallEvent(name, arguments, name)


class ToolTagParser:
    """A StreamParser over another one: answer text inside `<tool_call>` blocks becomes calls.

    Whitespace-only answer text is held back until real text follows, so the blank lines a model
    writes around its calls do not become an answer of their own.
    """

    def __init__(self, inner: StreamParser) -> None:
        self._inner = inner
        self._scanner = MarkerScanner((TOOL_CALL_OPEN, TOOL_CALL_CLOSE))
        self._in_call = False
        self._body: list[str] = []
        self._blank = ""  # whitespace-only answer text not yet shown

    def feed(self, text: str) -> list[ParsedEvent]:
        return self._split(self._inner.feed(text))

    def finish(self) -> list[ParsedEvent]:
        events = self._split(self._inner.finish())
        for _, piece in self._scanner.flush():
            self._text(piece, events)
        if self._in_call:  # cut off by a stop string or the token limit: what came is the call
            self._in_call = False
            events.append(call_from_tag_body("".join(self._body)))
            self._body = []
        return events

    def _split(self, events: list[ParsedEvent]) -> list[ParsedEvent]:
        out: list[ParsedEvent] = []
        for event in events:
            if not isinstance(event, AnswerDelta):
                out.append(event)
                continue
            for is_marker, piece in self._scanner.feed(event.text):
                if not is_marker:
                    self._text(piece, out)
                elif piece == TOOL_CALL_OPEN and not self._in_call:
                    self._in_call, self._body, self._blank = True, [], ""
                elif piece == TOOL_CALL_CLOSE and self._in_call:
                    self._in_call = False
                    out.append(call_from_tag_body("".join(self._body)))
                    self._body = []
                else:  # a stray tag is text
                    self._text(piece, out)
        return out

    def _text(self, text: str, out: list[ParsedEvent]) -> None:
        if self._in_call:
            self._body.append(text)
        elif not text.strip():
            self._blank += text
        else:
            text, self._blank = self._blank + text, ""
            if out and isinstance(out[-1], AnswerDelta):
                out[-1] = AnswerDelta(out[-1].text + text)
            else:
                out.append(AnswerDelta(text))


def tool_calls_in_text(text: str) -> tuple[str, list[ToolCallEvent]]:
    """A finished answer split into (the text outside the tags, the calls in them)."""

    class _Plain:
        def feed(self, piece: str) -> list[ParsedEvent]:
            return [AnswerDelta(piece)] if piece else []

        def finish(self) -> list[ParsedEvent]:
            return []

    parser = ToolTagParser(_Plain())
    events = [*parser.feed(text), *parser.finish()]
    answer = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    return answer, [e for e in events if isinstance(e, ToolCallEvent)]
