"""OpenAI's harmony format, which gpt-oss was trained on: prompt rendering and reply parsing.

The strings follow OpenAI's harmony guide (github.com/openai/harmony, docs/format.md), its
reference renderer (openai/harmony src/encoding.rs) and the gpt-oss chat template
(openai/gpt-oss-20b chat_template.jinja, the one in the GGUF). Where they differ:

- a tool call in history is written exactly as the model generated it when its header is known
  (`ToolCallRequest.header`, which the parser records), so that the next tool round reuses the KV
  cache up to the call; otherwise in the form the reference renderer and the chat template use,
  the recipient before the channel: `<|start|>assistant to=functions.X<|channel|>commentary
  json<|message|>{args}<|call|>`. The arguments go in as given (the template JSON-encodes them a
  second time). The parser accepts the recipient before or after the channel
  (`<|channel|>commentary to=functions.X <|constrain|>json`, the guide's examples), and a
  conversation imported with either spelling of the name (`X`, `functions.X`) renders the same;
- tool results go in as they are (the template JSON-quotes them);
- the developer message has no trailing blank line after the instructions (the template adds one
  when there are no tools);
- a parameter's default is `, // default: X` with no extra comma after it.

Which analysis to keep follows the template: an earlier turn's reasoning is dropped, except for
an assistant message that calls a tool and is not yet followed by a final answer, since the model
continues that chain of thought after the tool result.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from app.core.formats.base import (
    AnswerDelta,
    Conversation,
    Message,
    ParsedEvent,
    PreambleDelta,
    ReasoningDelta,
    RenderOptions,
    StreamParser,
    ToolCallEvent,
    ToolCallRequest,
)
from app.core.formats.think import MarkerScanner

START = "<|start|>"
END = "<|end|>"
MESSAGE = "<|message|>"
CHANNEL = "<|channel|>"
CONSTRAIN = "<|constrain|>"
RETURN = "<|return|>"
CALL = "<|call|>"
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"

_MARKERS: tuple[str, ...] = (
    START,
    END,
    MESSAGE,
    CHANNEL,
    CONSTRAIN,
    RETURN,
    CALL,
    START_OF_TEXT,
    END_OF_TEXT,
)

MODEL_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
KNOWLEDGE_CUTOFF = "2024-06"
VALID_CHANNELS_LINE = "# Valid channels: analysis, commentary, final. Channel must be included for every message."
FUNCTIONS_CHANNEL_LINE = "Calls to these tools must go to the commentary channel: 'functions'."


def harmony_control_markers() -> tuple[str, ...]:
    """Every harmony special-token string, for the guard that keeps them out of user text."""
    return _MARKERS


# ---- rendering -------------------------------------------------------------------------------


class HarmonyFormat:
    """The gpt-oss prompt format (ChatFormat)."""

    name = "harmony"

    @property
    def stop_strings(self) -> tuple[str, ...]:
        return (RETURN, CALL)

    def new_parser(self) -> StreamParser:
        return HarmonyParser()

    def render(self, conversation: Conversation, options: RenderOptions) -> str:
        tools = [_function_of(t) for t in conversation.tools]
        # The user's own system prompt is the developer message's instructions in harmony;
        # the system message proper only carries identity, dates and reasoning effort.
        instructions = "\n\n".join(
            m.content for m in conversation.messages if m.role in ("system", "developer") and m.content
        )
        turns = [m for m in conversation.messages if m.role not in ("system", "developer")]

        out = [_system_message(options, has_tools=bool(tools))]
        if instructions or tools:
            out.append(_developer_message(instructions, tools))
        out.extend(_render_turns(turns, options.add_generation_prompt))
        if options.add_generation_prompt:
            out.append(f"{START}assistant")
        return "".join(out)


def _system_message(options: RenderOptions, has_tools: bool) -> str:
    date = options.date or _dt.date.today().isoformat()
    channels = VALID_CHANNELS_LINE + (f"\n{FUNCTIONS_CHANNEL_LINE}" if has_tools else "")
    body = (
        f"{MODEL_IDENTITY}\nKnowledge cutoff: {KNOWLEDGE_CUTOFF}\nCurrent date: {date}\n\n"
        f"Reasoning: {options.effort}\n\n{channels}"
    )
    return f"{START}system{MESSAGE}{body}{END}"


def _developer_message(instructions: str, tools: Sequence[Mapping[str, Any]]) -> str:
    sections: list[str] = []
    if instructions:
        sections += ["# Instructions", instructions]
    if tools:
        sections.append("# Tools\n\n" + _functions_namespace(tools))
    return f"{START}developer{MESSAGE}" + "\n\n".join(sections) + END


def _render_turns(turns: Sequence[Message], add_generation_prompt: bool) -> list[str]:
    out: list[str] = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name, to label results
    last_call: str | None = None
    for index, m in enumerate(turns):
        if m.role == "user":
            out.append(f"{START}user{MESSAGE}{m.content}{END}")
        elif m.role == "assistant" and m.tool_calls:
            # Keep this turn's reasoning only while its tool sequence is still open: once a later
            # assistant message answers without calling a tool, the chain of thought is done.
            answered_later = any(later.role == "assistant" and not later.tool_calls for later in turns[index + 1 :])
            if m.thinking and not answered_later:
                out.append(f"{START}assistant{CHANNEL}analysis{MESSAGE}{m.thinking}{END}")
            if m.content:
                # Text shown to the user before a tool call is a commentary preamble.
                out.append(f"{START}assistant{CHANNEL}commentary{MESSAGE}{m.content}{END}")
            for call in m.tool_calls:
                out.append(f"{START}assistant{_call_header(call)}{MESSAGE}{call.arguments}{CALL}")
                last_call = call.name
                if call.id:
                    call_names[call.id] = call.name
        elif m.role == "assistant":
            if index == len(turns) - 1 and not add_generation_prompt:
                # A complete final turn (as in training data): its reasoning and <|return|>.
                if m.thinking:
                    out.append(f"{START}assistant{CHANNEL}analysis{MESSAGE}{m.thinking}{END}")
                out.append(f"{START}assistant{CHANNEL}final{MESSAGE}{m.content}{RETURN}")
            else:
                out.append(f"{START}assistant{CHANNEL}final{MESSAGE}{m.content}{END}")
            last_call = None
        elif m.role == "tool":
            name = m.name or (call_names.get(m.tool_call_id or "")) or last_call or "unknown"
            out.append(f"{START}{_recipient(name)} to=assistant{CHANNEL}commentary{MESSAGE}{m.content}{END}")
        # Any other role has no place in a harmony conversation and is left out, as the
        # official template does.
    return out


def _recipient(name: str) -> str:
    return name if name.startswith("functions.") else f"functions.{name}"


# The headers gpt-oss writes for a function call, after `<|start|>assistant`: the recipient before
# or after the channel, with or without the content type (as `json` or `<|constrain|>json`).
_CONTENT_TYPE = r"(?: json| ?<\|constrain\|>json)?"
_CALL_HEADERS = (
    re.compile(r" to=(?P<r>[^\s<]+)<\|channel\|>commentary" + _CONTENT_TYPE),
    re.compile(r"<\|channel\|>commentary to=(?P<r>[^\s<]+)" + _CONTENT_TYPE),
)


def _call_header(call: ToolCallRequest) -> str:
    """The header of a call in history: the one the model generated when it has one of the known
    shapes and names this call's function (anything else could smuggle control tokens in), else
    the reference renderer's."""
    recipient = _recipient(call.name)
    for shape in _CALL_HEADERS:
        found = shape.fullmatch(call.header)
        if found is not None and found.group("r") == recipient:
            return call.header
    return f" to={recipient}{CHANNEL}commentary json"


