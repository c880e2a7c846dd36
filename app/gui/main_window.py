"""The main window: sidebar | header, conversation, composer. Wires the pieces; owns no logic of
its own beyond start-up (restore the layout, load the last model) and shutdown (stop, save)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core import paths
from app.core.store import ChatStore, StoreError
from app.core.store import Conversation as StoredConversation
from app.gui import theme
from app.gui.chat.composer import Composer
from app.gui.chat.session import ChatSession
from app.gui.chat.view import ChatView
from app.gui.library.controller import LibraryController
from app.gui.model_picker import STARTER_KEY, HeaderBar, ModelEntry, SystemPromptDialog, installed_models
from app.gui.sidebar import Sidebar
from app.gui.theme import named, repolish
from app.gui.workers import EngineController

if TYPE_CHECKING:
    from app.core.engine import LoadResult
    from app.core.planner import LoadPlan
    from app.core.tools.approval import Approvals
    from app.core.tools.mcp import McpManager
    from app.core.tools.registry import ToolRegistry
    from app.gui.library.downloads_page import DownloadsPage
    from app.gui.library.view import LibraryPage

SETTING_GEOMETRY = "window.geometry"
SETTING_SPLITTER = "window.splitter"
SETTING_SIDEBAR = "window.sidebar_visible"
SETTING_MODEL = "model.last"
SETTING_EXTRA_MODELS = "model.opened_files"
# The model being loaded, kept until its load ends: found at start-up, it means Hearth itself died
# while loading it, so it is not loaded again automatically (it could do the same again).
SETTING_LOADING = "model.loading"
SETTING_CRASHED = "model.crashed"  # the model whose load made the engine process die
AUTOLOAD_DELAY_MS = 50
PREWARM_DELAY_MS = 700


class ErrorBanner(QFrame):
    """An inline, dismissable message for problems outside a reply (store, load)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Banner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 6, 6)
        self.label = named(QLabel(), "ErrorLabel")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action = named(QPushButton(), "ActionButton")
        self.action.clicked.connect(self._act)
        self.action.hide()
        self._callback: Callable[[], None] | None = None
        close = named(QToolButton(), text="✕")
        close.setAccessibleName("Dismiss")
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str, action: tuple[str, Callable[[], None]] | None = None) -> None:
        """Show `text`, with one button (label, callback) where one helps, e.g. Retry."""
        self.label.setText(text)
        self._callback = action[1] if action else None
        self.action.setText(action[0] if action else "")
        self.action.setVisible(action is not None)
        self.show()

    def _act(self) -> None:
        callback, self._callback = self._callback, None
        self.hide()
        if callback is not None:
            callback()


