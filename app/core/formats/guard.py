"""Keep text from the user from ever becoming control tokens.

The engine tokenizes the rendered prompt with special tokens enabled (the format's own markers
must become control tokens), and llama.cpp even parses some markers with special tokens disabled.
So every piece of text that came from a person or a file (messages, system prompt, tool results)
has each marker broken by a zero-width space after its first character before rendering: the
text reads the same, but no longer matches the marker's token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache

from app.core.formats.base import Conversation, Message, ToolCallRequest

ZWSP = "\u200b"

# Markers of common chat formats, guarded even when a vocabulary does not list them as control
# tokens (a fallback format may still use them as plain text conventions).
COMMON_MARKERS: tuple[str, ...] = (
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|constrain|>",
    "<|return|>",
    "<|call|>",
    "<|startoftext|>",
    "<|endoftext|>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<|im_start|>",
    "<|im_end|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|begin_of_text|>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "[INST]",
    "[/INST]",
)


class MarkerGuard:
    """Neutralises a fixed set of marker strings in text.

    A vocabulary can hold thousands of control tokens (Gemma has ~6,000 "<unusedN>"), and one
    regex alternation of them all costs seconds per megabyte; so the scan jumps to each character
    that can start a marker and tests only the marker lengths that start with it.
    """

    def __init__(self, markers: Iterable[str]) -> None:
        # Single characters cannot be split, and cannot forge a message on their own.
        usable = {m for m in markers if len(m) >= 2}
        self.markers = tuple(sorted(usable, key=len, reverse=True))
        self._by_first: dict[str, tuple[frozenset[str], tuple[int, ...]]] = {}
        for first in {m[0] for m in usable}:
            group = frozenset(m for m in usable if m[0] == first)
            self._by_first[first] = (group, tuple(sorted({len(m) for m in group}, reverse=True)))
        starts = "".join(sorted(self._by_first))
        self._starts = re.compile(f"[{re.escape(starts)}]") if starts else None

    def __call__(self, text: str) -> str:
        if self._starts is None or not text:
            return text
        out: list[str] = []
        done = 0  # text[:done] is already in out
        for hit in self._starts.finditer(text):
            i = hit.start()
            if i < done:
                continue
            group, lengths = self._by_first[text[i]]
            for n in lengths:  # longest first, like a tokenizer's special-token matching
                if text[i : i + n] in group:
                    out.append(text[done : i + 1])
                    out.append(ZWSP)
                    done = i + 1
                    break
        if not out:
            return text
        out.append(text[done:])
        return "".join(out)

    def conversation(self, conv: Conversation) -> Conversation:
        """The same conversation with every text field neutralised."""
        return replace(conv, messages=tuple(self._message(m) for m in conv.messages))

    def _message(self, m: Message) -> Message:
        calls = tuple(ToolCallRequest(self(c.name), self(c.arguments), c.id) for c in m.tool_calls)
        return replace(
            m,
            content=self(m.content),
            thinking=self(m.thinking) if m.thinking else m.thinking,
            tool_calls=calls,
            name=self(m.name) if m.name else m.name,
        )


@lru_cache(maxsize=8)
def guard_for(control_tokens: tuple[str, ...]) -> MarkerGuard:
    return MarkerGuard((*control_tokens, *COMMON_MARKERS))
