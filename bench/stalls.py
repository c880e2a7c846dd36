"""Where the GUI thread's long stalls go: a sampling watchdog for the GUI benchmarks.

A thread watches the heartbeat's last beat; while the GUI thread has not beaten for `threshold_ms`
it samples that thread's Python stack every `every_ms` (`sys._current_frames`). When the beat comes
back, the gap and the stacks seen in it are kept. `report()` prints the longest gaps with their most
frequent stacks (innermost frames last). A stack sampled while the GUI thread is inside Qt shows
the Python line that called into Qt; a call that holds the GIL delays the sample until it returns.

    tracer = StallTracer(lambda: heartbeat.beats[-1] / 1e6, clock_ms)  # both in ms, one clock
    tracer.start(); ...; tracer.stop(); tracer.report()
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Gap:
    start_ms: float
    length_ms: float = 0.0
    stacks: Counter[tuple[str, ...]] = field(default_factory=Counter)


def stack_of(thread_id: int, depth: int) -> tuple[str, ...]:
    frame = sys._current_frames().get(thread_id)
    lines: list[str] = []
    while frame is not None and len(lines) < depth:
        code = frame.f_code
        lines.append(f"{code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return tuple(reversed(lines))


class StallTracer:
    def __init__(
        self,
        last_beat_ms: Callable[[], float],
        now_ms: Callable[[], float],
        threshold_ms: float = 30.0,
        every_ms: float = 2.0,
        depth: int = 12,
    ) -> None:
        self.last_beat_ms, self.now_ms = last_beat_ms, now_ms
        self.threshold_ms, self.every_ms, self.depth = threshold_ms, every_ms, depth
        self.gui_thread = threading.main_thread().ident or 0
        self.gaps: list[Gap] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-tracer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        gap: Gap | None = None
        while not self._stop.is_set():
            time.sleep(self.every_ms / 1000)
            last = self.last_beat_ms()
            late = self.now_ms() - last
            if late >= self.threshold_ms:
                if gap is None or gap.start_ms != last:
                    gap = Gap(last)
                    self.gaps.append(gap)
                gap.length_ms = late
                gap.stacks[stack_of(self.gui_thread, self.depth)] += 1
            else:
                gap = None

    def report(self, top: int = 5, stacks: int = 3) -> None:
        for gap in sorted(self.gaps, key=lambda g: -g.length_ms)[:top]:
            print(f"stall >= {gap.length_ms:.0f} ms at {gap.start_ms:.0f} ms, {sum(gap.stacks.values())} samples")
            for stack, count in gap.stacks.most_common(stacks):
                print(f"  {count} x")
                for line in stack:
                    print(f"      {line}")


class SlowTurns:
    """Event-loop turns on the GUI thread that took `threshold_ms` or more, with what Python ran in
    them (`sys.setprofile`): the callbacks Qt made (event handlers, slots, virtuals like sizeHint)
    and what they called, `depth` levels down, with their total times; the rest of the turn, Qt's
    own work (layout, polish, paint, deletion), as "in Qt". Set `phase` to label the turns. The
    profile slows everything down: read the shares, not the milliseconds."""

    LOOP_CALLS = ("processEvents", "exec", "exec_", "sendPostedEvents")

    def __init__(self, threshold_ms: float = 30.0, depth: int = 5) -> None:
        self.threshold_s = threshold_ms / 1000
        self.depth = depth
        self.phase = ""
        self.turns: list[tuple[float, str, Counter[tuple[str, ...]]]] = []
        self._stack: list[tuple[float, str]] = []  # (start, name)
        self._turn: Counter[tuple[str, ...]] | None = None
        self._turn_depth = -1

    def start(self) -> None:
        sys.setprofile(self._profile)

    def stop(self) -> None:
        sys.setprofile(None)

    def _profile(self, frame: object, event: str, arg: object) -> None:
        if event in ("call", "c_call"):
            if event == "c_call":
                name = getattr(arg, "__qualname__", "") or getattr(arg, "__name__", "")
                if self._turn is None and getattr(arg, "__name__", "") in self.LOOP_CALLS:
                    self._turn, self._turn_depth = Counter(), len(self._stack)
            else:
                code = getattr(frame, "f_code", None)
                name = f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_firstlineno} {code.co_name}" if code else "?"
            self._stack.append((time.perf_counter(), name))
            return
        if event not in ("return", "c_return", "c_exception") or not self._stack:
            return
        start, _name = self._stack[-1]
        took = time.perf_counter() - start
        level = len(self._stack) - 1 - self._turn_depth
        if self._turn is not None and level == 0:
            if took >= self.threshold_s:
                own = sum(t for k, t in self._turn.items() if len(k) == 1)
                self._turn[("in Qt",)] = took - own
                self.turns.append((took * 1000, self.phase, self._turn))
            self._turn = None
        elif self._turn is not None and 0 < level <= self.depth:
            path = tuple(n for _s, n in self._stack[self._turn_depth + 1 :])
            self._turn[path] += took
        self._stack.pop()

    def report(self, top: int = 8, at_least_ms: float = 2.0) -> None:
        print(f"{len(self.turns)} event-loop turns of {self.threshold_s * 1000:.0f} ms or more (profiled)")
        for took, phase, parts in sorted(self.turns, key=lambda t: -t[0])[:top]:
            print(f"turn {took:.0f} ms ({phase}):")
            for path, seconds in sorted(parts.items()):
                if seconds * 1000 >= at_least_ms:
                    print(f"    {seconds * 1000:6.1f} ms  {'  ' * (len(path) - 1)}{path[-1]}")
