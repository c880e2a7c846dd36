"""The window's adapter over the chat service: where work runs, cancelling, errors, shutdown."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.core.chat.service import ReplyOutcome, running_services
from app.core.engine import GenerateRequest, Sampling
from app.core.engine.host import live_processes
from app.core.formats.base import Conversation, Message
from app.core.store import ChatStore
from app.gui.workers import EngineController
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, TEST_CTX


def request(text: str = "Hello there.", max_tokens: int | None = 8) -> GenerateRequest:
    return GenerateRequest(
        Conversation((Message("user", text),)), max_tokens=max_tokens, sampling=Sampling(temperature=0.0, seed=1)
    )


def test_generation_runs_in_the_engine_process_and_events_arrive_on_the_gui_thread(
    qtbot: QtBot, qapp: QApplication, store: ChatStore, starter_path: Path
) -> None:
    controller = EngineController(store, ctx_cap=TEST_CTX)
    try:
        with qtbot.waitSignal(controller.loaded, timeout=SIGNAL_TIMEOUT_MS):
            controller.load(starter_path)
        assert controller.is_loaded
        engine_pid = controller.service.backend_pid
        assert engine_pid is not None and engine_pid != os.getpid()
        conv = store.create_conversation()
        store.add_message(conv.id, "user", "Hello there.")
        message_id = store.begin_reply(conv.id, "starter")
        receiving_threads: list[QThread] = []
        controller.events.connect(lambda *_: receiving_threads.append(QThread.currentThread()))
        with qtbot.waitSignal(controller.finished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
            controller.generate(conv.id, message_id, request())
        outcome: ReplyOutcome = blocker.args[0]
        assert outcome.state == "complete" and outcome.stats["generated_tokens"] > 0
        assert receiving_threads and all(t is qapp.thread() for t in receiving_threads)
        saved = store.get_message(message_id)
        assert saved is not None and saved.state == "complete" and saved.content == outcome.answer
    finally:
        controller.shutdown()
    assert not running_services() and not live_processes()
    assert not psutil.pid_exists(engine_pid) or psutil.Process(engine_pid).status() == psutil.STATUS_ZOMBIE


def test_a_job_cancelled_before_it_starts_finishes_stopped(
    qtbot: QtBot, qapp: QApplication, store: ChatStore, starter_path: Path
) -> None:
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
        saved = store.get_message(message_id)
        assert saved is not None and saved.state == "stopped"
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
        assert saved is not None and saved.state == "error" and saved.error == "No model is loaded."
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
