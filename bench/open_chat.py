"""How fast a long stored conversation opens, scrolls and is searched (issue 12).

A throw-away database holds a 500-message conversation (250 questions, 250 replies with
paragraphs, lists, code blocks and tables; every fifth reply with reasoning) and, for search,
400 more conversations of 50 messages (20,000 messages in all). The real window (offscreen)
opens the long conversation; a 5 ms heartbeat on the GUI thread measures the longest gap.

1. first paint: from `session.open()` to the first paint of the conversation's viewport;
2. longest stall while it opens (the open call, then until the view has nothing left to build);
3. longest stall while scrolling to the top: a wheel-like scroll (240 px per 16 ms) from the
   bottom to the top, then a jump from the bottom straight to the top (dragging the thumb);
4. search: the sidebar's query from the keystroke's timer to the list showing the results.

Each round opens the conversation cold: the Markdown cache is emptied first (as after a start).
The rounds begin once the window's own start-up import of the parser and highlighter (on a thread,
after the first frame) is done.

    python bench/open_chat.py [--rounds 5] [--messages 500] [--trace-stalls 30]

`--trace-stalls MS` samples the GUI thread's stack during every gap of MS or more and prints the
longest gaps with their stacks at the end (bench/stalls.py).

Last line: open_chat_first_paint_ms X (the median of the rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HEARTH_HOME", tempfile.mkdtemp(prefix="hearth-bench-"))

from PySide6.QtCore import QCoreApplication, QElapsedTimer, QEvent, QObject, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.core.store import ChatStore  # noqa: E402
from app.gui.app import application  # noqa: E402
from app.gui.main_window import PREWARM_DELAY_MS, MainWindow  # noqa: E402
from app.gui.theme import ThemeManager  # noqa: E402
from bench.stalls import SlowTurns, StallTracer  # noqa: E402

WORDS = (
    "harbour tide gauge moon reading drift spring datum observer north south level falling rising "
    "kettle lantern meadow copper violet orbit signal ledger pepper quartz walnut saddle glacier"
).split()

REPLY = """Here is how **step {n}** works, with the *details* you asked for.

The {w1} and the {w2} interact: each {w3} reading is compared with the previous one, and a change
of more than {n} units is flagged. See `check_{w1}()` below.

- first, read the {w2} value;
- then compare it with the stored {w3};
- finally, log the result.

```python
def check_{w1}(value: float, previous: float, limit: float = {n}.0) -> bool:
    # flag a jump larger than the limit (step {n})
    delta = abs(value - previous)
    if delta > limit:
        print(f"{w1}: jump of {{delta:.1f}}")
        return True
    return False
```

