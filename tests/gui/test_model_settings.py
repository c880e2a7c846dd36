"""The model settings side panel (per chat and the defaults for new chats), Unload with the memory
it frees, and opening a chat that was written with another model: through the real window, a real
SQLite store and the real starter model."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.engine.host import live_processes
from app.core.store import ChatStore
from app.gui.main_window import MainWindow
from app.gui.model_picker import STARTER_KEY
from app.gui.model_settings import CHAT, DEFAULTS, SETTING_DEFAULTS
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, WindowFactory
from tests.gui.test_chat_flow import send_and_wait


def load_starter(qtbot: QtBot, window: MainWindow) -> None:
    entry = window.header.entry(STARTER_KEY)
    assert entry is not None
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS):
        window.load_model(entry)


def open_panel(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.mouseClick(window.header.settings_button, Qt.MouseButton.LeftButton)
    assert window.model_panel.isVisible() and window.header.settings_button.isChecked()


def test_the_panel_shows_the_models_and_the_planners_defaults(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    window = make_window(store)
    load_starter(qtbot, window)
    open_panel(qtbot, window)
    panel = window.model_panel
    plan = window.engine.result.plan  # type: ignore[union-attr]
    assert plan is not None
    # The baseline is worked out on a background thread: the planner's context and its sentence.
    qtbot.waitUntil(lambda: panel.baseline.n_ctx > 0, timeout=SIGNAL_TIMEOUT_MS)
    assert panel.n_ctx.box.specialValueText() == f"Planner: {panel.baseline.n_ctx:,}"
    assert panel.baseline.n_ctx == plan.n_ctx
    assert panel.plan_note.isVisibleTo(panel) and plan.reason.split(" ")[0] in panel.plan_note.text()
    assert panel.temperature.box.specialValueText().startswith("Model default: ")
    assert panel.temperature.value() is None and not panel.apply_button.isEnabled()
    if plan.device == "cpu":  # this machine: no GPU llama.cpp can use
        assert not panel.gpu_layers.isEnabled()
        assert "every layer runs on the CPU" in panel.gpu_layers.note.text()
    qtbot.keyClick(panel.temperature.box, Qt.Key.Key_Escape)  # Esc closes the panel
    assert not panel.isVisible() and not window.header.settings_button.isChecked()


def test_a_chats_own_settings_reach_the_reply_and_the_store(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    window = make_window(store)
    load_starter(qtbot, window)
    send_and_wait(qtbot, window, "Hello")  # the chat exists now
    conversation = window.session.conversation
    assert conversation is not None
    open_panel(qtbot, window)
    panel = window.model_panel
    assert panel.scope == CHAT
    panel.temperature.box.setValue(0.0)
    panel.max_tokens.box.setValue(3)
    panel.system_prompt.setPlainText("Answer in one word.")
    assert panel.apply_button.isEnabled() and panel.apply_button.text() == "Apply"
    qtbot.mouseClick(panel.apply_button, Qt.MouseButton.LeftButton)
    stored = store.get_conversation(conversation.id)
    assert stored.options == {"temperature": 0.0, "max_tokens": 3}
    assert stored.system_prompt == "Answer in one word."
    assert window.header.system_button.text() == "System prompt ✓"
    assert window.session.options_sampling is not None and window.session.options_sampling.temperature == 0.0
    outcome = send_and_wait(qtbot, window, "Tell me a long story about the sea.")
    assert outcome.stats["generated_tokens"] <= 3 and outcome.stop_reason == "length"
    # A second window on the same database (a restart) shows the chat's settings again.
    window.close()
    again = make_window(store)
    again.session.open(conversation.id)
    open_panel(qtbot, again)
    assert again.model_panel.temperature.value() == 0.0 and again.model_panel.max_tokens.value() == 3
    assert again.model_panel.system_prompt.toPlainText() == "Answer in one word."


def test_defaults_start_new_chats_and_a_chats_own_value_wins(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    window = make_window(store)
    open_panel(qtbot, window)
    panel = window.model_panel
    qtbot.mouseClick(panel.scope_buttons[DEFAULTS], Qt.MouseButton.LeftButton)
    assert panel.scope == DEFAULTS and "Default system prompt" in panel.prompt_label.text()
    panel.top_p.box.setValue(0.5)
    panel.max_tokens.box.setValue(512)
    panel.system_prompt.setPlainText("You are terse.")
    panel.apply()
    assert store.get_setting(SETTING_DEFAULTS) == {"top_p": 0.5, "max_tokens": 512, "system_prompt": "You are terse."}
    window.new_chat()
    assert window.session.system_prompt == "You are terse."
    assert window.session.options_max_tokens == 512
    # This chat's own reply length wins; its top-p still comes from the defaults.
    panel.set_scope(CHAT)
    assert panel.max_tokens.box.specialValueText() == "Default: 512 (new chats' setting)"
    panel.max_tokens.box.setValue(1024)
    panel.apply()
    assert window.session.options_max_tokens == 1024
    assert window.session.options_sampling is not None and window.session.options_sampling.top_p == 0.5
    # Reset brings back the fallback.
    qtbot.mouseClick(panel.max_tokens.reset, Qt.MouseButton.LeftButton)
    assert panel.max_tokens.value() is None
    panel.apply()
    assert window.session.options_max_tokens == 512


def test_a_context_too_small_is_refused_with_a_sentence(make_window: WindowFactory, store: ChatStore) -> None:
    window = make_window(store)
    window.open_model_settings()
    panel = window.model_panel
    panel.n_ctx.box.setValue(100)
    assert not panel.apply_button.isEnabled()
    assert panel.note.text() == "A context of 100 tokens cannot hold a conversation: choose 512 or more."
    panel.apply()  # refused
    assert window.session.options == {}


def test_changing_the_context_size_reloads_the_model_with_it(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    window = make_window(store)
    load_starter(qtbot, window)
    assert window.engine.result is not None and window.engine.result.plan is not None
    assert window.engine.result.plan.n_ctx != 1024
    window.open_model_settings()
    panel = window.model_panel
    panel.n_ctx.box.setValue(1024)
    assert panel.apply_button.text() == "Apply and reload" and "reloads the model" in panel.note.text()
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS) as loaded:
        qtbot.mouseClick(panel.apply_button, Qt.MouseButton.LeftButton)
    assert loaded.args[0].plan.n_ctx == 1024
    assert window.session.options == {"n_ctx": 1024}  # a draft chat keeps it until it is saved
    outcome = send_and_wait(qtbot, window, "Hi")
    assert outcome.state in ("complete", "stopped") or outcome.stop_reason == "length"
    assert window.session.conversation is not None and window.session.conversation.options == {"n_ctx": 1024}


def test_unload_frees_the_model_and_says_how_much(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    window = make_window(store)
    load_starter(qtbot, window)
    assert window.header.unload_button.isVisible() and live_processes()
    with qtbot.waitSignal(window.engine.unloaded, timeout=SIGNAL_TIMEOUT_MS):
        qtbot.mouseClick(window.header.unload_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not live_processes(), timeout=SIGNAL_TIMEOUT_MS)  # the engine process ended
    assert not window.engine.is_loaded and not window.header.unload_button.isVisible()
    text = window.banner.label.text()
    assert text.startswith("Gemma 3 270M (starter) is unloaded: about ") and text.endswith(" of memory freed.")
    assert " MB " in text or " GB " in text
    assert window.banner.action.text() == "Load it again"
    window.composer.set_text("Hello?")
    assert not window.composer.can_send() and "No model is loaded" in window.composer.hint.text()
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS):
        qtbot.mouseClick(window.banner.action, Qt.MouseButton.LeftButton)
    assert window.composer.can_send()


def test_opening_a_chat_offers_its_model(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    written = store.create_conversation("Written with the starter", model=STARTER_KEY)
    store.add_message(written.id, "user", "Hi")
    elsewhere = store.create_conversation("Written elsewhere", model="/gone/Mistral-7B-Q4.gguf")
    store.add_message(elsewhere.id, "user", "Hi")
    window = make_window(store)
    window.session.open(elsewhere.id)
    assert window.banner.label.text() == "This chat was written with Mistral-7B-Q4, which is not on this computer now."
    assert window.banner.action.text() == "Open the Library"
    window.session.open(written.id)
    assert window.banner.label.text() == "This chat was written with Gemma 3 270M (starter)."
    assert window.banner.action.text() == "Switch to Gemma 3 270M (starter)"
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS):
        qtbot.mouseClick(window.banner.action, Qt.MouseButton.LeftButton)
    window.session.open(elsewhere.id)
    window.session.open(written.id)  # its model is loaded now: nothing to offer
    assert not window.banner.isVisible()


def test_the_reasoning_level_survives_a_restart(make_window: WindowFactory, store: ChatStore) -> None:
    conversation = store.create_conversation("Thinking hard")
    window = make_window(store)
    window.session.open(conversation.id)
    window.header.effortChanged.emit("high")
    assert store.get_conversation(conversation.id).effort == "high"
    window.close()
    again = make_window(store)
    again.session.open(conversation.id)
    assert again.session.effort == "high" and again.header.effort.effort() == "high"
    again.new_chat()
    assert again.session.effort == "high"  # new chats start from the last choice


def test_an_opened_gguf_is_listed_in_the_library_and_by_hearth_models(
    qtbot: QtBot,
    make_window: WindowFactory,
    store: ChatStore,
    tiny_gptoss_path: Path,
    tmp_path: Path,
    hearth_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ "Open a GGUF file…" with the real file; only the OS file dialog is answered by a stand-in
    (a native dialog cannot be driven offscreen)."""
    import os
    import shutil
    import subprocess
    import sys

    from PySide6.QtWidgets import QFileDialog

    from app.core import catalog

    own = tmp_path / "elsewhere" / "My-Tiny-Model.gguf"
    own.parent.mkdir()
    shutil.copyfile(tiny_gptoss_path, own)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *_a, **_k: (str(own), "")))
    window = make_window(store)
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS):
        window.open_model_file()

    def listed() -> list[dict[str, object]]:
        return [r for r in window.library.rows if r.get("path") and Path(str(r["path"])).resolve() == own.resolve()]

    qtbot.waitUntil(lambda: bool(listed()), timeout=SIGNAL_TIMEOUT_MS)
    assert listed()[0]["installed"]
    assert [m for m in catalog.installed_models() if m.path == own.resolve()]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HEARTH_HOME": str(hearth_home), "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-m", "app", "models"], capture_output=True, env=env, cwd=root, timeout=600)
    row = next(line for line in out.stdout.decode().splitlines() if line.startswith(str(listed()[0]["id"])))
    assert out.returncode == 0 and "yes" in row.split()
    assert [e for e in window.header.entries() if e.path is not None and e.path.resolve() == own.resolve()]
    # Forgotten in the Library (once another model is loaded): gone from the picker too, the file kept.
    load_starter(qtbot, window)
    with qtbot.waitSignal(window.library.modelsChanged, timeout=SIGNAL_TIMEOUT_MS):
        assert window.library.delete(str(listed()[0]["id"]))
    qtbot.waitUntil(lambda: not listed(), timeout=SIGNAL_TIMEOUT_MS)
    assert not [e for e in window.header.entries() if e.path is not None and e.path.resolve() == own.resolve()]
    assert own.is_file()


