"""Markdown → blocks of Qt-friendly HTML, incrementally while a reply streams. No Qt here.

A reply is a sequence of top-level Markdown blocks (paragraphs, lists, tables, code fences...).
While it streams, every block but the last is final — the text after it has started a new block —
so `StreamingMarkdown` renders each block once when it closes, and re-renders only the open last
block (the "tail") on each update. The cost of an update is the size of the tail, not of the
reply: a long answer streams as fast at its end as at its start.

Raw HTML in model output is shown as text (html=False), and links are only ever opened on click
by the view, never fetched.
"""

from __future__ import annotations

import html
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # markdown-it is imported on first use: it costs ~50 ms of start-up
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

CODE_TOKENS = ("fence", "code_block")
LONG_WORD = 40
ZWSP = "\u200b"


@dataclass(frozen=True)
class Block:
    """One top-level block: prose as an HTML fragment, or a code block as source text."""

    kind: Literal["prose", "code"]
    html: str = ""
    code: str = ""
    language: str = ""
    closed: bool = True  # for a code fence: False while its closing ``` has not arrived


def _table_open(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    # Qt's rich text needs the attribute; the CSS border-collapse alone leaves gaps.
    return '<table cellspacing="0" cellpadding="6">\n'


_LONG_RUN = re.compile(rf"\S{{{LONG_WORD},}}")


# Characters that can start, end or change Markdown inside a line (or end the line): text that
# holds none of them, added to a paragraph, is shown as it is (see StreamingMarkdown.append_plain).
_PLAIN_UNSAFE = frozenset("\n\r\\`*_~[]()<>!&|#;")
_PLAIN_ENDS = frozenset(",.?:'\"%/$@+=-")  # after these the next character means nothing more
_LIST_NUMBER = re.compile(r"\d{1,9}")
_SPACES = re.compile(r"[ \t]+")


def breakable(text: str) -> str:
    """Let Qt wrap very long words (URLs, hashes): a zero-width space every LONG_WORD characters.
    Qt's rich text only wraps at word boundaries, so one 1,000-character word would widen the
    whole column."""
    if len(text) < LONG_WORD:
        return text
    return _LONG_RUN.sub(lambda m: ZWSP.join(m[0][i : i + LONG_WORD] for i in range(0, len(m[0]), LONG_WORD)), text)


def _text(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    return html.escape(breakable(tokens[idx].content))


def _code_inline(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    return f"<code>{html.escape(breakable(tokens[idx].content))}</code>"


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "breaks": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("table_open", _table_open)
    md.add_render_rule("text", _text)
    md.add_render_rule("code_inline", _code_inline)
    return md


def _code_block(token: Token, closed: bool = True) -> Block:
    language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    code = token.content[:-1] if token.content.endswith("\n") else token.content
    return Block("code", code=code, language=language, closed=closed)


def _top_level_spans(tokens: list[Token]) -> list[tuple[int, int]]:
    """(first, last + 1) token indices of each top-level block."""
    spans: list[tuple[int, int]] = []
    depth = 0
    start = 0
    for i, token in enumerate(tokens):
        if depth == 0:
            start = i
        depth += token.nesting
        if depth == 0:
            spans.append((start, i + 1))
    return spans


def _render(tokens: list[Token], span: tuple[int, int], env: dict[str, Any], closed: bool = True) -> Block:
    md = _parser()
    first = tokens[span[0]]
    if first.type in CODE_TOKENS:
        return _code_block(first, closed)
    return Block("prose", html=md.renderer.render(tokens[span[0] : span[1]], md.options, env))


def render_blocks(text: str) -> list[Block]:
    """A whole Markdown text as blocks (for stored messages)."""
    env: dict[str, Any] = {}
    tokens = _parser().parse(text, env)
    return [_render(tokens, span, env) for span in _top_level_spans(tokens)]


# ---- the cache of stored messages' blocks ------------------------------------------------------

CACHE_ENTRIES = 4_000
_blocks_cache: OrderedDict[str, list[Block]] = OrderedDict()
_cache_lock = threading.Lock()
_parse_lock = threading.Lock()  # markdown-it's parser is shared; one parse at a time


def cached_blocks(text: str) -> list[Block]:
    """`render_blocks(text)`, remembered: a stored message is parsed once per session, by
    `prepare()` on a background thread where it got there first, else here."""
    with _cache_lock:
        found = _blocks_cache.get(text)
        if found is not None:
            _blocks_cache.move_to_end(text)
            return found
    with _parse_lock:
        blocks = render_blocks(text)
    with _cache_lock:
        _blocks_cache[text] = blocks
        while len(_blocks_cache) > CACHE_ENTRIES:
            _blocks_cache.popitem(last=False)
    return blocks


def is_cached(text: str) -> bool:
    with _cache_lock:
        return text in _blocks_cache


def prepare(
    texts: Iterable[str], style: str, stop: threading.Event | None = None, go: threading.Event | None = None
) -> None:
    """Parse and highlight texts ahead of need (call on a background thread): the GUI thread then
    only builds widgets. Pure Python, no Qt; `stop` ends it early. With `go`, each text waits
    until it is set — the view sets it while it has nothing to build, so this thread never
    competes with the GUI thread for the interpreter when the GUI thread is busy."""
    import time

    for text in texts:
        while go is not None and not go.wait(0.05):
            if stop is not None and stop.is_set():
                return
        if stop is not None and stop.is_set():
            return
        if not text or is_cached(text):
            continue
        for block in cached_blocks(text):
            if block.kind == "code" and block.closed:
                highlight_code(block.code, block.language, style)
        time.sleep(0)  # let the GUI thread take the interpreter between messages


def prewarm() -> None:
    """Import the parser and the highlighter (a few hundred ms the first time) ahead of the first
    conversation opened; for a background thread once the window is up."""
    _parser()
    highlight_code("x = 1\n", "python", "friendly")


def clear_caches() -> None:
    """Forget every parsed and highlighted text (benchmarks measure a cold open with it)."""
    with _cache_lock:
        _blocks_cache.clear()
    highlight_code.cache_clear()


def plain_html(text: str) -> str:
    """Plain text (a user's message) as HTML paragraphs, every character shown as typed."""
    paragraphs = breakable(text).split("\n\n")
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def _fence_is_closed(source: str, token: Token) -> bool:
    """Whether a fence has its closing line yet (markdown-it runs an open fence to the end)."""
    if token.type != "fence" or token.map is None:
        return True
    lines = source.split("\n")[token.map[0] : token.map[1]]
    last = lines[-1].strip() if len(lines) >= 2 else ""
    return bool(last) and last.startswith(token.markup) and set(last) == {token.markup[0]}


class StreamingMarkdown:
    """Takes a reply's text in pieces; says which blocks closed and what the open tail looks like.

    Usage: `feed(text)` as deltas arrive (cheap), then once per screen update `update()` returns
    (newly closed blocks, the tail block or None). `finish()` closes everything.
    """

    def __init__(self) -> None:
        self._pending: list[str] = []  # fed since the last update
        self._closed: list[str] = []  # source text of the closed blocks
        self._open = ""  # source text of the open (last) block
        self._env: dict[str, Any] = {}
        self._paragraph = False  # the open block was a plain paragraph at the last update

    @property
    def text(self) -> str:
        """All the text fed so far."""
        return "".join(self._closed) + self._open + "".join(self._pending)

    def feed(self, text: str) -> None:
        if text:
            self._pending.append(text)

    def _take_pending(self) -> None:
        if self._pending:
            self._open += "".join(self._pending)
            self._pending.clear()

    def append_plain(self) -> str | None:
        """The text to add at the end of what is shown, when the text fed since the last update
        only continues the open paragraph's last line with characters Markdown gives no meaning
        to there (so rendering the open block again would show the same with that text at its end);
        else None, and the caller renders with `update()`. Most of a streamed reply is such text:
        this spares parsing and rendering the whole paragraph again for each screen update."""
        if not self._pending or not self._paragraph:
            return None
        pending = "".join(self._pending)
        if not _PLAIN_UNSAFE.isdisjoint(pending):
            return None
        shown = self._open.rstrip()
        if "\n" in self._open[len(shown) :] or "\r" in self._open[len(shown) :]:
            return None  # the new text starts a line, where it can start a list or a heading
        if not shown or not (shown[-1].isalnum() or shown[-1] in _PLAIN_ENDS):
            return None  # after a delimiter, an entity or a link the next character can matter
        last_line = shown.rsplit("\n", 1)[-1].lstrip()
        if not last_line[:1].isalnum() or _LIST_NUMBER.fullmatch(last_line):
            return None  # a line that is only a number might yet become a list ("12.")
        self._take_pending()
        return _SPACES.sub(" ", self._open.rstrip()[len(shown) :])  # as HTML shows spaces: one

    def update(self) -> tuple[list[Block], Block | None]:
        self._take_pending()
        self._paragraph = False
        if not self._open:
            return [], None
        md = _parser()
        tokens = md.parse(self._open, self._env)
        spans = _top_level_spans(tokens)
        if not spans:
            return [], None
        closed: list[Block] = []
        last_map = tokens[spans[-1][0]].map
        last_line = last_map[0] if last_map else 0
        if len(spans) > 1 and last_line > 0:
            closed = [_render(tokens, span, self._env) for span in spans[:-1]]
            cut = _line_offset(self._open, last_line)
            self._closed.append(self._open[:cut])
            self._open = self._open[cut:]
            # Parsed on its own, the open block gives the same block: its lines did not change.
            tokens = md.parse(self._open, self._env)
            spans = _top_level_spans(tokens)
            if not spans:
                return closed, None
        tail = _render(tokens, spans[-1], self._env, closed=_fence_is_closed(self._open, tokens[spans[-1][0]]))
        self._paragraph = len(spans) == 1 and tokens[spans[-1][0]].type == "paragraph_open"
        return closed, tail

    def finish(self) -> list[Block]:
        """Close everything still open; returns the blocks not returned as closed before."""
        self._take_pending()
        source, self._open = self._open, ""
        self._closed.append(source)
        if not source.strip():
            return []
        tokens = _parser().parse(source, self._env)
        return [_render(tokens, span, self._env) for span in _top_level_spans(tokens)]


def _line_offset(text: str, line: int) -> int:
    """Character offset where line number `line` (0-based) starts."""
    pos = 0
    for _ in range(line):
        nl = text.find("\n", pos)
        if nl < 0:
            return len(text)
        pos = nl + 1
    return pos


@lru_cache(maxsize=2_048)
def highlight_code(code: str, language: str, style: str) -> str:
    """Code as an HTML <pre> with inline colours (Pygments); plain when the language is unknown.
    Remembered per (code, language, style): a stored code block is highlighted once per theme."""
    from pygments import highlight
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(language.lower(), stripnl=False, ensurenl=False) if language else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        body = html.escape(code)
    else:
        formatter = _formatter(style)
        body = highlight(code, lexer, formatter)
        if body.endswith("\n") and not code.endswith("\n"):
            body = body[:-1]
    return f"<pre style='margin:0'>{body}</pre>"


@lru_cache(maxsize=4)
def _formatter(style: str) -> Any:
    from pygments.formatters import HtmlFormatter

    # nowrap: spans only, no <div>/<pre>; noclasses: inline colours, as QLabel has no style sheet
    return HtmlFormatter(style=style, noclasses=True, nowrap=True)