| {w1} | {w2} | {w3} |
|---|---|---|
| {n} | {m} | ok |
| {m} | {n} | check |
"""

REASONING = "The user asks about {w1}. I should explain the comparison with {w2}, show code, and a table."


class PaintWatch(QObject):
    """Notes the time of the first paint of a widget after `arm()`."""

    def __init__(self, clock: QElapsedTimer) -> None:
        super().__init__()
        self.clock = clock
        self.painted_ns: int | None = None
        self.armed = False

    def arm(self) -> None:
        self.painted_ns, self.armed = None, True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if self.armed and event.type() == QEvent.Type.Paint and self.painted_ns is None:
            self.painted_ns = self.clock.nsecsElapsed()
            self.armed = False
        return False


class Heartbeat:
    last_ns = 1 << 62  # the latest beat, for the stall tracer; far in the future while none runs

    def __init__(self, clock: QElapsedTimer) -> None:
        self.clock = clock
        self.beats: list[int] = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(5)
        self.timer.timeout.connect(self.beat)

    def beat(self) -> None:
        Heartbeat.last_ns = self.clock.nsecsElapsed()
        self.beats.append(Heartbeat.last_ns)

    def start(self) -> None:
        self.beat()
        self.beats = [Heartbeat.last_ns]
        self.timer.start()

    def stop(self) -> float:
        self.beats.append(self.clock.nsecsElapsed())
        self.timer.stop()
        Heartbeat.last_ns = 1 << 62  # no heartbeat: nothing to trace until the next one starts
        return max((b - a) / 1e6 for a, b in zip(self.beats, self.beats[1:]))


def fill(store: ChatStore, n_messages: int, n_conversations: int, per_conversation: int) -> int:
    for c in range(n_conversations):
        conv = store.create_conversation(f"Notes {c} on the {WORDS[c % len(WORDS)]}")
        for i in range(per_conversation):
            w = WORDS[(c * 7 + i) % len(WORDS)]
            store.add_message(
                conv.id, "user" if i % 2 == 0 else "assistant", f"A line about {w} {c}-{i} and more text."
            )
    long = store.create_conversation("A long conversation with code and tables")
    for i in range(n_messages // 2):
        w1, w2, w3 = (WORDS[(i + k) % len(WORDS)] for k in (0, 5, 11))
        store.add_message(long.id, "user", f"Question {i + 1}: how does the {w1} compare with the {w2}?")
        store.add_message(
            long.id,
            "assistant",
            REPLY.format(n=i + 1, m=2 * i + 3, w1=w1, w2=w2, w3=w3),
            reasoning=REASONING.format(w1=w1, w2=w2) if i % 5 == 0 else "",
            stats={"generated_tokens": 410, "tokens_per_s": 38.5, "time_to_first_token_s": 0.4},
        )
    return long.id


def run_until(app: QApplication, done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.001)


def prewarming() -> bool:
    return any(t.name == "hearth-prewarm" for t in threading.enumerate())


def view_busy(window: MainWindow) -> bool:
    busy = getattr(window.view, "busy", None)
    return bool(busy()) if callable(busy) else False


def settle(app: QApplication, window: MainWindow, timeout_s: float = 120) -> None:
    run_until(app, lambda: not view_busy(window), timeout_s)
    end = time.monotonic() + 0.2
    run_until(app, lambda: time.monotonic() > end, 1)


def clear_caches() -> None:
    try:
        from app.gui.chat import markdown

        clear = getattr(markdown, "clear_caches", None)
        if callable(clear):
            clear()
    except ImportError:
        pass


def open_round(app: QApplication, window: MainWindow, conv_id: int, clock: QElapsedTimer) -> tuple[float, float]:
    window.session.new_chat()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    settle(app, window)
    clear_caches()
    watch = PaintWatch(clock)
    window.view.viewport().installEventFilter(watch)
    beat = Heartbeat(clock)
    beat.start()
    started = clock.nsecsElapsed()
    watch.arm()
    window.session.open(conv_id)
    run_until(app, lambda: watch.painted_ns is not None, 120)
    first_paint = ((watch.painted_ns or clock.nsecsElapsed()) - started) / 1e6
    settle(app, window)
    stall = beat.stop()
    window.view.viewport().removeEventFilter(watch)
    return first_paint, stall


def scroll_round(app: QApplication, window: MainWindow, clock: QElapsedTimer) -> float:
    bar = window.view.verticalScrollBar()
    bar.setValue(bar.maximum())
    settle(app, window)
    beat = Heartbeat(clock)
    beat.start()
    step = QTimer()
    step.setInterval(16)
    step.timeout.connect(lambda: bar.setValue(max(0, bar.value() - 240)))
    step.start()
    run_until(app, lambda: bar.value() == 0, 300)
    step.stop()
    settle(app, window)
    bar.setValue(bar.maximum())  # then drag the thumb from the bottom straight to the top
    settle(app, window)
    bar.setValue(0)
    settle(app, window)
    return beat.stop()


def search_round(app: QApplication, window: MainWindow, query: str, clock: QElapsedTimer) -> tuple[float, int]:
    sidebar = window.sidebar
    sidebar.search.blockSignals(True)  # no debounce timer: the search starts now
    sidebar.search.setText(query)
    sidebar.search.blockSignals(False)
    started = clock.nsecsElapsed()
    finished = getattr(sidebar, "searchFinished", None)
    if finished is None:
        sidebar.refresh()
    else:
        seen: list[int] = []
        finished.connect(lambda: seen.append(1))
        sidebar.refresh()
        run_until(app, lambda: bool(seen), 30)
        finished.disconnect()
    elapsed = (clock.nsecsElapsed() - started) / 1e6
    return elapsed, len(sidebar.titles())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--search-conversations", type=int, default=400)
    ap.add_argument("--trace-stalls", type=float, default=0.0, metavar="MS")
    ap.add_argument("--trace-calls", type=float, default=0.0, metavar="MS", help="report GUI-thread calls this slow")
    args = ap.parse_args()

    app = application()
    ThemeManager(app, forced="light")
    store = ChatStore(Path(os.environ["HEARTH_HOME"]) / "bench.sqlite3")
    built = time.perf_counter()
    conv_id = fill(store, args.messages, args.search_conversations, 50)
    total = args.messages + args.search_conversations * 50
    print(f"database: {total:,} messages in {time.perf_counter() - built:.1f} s", flush=True)
    window = MainWindow(store, autoload=False)
    window.resize(1200, 800)
    window.show()
    clock = QElapsedTimer()
    clock.start()
    settle(app, window)
    # The window imports the Markdown parser and the highlighter on a thread a moment after its
    # first frame (PREWARM_DELAY_MS): the rounds start once that is done, as for a user who opens
    # a chat a second or more after the window appears.
    shown = time.monotonic()
    run_until(app, lambda: time.monotonic() - shown > PREWARM_DELAY_MS / 1000 + 0.1 and not prewarming(), 30)

    paints, open_stalls, scroll_stalls, searches = [], [], [], []
    tracer = None
    if args.trace_stalls:
        tracer = StallTracer(lambda: Heartbeat.last_ns / 1e6, lambda: clock.nsecsElapsed() / 1e6, args.trace_stalls)
        tracer.start()
    calls = SlowTurns(args.trace_calls) if args.trace_calls else None
    if calls is not None:
        calls.start()
    queries = ("glacier", "check_walnut", "Notes 17", "jump of", "compare with the quartz")
    for i in range(args.rounds):
        if calls is not None:
            calls.phase = f"round {i + 1}, opening"
        paint, stall = open_round(app, window, conv_id, clock)
        if calls is not None:
            calls.phase = f"round {i + 1}, scrolling"
        scroll = scroll_round(app, window, clock)
        if calls is not None:
            calls.phase = f"round {i + 1}, searching"
        search_ms, found = search_round(app, window, queries[i % len(queries)], clock)
        search_round(app, window, "", clock)
        paints.append(paint)
        open_stalls.append(stall)
        scroll_stalls.append(scroll)
        searches.append(search_ms)
        print(
            f"round {i + 1}: first paint {paint:.0f} ms, longest stall opening {stall:.0f} ms, "
            f"scrolling to the top {scroll:.0f} ms, search “{queries[i % len(queries)]}” {search_ms:.1f} ms "
            f"({found} conversations)",
            flush=True,
        )
    window.close()
    store.close()
    if tracer is not None:
        tracer.stop()
        tracer.report()
    if calls is not None:
        calls.stop()
        calls.report()
    print(
        f"spread: first paint {min(paints):.0f}–{max(paints):.0f} ms, stall opening {min(open_stalls):.0f}–"
        f"{max(open_stalls):.0f} ms, scrolling {min(scroll_stalls):.0f}–{max(scroll_stalls):.0f} ms, "
        f"search {min(searches):.1f}–{max(searches):.1f} ms"
    )
    print(f"open_chat_max_stall_ms {max(open_stalls + scroll_stalls):.0f}")
    print(f"open_chat_search_ms {statistics.median(searches):.1f}")
    print(f"open_chat_first_paint_ms {statistics.median(paints):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
