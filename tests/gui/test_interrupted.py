"""A reply cut off by kill -9 says so after a restart, and offers Regenerate: a real window in
a child process streams from the real starter model into a real database and is SIGKILLed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.store import ChatStore
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, WindowFactory
from tests.gui.test_chat_flow import COUNT_TO_40

ROOT = Path(__file__).resolve().parents[2]


def test_a_reply_cut_off_by_kill_9_says_so_and_offers_regenerate(
    qtbot: QtBot, make_window: WindowFactory, tmp_path: Path, hearth_home: Path, starter_path: Path
) -> None:
    db = tmp_path / "chat.sqlite3"
    setup = ChatStore(db)
    conversation = setup.create_conversation("Counting")
    setup.add_message(conversation.id, "user", "Count from 1 to 40.")
    setup.add_message(conversation.id, "assistant", COUNT_TO_40)
    setup.close()
    env = {**os.environ, "HEARTH_HOME": str(hearth_home), "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    child = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "gui" / "kill_mid_reply.py"), str(db), str(conversation.id)],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=420,
    )
    assert child.returncode == -9 and b"KILLING" in child.stdout, child.stderr.decode()[-2000:]
    # The restart, as app.gui.app does it: the store marks replies left streaming.
    store = ChatStore(db)
    try:
        cut = store.messages(conversation.id)[-1]
        assert cut.state == "streaming" and cut.content  # what the kill left
        assert store.recover_interrupted() == [cut.id]
        window = make_window(store)
        window.session.open(conversation.id)
        reply = window.view.last_assistant()
        assert reply is not None and reply.state == "interrupted"
        assert reply.notice.isVisibleTo(reply) and reply.notice.text().startswith("Interrupted:")
        assert reply.retry_button.isVisibleTo(reply) and reply.retry_button.text() == "Regenerate"
        entry = window.header.entry("starter")
        assert entry is not None
        with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS):
            window.load_model(entry)
        window.session.max_tokens = 8
        with qtbot.waitSignal(window.session.replyFinished, timeout=SIGNAL_TIMEOUT_MS):
            qtbot.mouseClick(reply.retry_button, Qt.MouseButton.LeftButton)
        alternatives = [m for m in store.messages(conversation.id) if m.role == "assistant"]
        assert alternatives[-1].id != cut.id and alternatives[-1].state != "interrupted"
    finally:
        store.close()
