"""Stop strings over a token stream: text is released as soon as it cannot be the start of a
stop string, and the reply ends at the first complete one (which is never shown)."""

from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        """The text that is safe to show now; sets `matched` when a stop string completed."""
        if not self.stops:
            return text
        buf = self._held + text
        cut = -1
        for stop in self.stops:
            i = buf.find(stop)
            if i != -1 and (cut == -1 or i < cut):
                cut, self.matched = i, stop
        if cut != -1:
            self._held = ""
            return buf[:cut]
        # Hold back the longest tail that could still grow into a stop string.
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buf)), keep, -1):
                if stop.startswith(buf[-n:]):
                    keep = n
                    break
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        """At the end of the stream a partial stop string is ordinary text."""
        held, self._held = self._held, ""
        return held
