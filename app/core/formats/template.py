"""Formats for models other than gpt-oss: the GGUF's own Jinja chat template, or — when the file
carries none — the known format of its family.

llama-cpp-python falls back to a generic format when a GGUF has no template, and the starter
Gemma 3 file then answers with an empty string; knowing the family's turn markers avoids that.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError
from jinja2.ext import Extension
from jinja2.nodes import Node
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.formats.base import Conversation, Message, RenderOptions, StreamParser
from app.core.formats.think import ThinkParser
from app.core.formats.tool_tags import ToolTagParser, uses_tool_tags

log = logging.getLogger("hearth.formats")


class TemplateRenderError(ValueError):
    """The model's chat template could not render this conversation (message for the user)."""


# Our own renderings of the common families' turn formats, used only when the GGUF has no
# template. Each is keyed by a control token that identifies the family in the vocabulary.
# No whitespace control and no newline right after a block tag (trim_blocks would eat it):
# every newline below is one the format really has.
_GEMMA = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m.role in ('system', 'developer') %}{% set ns.system = ns.system + m.content %}"
    "{% else %}"
    "{% set role = 'model' if m.role == 'assistant' else 'user' %}"
    "<start_of_turn>{{ role ~ '\n' }}"
    "{% if ns.system and role == 'user' %}{{ ns.system ~ '\n\n' }}{% set ns.system = '' %}{% endif %}"
    "{{ m.content | trim }}<end_of_turn>{{ '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model{{ '\n' }}{% endif %}"
)
_CHATML = (
    "{% for m in messages %}"
    "<|im_start|>{{ 'system' if m.role == 'developer' else m.role }}{{ '\n' ~ m.content }}<|im_end|>{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant{{ '\n' }}{% endif %}"
)
_LLAMA3 = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "<|start_header_id|>{{ 'system' if m.role == 'developer' else m.role }}<|end_header_id|>{{ '\n\n' }}"
    "{{ m.content | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>{{ '\n\n' }}{% endif %}"
)
_PHI3 = (
    "{% for m in messages %}"
    "<|{{ 'system' if m.role == 'developer' else m.role }}|>{{ '\n' ~ m.content }}<|end|>{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{{ '\n' }}{% endif %}"
)
_MISTRAL = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m.role in ('system', 'developer') %}{% set ns.system = ns.system + m.content + '\n\n' %}"
    "{% elif m.role == 'user' %}[INST] {{ ns.system }}{{ m.content }}[/INST]{% set ns.system = '' %}"
    "{% else %}{{ m.content }}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)

# Base (pretrained, not chat-tuned) models continue text rather than answer turns: given their
# family's turn markers they echo the question (seen with the starter Gemma 3 270M), but they
# continue a plain transcript sensibly. The reply ends where the model starts the user's next line.
TRANSCRIPT_PREAMBLE = (
    "A conversation between a curious user and a helpful, knowledgeable assistant. "
    "The assistant answers clearly and correctly."
)
_TRANSCRIPT = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for m in messages if m.role in ('system', 'developer') %}"
    "{% set ns.system = ns.system ~ '\n\n' ~ m.content %}"
    "{% endfor %}"
    "{{ preamble }}{{ ns.system }}"
    "{% for m in messages if m.role in ('user', 'assistant') %}"
    "{{ '\n\n' if loop.first else '\n' }}{{ 'User: ' if m.role == 'user' else 'Assistant: ' }}"
    "{{ m.content | trim }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '\nAssistant:' }}{% endif %}"
)
TRANSCRIPT_STOPS = ("\nUser:",)

# (identifying control token, family name, template, extra stop strings)
_FAMILIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("<start_of_turn>", "gemma", _GEMMA, ("<end_of_turn>",)),
    ("<|start_header_id|>", "llama3", _LLAMA3, ("<|eot_id|>",)),
    ("<|im_start|>", "chatml", _CHATML, ("<|im_end|>",)),
    ("<|assistant|>", "phi3", _PHI3, ("<|end|>",)),
    ("[INST]", "mistral", _MISTRAL, ()),
)
# When the vocabulary gives no hint, the architecture name may.
_ARCH_FAMILY = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "llama": "llama3",
    "qwen2": "chatml",
    "qwen3": "chatml",
    "qwen3moe": "chatml",
    "phi3": "phi3",
}


def _raise(message: str) -> None:
    raise TemplateRenderError(message)


