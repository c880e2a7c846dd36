"""The main window: sidebar | header, conversation, composer. Wires the pieces; owns no logic of
its own beyond start-up (restore the layout, load the last model) and shutdown (stop, save)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
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

from app.core import paths, remotes
from app.core.store import ChatStore, StoreError
from app.core.store import Conversation as StoredConversation
from app.gui import theme
from app.gui.chat.composer import Composer
from app.gui.chat.session import ChatSession
from app.gui.chat.view import ChatView
from app.gui.library.controller import LibraryController
from app.gui.model_picker import (
    STARTER_KEY,
    HeaderBar,
    ModelEntry,
    folder_models,
    model_entries,
    remote_entries,
    starter_entry,
)
from app.gui.model_settings import CHAT, DEFAULTS, SETTING_DEFAULTS, Baseline, ModelSettingsPanel
from app.gui.sidebar import Sidebar
from app.gui.theme import named, repolish
from app.gui.workers import EngineController

if TYPE_CHECKING:
    from PySide6.QtGui import QCloseEvent, QShowEvent

    from app.core.engine import LoadResult, Sampling
    from app.core.planner import LoadPlan
    from app.core.remotes import RemoteModel
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
SETTING_EFFORT = "chat.effort"  # the reasoning effort new chats start with: the last one chosen
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

    def show_message(
        self, text: str, action: tuple[str, Callable[[], None]] | None = None, *, error: bool = True
    ) -> None:
        """Show `text`, with one button (label, callback) where one helps, e.g. Retry. `error`
        False: news, not a problem (an export done, an offer), not in the error colour."""
        self.label.setObjectName("ErrorLabel" if error else "NoticeLabel")
        repolish(self.label)
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


log = logging.getLogger(__name__)


def frame_budget(result: LoadResult) -> float:
    """How much of a core drawing a streaming reply may take with this model loaded: less when
    llama.cpp's generation threads fill every core here (app.gui.chat.pacing)."""
    import os

    from app.gui.chat.pacing import BUDGET, budget_for

    plan = result.plan
    if plan is None:  # a remote engine: its work is on another machine
        return BUDGET
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    all_on_gpu = plan.n_gpu_layers > 0 and plan.n_layers_total > 0 and plan.n_gpu_layers >= plan.n_layers_total
    return budget_for(plan.n_threads, cores, all_on_gpu=all_on_gpu)


_frozen: set[str] = set()  # the moments whose objects gc.freeze() has set aside, once a process