def test_export_and_import_a_chat_through_the_window(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, tmp_path: Path
) -> None:
    """The save and open dialogs are the OS's; the window's export_chat_to / import_chat_from are
    what they lead to."""
    chat = store.create_conversation("Recipe")
    store.add_message(chat.id, "user", "How long do I boil an egg?")
    store.add_message(chat.id, "assistant", "About 7 minutes for a soft yolk.")
    window = make_window(store)
    target = tmp_path / "recipe.json"
    window.export_chat_to(chat.id, str(target))
    qtbot.waitUntil(lambda: window.banner.label.text().startswith("Exported the chat to"), timeout=SIGNAL_TIMEOUT_MS)
    assert target.is_file()
    window.export_chat_to(chat.id, str(tmp_path / "recipe.md"))
    qtbot.waitUntil(lambda: (tmp_path / "recipe.md").is_file(), timeout=SIGNAL_TIMEOUT_MS)
    window.import_chat_from(str(target))
    qtbot.waitUntil(lambda: window.banner.label.text() == "Imported “Recipe”.", timeout=SIGNAL_TIMEOUT_MS)
    opened = window.session.conversation
    assert opened is not None and opened.id != chat.id and opened.title == "Recipe"
    reply = window.view.last_assistant()
    assert reply is not None and "7 minutes" in reply.answer.text()
    window.import_chat_from(str(tmp_path / "recipe.md"))
    qtbot.waitUntil(
        lambda: "is Markdown, which is for reading" in window.banner.label.text(), timeout=SIGNAL_TIMEOUT_MS
    )
    assert len(store.list_conversations()) == 2


