"""Events leave in batches: 15 a second, whatever the token rate, and never held back by a stall.

Each batch wakes a thread on the other side (the engine process's pipe, the chat service, the
window or the API server), and on a machine whose cores llama.cpp's threads fill, every wake-up's
CPU time is taken from them; 15 a second reads as smooth streaming and halved what the window's
process spent at 30 (bench/stream_overhead.py prints it).

`Batcher.add()` joins consecutive deltas of one kind (`coalesce`) and sends the batch when the
interval has passed since the last send; a flusher thread wakes every `STALL_FLUSH_S` and sends
what is pending once the interval has passed without a new event, so text generated just before a
stall is not held until the next token (at most STALL_FLUSH_S + the interval). While tokens flow,
add() sends every batch itself: a flusher that woke at the batch rate only added wake-ups, each
taken from llama.cpp's threads. `on_tick` runs on the flusher thread at each of its wake-ups (the
chat service saves the reply there, so text already on screen reaches the disk even when tokens
stall).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from app.core.formats.base import ParsedEvent, coalesce

EMIT_INTERVAL_S = 1 / 15
STALL_FLUSH_S = 0.2  # how often the flusher looks for text held by a stall


class Batcher:
    def __init__(
        self,
        send: Callable[[list[ParsedEvent]], None],
        interval: float = EMIT_INTERVAL_S,
        on_tick: Callable[[], None] | None = None,
        name: str = "hearth-batcher",
    ) -> None:
        self._send = send
        self._interval = interval
        self._stall_flush = max(interval, STALL_FLUSH_S)
        self._on_tick = on_tick
        self._lock = threading.Lock()
        self._pending: list[ParsedEvent] = []
        self._last = -interval  # the first event leaves at once: it is what the user waits for
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flusher, name=name, daemon=True)
        self._thread.start()

    def add(self, event: ParsedEvent) -> None:
        with self._lock:
            coalesce(self._pending, event)
            if time.monotonic() - self._last >= self._interval:
                self._send_locked()

    def flush(self) -> None:
        with self._lock:
            self._send_locked()

    def close(self) -> None:
        """Stop the flusher and send what is pending. Safe to call more than once."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self.flush()

    def __enter__(self) -> Batcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send_locked(self) -> None:
        if self._pending:
            events, self._pending = self._pending, []
            self._send(events)
        self._last = time.monotonic()

    def _flusher(self) -> None:
        while not self._stop.wait(self._stall_flush):
            with self._lock:
                if self._pending and time.monotonic() - self._last >= self._interval:
                    self._send_locked()
            if self._on_tick is not None:
                self._on_tick()