def freeze_once(moment: str) -> None:
    """Move what the process holds now out of the garbage collector's full passes (gc.freeze),
    once per `moment` per process: what is frozen is never collected as a cycle, so the moments
    are those after which what exists lives as long as the process (start-up's imports, a first
    model load), not one per chat."""
    if moment not in _frozen:
        _frozen.add(moment)
        gc.freeze()


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
        self._shown_once = False  # the work left for after the first frame is scheduled
        self._offer_shown = False  # the banner shows a "switch to this chat's model" offer
        self._freeing = 0  # bytes the model held when Unload was asked for
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
        body = QHBoxLayout()  # the conversation and its composer | the model settings panel
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(0)
        pane_layout.addLayout(body, 1)
        chat_column = QVBoxLayout()
        chat_column.setContentsMargins(0, 0, 0, 0)
        chat_column.setSpacing(0)
        body.addLayout(chat_column, 1)
        self.view = ChatView()
        chat_column.addWidget(self.view, 1)
        composer_row = QHBoxLayout()
        composer_row.setContentsMargins(24, 8, 24, 12)
        composer_row.addStretch(0)
        self.composer = Composer()
        self.composer.set_model_state("none")
        self.composer.setMaximumWidth(theme.COLUMN_WIDTH)
        composer_row.addWidget(self.composer, 1)
        composer_row.addStretch(0)
        chat_column.addLayout(composer_row)
        self._body = body
        self._model_panel: ModelSettingsPanel | None = None  # built when first opened (start-up time)
        self._baseline = Baseline()  # what the panel's defaults mean for the loaded model
        self._model_sampling: Sampling | None = None  # the loaded model's own sampling
        self._load_options: tuple[int | None, int | None] = (None, None)  # what the model was loaded with
        self.session = ChatSession(store, self.engine, self.view, self.composer, self)
        self.mcp: McpManager | None = None
        self.session.tools_factory = self._make_tools
        tools_button = self.composer.tools_button
        tools_button.entries = self.session.tool_entries
        tools_button.current = self.session.chat_tools
        tools_button.changed.connect(self.session.set_chat_tools)
        tools_button.setVisible(True)
        from app.gui.api_server import ApiServerController

        self.api = ApiServerController(store, self.engine, self)
        self._remote_models: dict[str, list[RemoteModel]] = {}  # per server, as last listed
        self._folder_models: list[Path] | None = None  # the models folder's files, as last walked
        self._preferred_model: str | Path | None = None
        self._models_scan = 0

        self._connect()
        self._shortcuts()
        self._restore_layout()
        self._refresh_models(model)
        self._start_draft()
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
        h.effortChanged.connect(self._set_effort)
        h.systemPromptRequested.connect(self.edit_system_prompt)
        h.settingsRequested.connect(self.toggle_model_settings)
        self.sidebar.exportRequested.connect(self.export_chat)
        self.sidebar.importRequested.connect(self.import_chat)
        h.unloadRequested.connect(self.unload_model)
        self.engine.unloaded.connect(self._on_unloaded)
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
        self.api.stateChanged.connect(self.sidebar.network.set_api)
        self.api.failed.connect(self.banner.show_message)

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
        self._start_draft()
        self.session.new_chat()
        self.composer.edit.setFocus()

    def _start_draft(self) -> None:
        """A new chat starts from the defaults: their system prompt, the last reasoning level."""
        defaults = self._defaults()
        self.session.draft_system_prompt = str(defaults.get("system_prompt") or "")
        self.session.draft_options = {}
        try:
            effort = self.store.get_setting(SETTING_EFFORT, "medium")
        except StoreError:
            effort = "medium"
        self.session.draft_effort = effort if effort in ("low", "medium", "high") else "medium"

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
        dialog = SettingsDialog(self.store, self.library, self, about=self.open_about, api=self.api, tools=tools)
        dialog.engines.modelsListed.connect(self._on_remote_models)
        dialog.exec()
        dialog.deleteLater()
        if self.session.registry is not None:
            self.session.registry.python = bool(self.store.get_setting("tools_python", False))
        self.composer.tools_button.refresh()

    def open_about(self) -> None:
        from app.gui.about import AboutDialog

        result = self.engine.result
        dialog = AboutDialog(result.reason if result is not None else None, self)
        dialog.exec()
        dialog.deleteLater()

    def edit_token(self) -> None:
        from app.gui.library.token_dialog import TokenDialog

        dialog = TokenDialog(self.library, self)
        dialog.exec()
        dialog.deleteLater()  # freed, and its connections to the library with it

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
        """The first catalog model (the catalog is in order of preference) that fits this machine,
        by the Library's own verdict (the same rows it shows). A recommendation stays while that
        verdict still says it fits: a refresh with a little more free memory does not change it."""
        from app.gui.library.widgets import size_text

        candidates = [
            r
            for r in self.library.rows
            if r.get("source") == "catalog" and not r.get("installed") and r.get("fit", {}).get("fits")
        ]
        shown = self.view.empty.recommended
        best = next((r for r in candidates if r.get("id") == shown), None) or next(iter(candidates), None)
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

    # -- model settings (the side panel) ------------------------------------------------------

    @property
    def model_panel(self) -> ModelSettingsPanel:
        """The model settings side panel, built the first time it is needed: it is hidden until
        opened, and building it before the first frame cost ~7 ms of start-up."""
        if self._model_panel is None:
            panel = ModelSettingsPanel()
            panel.setVisible(False)
            panel.set_baseline(self._baseline)
            panel.applied.connect(self._apply_model_settings)
            panel.closeRequested.connect(self.close_model_settings)
            theme.keyboard_focus_only(panel)
            self._body.addWidget(panel)
            self._model_panel = panel
        return self._model_panel

    def _model_panel_open(self) -> bool:
        return self._model_panel is not None and self._model_panel.isVisible()

    def _set_baseline(self, baseline: Baseline) -> None:
        self._baseline = baseline
        if self._model_panel is not None:
            self._model_panel.set_baseline(baseline)

    def edit_system_prompt(self) -> None:
        """The system prompt lives in the model settings panel: open it there, for this chat."""
        self.open_model_settings(CHAT)
        self.model_panel.focus_system_prompt()

    def toggle_model_settings(self) -> None:
        if self._model_panel_open():
            self.close_model_settings()
        else:
            self.open_model_settings()

    def open_model_settings(self, scope: str | None = None) -> None:
        self._fill_model_panel()
        if scope is not None:
            self.model_panel.set_scope(scope)
        self.model_panel.setVisible(True)
        self.header.settings_button.setChecked(True)

    def close_model_settings(self) -> None:
        if self._model_panel is not None:
            self._model_panel.setVisible(False)
        self.header.settings_button.setChecked(False)
        self.composer.edit.setFocus()

    def _defaults(self) -> dict[str, Any]:
        from app.gui.model_settings import read_defaults

        return read_defaults(self.store)

    def _fill_model_panel(self) -> None:
        defaults = self._defaults()
        self.model_panel.set_values(
            self.session.options,
            self.session.system_prompt,
            defaults,
            str(defaults.get("system_prompt") or ""),
            loaded=self._load_options if self._local_model_loaded() else None,
        )

    def _apply_model_settings(self, scope: str, options: dict[str, Any], prompt: str) -> None:
        """Save what the panel applied; reload the model when its context or GPU layers changed."""
        from app.gui.model_settings import effective, load_options

        if scope == DEFAULTS:
            before = str(self._defaults().get("system_prompt") or "")
            try:
                self.store.set_setting(SETTING_DEFAULTS, {**options, "system_prompt": prompt})
            except StoreError as exc:
                self.banner.show_message(str(exc))
                return
            if self.session.conversation is None and self.session.draft_system_prompt == before:
                self.session.draft_system_prompt = prompt  # a new chat not yet written to
        else:
            self.session.set_options(options)
            self.session.set_system_prompt(prompt)
        self._update_system_button()
        self._use_model_settings()
        wanted = load_options(effective(self.session.options, self._defaults()))
        entry = self._requested_entry
        if wanted != self._load_options and entry is not None and self._local_model_loaded():
            self.load_model(entry)

    def _local_model_loaded(self) -> bool:
        """A local model is loaded (a remote one's context and layers are its server's)."""
        entry, result = self._requested_entry, self.engine.result
        return (
            bool(self._loaded_key) and result is not None and result.plan is not None and not (entry and entry.remote)
        )

    def _use_model_settings(self) -> None:
        """Hand the session what this chat's settings (else the defaults) ask for."""
        from app.gui.model_settings import effective, sampling_for

        chosen = effective(self.session.options, self._defaults())
        self.session.options_sampling = sampling_for(chosen, self._model_sampling)
        max_tokens = chosen.get("max_tokens")
        self.session.options_max_tokens = int(max_tokens) if max_tokens else None

    def _set_effort(self, effort: str) -> None:
        self.session.set_effort(effort)
        try:
            self.store.set_setting(SETTING_EFFORT, effort)
        except StoreError:
            pass  # only the next new chat's starting level is lost

    def _update_baseline(self, result: LoadResult) -> None:
        """What the panel's defaults mean for this model: its sampling, the planner's own plan
        (worked out on a background thread: the catalog read and the hardware probe)."""
        info, cap = result.info, self.engine.ctx_cap
        if info is None:  # a remote model: no plan here, its server decides
            self._model_sampling = None
            self._set_baseline(Baseline(reason=result.reason))
            return

        def plan() -> tuple[Sampling, LoadPlan]:
            from app.core.engine.types import default_sampling
            from app.core.hardware import probe
            from app.core.planner import plan_load

            return default_sampling(info), plan_load(probe(info.path.parent), info, ctx_cap=cap)

        def show(found: tuple[Sampling, LoadPlan]) -> None:
            sampling, planned = found
            if self.engine.result is not result:
                return  # another model was loaded meanwhile
            self._model_sampling = sampling
            self._use_model_settings()
            self._set_baseline(
                Baseline(
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    n_ctx=planned.n_ctx,
                    ctx_limit=info.n_ctx_train or 131_072,
                    gpu_layers=planned.n_gpu_layers,
                    layers_total=planned.n_layers_total,
                    gpu=planned.device != "cpu",
                    reason=self._shown_name(planned.reason),
                )
            )

        self.library.tasks.submit(plan, show, lambda _exc: None, name="plan")

    # -- export and import ----------------------------------------------------------------------

    def export_chat(self, conversation_id: int, kind: str) -> None:
        """Ask where, then write the chat there on a background thread; the banner says how it went."""
        conversation = self.store.get_conversation(conversation_id)
        if conversation is None:
            return
        safe = "".join(c if c.isalnum() or c in " -_" else "_" for c in conversation.title).strip() or "chat"
        suffix, filters = (".md", "Markdown (*.md)") if kind == "markdown" else (".json", "JSON (*.json)")
        from PySide6.QtWidgets import QFileDialog  # here: only when asked (start-up time)

        name, _filter = QFileDialog.getSaveFileName(
            self, "Export the chat", str(Path.home() / (safe + suffix)), filters
        )
        if name:
            self.export_chat_to(conversation_id, name)

    def export_chat_to(self, conversation_id: int, name: str) -> None:
        from app.core import chat_export

        def done(path: Path) -> None:
            self.banner.show_message(f"Exported the chat to {path}.", error=False)

        def failed(exc: BaseException) -> None:
            self.banner.show_message(
                str(exc) if isinstance(exc, ValueError) else f"The chat could not be exported: {exc}"
            )

        self.library.tasks.submit(
            lambda: chat_export.export_chat(self.store, conversation_id, name), done, failed, name="export"
        )

    def import_chat(self) -> None:
        from PySide6.QtWidgets import QFileDialog  # here: only when asked (start-up time)

        name, _filter = QFileDialog.getOpenFileName(
            self, "Import a chat", str(Path.home()), "Chats in the OpenAI messages shape (*.json);;All files (*)"
        )
        if name:
            self.import_chat_from(name)

    def import_chat_from(self, name: str) -> None:
        """Read the file on a background thread; the new chat opens when it is in the store."""
        from app.core import chat_export

        def done(result: tuple[StoredConversation, int]) -> None:
            conversation, skipped = result
            if self._closed:
                return
            self.show_chat()
            self.sidebar.refresh()
            self.session.open(conversation.id)
            left = f" {skipped} tool message{'s' if skipped != 1 else ''} left out." if skipped else ""
            self.banner.show_message(f"Imported “{conversation.title}”.{left}", error=False)

        def failed(exc: BaseException) -> None:
            self.banner.show_message(
                str(exc) if isinstance(exc, ValueError) else f"The chat could not be imported: {exc}"
            )

        self.library.tasks.submit(lambda: chat_export.import_chat(self.store, name), done, failed, name="import-chat")

    # -- unload ---------------------------------------------------------------------------------

    def unload_model(self) -> None:
        """Free the model's memory now (the engine process ends); say how much it held."""
        if self.engine.result is None:
            return
        if self.session.streaming:
            self.session.stop()  # the reply so far is kept, marked stopped
        self._freeing = self._engine_memory()
        self.engine.unload()

    def _engine_memory(self) -> int:
        """What the engine process holds in RAM now plus the plan's GPU memory, in bytes (the
        plan's estimate when the process cannot be asked; 0 for a remote model)."""
        result = self.engine.result
        plan = result.plan if result is not None else None
        if plan is None:
            return 0
        pid = self.engine.service.backend_pid if self.engine.is_loaded else None
        if pid is not None:
            try:
                import psutil

                return int(psutil.Process(pid).memory_info().rss) + plan.est_vram_bytes
            except Exception:  # noqa: BLE001 (the process may be gone already: fall back to the plan)
                pass
        return plan.est_vram_bytes + plan.est_ram_bytes

    def _on_unloaded(self) -> None:
        from app.core.units import format_bytes

        entry = self._requested_entry
        name = entry.name if entry is not None else "The model"
        freed = self._freeing
        self._freeing = 0
        self._loaded_key = ""
        self.session.model_name = None
        self.session.model_key = None
        self._load_options = (None, None)
        self.composer.set_model_state("none")
        note = f"{name} is unloaded" + (f": about {format_bytes(freed)} of memory freed." if freed else ".")
        self.header.set_unloaded(note + " Pick it in the list to load it again.")
        self.banner.show_message(
            note, ("Load it again", lambda: self.load_model(entry)) if entry else None, error=False
        )

    def _update_system_button(self) -> None:
        has = bool(self.session.system_prompt.strip())
        self.header.system_button.setText("System prompt ✓" if has else "System prompt")

    def open_model_file(self) -> None:
        from PySide6.QtWidgets import QFileDialog  # here: only when asked (start-up time)

        name, _filter = QFileDialog.getOpenFileName(self, "Open a GGUF model", str(Path.home()), "GGUF models (*.gguf)")
        if not name:
            self.header.select(self.store.get_setting(SETTING_MODEL, "") or "")
            return
        self.open_model_path(name)

    def open_model_path(self, name: str) -> None:
        """Use a GGUF file from anywhere: it loads now, and it is recorded among the installed
        models (the manifest, on a background thread: the file's header is read) so the Library's
        "On this computer" and `hearth models` list it, and the Library can forget it. Until that
        is done, and if the file cannot be recorded, the window remembers it by itself."""
        opened = [p for p in self.store.get_setting(SETTING_EXTRA_MODELS, []) if p != name] + [name]
        self.store.set_setting(SETTING_EXTRA_MODELS, opened[-10:])
        self._refresh_models(name)
        entry = self.header.entry(name)
        if entry is not None:
            self.load_model(entry)

        def record() -> object:
            from app.core import catalog

            return catalog.import_model(name)

        def recorded(_model: object) -> None:
            if self._closed:
                return
            try:  # the manifest lists it now: the Library's Delete makes it disappear everywhere
                kept = [p for p in self.store.get_setting(SETTING_EXTRA_MODELS, []) if p != name]
                self.store.set_setting(SETTING_EXTRA_MODELS, kept)
            except StoreError:
                pass
            self.library.refresh()
            self.library.modelsChanged.emit()

        self.library.tasks.submit(record, recorded, lambda _exc: None, name="record-opened")

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
        from app.gui.model_settings import effective, load_options

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
        if entry.remote:  # its server decides its context and layers
            self._load_options = (None, None)
            self.engine.load_remote(entry.remote, entry.name)
        else:
            n_ctx, gpu_layers = load_options(effective(self.session.options, self._defaults()))
            self._load_options = (n_ctx, gpu_layers)
            self.engine.load(entry.path, ctx_cap=n_ctx, gpu_layers=gpu_layers)

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
        """The picker now from what is known without walking the models folder (the starter, the
        files opened from elsewhere, the one asked for and the remembered one: a stat each), and
        again once a walk of the folder on a background thread comes back."""
        self._preferred_model = preferred
        self._show_models()
        self._models_scan += 1
        scan = self._models_scan

        def scanned(found: list[Path]) -> None:
            if scan == self._models_scan and not self._closed:  # a later walk is on its way otherwise
                self._folder_models = found
                self._show_models()

        self.library.tasks.submit(folder_models, scanned, lambda _exc: scanned([]), name="models-folder")

    def _show_models(self) -> None:
        preferred = self._preferred_model
        known = [Path(p) for p in self.store.get_setting(SETTING_EXTRA_MODELS, [])]
        remembered_key = str(self.store.get_setting(SETTING_MODEL) or "")
        remembered = remotes.parse_key(remembered_key)
        if remembered_key and remembered_key != STARTER_KEY and remembered is None:
            known.append(Path(remembered_key))
        if preferred is not None:
            known.append(Path(preferred))
        entries = model_entries([*(self._folder_models or []), *[p for p in known if p.is_file()]], starter_entry())
        listed = [m for models in self._remote_models.values() for m in models]
        if remembered is not None and remembered.server in remotes.servers(self.store) and remembered not in listed:
            listed.insert(0, remembered)  # until its server answers
        entries += remote_entries(listed)
        key = str(preferred) if preferred is not None else remembered_key
        if not any(e.key == key for e in entries):
            key = ""
        self.header.set_models(entries, key or (entries[0].key if entries else None))
        if self._folder_models is None:
            return  # "no model" only once the folder has been walked
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
        self.header.set_loaded(result, self._shown_name(result.reason))
        self.sidebar.network.set_remote(result.remote or None)
        self.header.effort.set_effort(self.session.effort)
        self._update_baseline(result)
        self.session.set_frame_budget(frame_budget(result))
        self._use_model_settings()
        if self._model_panel_open():
            self._fill_model_panel()
        if self.session.conversation is not None:  # its saved KV state comes back before the user asks
            self.engine.enter_conversation(self.session.conversation.id)
        # What the first load adds (the engine's client, the picker's models) lives as long as the
        # window: full collections walking it cost the GUI thread several ms at a time while a
        # reply streamed.
        freeze_once("model loaded")
        self.modelLoaded.emit(result)

    def _start_network_features(self) -> None:
        if self._closed:
            return
        self.api.restore()
        from app.gui.remote_engines import ModelsLookup

        servers = remotes.servers(self.store)
        if servers:
            self._models_lookup = ModelsLookup(self)
            self._models_lookup.ready.connect(lambda server, models, _error: self._on_remote_models(server, models))
            for server in servers:
                self._models_lookup.start(server)

    def _on_remote_models(self, server: str, models: list[RemoteModel]) -> None:
        if models:
            self._remote_models[server] = models
        else:
            self._remote_models.pop(server, None)
        self._refresh_models()

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
        self._use_model_settings()
        if self._model_panel_open():
            self._fill_model_panel()
        self._offer_chat_model(conversation)
        title = conversation.title if conversation else "New chat"
        self.setWindowTitle(f"{title} — Hearth")

    def _offer_chat_model(self, conversation: StoredConversation | None) -> None:
        """A chat opened that was written with another model: offer to switch to that one."""
        if self._offer_shown:
            self.banner.hide()
            self._offer_shown = False
        wanted = conversation.model if conversation is not None else None
        current = self._requested_key or self._loaded_key
        if not wanted or wanted in (current, self.engine.engine_name):
            self._offer_chat_load(conversation)
            return
        entry = self.header.entry(wanted) or next(
            (e for e in self.header.entries() if wanted in (e.name, e.path.stem if e.path else None)), None
        )
        if entry is not None and entry.key == current:
            self._offer_chat_load(conversation)
            return
        if entry is not None:
            self.banner.show_message(
                f"This chat was written with {entry.name}.",
                (f"Switch to {entry.name}", lambda: self.load_model(entry)),
                error=False,
            )
        else:
            name = Path(wanted).stem if ("/" in wanted or "\\" in wanted) else wanted
            self.banner.show_message(
                f"This chat was written with {name}, which is not on this computer now.",
                ("Open the Library", self.show_library),
                error=False,
            )
        self._offer_shown = True

    def _offer_chat_load(self, conversation: StoredConversation | None) -> None:
        """A chat opened whose own context size or GPU layers differ from how the loaded model runs:
        offer to reload it so (not automatically: a reload takes seconds)."""
        from app.gui.model_settings import effective, load_options

        entry = self._requested_entry
        if conversation is None or not conversation.options or entry is None or not self._local_model_loaded():
            return
        if self.engine.loading:
            return
        wanted = load_options(effective(dict(conversation.options), self._defaults()))
        if wanted == self._load_options:
            return
        n_ctx, layers = wanted
        parts = [
            f"a context of {n_ctx:,} tokens" if n_ctx else "",
            f"{layers} GPU layers" if layers is not None else "",
        ]
        what = " and ".join(p for p in parts if p) or "the planner's context and GPU layers"
        self.banner.show_message(
            f"This chat's model settings ask for {what}; {entry.name} is loaded otherwise.",
            ("Reload with them", lambda: self.load_model(entry)),
            error=False,
        )
        self._offer_shown = True

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
        self.api.shutdown()
        self.engine.shutdown()
        if self.mcp is not None:
            self.mcp.stop_all()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        first, self._shown_once = not self._shown_once, True
        if first:
            # After the first frame, which needs neither (a timer of 0 would still run before the
            # window is painted): the icon's PNG sizes and the buttons' focus policy, ~8 ms.
            QTimer.singleShot(AUTOLOAD_DELAY_MS, self._after_first_frame)
        if self._autoload is not None:
            entry, self._autoload = self._autoload, None
            # A short delay lets the first frame paint before the engine thread takes the GIL.
            QTimer.singleShot(AUTOLOAD_DELAY_MS, lambda: self.load_model(entry))
        if first:
            QTimer.singleShot(PREWARM_DELAY_MS, self._prewarm)
            # The network features the user turned on: the local API, the remote servers' models.
            QTimer.singleShot(AUTOLOAD_DELAY_MS, self._start_network_features)
            # A download left unfinished by the last session continues (after the first frame).
            QTimer.singleShot(AUTOLOAD_DELAY_MS, self.library.resume_unfinished)

    def _prewarm(self) -> None:
        """Markdown and highlighting imported on a background thread before a chat is opened, and
        the tools' modules (the MCP SDK: ~170 ms) before the first Send needs them, which on the GUI
        thread was the longest stall of a first reply."""
        import threading

        # The message widgets' renderers (not needed for the first frame: see messages.py), here
        # on the GUI thread while it is idle, ~8 ms, before the first reply or opened chat needs them.
        from app.gui.chat import blocks, markdown, thinking, tool_card  # noqa: F401

        def prewarm() -> None:
            import importlib

            markdown.prewarm()
            for module in ("app.core.tools.approval", "app.core.tools.mcp", "app.core.tools.registry"):
                try:
                    importlib.import_module(module)
                except Exception:  # imported again, and reported, where it is used
                    log.debug("prewarming %s failed", module, exc_info=True)
            # What start-up and these imports made lives as long as the process: full collections
            # walking it took 30-43 ms of the GUI thread at a time while a long chat opened.
            freeze_once("prewarmed")

        threading.Thread(target=prewarm, name="hearth-prewarm", daemon=True).start()

    def _after_first_frame(self) -> None:
        if self._closed:
            return
        theme.keyboard_focus_only(self)  # buttons take the focus from Tab, not from a click
        if self.windowIcon().isNull():  # set on the window too, for a QApplication not Hearth's own
            self._set_icon()

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
