"""Screenshots of the real main window (run under Xvfb, or any display):

    xvfb-run -a -s "-screen 0 1400x960x24" python scripts/screenshot.py [--out artifacts/screenshots]
        [--model FILE] [--dark] [--readme]

The window opens on a throw-away database holding one conversation whose last reply has
reasoning, a list, a table and a code block; the starter model (or --model) is really loaded so
the header shows the planner's sentence. Saves reply-reasoning-expanded.png and
reply-reasoning-collapsed.png (and the empty state); --readme also writes docs/screenshot.png.
--first-hour also saves what issue 12 added: model-settings.png (the side panel with the planner's
defaults), model-settings-defaults.png (new chats' settings), unloaded.png (Unload and the memory it
freed) and chat-offers-its-model.png (a chat written with another model). With a model loaded it
also saves real-session.png (docs/session.png with --readme): a question sent from the composer and
the reply the model really generated.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTION = "How do I read a large CSV file in Python without running out of memory?"
REASONING = (
    "The user wants to process a big CSV with bounded memory. Options: the csv module streams rows; "
    "pandas can read in chunks with `chunksize`; polars has a lazy scanner. I should show the "
    "streaming approach first since it needs nothing installed, then mention chunked pandas, and "
    "compare them briefly in a table."
)
ANSWER = """Read it **as a stream** instead of loading it all at once. Python's `csv` module already
works row by row, so memory stays flat however big the file is:

```python
import csv

def total_by_region(path: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):  # one row in memory at a time
            totals[row["region"]] = totals.get(row["region"], 0.0) + float(row["amount"])
    return totals
```

If you need pandas, read it in chunks:

1. Pass `chunksize=100_000` to `pandas.read_csv`.
2. Aggregate each chunk, then combine the partial results.

| Approach | Memory | Speed |
|---|---|---|
| `csv` module | constant | good |
| pandas chunks | per chunk | fast |
| polars `scan_csv` | lazy | fastest |
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "screenshots"))
    ap.add_argument("--model", help="GGUF to load (default: the starter model)")
    ap.add_argument("--dark", action="store_true")
    ap.add_argument("--readme", action="store_true", help="also write docs/screenshot.png")
    ap.add_argument("--size", default="1280x880")
    ap.add_argument("--first-hour", action="store_true", help="also the model settings, Unload, the model offer")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    home = tempfile.mkdtemp(prefix="hearth-shot-")
    os.environ["HEARTH_HOME"] = home

    from PySide6.QtCore import QEventLoop, QTimer

    from app.core.store import ChatStore
    from app.gui.app import application
    from app.gui.main_window import MainWindow
    from app.gui.selftest import wait_for
    from app.gui.theme import ThemeManager

    app = application()
    ThemeManager(app, forced="dark" if args.dark else None)
    store = ChatStore(Path(home) / "shot.sqlite3")
    conv = store.create_conversation("Reading a large CSV in Python")
    store.add_message(conv.id, "user", QUESTION)
    stats = {"generated_tokens": 412, "tokens_per_s": 38.5, "time_to_first_token_s": 0.4, "thinking_s": 4.2}
    store.add_message(conv.id, "assistant", ANSWER, reasoning=REASONING, stats=stats, model="gpt-oss-20b")
    for title in ("Trip plan for Lisbon", "Explain attention in transformers", "Sourdough starter schedule"):
        other = store.create_conversation(title)
        store.add_message(other.id, "user", title)
    store.create_conversation("Reading a large CSV in Python")  # keep the shown one on top
    store.delete_conversation(store.list_conversations()[0].id)

    window = MainWindow(store, model=args.model, ctx_cap=8192, autoload=False)
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()
    entry = window._entry_for(args.model)
    if entry is not None:
        window.load_model(entry)
        wait_for([window.modelLoaded, window.modelFailed], 300)

    def settle(ms: int = 400) -> None:
        # A local loop: QApplication.quit() would close the window (Qt 6).
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def save(name: str) -> Path:
        settle()
        path = out / name
        window.grab().save(str(path))
        print(f"saved {path}")
        return path

    save("empty-state.png")
    window.session.open(conv.id)
    reply = window.view.last_assistant()
    assert reply is not None
    reply.thinking.set_expanded(True)
    reply.set_pinned(True)
    top = window.view.verticalScrollBar()
    settle()
    top.setValue(0)  # the whole exchange, from the question down
    expanded = save("reply-reasoning-expanded.png")
    reply.thinking.set_expanded(False)
    settle()
    top.setValue(0)
    save("reply-reasoning-collapsed.png")
    # The Library: catalog cards with this machine's fit verdicts (read in the background).
    window.show_library()
    wait_for([window.library.rowsChanged], 120)
    library = save("library.png")
    window.show_chat()
    session_shot = None
    if entry is not None and window.engine.is_loaded:
        # A real session: a new chat, a question typed into the composer and sent, the reply the
        # loaded model really generates streamed into the view (nothing prepared).
        window.new_chat()
        window.composer.edit.setPlainText("Write a short poem about a lighthouse keeper.")
        window.composer.edit.setFocus()
        window.session.max_tokens = 120
        window.composer.submit()  # what Enter and the Send button do
        wait_for([window.session.replyFinished], 300)
        window.sidebar.refresh()
        session_shot = save("real-session.png")
    if args.first_hour and entry is not None:
        window.session.open(conv.id)
        window.open_model_settings("chat")
        wait_for_baseline = 0
        while window.model_panel.baseline.n_ctx == 0 and wait_for_baseline < 100:
            settle(100)
            wait_for_baseline += 1
        window.model_panel.temperature.box.setValue(0.3)
        save("model-settings.png")
        window.model_panel.set_scope("defaults")
        save("model-settings-defaults.png")
        window.close_model_settings()
        window.unload_model()
        wait_for([window.engine.unloaded], 120)
        save("unloaded.png")
        other = store.create_conversation("Written with Mistral", model="/models/Mistral-7B-Instruct-Q4_K_M.gguf")
        store.add_message(other.id, "user", "Hello")
        window.sidebar.refresh()
        window.session.open(other.id)
        save("chat-offers-its-model.png")
    if args.readme:
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        (docs / "screenshot.png").write_bytes(expanded.read_bytes())
        (docs / "library.png").write_bytes(library.read_bytes())
        print(f"saved {docs / 'screenshot.png'} and {docs / 'library.png'}")
        if session_shot is not None:
            (docs / "session.png").write_bytes(session_shot.read_bytes())
            print(f"saved {docs / 'session.png'}")
    window.close()
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