# ---- tool definitions as TypeScript ----------------------------------------------------------


def _function_of(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    """The function part of an OpenAI tool definition (also accepts a bare function)."""
    function = tool.get("function")
    return function if isinstance(function, Mapping) else tool


def _functions_namespace(tools: Sequence[Mapping[str, Any]]) -> str:
    out = ["## functions\n\nnamespace functions {\n\n"]
    for tool in tools:
        name = tool.get("name")
        if not name:
            raise ValueError(f"A tool definition has no name: {dict(tool)!r}")
        out.extend(_comment_lines(str(tool.get("description") or ""), indent=""))
        params = tool.get("parameters")
        if isinstance(params, Mapping) and params.get("properties"):
            out.append(f"type {name} = (_: {_object_type(params, indent='')}) => any;\n\n")
        else:
            out.append(f"type {name} = () => any;\n\n")
    out.append("} // namespace functions")
    return "".join(out)


def _comment_lines(text: str, indent: str) -> list[str]:
    return [f"{indent}// {line}\n" for line in text.splitlines()]


def _object_type(schema: Mapping[str, Any], indent: str) -> str:
    """`{ ... }` with one property a line, as the reference renderer nests objects."""
    required = set(schema.get("required") or ())
    lines = ["{\n"]
    for key, spec in (schema.get("properties") or {}).items():
        spec = spec if isinstance(spec, Mapping) else {}
        lines.extend(_comment_lines(str(spec.get("description") or ""), indent))
        optional = "" if key in required else "?"
        line = f"{indent}{key}{optional}: {_ts_type(spec, indent + '    ')},"
        if "default" in spec:
            line += f" // default: {_default_text(spec)}"
        lines.append(line + "\n")
    lines.append(f"{indent}}}")
    return "".join(lines)


_SCALAR_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "null": "null",
    "object": "object",
    "array": "any[]",
}


