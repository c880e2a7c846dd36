"""How responsive the window stays while a reply streams.

1. render_cost_ratio: an 8,000-token Markdown reply (paragraphs, lists, code, tables) is streamed
   into the real chat view (offscreen) in batches as the engine thread sends them; the time spent
   on the GUI thread for the last 1,000 tokens ÷ that for the first 1,000. Near 1 means appending
   costs the same at the end of a long reply as at its start (target <= 1.5).
2. stream_cost_ratio: the GUI time per streamed token in a chat of 100 stored messages ÷ that in
   an empty chat (the same 1,000 tokens, fed as the engine's batches; rounds alternate the two,
   the median of each is compared). Near 1 means a token costs the same however long the
   conversation (target <= 1.2).
3. ui_max_stall_ms: a 5 ms heartbeat timer runs on the GUI thread while the real model streams a
   reply at full speed through the app (Send pressed to reply finished); the longest gap between
   two beats is the longest the window could not react (target <= 50).

    python bench/ui_latency.py --model FILE [--tokens 8000] [--batch 2] [--rounds 3] [--no-model]

--no-model measures 1 and 2 only (no model needed).

Last line: ui_max_stall_ms X.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HEARTH_HOME", tempfile.mkdtemp(prefix="hearth-bench-"))

from PySide6.QtCore import QCoreApplication, QElapsedTimer, QEvent, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.core.engine import Sampling  # noqa: E402
from app.core.formats.base import AnswerDelta  # noqa: E402
from app.core.store import ChatStore  # noqa: E402
from app.gui.app import application  # noqa: E402
from app.gui.main_window import MainWindow  # noqa: E402
from app.gui.model_picker import ModelEntry  # noqa: E402
from app.gui.selftest import wait_for  # noqa: E402
from app.gui.theme import ThemeManager  # noqa: E402

SECTION = """## Step {n}: measuring the tide

The harbour master logs the water level every {n} minutes, and the readings drift as the moon moves.
A *careful* observer notices that the **spring tides** arrive a little after the full moon.

- Reading {n}a: {a} cm above chart datum
- Reading {n}b: {b} cm, taken at the `north` gauge
- Reading {n}c: falling, see the table

```python
def tide_height(t: float, amplitude: float = {a}.0) -> float:
    # a simple harmonic model, step {n}
    return amplitude * math.cos(2 * math.pi * t / 12.42)
```

| Gauge | Level | Trend |
|---|---|---|
| north | {a} | rising |
| south | {b} | falling |

