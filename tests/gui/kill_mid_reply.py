"""Run as a script by test_interrupted.py: a real window streams a reply from the real starter
model into the database at argv[1], and the process kills itself (SIGKILL: no cleanup, as a
`kill -9`) once part of the reply is saved."""

from __future__ import annotations

import os
import signal
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def main() -> None:
    from app.core.engine import Sampling
    from app.core.store import ChatStore
    from app.gui.main_window import MainWindow
    from app.gui.model_picker import STARTER_KEY

    app = QApplication(sys.argv[:1])
    store = ChatStore(sys.argv[1])
    conversation_id = int(sys.argv[2])
    window = MainWindow(store, autoload=False, ctx_cap=2048)
    window.show()
    entry = window.header.entry(STARTER_KEY)
    assert entry is not None
    window.load_model(entry)
    deadline = time.monotonic() + 300  # well inside the test's own timeout, so STUCK is seen
    loop = QEventLoop()

    def wait(done: object) -> None:
        while not done():  # type: ignore[operator]
            if time.monotonic() > deadline:
                print("STUCK", flush=True)
                os._exit(3)
            QTimer.singleShot(20, loop.quit)
            loop.exec()

    # The composer's state, not the engine's: the engine is loaded a moment before the window's
    # modelLoaded handler turns Send on, and a submit in between is refused (Send is off).
    wait(lambda: window.engine.is_loaded and window.composer.ready)
    window.session.open(conversation_id)
    window.session.sampling = Sampling(temperature=0.0, seed=1)
    window.composer.set_text("Now count from 1 to 400.")
    window.composer.submit()
    if not window.session.streaming:
        print("NOT SENT", flush=True)
        os._exit(4)
    reader = ChatStore(sys.argv[1])

    def saved() -> bool:
        last = reader.messages(conversation_id)[-1]
        return last.role == "assistant" and last.state == "streaming" and len(last.content) > 20

    wait(saved)
    print("KILLING", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    app.exec()


if __name__ == "__main__":
    main()
