"""The shapes every prompt format shares: messages in, text out; streamed text in, events out.

A conversation arrives in the OpenAI messages shape (role, content, optional thinking and
tool_calls). A format renders it to the exact text the engine tokenizes, and gives a fresh
incremental parser for each reply that turns streamed text into typed events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "developer", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "developer", "user", "assistant", "tool")
Effort = Literal["low", "medium", "high"]
EFFORTS: tuple[str, ...] = ("low", "medium", "high")


@dataclass(frozen=True)
class ToolCallRequest:
    """A tool call made by the assistant, as stored in history (OpenAI shape, flattened)."""

    name: str
    arguments: str  # JSON text, exactly as the model wrote it
    id: str | None = None
    # Harmony only: the call's header exactly as the model generated it after `<|start|>assistant`
    # (e.g. ` to=functions.f<|channel|>commentary json`), so that history re-renders the tokens the
    # KV cache holds. Empty: the canonical header. Checked before use (harmony._safe_header).
    header: str = ""


@dataclass(frozen=True)
class Message:
    role: str
    content: str = ""
    thinking: str | None = None  # the assistant's chain of thought for this turn, if any
    tool_calls: tuple[ToolCallRequest, ...] = ()
    name: str | None = None  # for role "tool": the function that produced this result
    tool_call_id: str | None = None


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]
    tools: tuple[dict[str, Any], ...] = ()  # OpenAI "function" tool definitions


@dataclass(frozen=True)
class RenderOptions:
    effort: Effort = "medium"
    date: str | None = None  # YYYY-MM-DD; None means today
    add_generation_prompt: bool = True


# ---- streamed events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Chain of thought (harmony 'analysis', or text inside <think>…</think>)."""

    text: str


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    """The answer the user reads (harmony 'final', or text outside <think>)."""

    text: str


@dataclass(frozen=True, slots=True)
class PreambleDelta:
    """Harmony 'commentary' text addressed to the user (a preamble before tool calls)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """A complete tool call: recipient without the 'functions.' prefix, JSON arguments text."""

    name: str
    arguments: str
    recipient: str = ""  # the raw recipient, e.g. "functions.get_weather"
    # Harmony: the message header as generated (see ToolCallRequest.header); not part of equality.
    header: str = field(default="", compare=False)


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int = 0  # tokens in the whole prompt
    prompt_tokens_evaluated: int = 0  # of those, how many llama.cpp actually had to evaluate
    generated_tokens: int = 0
    time_to_first_token_s: float = 0.0
    generation_s: float = 0.0  # first token to last token
    tokens_per_s: float = 0.0  # generation speed, excluding the prompt
    dropped_turns: int = 0  # oldest turns left out of the prompt because of the context size
    prompt_tokens_restored: int = 0  # of the prompt, how many came from a KV state saved on disk

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# "crashed": the engine process died mid-reply (the partial reply is kept, marked interrupted).
StopReason = Literal["stop", "length", "cancelled", "tool_call", "error", "crashed"]


@dataclass(frozen=True, slots=True)
class Done:
    stats: GenerationStats
    stop_reason: str = "stop"
    error: str | None = None


ParsedEvent = ReasoningDelta | AnswerDelta | PreambleDelta | ToolCallEvent
Event = ReasoningDelta | AnswerDelta | PreambleDelta | ToolCallEvent | Done


def coalesce(batch: list[ParsedEvent], event: ParsedEvent) -> None:
    """Append `event` to a batch about to be sent, joining it to the previous delta of the same
    kind (so a batch holds a few runs of text, not one item per token)."""
    if batch and type(event) is type(batch[-1]) and isinstance(event, (ReasoningDelta, AnswerDelta, PreambleDelta)):
        previous = batch[-1]
        assert isinstance(previous, (ReasoningDelta, AnswerDelta, PreambleDelta))
        batch[-1] = type(event)(previous.text + event.text)
    else:
        batch.append(event)


class StreamParser(Protocol):
    def feed(self, text: str) -> list[ParsedEvent]:
        """Take the next piece of generated text (any split), return the events it completes."""

    def finish(self) -> list[ParsedEvent]:
        """The stream ended (or was cut): flush what is pending, sanely."""


class ChatFormat(Protocol):
    name: str

    def render(self, conversation: Conversation, options: RenderOptions) -> str:
        """The exact prompt text, control markers included, for the engine to tokenize."""

    def new_parser(self) -> StreamParser: ...

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Texts that end a reply besides the model's end-of-generation tokens."""


@dataclass
class TextCollector:
    """Accumulates parsed events into the three texts a reply is stored as."""

    reasoning: list[str] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)
    tool_calls: list[ToolCallEvent] = field(default_factory=list)

    def add(self, event: ParsedEvent | Done) -> None:
        if isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, (AnswerDelta, PreambleDelta)):
            self.answer.append(event.text)
        elif isinstance(event, ToolCallEvent):
            self.tool_calls.append(event)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    @property
    def answer_text(self) -> str:
        return "".join(self.answer)
