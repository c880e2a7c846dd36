"""The chat service's own logic, driven through a scripted backend.

The backend here is a fake at the boundary: real llama.cpp cannot be made to stall for seconds
mid-reply, crash on cue, or count its generate() calls. Everything the fake stands in for is
tested with real llama.cpp in tests/e2e/test_engine_process.py and the GUI tests.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.chat.service import (
    ChatService,
    EngineStopped,
    Loaded,
    LoadFailed,
    ReplyEvents,
    ReplyOutcome,
    ServiceEvent,
    session_name,
)
from app.core.engine.types import CancelToken, EngineCrashedError, EngineError, GenerateRequest, LoadResult
from app.core.formats.base import AnswerDelta, Conversation, Done, Event, GenerationStats, Message, ReasoningDelta
from app.core.gguf_file import ModelInfo
from app.core.planner import LoadPlan
from app.core.store import ChatStore
from app.core.store import Message as StoredMessage

Script = Callable[[CancelToken], Iterator[Event]]


class ScriptedBackend:
    def __init__(self) -> None:
        self.script: Script = lambda _c: iter([Done(GenerationStats(generated_tokens=1))])
        self.generate_calls = 0
        self.opened: list[str] = []
        self.loads: list[Path | str] = []
        self.load_error: Exception | None = None
        self.needs_reload = False
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def result(self) -> LoadResult | None:
        return None

    def load(
        self,
        model: Path | str,
        *,
        ctx_cap: int | None = None,
        on_plan: Callable[[ModelInfo, LoadPlan], None] | None = None,
        gpu_layers: int | None = None,
    ) -> LoadResult:
        self.loads.append(model)
        if self.load_error is not None:
            raise self.load_error
        self._loaded = True
        return LoadResult(info=None, plan=None, load_s=0.0)

    def generate(self, request: GenerateRequest, cancel: CancelToken | None = None) -> Iterator[Event]:
        self.generate_calls += 1
        return self.script(cancel or CancelToken())

    def cancel(self) -> None:
        pass

    def interrupt_load(self) -> None:
        pass

    def save_session(self) -> None:
        pass

    def open_session(self, session: str) -> None:
        self.opened.append(session)

    def unload(self) -> None:
        self._loaded = False

    def close(self) -> None:
        self._loaded = False


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    s = ChatStore(tmp_path / "chat.sqlite3")
    yield s
    s.close()


@pytest.fixture
def inbox() -> queue.Queue[ServiceEvent]:
    return queue.Queue()


@pytest.fixture
def service(store: ChatStore, inbox: queue.Queue[ServiceEvent]) -> Iterator[tuple[ChatService, ScriptedBackend]]:
    backend = ScriptedBackend()
    s = ChatService(store, backend, listener=inbox.put, save_interval=0.2)
    yield s, backend
    s.shutdown(10)


def wait_for(inbox: queue.Queue[ServiceEvent], kind: type, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        item = inbox.get(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(item, kind):
            return item


def saved(store: ChatStore, message_id: int) -> StoredMessage:
    message = store.get_message(message_id)
    assert message is not None
    return message


def turn(store: ChatStore, text: str = "Hello") -> int:
    conv = store.create_conversation("t")
    store.add_message(conv.id, "user", text)
    return conv.id


def test_opening_a_conversation_asks_the_engine_for_its_saved_state(
    service: tuple[ChatService, ScriptedBackend], store: ChatStore
) -> None:
    s, backend = service
    conv = store.create_conversation("Kept")
    s.enter_conversation(conv.id)
    s.enter_conversation(conv.id + 99)  # gone: nothing to open
    assert backend.opened == [session_name(conv)]


def test_text_shown_during_a_stall_is_saved_on_a_timer(
    service: Any, store: ChatStore, inbox: queue.Queue[ServiceEvent]
) -> None:
    svc, backend = service
    release = threading.Event()

    def stall(_cancel: CancelToken) -> Iterator[Event]:
        yield AnswerDelta("Text already on screen")
        release.wait(20)  # the generation stalls; no next token comes to trigger a save
        yield Done(GenerationStats(generated_tokens=1))

    backend.script = stall
    conv = turn(store)
    _job, message_id = svc.start_turn(conv)
    events = wait_for(inbox, ReplyEvents)
    assert events.events == [AnswerDelta("Text already on screen")]  # sent without waiting either
    deadline = time.monotonic() + 10
    while saved(store, message_id).content != "Text already on screen":
        assert time.monotonic() < deadline, "the stalled reply's text was never saved"
        time.sleep(0.05)
    assert saved(store, message_id).state == "streaming"
    release.set()
    outcome = wait_for(inbox, ReplyOutcome)
    assert outcome.state == "complete" and saved(store, message_id).state == "complete"


def test_a_reply_stopped_before_it_starts_never_reaches_the_backend(
    service: Any, store: ChatStore, inbox: queue.Queue[ServiceEvent]
) -> None:
    svc, backend = service
    gate = threading.Event()

    def slow_first(_cancel: CancelToken) -> Iterator[Event]:
        gate.wait(20)
        yield Done(GenerationStats(generated_tokens=1))

    backend.script = slow_first
    first, _m1 = svc.start_turn(turn(store))  # occupies the service thread
    second, m2 = svc.start_turn(turn(store))
    svc.cancel(second)
    gate.set()
    outcomes = [wait_for(inbox, ReplyOutcome), wait_for(inbox, ReplyOutcome)]
    assert [o.job_id for o in outcomes] == [first, second]
    assert outcomes[1].state == "stopped" and outcomes[1].stats["generated_tokens"] == 0
    assert backend.generate_calls == 1 and saved(store, m2).state == "stopped"


def test_cancel_tokens_do_not_pile_up(
    service: Any, store: ChatStore, inbox: queue.Queue[ServiceEvent], tmp_path: Path
) -> None:
    svc, _backend = service
    for _ in range(20):
        svc.load(tmp_path / "m.gguf")
        svc.start_turn(turn(store))
    for _ in range(20):
        wait_for(inbox, ReplyOutcome)
    assert svc._cancels == {}  # one token per reply asked for, dropped when it finished


def test_a_crash_mid_reply_keeps_the_text_marked_interrupted(
    service: Any, store: ChatStore, inbox: queue.Queue[ServiceEvent]
) -> None:
    svc, backend = service

    def crash(_cancel: CancelToken) -> Iterator[Event]:
        yield ReasoningDelta("thinking")
        yield AnswerDelta("half an ans")
        yield Done(GenerationStats(), "crashed", "The model engine stopped while answering with X: it was killed.")

    backend.script = crash
    _job, message_id = svc.start_turn(turn(store))
    outcome = wait_for(inbox, ReplyOutcome)
    stopped = wait_for(inbox, EngineStopped)
    assert outcome.state == "interrupted" and outcome.answer == "half an ans"
    stored = saved(store, message_id)
    assert stored.state == "interrupted" and stored.content == "half an ans" and stored.reasoning == "thinking"
    assert stored.error == stopped.message and "it was killed" in stopped.message


def test_an_engine_error_before_the_first_event_is_a_sentence(
    service: Any, store: ChatStore, inbox: queue.Queue[ServiceEvent]
) -> None:
    svc, backend = service

    def overflow(_cancel: CancelToken) -> Iterator[Event]:
        raise EngineError("This message is about 9,000 tokens long, but ...")
        yield  # pragma: no cover

    backend.script = overflow
    _job, message_id = svc.start_turn(turn(store))
    outcome = wait_for(inbox, ReplyOutcome)
    assert outcome.state == "error" and outcome.error.startswith("This message is about")
    assert saved(store, message_id).state == "error"


def test_load_failures_are_sentences_and_a_crash_says_so(
    service: Any, inbox: queue.Queue[ServiceEvent], tmp_path: Path
) -> None:
    svc, backend = service
    backend.load_error = EngineCrashedError("The model engine stopped while loading X: llama.cpp reported 'a'.")
    svc.load(tmp_path / "x.gguf")
    failed = wait_for(inbox, LoadFailed)
    assert failed.crashed and "llama.cpp reported 'a'" in failed.message and not svc.loading
    backend.load_error = FileNotFoundError(2, "No such file", str(tmp_path / "gone.gguf"))
    svc.load(tmp_path / "gone.gguf")
    failed = wait_for(inbox, LoadFailed)
    assert not failed.crashed and "gone.gguf" in failed.message and "missing" in failed.message


def test_a_restart_that_ended_a_stubborn_generation_reloads_the_model(
    service: Any, store: ChatStore, inbox: queue.Queue[ServiceEvent], tmp_path: Path
) -> None:
    svc, backend = service
    svc.load(tmp_path / "m.gguf")
    wait_for(inbox, Loaded)

    def killed(_cancel: CancelToken) -> Iterator[Event]:
        backend.needs_reload = True  # what LocalBackend says after killing its process
        backend._loaded = False
        yield Done(GenerationStats(), "cancelled")

    backend.script = killed
    svc.start_turn(turn(store))
    assert wait_for(inbox, ReplyOutcome).state == "stopped"
    wait_for(inbox, Loaded)
    assert backend.loads == [tmp_path / "m.gguf", tmp_path / "m.gguf"]


def test_a_listener_that_raises_does_not_stop_the_service(store: ChatStore, tmp_path: Path) -> None:
    seen: list[ServiceEvent] = []

    def bad_listener(event: ServiceEvent) -> None:
        seen.append(event)
        raise RuntimeError("a bug in a window")

    svc = ChatService(store, ScriptedBackend(), listener=bad_listener)
    try:
        svc.start_turn(turn(store))
        svc.start_turn(turn(store))
        deadline = time.monotonic() + 10
        while sum(isinstance(e, ReplyOutcome) for e in seen) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        svc.shutdown(10)
    assert not svc.running


def test_stream_yields_events_then_done_and_stores_nothing(service: Any, store: ChatStore) -> None:
    svc, backend = service

    def answer(_cancel: CancelToken) -> Iterator[Event]:
        yield AnswerDelta("Pa")
        yield AnswerDelta("ris")
        yield Done(GenerationStats(generated_tokens=2, tokens_per_s=9.0))

    backend.script = answer
    items = list(svc.stream(GenerateRequest(Conversation((Message("user", "Capital of France?"),)))))
    assert all(isinstance(e, AnswerDelta) for e in items[:-1]) and isinstance(items[-1], Done)
    assert "".join(e.text for e in items[:-1] if isinstance(e, AnswerDelta)) == "Paris"
    assert items[-1].stats.generated_tokens == 2 and store.list_conversations() == []


def test_the_model_settings_gpu_layers_reach_the_backend(
    service: tuple[ChatService, ScriptedBackend], inbox: queue.Queue[ServiceEvent], tmp_path: Path
) -> None:
    s, backend = service
    seen: list[dict[str, Any]] = []
    original = backend.load

    def load(model: Path | str, **kwargs: Any) -> LoadResult:
        seen.append(kwargs)
        return original(model, ctx_cap=kwargs.get("ctx_cap"))

    backend.load = load  # type: ignore[method-assign]
    model = tmp_path / "m.gguf"
    s.load(model, ctx_cap=8192, gpu_layers=5)
    wait_for(inbox, Loaded)
    s.load(model)  # nothing chosen: the backend is asked as before, without gpu_layers
    wait_for(inbox, Loaded)
    assert seen[0]["ctx_cap"] == 8192 and seen[0]["gpu_layers"] == 5
    assert "gpu_layers" not in seen[1]