def _ts_type(spec: Mapping[str, Any], indent: str) -> str:
    rendered = _ts_type_bare(spec, indent)
    if spec.get("nullable") and "null" not in rendered:
        rendered += " | null"
    return rendered


def _ts_type_bare(spec: Mapping[str, Any], indent: str) -> str:
    kind = spec.get("type")
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        return " | ".join(f'"{v}"' if isinstance(v, str) else json.dumps(v) for v in enum)
    if isinstance(kind, list):  # e.g. ["string", "null"]
        return " | ".join(_SCALAR_TYPES.get(str(k), str(k)) for k in kind) or "any"
    if kind == "array":
        items = spec.get("items")
        return f"{_ts_type(items, indent)}[]" if isinstance(items, Mapping) and items else "any[]"
    if kind == "object":
        return _object_type(spec, indent) if spec.get("properties") else "object"
    if isinstance(kind, str) and kind in _SCALAR_TYPES:
        return _SCALAR_TYPES[kind]
    variants = spec.get("oneOf") or spec.get("anyOf")
    if isinstance(variants, list) and variants:
        # As the official template: unions of objects are too long to be useful, so `any`.
        if len(variants) > 1 and any(isinstance(v, Mapping) and v.get("type") == "object" for v in variants):
            return "any"
        return " | ".join(_ts_type(v, indent) for v in variants if isinstance(v, Mapping))
    return "any"


def _default_text(spec: Mapping[str, Any]) -> str:
    default = spec["default"]
    if isinstance(default, str):
        # An enum member is written bare (`// default: celsius`), any other string quoted.
        return default if spec.get("enum") else json.dumps(default, ensure_ascii=False)
    return json.dumps(default, ensure_ascii=False, separators=(",", ":"))


# ---- parsing ---------------------------------------------------------------------------------


class _State(Enum):
    START = "start"  # nothing seen yet: a header, or plain text from a model that skips harmony
    HEADER = "header"  # between <|start|> (or a bare <|channel|>) and <|message|>
    CONTENT = "content"  # a message's text
    BETWEEN = "between"  # after a message ended, waiting for the next <|start|>


_Delta = ReasoningDelta | AnswerDelta | PreambleDelta
_ENDS_MESSAGE = frozenset({END, RETURN, CALL, END_OF_TEXT})
_RECIPIENT_START = (" to=", "to=")
_RECIPIENT = re.compile(r"\bto=([^\s<]+)")
_WORD = re.compile(r"[^\s<]+")


