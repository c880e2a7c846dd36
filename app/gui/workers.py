"""The window's handle on the chat service: its events arrive as queued Qt signals.

All the work — loading, generating, batching, saving the reply while it streams, cancelling —
happens in `app.core.chat.service.ChatService` and in the engine process behind it; this adapter
only turns the service's listener calls (made on the service's threads) into signals delivered on
the GUI thread, in order, through one queued relay.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal

if TYPE_CHECKING:
    # The service (and the engine types behind it) is imported when first used, after the first
    # frame: its dataclasses cost ~25 ms of start-up that the window need not wait for.
    from app.core.chat.service import ChatService, LoadFailed, ServiceEvent
    from app.core.engine.protocol import Backend
    from app.core.engine.types import GenerateRequest, LoadResult, Sampling
    from app.core.store import ChatStore
    from app.core.tools.approval import Approvals
    from app.core.tools.base import ToolSet

__all__ = ["EngineController"]


class EngineController(QObject):
    """Lives on the GUI thread; owns the chat service (and so the engine process)."""

    _relay = Signal(object)  # a ServiceEvent, emitted on a service thread, delivered queued

    loadStarted = Signal(str)  # the model's name
    planReady = Signal(object)  # LoadPlan, before the (slow) load itself
    loaded = Signal(object)  # LoadResult
    loadFailed = Signal(str)  # one sentence: the model was refused or llama.cpp reported an error
    loadCrashed = Signal(str, str)  # sentence, the model's path: the engine process died while loading
    engineStopped = Signal(str)  # the engine died mid-reply or while idle: one sentence
    unloaded = Signal()
    events = Signal(int, object)  # job id, list of coalesced ParsedEvents (object: no conversion)
    finished = Signal(object)  # ReplyOutcome
    toolCall = Signal(object)  # ToolCallUpdate: a call made, waiting for approval, running, finished
    replyNotice = Signal(int, str)  # job id, a sentence (tools left out, a server that failed, ...)

    def __init__(
        self,
        store: ChatStore,
        parent: QObject | None = None,
        *,
        ctx_cap: int | None = None,
        backend: Backend | None = None,
    ) -> None:
        super().__init__(parent)
        self._relay.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)
        self._store, self._backend, self._ctx_cap = store, backend, ctx_cap
        self._service: ChatService | None = None
        self._handlers: dict[type, Any] = {}
        # The name the engine knows the model by (the file's general.name), as the last load said
        # it: the window puts the name it shows in its place in sentences (see MainWindow).
        self.engine_name = ""

    @property
    def service(self) -> ChatService:
        """The chat service, started on first use (its thread and, once a model loads, its engine
        process)."""
        if self._service is None:
            from app.core.chat.service import ChatService

            self._service = ChatService(self._store, self._backend, listener=self._relay.emit, ctx_cap=self._ctx_cap)
        return self._service

    # -- requests (GUI thread) ------------------------------------------------------------------

    @property
    def ctx_cap(self) -> int | None:
        return self._ctx_cap

    @property
    def result(self) -> LoadResult | None:
        return self._service.result if self._service is not None else None

    @property
    def loading(self) -> bool:
        return self._service is not None and self._service.loading

    @property
    def is_loaded(self) -> bool:
        return self._service is not None and self._service.loaded

    def load(self, path: Path | None, *, ctx_cap: int | None = None, gpu_layers: int | None = None) -> None:
        """Load a model (None: the starter). A running reply is stopped first. `ctx_cap` and
        `gpu_layers` come from the model settings (None: the window's cap, the planner's layers)."""
        self.service.load(path, ctx_cap if ctx_cap is not None else self._ctx_cap, gpu_layers=gpu_layers)

    def load_remote(self, server: str, name: str) -> None:
        """Load a remote engine's model: its backend is made off the GUI thread (the API key comes
        from the keyring, which may be slow to answer), then the service loads it like any model."""
        import threading

        service = self.service

        def run() -> None:
            from app.core import remotes

            service.load(name, backend=remotes.backend(server))

        threading.Thread(target=run, name="hearth-remote-load", daemon=True).start()

    def unload(self) -> None:
        self.service.unload()

    def generate(self, conversation_id: int, message_id: int, request: GenerateRequest) -> int:
        return self.service.start_reply(request, conversation_id, message_id)

    def start_turn(
        self,
        conversation_id: int,
        *,
        model_name: str | None,
        max_tokens: int | None = None,
        sampling: Sampling | None = None,
        tools: Callable[[], ToolSet] | None = None,
        approvals: Approvals | None = None,
    ) -> tuple[int, int]:
        """(job id, message id) of a reply to the conversation's last user message. `tools`
        makes the reply's ToolSet on the service thread (it may start MCP servers)."""
        return self.service.start_turn(
            conversation_id,
            model_name=model_name,
            max_tokens=max_tokens,
            sampling=sampling,
            tools=tools,
            approvals=approvals,
        )

    def decide(self, job_id: int, call_id: str, decision: str) -> None:
        """The user's answer on a tool card: "once", "chat" (always in this chat) or "deny"."""
        from app.core.tools.approval import Decision

        choice = {"once": Decision.ONCE, "chat": Decision.ALWAYS_IN_CHAT, "always": Decision.ALWAYS}
        self.service.decide(job_id, call_id, choice.get(decision, Decision.DENY))

    def leave_conversation(self) -> None:
        """The window left the open conversation: the engine saves its KV state."""
        if self._service is not None:
            self._service.leave_conversation()

    def enter_conversation(self, conversation_id: int) -> None:
        """The window opened a stored conversation: the engine restores its KV state now."""
        if self._service is not None:
            self._service.enter_conversation(conversation_id)

    def cancel(self, job_id: int) -> None:
        self.service.cancel(job_id)

    def cancel_all(self) -> None:
        self.service.cancel_all()

    def shutdown(self) -> None:
        """Stop any reply (saved as 'stopped'), end the engine process and the service thread."""
        if self._service is not None:
            self._service.shutdown()

    # -- results (GUI thread) -------------------------------------------------------------------

    def _dispatch(self, event: ServiceEvent) -> None:
        if not self._handlers:
            from app.core.chat import service as s

            self._handlers = {
                s.LoadStarted: lambda e: self._named(e.name, self.loadStarted.emit, e.name),
                s.PlanReady: lambda e: self._named(e.name, self.planReady.emit, e.plan),
                s.Loaded: lambda e: self.loaded.emit(e.result),
                s.LoadFailed: self._on_load_failed,
                s.Unloaded: lambda _e: self.unloaded.emit(),
                s.EngineStopped: lambda e: self.engineStopped.emit(e.message),
                s.ReplyEvents: lambda e: self.events.emit(e.job_id, e.events),
                s.ReplyOutcome: lambda e: self.finished.emit(e),
                s.ToolCallUpdate: lambda e: self.toolCall.emit(e),
                s.ReplyNotice: lambda e: self.replyNotice.emit(e.job_id, e.text),
            }
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _named(self, name: str, emit: Any, value: object) -> None:
        self.engine_name = name
        emit(value)

    def _on_load_failed(self, event: LoadFailed) -> None:
        if event.crashed:
            self.loadCrashed.emit(event.message, str(event.path or ""))
        else:
            self.loadFailed.emit(event.message)
