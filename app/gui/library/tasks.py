"""Work the GUI thread must not wait for (the hardware probe, reading GGUF headers, hub searches,
imports, the keyring) runs on short-lived Python threads; each result comes back to the GUI thread
through a queued signal and is handed to the callback given with the work."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

log = logging.getLogger("hearth.gui.tasks")


class Background(QObject):
    _done = Signal(int, object)
    _failed = Signal(int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tickets = itertools.count(1)
        self._pending: dict[int, tuple[Callable[[Any], None], Callable[[BaseException], None] | None]] = {}
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        # Emitted from worker threads; this object lives in the GUI thread, so delivery is queued.
        self._done.connect(self._on_done)
        self._failed.connect(self._on_failed)

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None] | None = None,
        name: str = "work",
    ) -> int:
        ticket = next(self._tickets)
        self._pending[ticket] = (on_done, on_error)

        def work() -> None:
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 (handed to the GUI thread as a message)
                from app.core import logs

                logs.failure(log, exc, f"background {name} failed")
                self._emit(self._failed, ticket, exc)
            else:
                self._emit(self._done, ticket, result)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=work, name=f"hearth-{name}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return ticket

    def busy(self) -> bool:
        with self._lock:
            return bool(self._threads)

    def forget(self) -> None:
        """Drop the callbacks of work still running (its results are thrown away)."""
        self._pending.clear()

    def join(self, timeout: float = 30.0) -> None:
        """Wait for running work (shutdown and tests); results already queued are still delivered."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)

    @staticmethod
    def _emit(signal: Any, ticket: int, value: object) -> None:
        try:
            signal.emit(ticket, value)
        except RuntimeError:
            pass  # the receiver was deleted (window closed): nobody is waiting for this

    def _on_done(self, ticket: int, result: object) -> None:
        callbacks = self._pending.pop(ticket, None)
        if callbacks is not None:
            callbacks[0](result)

    def _on_failed(self, ticket: int, exc: object) -> None:
        callbacks = self._pending.pop(ticket, None)
        if callbacks is None:
            return
        if callbacks[1] is None:
            raise exc if isinstance(exc, BaseException) else RuntimeError(str(exc))
        callbacks[1](exc if isinstance(exc, BaseException) else RuntimeError(str(exc)))