"""


def synthetic_tokens(n_tokens: int) -> list[str]:
    """Markdown split into token-sized pieces (a word or up to 4 characters, with spaces)."""
    pieces: list[str] = []
    section = 0
    while len(pieces) < n_tokens:
        section += 1
        text = SECTION.format(n=section, a=100 + section % 37, b=80 + section % 23)
        for word in re.findall(r"\s*\S+|\s+", text):
            pieces += [word[i : i + 4] for i in range(0, len(word), 4)]
    return pieces[:n_tokens]


def render_cost_ratio(app: QApplication, window: MainWindow, n_tokens: int, batch: int) -> float:
    window.session.new_chat()
    window.view.add_user(1, "Explain how tides are measured, with code and tables.")
    reply = window.view.add_assistant(2)
    reply.start()
    pieces = synthetic_tokens(n_tokens)
    costs: list[tuple[int, float]] = []  # (tokens so far, seconds on the GUI thread)
    for i in range(0, len(pieces), batch):
        text = "".join(pieces[i : i + batch])
        started = time.perf_counter()
        reply.add_events([AnswerDelta(text)])
        reply.flush()
        app.processEvents()  # layout and paint, as the event loop would
        costs.append((i + batch, time.perf_counter() - started))
    reply.finish("complete", None, None)
    first = sum(c for n, c in costs if n <= 1000)
    last = sum(c for n, c in costs if n > n_tokens - 1000)
    print(
        f"rendering {n_tokens} tokens in batches of {batch}: first 1,000 {first * 1000:.0f} ms, "
        f"last 1,000 {last * 1000:.0f} ms, widgets {len(reply.answer.block_widgets())}"
    )
    return last / first


def stream_cost_ms(app: QApplication, window: MainWindow, conv_id: int | None, n_tokens: int, batch: int) -> float:
    """GUI milliseconds per token for streaming a reply into `conv_id` (None: a new, empty chat)."""
    if conv_id is None:
        window.session.new_chat()
    else:
        window.session.open(conv_id)
    for _ in range(50):  # the stored messages are built a step per event-loop turn: let them settle
        app.processEvents()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    window.view.add_user(10_000_001, "Explain how tides are measured.")
    reply = window.view.add_assistant(10_000_002)
    reply.start()
    pieces = synthetic_tokens(n_tokens)
    spent = 0.0
    for i in range(0, len(pieces), batch):
        started = time.perf_counter()
        reply.add_events([AnswerDelta("".join(pieces[i : i + batch]))])
        reply.flush()
        app.processEvents()
        spent += time.perf_counter() - started
    reply.finish("complete", None, None)
    return spent * 1000 / len(pieces)


def stream_cost_ratio(app: QApplication, window: MainWindow, store: ChatStore, rounds: int, batch: int) -> float:
    long_chat = store.create_conversation("A long chat")
    for i in range(50):
        store.add_message(long_chat.id, "user", f"Question {i}: what does `tide_height` return at step {i}?")
        store.add_message(long_chat.id, "assistant", SECTION.format(n=i, a=100 + i, b=80 + i))
    empty_ms: list[float] = []
    long_ms: list[float] = []
    for _ in range(max(rounds, 3)):
        empty_ms.append(stream_cost_ms(app, window, None, 1000, batch))
        long_ms.append(stream_cost_ms(app, window, long_chat.id, 1000, batch))
    empty, long = statistics.median(empty_ms), statistics.median(long_ms)
    print(
        f"streaming 1,000 tokens: empty chat {empty:.3f} ms per token, chat of 100 stored messages {long:.3f} ms "
        f"(rounds: {', '.join(f'{a:.2f}/{b:.2f}' for a, b in zip(empty_ms, long_ms))})"
    )
    return long / empty


def max_stall_ms(window: MainWindow, conv_id: int, prompt: str, first: bool) -> tuple[float, float, int]:
    if first:
        window.session.open(conv_id)  # showing the stored conversation is not part of the reply
        # Nor is deleting the render test's 8,000-token reply (its widgets go on deleteLater).
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QCoreApplication.processEvents()
    beats: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(lambda: beats.append(clock.nsecsElapsed()))
    heartbeat.start()
    beats.append(clock.nsecsElapsed())
    if first:
        window.composer.set_text(prompt)
        window.composer.button.click()
    else:
        window.session.regenerate()
    _i, (outcome,) = wait_for([window.session.replyFinished], 1800)
    beats.append(clock.nsecsElapsed())
    heartbeat.stop()
    gaps = sorted((b - a) / 1e6 for a, b in zip(beats, beats[1:]))
    tokens = outcome.stats["generated_tokens"] if outcome.stats else 0
    return gaps[-1], gaps[int(len(gaps) * 0.99)], tokens


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--no-model", action="store_true", help="only the rendering and streaming-cost ratios")
    ap.add_argument("--tokens", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=2, help="tokens per GUI update in the render test")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ctx", type=int, default=4096)
    args = ap.parse_args()
    if not args.model and not args.no_model:
        ap.error("--model FILE is needed (or --no-model for the ratios only)")

    app = application()
    ThemeManager(app, forced="light")
    store = ChatStore(Path(os.environ["HEARTH_HOME"]) / "bench.sqlite3")
    window = MainWindow(store, ctx_cap=args.ctx, autoload=False)
    window.resize(1200, 800)
    window.show()

    ratio = render_cost_ratio(app, window, args.tokens, args.batch)
    print(f"render_cost_ratio {ratio:.2f}", flush=True)
    if args.no_model:
        stream_ratio = stream_cost_ratio(app, window, store, args.rounds, args.batch)
        print(f"stream_cost_ratio {stream_ratio:.2f}", flush=True)
        window.close()
        store.close()
        return 0

    path = Path(args.model)
    window.load_model(ModelEntry(str(path), path.stem, path, path.stat().st_size))
    index, loaded = wait_for([window.modelLoaded, window.modelFailed], 1800)
    if index == 1:
        raise SystemExit(f"load failed: {loaded[0]}")
    conv = store.create_conversation("Counting")
    store.add_message(conv.id, "user", "Count from 1 to 100.")
    store.add_message(conv.id, "assistant", ", ".join(str(i) for i in range(1, 101)))
    window.session.sampling = Sampling(temperature=0.0, top_k=1, seed=1)
    stalls = []
    for i in range(args.rounds):
        worst, p99, tokens = max_stall_ms(window, conv.id, "Count from 1 to 100 again.", i == 0)
        stalls.append(worst)
        print(f"round {i + 1}: {tokens} tokens, longest gap {worst:.1f} ms, 99th percentile {p99:.1f} ms", flush=True)
    # After the stall rounds: the long chat's widgets it builds and frees are not theirs to wait on.
    stream_ratio = stream_cost_ratio(app, window, store, args.rounds, args.batch)
    print(f"stream_cost_ratio {stream_ratio:.2f}", flush=True)
    window.close()
    store.close()
    print(f"median of rounds {statistics.median(stalls):.1f} ms")
    print(f"ui_max_stall_ms {max(stalls):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
