"""The window survives its engine: a model file that aborts llama.cpp, a kill -9 mid-reply.

Real llama.cpp in a real engine process. The hostile file (tests/fixtures/hostile_gguf.py) is a
tiny gpt-oss whose header claims more experts per token than it has (llama.cpp:
GGML_ASSERT(n_expert_used_max <= n_expert)); the validator refuses it, so these tests use the
test-only switch that lets it through (`LocalBackend(check_models=False)`) to prove that what
then aborts is the engine process alone.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.core.engine.host import LocalBackend
from app.core.store import ChatStore
from app.gui.main_window import SETTING_CRASHED, SETTING_MODEL
from app.gui.model_picker import ModelEntry
from app.gui.workers import EngineController
from tests.fixtures.hostile_gguf import TINY_CASES
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, TEST_CTX, WindowFactory, load

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crashing_gptoss(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny gpt-oss whose header says 5 of its 4 experts are used per token: llama.cpp aborts
    on GGML_ASSERT(n_expert_used_max <= hparams.n_expert)."""
    case = next(c for c in TINY_CASES if c.name == "tiny-expert-used-5-of-4")
    return case.write(tmp_path_factory.mktemp("hostile"))


def unchecked_engine(store: ChatStore) -> EngineController:
    return EngineController(store, ctx_cap=TEST_CTX, backend=LocalBackend(check_models=False))


def test_a_model_that_aborts_llama_cpp_costs_the_engine_not_the_window(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, crashing_gptoss: Path
) -> None:
    window = make_window(store, engine=unchecked_engine(store))
    entry = ModelEntry(str(crashing_gptoss), "Hostile", crashing_gptoss, crashing_gptoss.stat().st_size)
    with qtbot.waitSignal(window.engine.loadCrashed, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        window.load_model(entry)
    message = blocker.args[0]
    assert "The model engine stopped while loading tiny gpt-oss" in message
    assert "llama.cpp reported 'n_expert_used_max <= hparams.n_expert'" in message
    qtbot.waitUntil(lambda: window.banner.isVisible())
    # The window names the model as its picker does (issue 12), not by the file's internal name.
    assert message.replace("tiny gpt-oss (synthetic, random weights)", entry.name) in window.banner.label.text()
    assert window.banner.action.isVisible() and window.banner.action.text() == "Retry"
    assert window.header.state == "failed"
    # The window still takes input, and remembers not to load that model by itself again.
    window.composer.edit.setFocus()
    qtbot.keyClicks(window.composer.edit, "still here")
    assert window.composer.text() == "still here"
    assert store.get_setting(SETTING_MODEL) == str(crashing_gptoss)
    assert store.get_setting(SETTING_CRASHED) == str(crashing_gptoss)


def test_the_next_start_does_not_load_a_model_that_crashed_the_engine(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    # A valid file whose load crashed the engine last time (a GPU driver, say): marked as such.
    store.set_setting("model.opened_files", [str(starter_path)])
    store.set_setting(SETTING_MODEL, str(starter_path))
    store.set_setting(SETTING_CRASHED, str(starter_path))
    loads: list[object] = []
    window = make_window(store, autoload=True, engine=unchecked_engine(store))
    window.engine.loadStarted.connect(loads.append)
    qtbot.wait(500)  # the autoload would have started by now (AUTOLOAD_DELAY_MS)
    assert loads == []
    assert "was not loaded automatically" in window.banner.label.text()
    assert window.banner.action.text() == "Load it again"


def test_a_start_after_hearth_died_while_loading_skips_that_model_too(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    # What a window that was kill -9'd while loading leaves behind: the model marked as loading.
    store.set_setting("model.opened_files", [str(starter_path)])
    store.set_setting(SETTING_MODEL, str(starter_path))
    store.set_setting("model.loading", str(starter_path))
    loads: list[object] = []
    window = make_window(store, autoload=True)
    window.engine.loadStarted.connect(loads.append)
    qtbot.wait(500)
    assert loads == []
    assert "was not loaded automatically" in window.banner.label.text()
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS):
        window.banner.action.click()  # "Load it again" works, and the mark is gone
    assert store.get_setting("model.loading") is None


def test_kill_9_of_the_engine_mid_reply_keeps_the_partial_reply_marked(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    window = make_window(store)
    load(qtbot, window, starter_path)
    pid = window.engine.service.backend_pid
    assert pid is not None and pid != os.getpid()
    killed: list[bool] = []

    def kill_after_text(job_id: int, events: list) -> None:
        last = window.view.last_assistant()
        if not killed and last is not None and last.answer_text():
            killed.append(True)
            os.kill(pid, signal.SIGKILL)

    window.engine.events.connect(kill_after_text)
    window.composer.set_text("Count from one to three hundred, one number per line.")
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        window.composer.button.click()
    outcome = blocker.args[0]
    assert killed and outcome.state == "interrupted" and outcome.stop_reason == "crashed"
    assert outcome.answer  # what had streamed is kept
    stored = store.get_message(outcome.message_id)
    assert stored is not None and stored.state == "interrupted" and stored.content == outcome.answer
    assert stored.error and "was killed" in stored.error
    widget = window.view.last_assistant()
    assert widget is not None and widget.retry_button.isVisibleTo(window)
    assert "was killed" in widget.notice.text()
    qtbot.waitUntil(lambda: window.header.state == "failed")
    assert window.banner.action.text() == "Retry"
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS):
        window.banner.action.click()  # the model comes back in a new engine process
    assert window.engine.service.backend_pid not in (None, pid)