class _GenerationTag(Extension):
    """Hugging Face's `{% generation %}...{% endgeneration %}` (it marks the assistant's tokens for
    training masks): rendered as its content, as Transformers and llama-cpp-python do."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> list[Node]:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _environment() -> ImmutableSandboxedEnvironment:
    # Same settings and extensions as Hugging Face's apply_chat_template (and llama-cpp-python,
    # which compiles the template when it loads a model), so GGUF templates render as intended:
    # Cohere's and Kimi's use {% break %}, LFM2's and Laguna's {% generation %}.
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, "jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: _dt.datetime.now().strftime(fmt)
    return env


@functools.lru_cache(maxsize=64)
def template_syntax_error(source: str) -> str | None:
    """Why `source` does not parse as a chat template ("line 3: unexpected '}'"), or None.

    Parsed in the environment that renders it, which matches the one llama-cpp-python compiles
    the template in when it loads the model (a syntax error there escapes Llama() as a bare Jinja
    exception). Only parsed, not compiled: generating and compiling the code costs 3-5 times as
    much (the gpt-oss template: ~25 ms to parse on a slow machine, ~110 ms to compile) and finds
    only unknown filters and tests outside conditionals, which no published template has and which
    fail with an exception, not a crash. Cached by source: the model library checks every file on
    each listing. Only the verdict is kept, not the template."""
    try:
        _environment().parse(source)
    except TemplateSyntaxError as exc:
        # Jinja's first sentence says what is wrong; the rest ("Jinja was looking for...") is for
        # template authors, and the caller puts this inside a sentence of its own.
        what = (exc.message or "syntax error").split(". ")[0].rstrip(".")
        return f"line {exc.lineno}: {what}" if exc.lineno else what
    except RecursionError:  # e.g. thousands of nested brackets: the parser recurses per level
        return "it is nested too deeply"
    except Exception as exc:  # foreign text: whatever the parser raises means it does not parse
        log.info("a chat template does not parse", exc_info=True)
        return str(exc) or type(exc).__name__
    return None


@dataclass
class TemplateFormat:
    """A chat format defined by a Jinja template (the GGUF's own, or a family fallback)."""

    name: str
    source: str
    bos_token: str = ""
    eos_token: str = ""
    extra_stops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            self._template = _environment().from_string(self.source)
        except TemplateError as exc:
            raise TemplateRenderError(f"The model's chat template is invalid: {exc}.") from exc
        self._opens_think = False
        self._tools_offered = False

    @property
    def stop_strings(self) -> tuple[str, ...]:
        return tuple(s for s in (self.eos_token, *self.extra_stops) if s)

    def render(self, conversation: Conversation, options: RenderOptions) -> str:
        messages = [_as_template_message(m) for m in conversation.messages]
        try:
            text = self._template.render(
                messages=messages,
                tools=list(conversation.tools) or None,
                add_generation_prompt=options.add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                reasoning_effort=options.effort,
                preamble=TRANSCRIPT_PREAMBLE,
            )
        except TemplateRenderError:
            raise
        except Exception as exc:  # a template is foreign code: any failure is a render failure
            log.info("a chat template failed to render", exc_info=True)
            raise TemplateRenderError(f"The model's chat template failed on this conversation: {exc}.") from exc
        # Reasoning templates (Qwen3, DeepSeek-R1) may open the <think> block themselves.
        self._opens_think = text.rstrip().endswith("<think>")
        self._tools_offered = bool(conversation.tools)
        return text

    def new_parser(self) -> StreamParser:
        parser: StreamParser = ThinkParser(started_in_think=self._opens_think)
        if self._tools_offered and uses_tool_tags(self.source):
            # Qwen-style templates ask for calls as <tool_call>{json}</tool_call> in the answer.
            parser = ToolTagParser(parser)
        return parser


def _as_template_message(m: Message) -> dict[str, Any]:
    # Earlier turns' reasoning is not part of the history a template should see.
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.name:
        out["name"] = m.name
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def fallback_format(
    architecture: str,
    control_tokens: Iterable[str],
    bos_token: str = "",
    eos_token: str = "",
    chat_tuned: bool = True,
) -> TemplateFormat:
    """The known format of a model family, for a GGUF that carries no chat template; a plain
    transcript for a base model, which has never learnt its family's chat turns."""
    if not chat_tuned:
        return TemplateFormat("transcript (base model)", _TRANSCRIPT, bos_token, eos_token, TRANSCRIPT_STOPS)
    vocab = set(control_tokens)
    for marker, family, source, stops in _FAMILIES:
        if marker in vocab:
            return TemplateFormat(f"{family} (built-in)", source, bos_token, eos_token, stops)
    family = _ARCH_FAMILY.get(architecture, "chatml")
    for _marker, name, source, stops in _FAMILIES:
        if name == family:
            return TemplateFormat(f"{family} (built-in)", source, bos_token, eos_token, stops)
    raise AssertionError("unreachable: chatml is always in the table")
