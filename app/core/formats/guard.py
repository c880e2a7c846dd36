"""Keep text from the user from ever becoming control tokens, and leave every other byte alone.

The engine tokenizes the rendered prompt with special tokens enabled (the format's own markers
must become control tokens), and llama.cpp even parses some markers with special tokens disabled.
So every piece of text that came from a person or a file (messages, system prompt, tool results)
has each marker broken by a zero-width space after its first character before rendering: the
text reads the same, but no longer matches the marker's token.

What counts as a marker (`markers_for`), and nothing else, so that ordinary text reaches the model
byte for byte:
- the vocabulary's CONTROL (and UNKNOWN) tokens: what llama.cpp's special-token pass turns into
  control tokens (Gemma's `<start_of_turn>`, `<bos>`, its ~6,000 `<unusedN>`; gpt-oss's specials);
- USER_DEFINED tokens only when llama.cpp promotes them to control tokens at load time (its
  "control-looking token ... will be overridden": the texts in `LLAMA_CPP_CONTROL_TEXTS`, e.g.
  Gemma's `</s>`, which becomes an end-of-generation token). Other USER_DEFINED tokens are
  ordinary text that the tokenizer always matches whole: Gemma's `\n\n`, runs of spaces and
  tabs, `<table>`, `<h1>`…; breaking them would change what the model reads (a 6-line Python
  snippet went from 28 to 46 tokens);
- the format's own markers, even where the vocabulary has no token for them: harmony's for
  gpt-oss, and the known chat markers a template writes (a built-in family format on a model whose
  vocabulary lacks them still separates turns with them as text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from app.core.formats.base import Conversation, Message, ToolCallRequest

if TYPE_CHECKING:
    from app.core.gguf_file import ModelInfo

ZWSP = "\u200b"

# Markers of common chat formats, guarded when the format in use writes them (see _markers).
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

# Token texts that llama.cpp (llama-cpp-python 0.3.36: src/llama-vocab.cpp, llama_vocab::impl::load)
# marks as control tokens by their text, whatever type the GGUF gives them: its end-of-turn,
# end-of-message, fill-in-the-middle and end-of-generation detection lists; and the four gpt-oss
# markers it forces to USER_DEFINED (parsed as special even with special=False). Update together
# with the llama-cpp-python pin.
LLAMA_CPP_CONTROL_TEXTS: frozenset[str] = frozenset({
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
    "_<EOT>", "[EOT]", "<\uff5cend\u2581of\u2581sentence\uff5c>", "<end_of_utterance>", "<|eom_id|>",
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\uff5cfim\u2581begin\uff5c>", "<PRE>", "\u2581<PRE>",
    "<|code_prefix|>", "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
    "<\uff5cfim\u2581hole\uff5c>", "<SUF>", "\u2581<SUF>", "<|code_suffix|>", "<|suffix|>", "<|fim_middle|>",
    "<fim-middle>", "<fim_middle>", "<\uff5cfim\u2581end\uff5c>", "<MID>", "\u2581<MID>", "<|code_middle|>",
    "<|middle|>", "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>",
    "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "</s>", "[EOS]", "<eos>", "<turn|>", "<|tool_response>", "[e~[",
    "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>",
})  # fmt: skip


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
def guard_for(markers: tuple[str, ...]) -> MarkerGuard:
    return MarkerGuard(markers)


def markers_for(info: ModelInfo, fmt: Any = None) -> tuple[str, ...]:
    """What must never reach the tokenizer whole from user text, for this model and format."""
    source = getattr(fmt, "source", "") if fmt is not None else ""
    kind = getattr(fmt, "name", "") if fmt is not None else ""
    return _markers(
        info.control_tokens,
        info.user_defined_tokens,
        "harmony" if kind == "harmony" else "",
        source if isinstance(source, str) else "",
        (info.bos_token, info.eos_token),
    )


@lru_cache(maxsize=8)  # a prompt is rendered several times per reply (trimming to fit the context)
def _markers(
    control: tuple[str, ...], user_defined: tuple[str, ...], harmony: str, source: str, ends: tuple[str, str]
) -> tuple[str, ...]:
    ordinary = set(user_defined) - LLAMA_CPP_CONTROL_TEXTS
    found = [t for t in control if t not in ordinary]
    found += [t for t in user_defined if t in LLAMA_CPP_CONTROL_TEXTS]
    if harmony:
        from app.core.formats.harmony import harmony_control_markers

        found += harmony_control_markers()
    elif source:
        found += [m for m in (*COMMON_MARKERS, *LLAMA_CPP_CONTROL_TEXTS) if m in source]
    found += [t for t in ends if t]
    return tuple(sorted(set(found)))


def guard_for_model(info: ModelInfo, fmt: Any = None) -> MarkerGuard:
    return guard_for(markers_for(info, fmt))
