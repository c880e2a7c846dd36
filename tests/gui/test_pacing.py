"""How often a streaming reply is drawn (app/gui/chat/pacing.py), and the open paragraph that is
laid out once per update (blocks.LiveProse, StreamingMarkdown.append_plain).

The pacer runs on a real Qt event loop with a real single-shot timer; its two clocks are the
test's own, so what it decides depends on the CPU time the test says a frame cost, not on how
busy this machine is."""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.core.store import ChatStore
from app.gui.chat import pacing
from app.gui.chat.blocks import LiveProse, MarkdownView, ProseBlock
from app.gui.chat.markdown import Block, StreamingMarkdown, _parser, _render, _top_level_spans
from app.gui.chat.pacing import FramePacer
from app.gui.main_window import frame_budget
from tests.gui.conftest import WindowFactory, load


class Clocks:
    def __init__(self) -> None:
        self.now = 100.0
        self.cpu = 5.0

    def wall(self) -> float:
        return self.now

    def thread(self) -> float:
        return self.cpu


def make_pacer(clocks: Clocks, frame_cost_s: float) -> tuple[FramePacer, list[float]]:
    drawn: list[float] = []

    def draw() -> None:
        drawn.append(clocks.now)
        clocks.cpu += frame_cost_s  # what this frame cost the GUI thread

    return FramePacer(draw, clock=clocks.wall, cpu_clock=clocks.thread), drawn


def test_the_first_text_is_drawn_at_once_and_text_within_a_frame_waits_for_the_next(
    qtbot: QtBot, qapp: QApplication
) -> None:
    clocks = Clocks()
    pacer, drawn = make_pacer(clocks, 0.0002)
    pacer.request()
    assert drawn == [100.0]  # the first token is never held back
    clocks.now += 0.005
    pacer.request()
    clocks.now += 0.005
    pacer.request()
    assert len(drawn) == 1 and pacer.pending  # both wait for the next frame, together
    qtbot.waitUntil(lambda: len(drawn) == 2, timeout=2000)
    assert not pacer.pending
    clocks.now += 1.0
    pacer.request()
    assert len(drawn) == 3  # after a pause, at once again


def test_frames_are_spaced_by_what_they_cost(qtbot: QtBot, qapp: QApplication) -> None:
    for cost, expected in (
        (0.0002, pacing.MIN_INTERVAL_S),
        (0.004, 0.004 / pacing.BUDGET),
        (0.1, pacing.MAX_INTERVAL_S),
    ):
        clocks = Clocks()
        pacer, _drawn = make_pacer(clocks, cost)
        for _ in range(40):  # batches 20 ms apart, each drawn when due
            pacer.request()
            clocks.now += 0.02
            if pacer.pending and clocks.now - pacer._last >= pacer.interval:
                pacer.flush()
        assert pacer.interval == pytest.approx(expected, rel=0.05), cost
        assert pacer.frames <= 40 * 0.02 / expected + 2  # no more frames than the spacing allows


def test_the_budget_halves_when_llama_cpps_threads_take_every_core(qtbot: QtBot, qapp: QApplication) -> None:
    """Measured (bench/stream_overhead.py, alternated rounds on the 2-core machine): with 2 of 2
    cores generating, ~15 frames a second slowed generation to 0.93 of bare llama.cpp, ~10 to 0.98."""
    assert pacing.budget_for(2, 2) == pacing.BUDGET_CORES_FULL
    assert pacing.budget_for(8, 8) == pacing.BUDGET_CORES_FULL
    assert pacing.budget_for(4, 8) == pacing.BUDGET  # hyper-threads or spare cores: room for the window
    assert pacing.budget_for(2, 2, all_on_gpu=True) == pacing.BUDGET
    assert pacing.budget_for(0, None) == pacing.BUDGET
    clocks = Clocks()
    pacer, _drawn = make_pacer(clocks, 0.002)
    pacer.set_budget(pacing.BUDGET_CORES_FULL)
    for _ in range(40):
        pacer.request()
        clocks.now += 0.02
        if pacer.pending and clocks.now - pacer._last >= pacer.interval:
            pacer.flush()
    assert pacer.interval == pytest.approx(0.002 / pacing.BUDGET_CORES_FULL, rel=0.05)  # 2x at BUDGET