def test_the_system_prompt_opens_beside_the_chat_not_over_it(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore
) -> None:
    """The system prompt is edited in the side panel: next to the conversation (the reply's actions
    stay uncovered), with its own border, and its buttons are text, not dated icons."""
    from PySide6.QtCore import QPoint, QRect

    from app.gui import theme

    chat = store.create_conversation("Prompted")
    store.add_message(chat.id, "user", "Hi")
    store.add_message(chat.id, "assistant", "Hello!")
    window = make_window(store)
    window.session.open(chat.id)
    qtbot.mouseClick(window.header.system_button, Qt.MouseButton.LeftButton)
    panel = window.model_panel
    assert panel.isVisible() and panel.scope == CHAT
    qtbot.waitUntil(lambda: panel.system_prompt.hasFocus(), timeout=5_000)

    def rect(widget: object) -> QRect:
        w = widget  # a QWidget
        return QRect(w.mapTo(window, QPoint(0, 0)), w.size())  # type: ignore[attr-defined]

    assert not rect(panel).intersects(rect(window.view)) and not rect(panel).intersects(rect(window.composer))
    reply = window.view.last_assistant()
    assert reply is not None
    assert not rect(panel).intersects(rect(reply))
    sheet = theme.style_sheet(theme.current())
    assert "#SidePanel { background:" in sheet and "border-left: 1px solid" in sheet.split("#SidePanel {", 1)[1]
    assert panel.apply_button.text() == "Apply" and panel.apply_button.icon().isNull()
    qtbot.keyClicks(panel.system_prompt, "Be kind.")
    qtbot.mouseClick(panel.apply_button, Qt.MouseButton.LeftButton)
    assert store.get_conversation(chat.id).system_prompt == "Be kind."  # type: ignore[union-attr]