class HarmonyParser:
    """Incremental parser of what gpt-oss generates after the prompt's `<|start|>assistant`.

    The reply is a run of messages, `<|channel|>analysis<|message|>…<|end|><|start|>assistant
    <|channel|>final<|message|>…<|return|>`; this turns it into events as the text arrives:
    analysis → ReasoningDelta, final → AnswerDelta, commentary → PreambleDelta, and a message
    with a recipient (`to=functions.x`) → one ToolCallEvent when it ends (`<|call|>`, `<|end|>`,
    or the end of the stream, since `<|call|>` is a stop string the engine may cut).
    """

    def __init__(self) -> None:
        self._scanner = MarkerScanner(_MARKERS)
        self._state = _State.START
        self._start_text = ""  # text at the very start, until we know if it is a header
        self._header: list[str] = []
        self._header_has_role = False  # after <|start|> the header names its role first
        self._role = "assistant"
        self._channel: str | None = None
        self._recipient: str | None = None
        self._call_header = ""  # the header of the message being read, after its role
        self._arguments: list[str] = []

    def feed(self, text: str) -> list[ParsedEvent]:
        events: list[ParsedEvent] = []
        for is_marker, piece in self._scanner.feed(text):
            if is_marker:
                self._on_marker(piece, events)
            else:
                self._on_text(piece, events)
        return events

    def finish(self) -> list[ParsedEvent]:
        events: list[ParsedEvent] = []
        for _, piece in self._scanner.flush():
            self._on_text(piece, events)
        if self._state is _State.START and self._start_text:
            # Only the start of a possible " to=" header arrived: it was plain text.
            self._open_plain_answer(self._start_text, events)
        if self._state is _State.CONTENT:
            self._close_message(events)
        # A header cut off before <|message|> carries no text to show.
        self._state = _State.BETWEEN
        return events

    # -- pieces --

    def _on_text(self, text: str, events: list[ParsedEvent]) -> None:
        state = self._state
        if state is _State.CONTENT:
            if self._recipient is not None:
                self._arguments.append(text)
            elif self._role == "assistant":
                _append(events, _delta_for(self._channel, text))
            # Text of another author (a tool result the model imagined) is nobody's answer.
        elif state is _State.HEADER:
            self._header.append(text)
        elif state is _State.START:
            self._start_text += text
            head = self._start_text
            if head.startswith(_RECIPIENT_START):  # recipient before the channel
                self._open_header(has_role=False, first=head)
            elif not any(p.startswith(head) for p in _RECIPIENT_START):
                self._open_plain_answer(head, events)
        else:  # BETWEEN: text outside any message is shown as the answer, not lost
            text = text.lstrip()
            if text:
                self._open_plain_answer(text, events)

    def _on_marker(self, marker: str, events: list[ParsedEvent]) -> None:
        if self._state is _State.START and self._start_text:
            self._open_plain_answer(self._start_text, events)
        state = self._state
        if state is _State.CONTENT:
            if marker in _ENDS_MESSAGE:
                self._close_message(events)
                self._state = _State.BETWEEN
            elif marker == START:
                self._close_message(events)
                self._open_header(has_role=True)
            elif marker == CHANNEL:  # a new header without <|end|><|start|>assistant
                self._close_message(events)
                self._open_header(has_role=False, first=marker)
            # <|message|>, <|constrain|>, <|startoftext|> mean nothing inside text: dropped.
        elif state is _State.HEADER:
            if marker == MESSAGE:
                self._open_content()
            elif marker == START:
                self._open_header(has_role=True)
            elif marker in (CHANNEL, CONSTRAIN):
                self._header.append(marker)
            elif marker in _ENDS_MESSAGE:
                self._state = _State.BETWEEN
        else:  # START or BETWEEN
            if marker == START:
                self._open_header(has_role=True)
            elif marker in (CHANNEL, CONSTRAIN):
                self._open_header(has_role=False, first=marker)
            elif marker == MESSAGE:
                self._open_content_as("assistant", None, None)
            elif marker in _ENDS_MESSAGE:
                self._state = _State.BETWEEN

    # -- transitions --

    def _open_header(self, has_role: bool, first: str = "") -> None:
        self._state = _State.HEADER
        self._start_text = ""
        self._header = [first] if first else []
        self._header_has_role = has_role

    def _open_content(self) -> None:
        header = "".join(self._header)
        role, channel, recipient = _parse_header(header, self._header_has_role)
        self._header = []
        self._open_content_as(role, channel, recipient)
        self._call_header = header.removeprefix(role) if self._header_has_role else header

    def _open_content_as(self, role: str, channel: str | None, recipient: str | None) -> None:
        self._state = _State.CONTENT
        self._role, self._channel, self._recipient = role, channel, recipient
        self._call_header = ""
        self._arguments = []

    def _open_plain_answer(self, text: str, events: list[ParsedEvent]) -> None:
        self._start_text = ""
        self._open_content_as("assistant", "final", None)
        _append(events, AnswerDelta(text))

    def _close_message(self, events: list[ParsedEvent]) -> None:
        if self._recipient is not None and self._role == "assistant":
            recipient = self._recipient
            name = recipient.removeprefix("functions.")
            events.append(ToolCallEvent(name, "".join(self._arguments), recipient=recipient, header=self._call_header))
        self._recipient = None
        self._arguments = []


def _parse_header(header: str, has_role: bool) -> tuple[str, str | None, str | None]:
    """(role, channel, recipient) from header text such as
    `assistant<|channel|>commentary to=functions.f <|constrain|>json` — the recipient may also
    come before the channel, and the role is absent when the header follows the prompt's own
    `<|start|>assistant`."""
    before, has_channel, after = header.partition(CHANNEL)
    role = "assistant"
    if has_role:
        word = _WORD.search(before)
        if word and not word.group(0).startswith("to="):
            role = word.group(0)
    channel = None
    if has_channel:
        words = [w for w in _WORD.findall(after.split(CONSTRAIN, 1)[0]) if not w.startswith("to=")]
        channel = words[0] if words else None
    found = _RECIPIENT.search(header)
    recipient = found.group(1) if found else None
    if recipient == "all":  # harmony's way of saying "no particular recipient"
        recipient = None
    return role, channel, recipient


def _delta_for(channel: str | None, text: str) -> _Delta:
    if channel == "analysis":
        return ReasoningDelta(text)
    if channel == "commentary":
        return PreambleDelta(text)
    return AnswerDelta(text)


def _append(events: list[ParsedEvent], delta: _Delta) -> None:
    """Adds a delta, merged into the previous one of the same kind (fewer GUI updates)."""
    if not delta.text:
        return
    last = events[-1] if events else None
    if isinstance(last, (ReasoningDelta, AnswerDelta, PreambleDelta)) and type(last) is type(delta):
        events[-1] = type(delta)(last.text + delta.text)
    else:
        events.append(delta)
