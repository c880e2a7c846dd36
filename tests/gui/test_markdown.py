"""Markdown → blocks, whole and streamed (no Qt needed)."""

from __future__ import annotations

import pytest

from app.gui.chat.markdown import LONG_WORD, ZWSP, StreamingMarkdown, breakable, highlight_code, render_blocks

SAMPLES = [
    "# Title\n\nSome *text* and `code`.\n\n- a\n- b\n\n```python\nprint(1)\n```\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\nend",
    "Para one\nstill one\n\nPara two\n\n1. x\n2. y\n\n   continued item\n\n> quote\n> more\n\n---\n\ntail",
    "```\nunclosed fence\nwith lines\n",
    "Setext heading\n===\n\ntext\n\n    indented code\n\nafter",
    "- loose\n\n- list\n\n- items\n\nThen text with a [link](https://example.com).",
]


def streamed(text: str, step: int) -> list:
    stream = StreamingMarkdown()
    blocks = []
    for i in range(0, len(text), step):
        stream.feed(text[i : i + step])
        closed, _tail = stream.update()
        blocks += closed
    return blocks + stream.finish()


@pytest.mark.parametrize("text", SAMPLES)
@pytest.mark.parametrize("step", [1, 3, 17, 1000])
def test_streaming_gives_the_same_blocks_as_a_whole_render(text: str, step: int) -> None:
    assert streamed(text, step) == render_blocks(text)


def test_closed_blocks_are_never_rendered_again() -> None:
    stream = StreamingMarkdown()
    stream.feed("First paragraph.\n\nSecond")
    closed, tail = stream.update()
    assert [b.html for b in closed] == ["<p>First paragraph.</p>\n"]
    assert tail is not None and "Second" in tail.html
    stream.feed(" grows.")
    closed, tail = stream.update()
    assert closed == []  # the first paragraph is not returned twice
    assert tail is not None and "Second grows." in tail.html
    assert stream.text == "First paragraph.\n\nSecond grows."


def test_an_open_code_fence_is_marked_open_until_it_closes() -> None:
    stream = StreamingMarkdown()
    stream.feed("```python\nx = 1\n")
    _closed, tail = stream.update()
    assert tail is not None and tail.kind == "code" and not tail.closed and tail.language == "python"
    stream.feed("```\n")
    _closed, tail = stream.update()
    assert tail is not None and tail.closed and tail.code == "x = 1"


def test_raw_html_from_the_model_is_shown_as_text() -> None:
    [block] = render_blocks("<script>alert(1)</script> <b>bold?</b>")
    assert "<script>" not in block.html and "&lt;script&gt;" in block.html


def test_long_words_get_break_opportunities() -> None:
    word = "x" * (LONG_WORD * 3)
    assert breakable(word).count(ZWSP) == 2
    assert breakable("short words stay as they are") == "short words stay as they are"
    [block] = render_blocks(f"see {word}")
    assert ZWSP in block.html


def test_code_highlighting_colours_known_languages_and_escapes_unknown_ones() -> None:
    python = highlight_code("def f(): return '<x>'", "python", "friendly")
    assert "<span style=" in python and "&lt;x&gt;" in python
    plain = highlight_code("a < b", "no-such-language", "friendly")
    assert "<span" not in plain and "a &lt; b" in plain
