"""The engine thread: coalescing, which thread does what, cancelling, errors, shutdown."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.core.engine import GenerateRequest, Sampling
from app.core.formats.base import AnswerDelta, Conversation, Message, PreambleDelta, ReasoningDelta, ToolCallEvent
from app.core.store import ChatStore
from app.gui import workers
from app.gui.workers import EngineController, ReplyOutcome, coalesce
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, TEST_CTX


def request(text: str = "Hello there.", max_tokens: int | None = 8) -> GenerateRequest:
    return GenerateRequest(Conversation((Message("user", text),)), max_tokens=max_tokens,
                           sampling=Sampling(temperature=0.0, seed=1))


def test_coalesce_joins_runs_of_one_kind_and_keeps_order() -> None:
    batch: list = []
    for event in (ReasoningDelta("a"), ReasoningDelta("b"), AnswerDelta("c"), AnswerDelta("d"),
                  ToolCallEvent("f", "{}"), PreambleDelta("e"), PreambleDelta("f"), ReasoningDelta("g")):
        coalesce(batch, event)
    assert batch == [ReasoningDelta("ab"), AnswerDelta("cd"), ToolCallEvent("f", "{}"), PreambleDelta("ef"),
                     ReasoningDelta("g")]


def test_generation_runs_on_the_engine_thread_and_events_arrive_on_the_gui_thread(
    qtbot: QtBot, qapp: QApplication, store: ChatStore, starter_path: Path
) -> None:
    controller = EngineController(store, ctx_cap=TEST_CTX)
    try:
        assert controller.engine is None  # created on the engine thread by the first job
        with qtbot.waitSignal(controller.loaded, timeout=SIGNAL_TIMEOUT_MS):
            controller.load(starter_path)
        engine = controller.engine
        assert engine is not None and engine.loaded
        generate_threads: list[int] = []
        real_generate = engine.generate

        def recording_generate(req: GenerateRequest):  # type: ignore[no-untyped-def]
            generate_threads.append(threading.get_ident())
            return real_generate(req)

        engine.generate = recording_generate  # type: ignore[method-assign]
        conv = store.create_conversation()
        store.add_message(conv.id, "user", "Hello there.")
        message_id = store.begin_reply(conv.id, "starter")
        receiving_threads: list[QThread] = []
        controller.events.connect(lambda *_: receiving_threads.append(QThread.currentThread()))
        with qtbot.waitSignal(controller.finished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
            controller.generate(conv.id, message_id, request())
        outcome: ReplyOutcome = blocker.args[0]
        assert outcome.state == "complete" and outcome.stats["generated_tokens"] > 0
        assert generate_threads and threading.get_ident() not in generate_threads
        assert receiving_threads and all(t is qapp.thread() for t in receiving_threads)
        saved = store.get_message(message_id)
        assert saved is not None and saved.state == "complete" and saved.content == outcome.answer
    finally:
        controller.shutdown()
    assert not workers.running_threads()


def test_a_job_cancelled_before_it_starts_finishes_stopped(qtbot: QtBot, qapp: QApplication, store: ChatStore,
                                                           starter_path: Path) -> None:
    controller = EngineController(store, ctx_cap=TEST_CTX)
    try:
        conv = store.create_conversation()
        store.add_message(conv.id, "user", "Hello")
        message_id = store.begin_reply(conv.id, None)
        controller.load(starter_path)  # the generate job queues behind the load
        with qtbot.waitSignal(controller.finished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
            job = controller.generate(conv.id, message_id, request(max_tokens=None))
            controller.cancel(job)
        outcome: ReplyOutcome = blocker.args[0]
        assert outcome.state == "stopped" and outcome.stats["generated_tokens"] == 0
        assert store.get_message(message_id).state == "stopped"
    finally:
        controller.shutdown()


def test_generating_without_a_model_fails_with_a_sentence(qtbot: QtBot, qapp: QApplication, store: ChatStore) -> None:
    controller = EngineController(store)
    try:
        conv = store.create_conversation()
        store.add_message(conv.id, "user", "Hello")
        message_id = store.begin_reply(conv.id, None)
        with qtbot.waitSignal(controller.finished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
            controller.generate(conv.id, message_id, request())
        outcome: ReplyOutcome = blocker.args[0]
        assert outcome.state == "error" and outcome.error == "No model is loaded."
        saved = store.get_message(message_id)
        assert saved.state == "error" and saved.error == "No model is loaded."
    finally:
        controller.shutdown()


def test_a_missing_or_broken_model_file_fails_to_load_with_a_sentence(
    qtbot: QtBot, qapp: QApplication, store: ChatStore, tmp_path: Path
) -> None:
    controller = EngineController(store)
    try:
        with qtbot.waitSignal(controller.loadFailed, timeout=SIGNAL_TIMEOUT_MS) as blocker:
            controller.load(tmp_path / "gone.gguf")
        assert "gone.gguf" in blocker.args[0]
        junk = tmp_path / "junk.gguf"
        junk.write_bytes(b"not a model at all" * 100)
        with qtbot.waitSignal(controller.loadFailed, timeout=SIGNAL_TIMEOUT_MS) as blocker:
            controller.load(junk)
        assert "GGUF" in blocker.args[0]
        assert not controller.loading and controller.result is None
    finally:
        controller.shutdown()
