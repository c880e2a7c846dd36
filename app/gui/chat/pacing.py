"""How often a streaming reply is drawn: as often as the eye wants, within a CPU budget.

On a machine where llama.cpp's threads use every core, each millisecond the window spends drawing
is a millisecond taken from one of them — and its partner thread waits for it at the next barrier,
so the whole generation slows by that much. Drawing every batch the engine sent (then 30 a second)
cost about 85 ms of CPU a second on the 2-core test machine: a tenth of the generation speed.

`FramePacer` draws at most every `MIN_INTERVAL_S`, and further apart when a frame costs more: it
measures the GUI thread's CPU time from the start of a frame to the next batch of text (the
update, then the layout and the painting it caused, which Qt does later in the event loop) and
spaces the frames so that this stays within `BUDGET` of one core. The first request after a pause
is drawn at once (the first token of a reply is never held back), and `flush()` draws what is
pending immediately (a reply's end).

When the local engine's generation threads take every logical core (`budget_for`), the budget is
halved (`BUDGET_CORES_FULL`): on the 2-core test machine that drew ~10 frames a second instead of
~15 and raised the app path's speed from 0.926 and 0.939 of bare llama.cpp to 0.981 and 0.986 (two
runs of 8 alternated rounds each). The window's CPU a second fell only a little (24-26 ms with
either budget): the wake-ups that interrupt llama.cpp's threads cost more than the CPU they use.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

BUDGET = 0.025  # the share of one core the GUI thread may spend while a reply streams
BUDGET_CORES_FULL = 0.0125  # the same when llama.cpp's generation threads take every core
MIN_INTERVAL_S = 1 / 30  # no faster than this: smoother is not visible
MAX_INTERVAL_S = 0.25  # no slower than this: text must keep flowing however slow the machine
SMOOTHING = 0.3  # weight of the newest frame in the running cost


def budget_for(n_threads: int, cpu_count: int | None, *, all_on_gpu: bool = False) -> float:
    """The frame budget for a local engine generating with `n_threads` CPU threads on a machine
    of `cpu_count` logical cores (a remote engine, or a model wholly on the GPU: `BUDGET`)."""
    if all_on_gpu or n_threads <= 0 or n_threads < (cpu_count or 1):
        return BUDGET
    return BUDGET_CORES_FULL


class FramePacer(QObject):
    def __init__(
        self,
        draw: Callable[[], None],
        *,
        budget: float = BUDGET,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.thread_time,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._draw = draw
        self._budget = budget
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._frame)
        self._last = -math.inf  # when the last frame was drawn
        self._cost = 0.0  # running CPU seconds per frame
        self._measured = False
        self._started_cpu: float | None = None  # the frame being measured: CPU time at its start
        self._pending = False
        self.frames = 0

    @property
    def interval(self) -> float:
        """Seconds between frames at the cost measured so far."""
        return min(max(self._cost / self._budget, MIN_INTERVAL_S), MAX_INTERVAL_S)

    @property
    def budget(self) -> float:
        return self._budget

    def set_budget(self, budget: float) -> None:
        """The share of one core frames may take from now on (the loaded engine changed)."""
        self._budget = budget

    @property
    def pending(self) -> bool:
        return self._pending

    def request(self) -> None:
        """Something new to show: drawn now if a frame is due, else when it is."""
        self._measure()
        self._pending = True
        if self._timer.isActive():
            return
        wait = self._last + self.interval - self._clock()
        if wait <= 0:
            self._frame()
        else:
            self._timer.start(max(1, math.ceil(wait * 1000)))

    def flush(self) -> None:
        """Draw what is pending now (the reply ended, or the user acts on it)."""
        self._timer.stop()
        if self._pending:
            self._frame()

    def cancel(self) -> None:
        """Forget what is pending (the reply's widget went away)."""
        self._timer.stop()
        self._pending = False

    def _frame(self) -> None:
        self._pending = False
        self._last = self._clock()
        self._started_cpu = self._cpu_clock()
        self.frames += 1
        self._draw()

    def _measure(self) -> None:
        """The cost of the last frame, taken when the next text arrives (it has been painted)."""
        if self._started_cpu is None:
            return
        used = max(self._cpu_clock() - self._started_cpu, 0.0)
        self._started_cpu = None
        if self._clock() - self._last > MAX_INTERVAL_S:
            return  # a pause: whatever else the window did meanwhile is not the frame's cost
        self._cost = (1 - SMOOTHING) * self._cost + SMOOTHING * used if self._measured else used
        self._measured = True