def test_opening_a_chat_with_its_own_context_offers_to_reload(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    small = store.create_conversation("Small context", model=STARTER_KEY, options={"n_ctx": 1024})
    store.add_message(small.id, "user", "Hi")
    plain = store.create_conversation("Planner's context", model=STARTER_KEY)
    store.add_message(plain.id, "user", "Hi")
    window = make_window(store)
    load_starter(qtbot, window)
    window.session.open(plain.id)
    assert not window.banner.isVisible()
    window.session.open(small.id)
    assert window.banner.label.text() == (
        "This chat's model settings ask for a context of 1,024 tokens; Gemma 3 270M (starter) is loaded otherwise."
    )
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS) as loaded:
        qtbot.mouseClick(window.banner.action, Qt.MouseButton.LeftButton)
    assert loaded.args[0].plan.n_ctx == 1024
    window.session.open(plain.id)
    window.session.open(small.id)  # loaded as it asks now: nothing to offer
    assert not window.banner.isVisible()


def test_gpu_layers_default_to_the_planners_value_with_its_reason(qtbot: QtBot) -> None:
    """The panel on its own (this machine has no GPU llama.cpp can use, so the planner's GPU
    figures are given as a Baseline, as the window hands them over after a load on a GPU)."""
    from app.gui.model_settings import Baseline, ModelSettingsPanel

    panel = ModelSettingsPanel()
    qtbot.addWidget(panel)
    panel.set_values({}, "", {}, "", loaded=(None, None))
    reason = "Vulkan · 20 of 27 layers on the GPU (6.1 GB of 8.0 GB); the rest on the CPU."
    panel.set_baseline(Baseline(n_ctx=8192, ctx_limit=32_768, gpu_layers=20, layers_total=27, gpu=True, reason=reason))
    assert panel.gpu_layers.isEnabled() and panel.gpu_layers.box.specialValueText() == "Planner: 20"
    assert panel.gpu_layers.box.maximum() == 27 and panel.n_ctx.box.maximum() == 32_768
    assert panel.plan_note.text() == f"The planner's choice for this computer: {reason}"
    panel.gpu_layers.box.setValue(27)
    assert panel.values() == {"gpu_layers": 27} and panel.apply_button.text() == "Apply and reload"
    panel.gpu_layers.box.setValue(0)  # all on the CPU is a choice too, not the default
    assert panel.values() == {"gpu_layers": 0}
    with qtbot.waitSignal(panel.applied) as applied:
        panel.apply()
    assert applied.args == ["chat", {"gpu_layers": 0}, ""]


def test_news_in_the_banner_is_not_in_the_error_colour(make_window: WindowFactory, store: ChatStore) -> None:
    elsewhere = store.create_conversation("Written elsewhere", model="/gone/Mistral-7B-Q4.gguf")
    store.add_message(elsewhere.id, "user", "Hi")
    window = make_window(store)
    window.session.open(elsewhere.id)
    assert window.banner.label.objectName() == "NoticeLabel"  # an offer, not a failure
    window.banner.show_message("The chat could not be saved.")
    assert window.banner.label.objectName() == "ErrorLabel"
