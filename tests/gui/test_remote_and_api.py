"""The window's network features, for real: a remote engine (a `hearth serve` process started by
the test, real llama.cpp behind it) added in Settings, its model in the picker, a chat streamed
through it, a wrong key, the server killed mid-reply; the local API switched on in Settings and
answered for the real `openai` client while the window's own model is loaded; the network
indicator naming every host. The keyring is the in-memory test keyring (this machine has none)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from pytestqt.qtbot import QtBot

from app.core import netlog, remotes
from app.core.store import ChatStore
from app.gui.main_window import MainWindow
from app.gui.network_indicator import OFFLINE_TEXT
from app.gui.settings import SettingsDialog
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, WindowFactory, load
from tests.gui.test_chat_flow import COUNT_TO_40, GREEDY, send_and_wait, start_long_reply, type_and_send, wait_reply

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key-1234"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """`hearth serve` in a process of its own, as a user starts it on another machine."""

    def __init__(self, model: Path, port: int, key: str) -> None:
        self.port = port
        env = {**os.environ, "PYTHONPATH": str(ROOT)}  # HEARTH_HOME: the test's own folder (conftest)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--model", str(model), "--port", str(port), "--api-key", key,
             "--ctx", "2048"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for _ in range(3000):  # the model loads first: up to 5 minutes on a busy machine
            if self.process.poll() is not None:
                raise AssertionError(f"hearth serve ended: {self.process.stderr.read() if self.process.stderr else ''}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).json().get("status") == "ok":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("hearth serve did not come up")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)


@pytest.fixture
def served(starter_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(starter_path, free_port(), KEY)
    yield server
    server.kill()


def settings_for(window: MainWindow, store: ChatStore) -> SettingsDialog:
    """The Settings dialog as the window opens it, shown without its modal loop."""
    dialog = SettingsDialog(store, window.library, window, api=window.api)
    dialog.engines.modelsListed.connect(window._on_remote_models)
    dialog.show()
    return dialog


def test_a_remote_engine_from_settings_answers_in_the_window(
    qtbot: QtBot,
    make_window: WindowFactory,
    store: ChatStore,
    served: ServeProcess,
    starter_path: Path,
    memory_keyring: object,
) -> None:
    netlog.clear()
    window = make_window(store)
    assert window.sidebar.network.text == OFFLINE_TEXT
    dialog = settings_for(window, store)
    panel = dialog.engines

    # A wrong key: the server is listed, with the server's refusal in a sentence.
    panel.url.setText(f"127.0.0.1:{served.port}")
    panel.key.setText("wrong-key")
    with qtbot.waitSignal(panel.modelsListed, timeout=SIGNAL_TIMEOUT_MS):
        panel.add_button.click()
    assert "key" in panel.status.text().lower() and "not ready" in panel.list.item(0).text()
    assert panel.status.text() in panel.list.item(0).toolTip()  # the reason stays with its server
    assert remotes.servers(store) == [f"{served.url}/v1"]
    # The indicator tells the truth: Hearth talked to that host.
    qtbot.waitUntil(lambda: f"127.0.0.1:{served.port}" in window.sidebar.network.text)

    # The right key replaces it (kept in the keyring, not in the database).
    panel.list.setCurrentRow(0)
    panel.remove_button.click()
    assert panel.list.count() == 0 and remotes.servers(store) == []
    panel.url.setText(served.url)
    panel.key.setText(KEY)
    with qtbot.waitSignal(panel.modelsListed, timeout=SIGNAL_TIMEOUT_MS):
        panel.add_button.click()
    assert "ready · 1 model" in panel.list.item(0).text()
    assert remotes.api_key(f"{served.url}/v1") == KEY
    assert KEY not in str(store.get_setting(remotes.SETTING_SERVERS))
    dialog.close()

    # Its model is in the picker, marked remote with its host; choosing it loads it.
    labels = [window.header.picker.itemText(i) for i in range(window.header.picker.count())]
    remote_label = f"{starter_path.stem}  ·  remote on 127.0.0.1:{served.port}"
    assert remote_label in labels, labels
    index = labels.index(remote_label)
    window.header.picker.setCurrentIndex(index)
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS) as loaded:
        window.header.picker.activated.emit(index)
    assert loaded.args[0].engine == f"Remote · 127.0.0.1:{served.port}"
    assert window.sidebar.network.text == f"Remote engine · chats go to 127.0.0.1:{served.port}"

    # A chat streams through it and is stored here.
    window.session.sampling = GREEDY
    window.session.max_tokens = 16
    outcome = send_and_wait(qtbot, window, "The capital of France is")
    assert outcome.error is None and outcome.stop_reason in ("stop", "length")
    conversation = window.session.conversation
    assert conversation is not None
    reply = store.messages(conversation.id)[-1]
    assert reply.role == "assistant" and reply.content.strip()

    # The server dies mid-reply: the partial reply is kept and marked, with a sentence.
    window.session.max_tokens = 400
    store.add_message(conversation.id, "user", "Count from 1 to 40.")
    store.add_message(conversation.id, "assistant", COUNT_TO_40)
    window.session.open(conversation.id)
    with qtbot.waitSignal(window.engine.events, timeout=SIGNAL_TIMEOUT_MS):
        type_and_send(qtbot, window, "Now count from 1 to 400.")
    served.kill()
    outcome = wait_reply(qtbot, window)
    assert outcome.error, outcome
    assert f"127.0.0.1:{served.port}" in outcome.error
    last = store.messages(conversation.id)[-1]
    assert last.role == "assistant" and last.content.strip() and last.error and last.state != "complete"

    # Back to a local model: the window's own engine answers again; the indicator still names
    # the host this session talked to, no longer as the engine in use.
    load(qtbot, window, starter_path)
    assert window.engine.result is not None and window.engine.result.info is not None
    assert window.sidebar.network.text.startswith(f"Online · 127.0.0.1:{served.port}")


def test_the_local_api_from_settings_serves_the_windows_model(
    qtbot: QtBot, starter_window: MainWindow, store: ChatStore, memory_keyring: object
) -> None:
    window = starter_window
    netlog.clear()
    dialog = settings_for(window, store)
    panel = dialog.api_panel
    assert panel is not None and not window.api.running  # off by default
    port = free_port()
    panel.port.setValue(port)
    panel.enabled.setChecked(True)
    assert window.api.running
    qtbot.waitUntil(lambda: window.sidebar.network.api.text() == f"API on :{port}")
    assert store.get_setting("api.enabled") is True and store.get_setting("api.port") == port

    # Other computers only with a key: without one the choice is refused with a sentence.
    panel.public.setChecked(True)
    assert not panel.public.isChecked() and "API key" in panel.status.text()

    # The real openai client, answered by the model the window has loaded.
    answers: list[str] = []

    def ask() -> None:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=300)
        model = client.models.list().data[0].id
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "The capital of France is"}], max_tokens=12, seed=1
        )
        answers.append(reply.choices[0].message.content or "")

    thread = threading.Thread(target=ask)
    thread.start()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=SIGNAL_TIMEOUT_MS)
    assert answers and answers[0].strip()
    assert netlog.contacts() == []  # serving on loopback is no network call of Hearth's

    # API requests queue behind the user's reply, and the sidebar says so.
    start_long_reply(qtbot, window, store)
    answers.clear()
    thread = threading.Thread(target=ask)
    thread.start()
    qtbot.waitUntil(lambda: window.sidebar.network.api.text() == f"API on :{port} · 1 waiting", timeout=60_000)
    with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS):
        window.session.stop()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=SIGNAL_TIMEOUT_MS)
    assert answers and answers[0].strip()
    qtbot.waitUntil(lambda: window.sidebar.network.api.text() == f"API on :{port}")

    # Off again: nothing listens, the chip is gone, and the choice remembered.
    panel.enabled.setChecked(False)
    assert not window.api.running and not window.sidebar.network.api.isVisible()
    assert store.get_setting("api.enabled") is False
    with pytest.raises(httpx.ConnectError):  # nothing listens there any more
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    dialog.close()


def test_the_indicator_names_hosts_from_any_thread(qtbot: QtBot, make_window: WindowFactory, store: ChatStore) -> None:
    netlog.clear()
    window = make_window(store)
    indicator = window.sidebar.network
    assert indicator.text == OFFLINE_TEXT and indicator.dot.objectName() == "OfflineDot"
    thread = threading.Thread(target=netlog.record, args=("huggingface.co", "download"))
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: indicator.text == "Online · huggingface.co (download)")
    assert indicator.dot.objectName() == "OnlineDot" and "huggingface.co: download, 1 call" in indicator.toolTip()
    netlog.record("mirror.example", "hub search")
    qtbot.waitUntil(lambda: "mirror.example (hub search) and 1 more" in indicator.text)
    netlog.clear()