class MainWindow(QMainWindow):
    modelLoaded = Signal(object)  # LoadResult
    modelFailed = Signal(str)

    def __init__(
        self,
        store: ChatStore,
        *,
        engine: EngineController | None = None,
        ctx_cap: int | None = None,
        model: str | Path | None = None,
        autoload: bool = True,
    ) -> None:
        """`model`: a GGUF file to load instead of the remembered one; `autoload`: load a model at
        start (the remembered one, else the starter) — off in tests that pick one themselves."""
        super().__init__()
        self.setWindowTitle("Hearth")
        self.setMinimumSize(720, 480)
        self.store = store
        self.engine = engine or EngineController(store, self, ctx_cap=ctx_cap)
        self._closed = False
        self._resumed_downloads = False
        self._prewarmed = False
        self._loading_name = ""
        self._requested_key = self._loaded_key = ""
        self._requested_entry: ModelEntry | None = None
        self.library = LibraryController(self, is_loaded=self.is_loaded)
        self._library_page: LibraryPage | None = None
        self._downloads_page: DownloadsPage | None = None

        # Containers first, attached to the window, then each part added once to its final place:
        # every re-parenting makes Qt re-resolve the style sheet for the moved subtree, so building
        # bottom-up and attaching at the end cost ~20 ms of start-up.
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setHandleWidth(1)
        self.setCentralWidget(self.splitter)
        self.sidebar = Sidebar(store)
        self.splitter.addWidget(self.sidebar)
        self.pages = QStackedWidget()
        self.splitter.addWidget(self.pages)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([theme.SIDEBAR_WIDTH, 1000])

        pane = named(QWidget(), "ChatPane")
        pane.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.chat_pane = pane
        self.pages.addWidget(pane)  # the Library and Downloads pages are built when first opened
        pane_layout = QVBoxLayout(pane)
        pane_layout.setContentsMargins(0, 0, 0, 0)
        pane_layout.setSpacing(0)
        self.header = HeaderBar()
        pane_layout.addWidget(self.header)
        banner_row = QHBoxLayout()
        banner_row.setContentsMargins(24, 8, 24, 0)
        pane_layout.addLayout(banner_row)
        self.banner = ErrorBanner()
        banner_row.addWidget(self.banner)
        self.view = ChatView()
        pane_layout.addWidget(self.view, 1)
        composer_row = QHBoxLayout()
        composer_row.setContentsMargins(24, 8, 24, 12)
        composer_row.addStretch(0)
        self.composer = Composer()
        self.composer.set_model_state("none")
        self.composer.setMaximumWidth(theme.COLUMN_WIDTH)
        composer_row.addWidget(self.composer, 1)
        composer_row.addStretch(0)
        pane_layout.addLayout(composer_row)
        self.session = ChatSession(store, self.engine, self.view, self.composer, self)
        self.mcp: McpManager | None = None
        self.session.tools_factory = self._make_tools
        tools_button = self.composer.tools_button
        tools_button.entries = self.session.tool_entries
        tools_button.current = self.session.chat_tools
        tools_button.changed.connect(self.session.set_chat_tools)
        tools_button.setVisible(True)

        self._connect()
        self._shortcuts()
        theme.keyboard_focus_only(self)
        self._restore_layout()
        self._refresh_models(model)
        self._on_conversation_changed(None)
        self.composer.edit.setFocus()
        # Loaded only once the window is on screen: nothing slow happens before that.
        self._autoload = self._entry_for(model) if (model is not None or autoload) else None
        problem = paths.models_folder_problem()
        if problem is not None:
            self.banner.show_message(problem)

    # -- wiring -------------------------------------------------------------------------------

    def _connect(self) -> None:
        s, sb, h = self.session, self.sidebar, self.header
        sb.conversationActivated.connect(s.open)
        sb.newChatRequested.connect(self.new_chat)
        sb.conversationDeleted.connect(self._on_deleted)
        sb.conversationRenamed.connect(self._on_renamed)
        sb.errorOccurred.connect(self.banner.show_message)
        s.conversationChanged.connect(self._on_conversation_changed)
        s.conversationsChanged.connect(sb.refresh)
        s.errorOccurred.connect(self.banner.show_message)
        s.modelNeeded.connect(self._model_needed)
        self.composer.libraryRequested.connect(self.show_library)
        self.view.empty.promptChosen.connect(self._use_example)
        self.view.empty.openModelRequested.connect(self.open_model_file)
        h.modelChosen.connect(self.load_model)
        h.openFileRequested.connect(self.open_model_file)
        h.libraryRequested.connect(self._library_from_picker)
        h.effortChanged.connect(s.set_effort)
        h.systemPromptRequested.connect(self.edit_system_prompt)
        h.sidebarToggleRequested.connect(self.toggle_sidebar)
        self.engine.loadStarted.connect(self._on_load_started)
        self.engine.planReady.connect(self._on_plan)
        self.engine.loaded.connect(self._on_loaded)
        self.engine.loadFailed.connect(self._on_load_failed)
        self.engine.loadCrashed.connect(self._on_load_crashed)
        self.engine.engineStopped.connect(self._on_engine_stopped)
        sb.libraryRequested.connect(self.show_library)
        sb.downloadsRequested.connect(self.show_downloads)
        sb.settingsRequested.connect(self.open_settings)
        sb.conversationActivated.connect(lambda _id: self.show_chat())
        self.view.empty.libraryRequested.connect(self.show_library)
        self.view.empty.downloadRequested.connect(self._download_recommended)
        self.library.rowsChanged.connect(self._update_recommendation)
        self.library.jobChanged.connect(lambda _job: self._update_downloads_note())
        self.library.modelsChanged.connect(self._on_models_changed)

    def _shortcuts(self) -> None:
        def bind(keys: QKeySequence | str, slot: object) -> QShortcut:
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(slot)
            return shortcut

        bind("Ctrl+N", self.new_chat)
        bind(QKeySequence(QKeySequence.StandardKey.Find), self.focus_search)
        bind("Ctrl+L", lambda: self.composer.edit.setFocus())
        bind("Ctrl+B", self.toggle_sidebar)
        bind("Ctrl+Shift+C", self.session.copy_last_reply)
        bind("Ctrl+Shift+M", self.show_library)
        bind("Ctrl+J", self.show_downloads)
        bind("Ctrl+,", self.open_settings)
        bind(QKeySequence(QKeySequence.StandardKey.HelpContents), self.open_about)
        bind("Ctrl+Q", self.close)  # the window's close ends Hearth (stops the reply, saves)
        self._stop_shortcut = bind("Esc", self.session.stop)
        self._stop_shortcut.setEnabled(False)
        self.session.streamingChanged.connect(lambda: self._stop_shortcut.setEnabled(self.session.streaming))

    # -- actions ------------------------------------------------------------------------------

    def new_chat(self) -> None:
        self.show_chat()
        self.session.new_chat()
        self.composer.edit.setFocus()

    # -- pages: chat, library, downloads --------------------------------------------------------

    def show_chat(self) -> None:
        self.pages.setCurrentWidget(self.chat_pane)
        self._mark_nav()

    def library_page(self) -> LibraryPage:
        if self._library_page is None:
            from app.gui.library.view import LibraryPage

            page = LibraryPage(self.library)
            page.backRequested.connect(self.show_chat)
            page.useModel.connect(self.use_model)
            page.tokenRequested.connect(self.edit_token)
            self.pages.addWidget(page)
            self._library_page = page
        return self._library_page

    def downloads_page(self) -> DownloadsPage:
        if self._downloads_page is None:
            from app.gui.library.downloads_page import DownloadsPage

            page = DownloadsPage(self.library)
            page.backRequested.connect(self.show_chat)
            page.openModel.connect(self.use_model)
            page.tokenRequested.connect(self.edit_token)
            self.pages.addWidget(page)
            self._downloads_page = page
        return self._downloads_page

    def _library_from_picker(self) -> None:
        self.header.select(self._loaded_key or self._requested_key or "")
        self.show_library()

    def show_library(self) -> None:
        page = self.library_page()
        self.pages.setCurrentWidget(page)
        self._mark_nav()
        self.library.refresh()
        page.search_edit.setFocus() if not self.library.rows else page.back_button.setFocus()

    def show_downloads(self) -> None:
        self.library.ensure_manager()
        page = self.downloads_page()
        page.sync()
        self.pages.setCurrentWidget(page)
        self._mark_nav()

    def _mark_nav(self) -> None:
        current = self.pages.currentWidget()
        for button, page in (
            (self.sidebar.library_button, self._library_page),
            (self.sidebar.downloads_button, self._downloads_page),
        ):
            on = page is not None and current is page
            if button.property("current") != on:
                button.setProperty("current", on)
                repolish(button)

    def open_settings(self) -> None:
        from app.gui.settings import SettingsDialog

        self.session.registry  # noqa: B018 (made on first use: the MCP servers' settings need it)
        tools = (self.mcp, self.session.approvals) if self.mcp is not None and self.session.approvals else None
        SettingsDialog(self.store, self.library, self, about=self.open_about, tools=tools).exec()
        self.composer.tools_button.refresh()

    def open_about(self) -> None:
        from app.gui.about import AboutDialog

        result = self.engine.result
        AboutDialog(result.reason if result is not None else None, self).exec()

    def edit_token(self) -> None:
        from app.gui.library.token_dialog import TokenDialog

        TokenDialog(self.library, self).exec()

    def use_model(self, path: str) -> None:
        """Open an installed model in the chat ("" is the starter model)."""
        self.show_chat()
        if path:
            self._refresh_models(path)
        entry = self.header.entry(path or STARTER_KEY)
        if entry is None:
            self.banner.show_message("That model is no longer installed; see the Library.")
            return
        self.load_model(entry)
        self.composer.edit.setFocus()

    def is_loaded(self, path: str | None) -> bool:
        """Whether the model at `path` is the one loaded (or loading) in the chat."""
        if not path:
            return False
        keys = {k for k in (self._loaded_key, self._requested_key) if k}
        if STARTER_KEY in keys and self.engine.result is not None and self.engine.result.info is not None:
            keys.add(str(self.engine.result.info.path))
        try:
            target = Path(path).resolve()
            return any(k != STARTER_KEY and Path(k).resolve() == target for k in keys)
        except OSError:
            return False

    def _update_recommendation(self) -> None:
        """The first catalog model (the catalog is in order of preference) that fits this machine."""
        from app.gui.library.widgets import size_text

        best = next(
            (
                r
                for r in self.library.rows
                if r.get("source") == "catalog" and not r.get("installed") and r.get("fit", {}).get("fits")
            ),
            None,
        )
        if best is None:
            self.view.empty.set_recommendation("", "", "")
            return
        detail = " · ".join(
            x
            for x in (
                size_text(best.get("size_bytes")) if best.get("size_bytes") else "",
                str(best["fit"].get("reason", "")),
            )
            if x
        )
        self.view.empty.set_recommendation(str(best["id"]), str(best["name"]), detail)

    def _download_recommended(self, model_id: str) -> None:
        self.show_library()
        self.library.download(model_id)

    def _on_models_changed(self) -> None:
        if self._closed:
            return
        self._refresh_models(self.header.current_key() or None)

    def _update_downloads_note(self) -> None:
        count, done, total, _speed = self.library.summary()
        fraction = done / total if count and total else None
        if not count:
            note = ""
        elif fraction is not None:
            note = f"{100 * fraction:.0f}%"
        else:
            note = f"{count} running"
        self.sidebar.set_downloads_progress(note, fraction)

    def focus_search(self) -> None:
        if self.sidebar.isHidden():
            self.toggle_sidebar()
        self.sidebar.search.setFocus()
        self.sidebar.search.selectAll()

    def toggle_sidebar(self) -> None:
        self.sidebar.setVisible(self.sidebar.isHidden())

    def _use_example(self, prompt: str) -> None:
        self.composer.set_text(prompt)
        self.composer.edit.setFocus()

    def edit_system_prompt(self) -> None:
        dialog = SystemPromptDialog(self.session.system_prompt, self)
        if dialog.exec():
            self.session.set_system_prompt(dialog.text())
            self._update_system_button()

    def _update_system_button(self) -> None:
        has = bool(self.session.system_prompt.strip())
        self.header.system_button.setText("System prompt ✓" if has else "System prompt")

    def open_model_file(self) -> None:
        name, _filter = QFileDialog.getOpenFileName(self, "Open a GGUF model", str(Path.home()), "GGUF models (*.gguf)")
        if not name:
            self.header.select(self.store.get_setting(SETTING_MODEL, "") or "")
            return
        opened = [p for p in self.store.get_setting(SETTING_EXTRA_MODELS, []) if p != name] + [name]
        self.store.set_setting(SETTING_EXTRA_MODELS, opened[-10:])
        self._refresh_models(name)
        entry = self.header.entry(name)
        if entry is not None:
            self.load_model(entry)

    def _shown_name(self, text: str) -> str:
        """`text` with the engine's name for the model (a file's internal "Gemma 3 270m") replaced
        by the name the user sees in the picker ("Gemma 3 270M (starter)")."""
        entry, internal = self._requested_entry, self.engine.engine_name
        if entry is not None and internal and internal != entry.name:
            return text.replace(internal, entry.name)
        return text

    def _model_needed(self) -> None:
        """A reply was asked for with no model ready: say so once, with the way to get one."""
        if self.engine.loading:
            self.banner.show_message("The model is still loading; send again once it is ready.")
        else:
            self.banner.show_message("No model is loaded.", ("Open the Library", self.show_library))

    def load_model(self, entry: ModelEntry) -> None:
        if self._closed:
            return
        self._requested_key = entry.key
        self._requested_entry = entry
        self.header.select(entry.key)
        self.header.set_loading(entry.name)
        self.composer.set_model_state("loading", entry.name)
        self.session.model_name = None
        self.session.model_key = None
        try:
            self.store.set_setting(SETTING_MODEL, entry.key)
            self.store.set_setting(SETTING_LOADING, entry.key)
        except StoreError as exc:
            self.banner.show_message(str(exc))
        self.engine.load(entry.path)

    def _forget_setting(self, key: str) -> None:
        try:
            self.store.delete_setting(key)
        except StoreError:
            pass  # only costs a skipped automatic load at the next start

    def _on_load_crashed(self, message: str, _path: str) -> None:
        """The engine process died while loading: remember the model, so the next start does not
        load it again by itself; the window stays, and the user can retry or pick another."""
        key = self._requested_key
        self._forget_setting(SETTING_LOADING)
        try:
            self.store.set_setting(SETTING_CRASHED, key)
        except StoreError:
            pass
        self.session.model_name = None
        self.composer.set_model_state("none")
        self._crash_notice(self._shown_name(message), self._requested_entry)
        self.modelFailed.emit(message)

    def _on_engine_stopped(self, message: str) -> None:
        """The engine died mid-reply or while idle: the reply (if any) keeps its text, marked."""
        self.session.model_name = None
        self.session.model_key = None
        self._loaded_key = ""
        self.composer.set_model_state("none")
        self._crash_notice(self._shown_name(message), self._requested_entry)

    def _crash_notice(self, message: str, entry: ModelEntry | None) -> None:
        self.header.set_failed(message)
        action = ("Retry", lambda: self.load_model(entry)) if entry is not None else None
        self.banner.show_message(f"{message} Retry, or pick another model.", action)

    # -- models -------------------------------------------------------------------------------

    def _refresh_models(self, preferred: str | Path | None = None) -> None:
        extra = [Path(p) for p in self.store.get_setting(SETTING_EXTRA_MODELS, []) if Path(p).exists()]
        if preferred is not None and Path(preferred).exists():
            extra.append(Path(preferred))
        entries = installed_models(extra)
        key = str(preferred) if preferred is not None else self.store.get_setting(SETTING_MODEL)
        if key and not any(e.key == key for e in entries):
            key = None
        self.header.set_models(entries, key or (entries[0].key if entries else None))
        self.view.empty.set_no_model(not entries)
        if not entries and not self.library.rows:
            self.library.refresh()  # for the empty state's recommendation (in the background)

    def _entry_for(self, model: str | Path | None) -> ModelEntry | None:
        if model is not None:
            return self.header.entry(str(model))
        remembered = self.store.get_setting(SETTING_MODEL)
        suspect = {self.store.get_setting(SETTING_LOADING), self.store.get_setting(SETTING_CRASHED)}
        if remembered and remembered in suspect:
            entry = self.header.entry(remembered)
            name = entry.name if entry is not None else Path(str(remembered)).name
            self._forget_setting(SETTING_LOADING)
            self.banner.show_message(
                f"{name} was not loaded automatically: the model engine stopped while loading it last "
                "time. Load it again, or pick another model.",
                ("Load it again", lambda: self.load_model(entry)) if entry is not None else None,
            )
            self.header.select(remembered)
            return None
        return (
            self.header.entry(remembered)
            if remembered
            else self.header.entry(STARTER_KEY) or next(iter(self.header.entries()), None)
        )

    def _on_load_started(self, name: str) -> None:
        entry = self._requested_entry
        self._loading_name = entry.name if entry is not None else name
        self.header.set_loading(self._loading_name)

    def _on_plan(self, plan: LoadPlan) -> None:
        self.header.set_plan(self._shown_name(plan.reason), self._loading_name)

    def _on_loaded(self, result: LoadResult) -> None:
        self._loaded_key = self._requested_key
        self.session.model_name = result.name
        self.session.model_key = self._loaded_key or None
        self.composer.set_model_state("ready")
        self._forget_setting(SETTING_LOADING)
        if self.store.get_setting(SETTING_CRASHED) == self._loaded_key:
            self._forget_setting(SETTING_CRASHED)
        self.header.set_loaded(result)
        self.header.effort.set_effort(self.session.effort)
        self.modelLoaded.emit(result)

    def _on_load_failed(self, message: str) -> None:
        self._forget_setting(SETTING_LOADING)
        previous = self.engine.result
        message = self._shown_name(message)
        entry = self._requested_entry
        what = entry.name if entry is not None else "The model"
        if previous is not None and self.engine.is_loaded:
            # The file was refused before the old model was unloaded: it keeps answering.
            self.header.set_loaded(previous)
            self.header.select(self._loaded_key)
            self.composer.set_model_state("ready")
            self.session.model_name = previous.name
            self.session.model_key = self._loaded_key or None
            kept = self.header.entry(self._loaded_key) if self._loaded_key else None
            still = kept.name if kept is not None else previous.name
            self.banner.show_message(f"{what} could not be loaded. {message} Still using {still}.")
        else:
            self.session.model_name = None
            self.session.model_key = None
            self.composer.set_model_state("none")
            self.header.set_failed(message)
            self.banner.show_message(f"{what} could not be loaded. {message}")
        self.modelFailed.emit(message)

    def on_theme_changed(self) -> None:
        """The OS switched light/dark: re-render what is shown (message HTML carries colours)."""
        self.header.refresh_dot()
        self.view.retheme()  # the open conversation, visible part first, without rebuilding it

    # -- conversations ------------------------------------------------------------------------

    def _make_tools(self) -> tuple[ToolRegistry, Approvals]:
        """The tool registry (built-in tools, the MCP servers of Settings) and the approvals."""
        from app.core.tools.approval import Approvals
        from app.core.tools.mcp import McpManager
        from app.core.tools.mcp_config import SETTING, load_configs
        from app.core.tools.registry import ToolRegistry

        configs, problems = load_configs(self.store.get_setting(SETTING, []))
        for problem in problems:
            self.banner.show_message(problem)
        self.mcp = McpManager(configs)
        python = bool(self.store.get_setting("tools_python", False))
        return ToolRegistry(self.mcp, python=python), Approvals(self.store)

    def _on_conversation_changed(self, conversation: StoredConversation | None) -> None:
        if self.session.tools_factory is not None and self.session._registry is not None:
            self.composer.tools_button.refresh()
        self.sidebar.set_current(conversation.id if conversation else None)
        self.sidebar.refresh()
        self.header.effort.set_effort(self.session.effort)
        self._update_system_button()
        title = conversation.title if conversation else "New chat"
        self.setWindowTitle(f"{title} — Hearth")

    def _on_deleted(self, conversation_id: int) -> None:
        if self.session.conversation is not None and self.session.conversation.id == conversation_id:
            self.session.new_chat()

    def _on_renamed(self, conversation_id: int, title: str) -> None:
        if self.session.conversation is not None and self.session.conversation.id == conversation_id:
            self.session.conversation = self.store.get_conversation(conversation_id)
            self.setWindowTitle(f"{title} — Hearth")

    # -- layout memory and shutdown -----------------------------------------------------------

    def _restore_layout(self) -> None:
        try:
            geometry = self.store.get_setting(SETTING_GEOMETRY)
            splitter = self.store.get_setting(SETTING_SPLITTER)
            sidebar = self.store.get_setting(SETTING_SIDEBAR, True)
        except StoreError:
            return
        if not (isinstance(geometry, str) and self.restoreGeometry(QByteArray.fromBase64(geometry.encode()))):
            self.resize(1180, 780)
        if isinstance(splitter, str):
            self.splitter.restoreState(QByteArray.fromBase64(splitter.encode()))
        self.sidebar.setVisible(bool(sidebar))

    def _save_layout(self) -> None:
        try:
            self.store.set_setting(SETTING_GEOMETRY, bytes(self.saveGeometry().toBase64().data()).decode())
            self.store.set_setting(SETTING_SPLITTER, bytes(self.splitter.saveState().toBase64().data()).decode())
            # isHidden, not isVisible: at exit the window is already hidden, and so "is" the sidebar.
            self.store.set_setting(SETTING_SIDEBAR, not self.sidebar.isHidden())
        except StoreError:
            pass  # losing the window size is not worth an error at exit

    def shutdown(self) -> None:
        """Stop the reply (it is saved as 'stopped'), end the engine thread, save the layout."""
        if self._closed:
            return
        self._closed = True
        self.sidebar.commit_deletes()
        self._save_layout()
        self.library.close()
        self.engine.shutdown()
        if self.mcp is not None:
            self.mcp.stop_all()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        if self.windowIcon().isNull():
            # After the first frame (reading the PNG sizes costs start-up time); set on the window
            # too, for a QApplication that is not Hearth's own (tests, benches).
            QTimer.singleShot(0, self._set_icon)
        if self._autoload is not None:
            entry, self._autoload = self._autoload, None
            # A short delay lets the first frame paint before the engine thread takes the GIL.
            QTimer.singleShot(AUTOLOAD_DELAY_MS, lambda: self.load_model(entry))
        if not self._prewarmed:
            self._prewarmed = True
            QTimer.singleShot(PREWARM_DELAY_MS, self._prewarm)
        if not self._resumed_downloads:
            self._resumed_downloads = True
            # A download left unfinished by the last session continues (after the first frame).
            QTimer.singleShot(AUTOLOAD_DELAY_MS, self.library.resume_unfinished)

    def _prewarm(self) -> None:
        """Markdown and highlighting imported on a background thread before a chat is opened."""
        import threading

        from app.gui.chat import markdown

        threading.Thread(target=markdown.prewarm, name="hearth-prewarm", daemon=True).start()

    def _set_icon(self) -> None:
        from PySide6.QtWidgets import QApplication

        from app.gui.about import app_icon

        icon = app_icon()
        self.setWindowIcon(icon)
        app = QApplication.instance()
        if isinstance(app, QApplication) and app.windowIcon().isNull():
            app.setWindowIcon(icon)  # dialogs too

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        self.hide()
        self.shutdown()
        super().closeEvent(event)