def test_the_window_sets_the_budget_from_the_loaded_models_plan(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    """The starter loaded here (2 threads on this 2-core machine in CI and locally): the window's
    session draws with the budget its plan calls for; a remote model (no plan) gets the full one."""
    window = make_window(store)
    window.session.set_frame_budget(0.5)  # the load must set it
    load(qtbot, window, starter_path)
    result = window.engine.result
    assert result is not None and result.plan is not None
    cores = len(os.sched_getaffinity(0))
    expected = pacing.budget_for(result.plan.n_threads, cores)
    assert window.session.frame_budget == expected
    assert frame_budget(replace(result, plan=None, info=None, remote="gpu-box:8080")) == pacing.BUDGET
    everything = replace(
        result.plan, n_gpu_layers=result.plan.n_layers_total or 1, n_layers_total=result.plan.n_layers_total or 1
    )
    assert frame_budget(replace(result, plan=everything)) == pacing.BUDGET


def test_a_frame_followed_by_a_pause_does_not_count_what_the_window_did_meanwhile(
    qtbot: QtBot, qapp: QApplication
) -> None:
    clocks = Clocks()
    pacer, _drawn = make_pacer(clocks, 0.0002)
    pacer.request()
    clocks.now += 0.03
    pacer.request()  # measures the first frame: 0.2 ms
    pacer.flush()
    clocks.now += 5.0
    clocks.cpu += 2.0  # the user scrolled a long chat meanwhile
    pacer.request()
    assert pacer.interval == pacing.MIN_INTERVAL_S


def test_flush_draws_what_waits_and_cancel_forgets_it(qtbot: QtBot, qapp: QApplication) -> None:
    clocks = Clocks()
    pacer, drawn = make_pacer(clocks, 0.0002)
    pacer.request()
    pacer.request()
    pacer.flush()
    assert len(drawn) == 2 and not pacer.pending
    pacer.request()
    pacer.cancel()
    qtbot.wait(int(pacing.MAX_INTERVAL_S * 1000) + 100)
    assert len(drawn) == 2


# -- the open paragraph --------------------------------------------------------------------------

HTML = "<p>Some <b>bold</b> and <code>code</code> text, " + ", ".join(str(i) for i in range(1, 60)) + "</p>"


def test_a_live_paragraph_looks_and_measures_like_the_block_that_replaces_it(
    qtbot: QtBot, themed_app: QApplication
) -> None:
    for html in (HTML, "<ul><li>one <code>x</code></li><li>two</li></ul>", "<h2>Head</h2>"):
        for muted in (False, True):
            label, live = ProseBlock(html, muted=muted), LiveProse(html, muted=muted)
            qtbot.addWidget(label)
            qtbot.addWidget(live)
            for width in (300, 760):
                assert live.heightForWidth(width) == label.heightForWidth(width), (html, muted, width)
    label, live = ProseBlock(HTML), LiveProse(HTML)
    for widget in (label, live):
        qtbot.addWidget(widget)
        widget.resize(500, widget.heightForWidth(500))
        widget.show()
    qtbot.waitExposed(live)
    assert label.grab().toImage() == live.grab().toImage()


# Texts that stream in small pieces: plain prose (the quick path), and everything that must take
# the full render instead — emphasis, links, entities, escapes, line starts that make lists or
# headings, tables.
TEXTS = [
    "Hello world, this is a plain paragraph that goes on and on, with commas, periods. And 42 more.",
    "Some *emphasis* and **bold** text, then `code` and a [link](http://x.y) and more words after it.",
    "12. is not a list here? 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12",
    "12345678. x",
    "foo_bar_baz and snake_case words, then _emph_ end",
    "Ampersand &amp; entity &copy; and & alone; done",
    "Back\\slash \\, escapes \\* here",
    "Line one\nLine two continues\n---\nAfter",
    "# Heading text here ##\nPara",
    "- item one goes on\n- item two goes on and on",
    "Trailing spaces  \nhard break",
    "Title\n=====\n\nText",
    "Text with 'quotes' and \"double\" quotes, 50% off, a/b, x+y=z, e-mail me@x.y",
    "<b>html</b> is escaped and <http://auto.link> too",
    "word~~strike~~ and ~single",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "Spaces  inside   a line\tand a tab, then  more  words  here",
]


def _characters(doc: QTextDocument) -> list[tuple[object, ...]]:
    """Each character with what it looks like (weight, italic, link, strike-out)."""
    out: list[tuple[object, ...]] = []
    block = doc.begin()
    while block.isValid():
        fragments = block.begin()
        while not fragments.atEnd():
            fragment = fragments.fragment()
            if fragment.isValid():
                f = fragment.charFormat()
                out += [
                    (c, f.fontWeight(), f.fontItalic(), f.anchorHref(), f.fontStrikeOut())
                    for c in fragment.text()
                    if c != "\u200b"
                ]
            fragments += 1
        out.append(("\n",))
        block = block.next()
    while out and (out[-1] == ("\n",) or out[-1][0] == " "):
        out.pop()
    return out


def test_a_streamed_paragraph_shows_exactly_what_a_full_render_shows(qtbot: QtBot, themed_app: QApplication) -> None:
    rng = random.Random(7)
    renders = 0
    flushes = 0
    original = StreamingMarkdown.update

    def counted(self: StreamingMarkdown) -> tuple[list[Block], Block | None]:
        nonlocal renders
        renders += 1
        return original(self)

    StreamingMarkdown.update = counted  # type: ignore[method-assign]
    try:
        for text in TEXTS:
            for _trial in range(6):
                view = MarkdownView()
                qtbot.addWidget(view)
                i = 0
                while i < len(text):
                    n = rng.randint(1, 5)
                    view.append(text[i : i + n])
                    i += n
                    view.flush()
                    flushes += 1
                    tail = view._tail
                    if not isinstance(tail, LiveProse):
                        continue
                    stream = view._stream
                    assert stream is not None
                    env: dict[str, object] = {}
                    tokens = _parser().parse(stream._open, env)
                    spans = _top_level_spans(tokens)
                    block = _render(tokens, spans[-1], env)
                    full = QTextDocument()
                    full.setDefaultStyleSheet(tail._doc.defaultStyleSheet())
                    full.setHtml(block.html)
                    assert _characters(tail._doc) == _characters(full), (text, stream._open)
                view.finish()
                assert view.text() == text
    finally:
        StreamingMarkdown.update = original  # type: ignore[method-assign]
    # Plain prose took the quick path: far fewer full renders than updates.
    assert renders < flushes * 0.8


def test_a_long_plain_paragraph_is_not_rendered_again_for_each_update(qtbot: QtBot, themed_app: QApplication) -> None:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.append("Counting:")
    view.flush()
    live = view._tail
    assert isinstance(live, LiveProse)
    rendered = live.text()
    for i in range(1, 200):
        view.append(f" {i},")
        view.flush()
    assert view._tail is live and live.text() == rendered  # appended to, never set again
    assert live.shown_text().endswith("198, 199,")
    shown = live.shown_text()
    live.retheme()  # the theme changed mid-reply: the appended text stays
    assert live.shown_text() == shown
    view.finish()
    assert [type(w).__name__ for w in view.block_widgets()] == ["ProseBlock"]
