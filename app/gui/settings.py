"""Settings (Ctrl+,): appearance, where models are kept, the Hugging Face token, the llama.cpp build
(engine), remote engines and the local API. Each change applies at once; the engine choice from
the next model load on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core import llama_builds, paths
from app.core.store import ChatStore, StoreError
from app.gui import theme
from app.gui.library.controller import LibraryController
from app.gui.theme import SETTING_THEME, named

if TYPE_CHECKING:
    from app.core.llama_builds import BuildChoice
    from app.core.tools.approval import Approvals
    from app.core.tools.mcp import McpManager
    from app.gui.api_server import ApiServerController
    from app.gui.mcp_settings import McpServersPanel

THEMES = (("Follow the system", "system"), ("Light", "light"), ("Dark", "dark"))
ENGINES: tuple[tuple[str, str | None], ...] = (
    ("Automatic", None), ("CPU", "cpu"), ("Vulkan", "vulkan"), ("CUDA", "cuda"), ("Metal", "metal"),
)  # fmt: skip


def saved_theme(store: ChatStore) -> str:
    try:
        value = store.get_setting(SETTING_THEME, "system")
    except StoreError:
        return "system"
    return value if value in ("system", "light", "dark") else "system"


class SettingsDialog(QDialog):
    def __init__(
        self,
        store: ChatStore,
        library: LibraryController,
        parent: QWidget | None = None,
        about: Callable[[], None] | None = None,
        api: ApiServerController | None = None,
        tools: tuple[McpManager, Approvals] | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.library = library
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        layout.setSpacing(12)
        form = QFormLayout()
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(12)

        self.theme = QComboBox()
        self.theme.setAccessibleName("Appearance")
        for label, value in THEMES:
            self.theme.addItem(label, value)
        manager = theme.manager()
        self.theme.setCurrentIndex(max(0, self.theme.findData(manager.mode if manager else saved_theme(store))))
        self.theme.currentIndexChanged.connect(self._on_theme)
        form.addRow("Appearance", self.theme)

        folder_row = QVBoxLayout()
        self.folder = QLabel()
        self.folder.setWordWrap(True)
        self.folder.setAccessibleName("Models folder")
        folder_row.addWidget(self.folder)
        buttons = QHBoxLayout()
        self.change_folder = QPushButton("Change…")
        self.change_folder.setAccessibleName("Change the models folder")
        self.change_folder.clicked.connect(self._choose_folder)
        self.default_folder = QPushButton("Use the default folder")
        self.default_folder.clicked.connect(lambda: self._set_folder(None))
        buttons.addWidget(self.change_folder)
        buttons.addWidget(self.default_folder)
        buttons.addStretch(1)
        folder_row.addLayout(buttons)
        form.addRow("Models folder", folder_row)

        token_row = QHBoxLayout()
        self.token_state = named(QLabel("Checking the keyring…"), "Muted")
        self.token_state.setAccessibleName("Hugging Face token status")
        self.token_button = QPushButton("Set token…")
        self.token_button.setAccessibleName("Set the Hugging Face token")
        self.token_button.clicked.connect(self._edit_token)
        token_row.addWidget(self.token_state, 1)
        token_row.addWidget(self.token_button)
        form.addRow("Hugging Face", token_row)

        engine_row = QVBoxLayout()
        self._engine_changed = False
        self.engine = QComboBox()
        self.engine.setAccessibleName("Engine")
        bundled = {b.name for b in llama_builds.available_builds()}
        for engine_label, engine in ENGINES:
            here = engine is None or engine in bundled or engine == "cpu"
            self.engine.addItem(engine_label if here else f"{engine_label} (not in this installation)", engine)
        self.engine.setCurrentIndex(max(0, self.engine.findData(llama_builds.preferred_build())))
        self.engine.currentIndexChanged.connect(self._on_engine)
        engine_row.addWidget(self.engine)
        self.engine_state = named(QLabel("Checking which llama.cpp build this computer can run…"), "Muted")
        self.engine_state.setWordWrap(True)
        self.engine_state.setAccessibleName("Engine in use")
        engine_row.addWidget(self.engine_state)
        form.addRow("Engine", engine_row)
        form.addRow("Saved chat state", self._kv_row())
        from app.gui.remote_engines import ApiPanel, EnginesPanel

        self.engines = EnginesPanel(store)
        form.addRow("Remote engines", self.engines)
        self.api_panel = ApiPanel(api) if api is not None else None
        if self.api_panel is not None:
            form.addRow("Local API", self.api_panel)
        self.mcp_panel: McpServersPanel | None = None
        if tools is not None:
            from app.gui.mcp_settings import McpServersPanel

            self.mcp_panel = McpServersPanel(store, tools[0], tools[1])
            form.addRow("Tool servers (MCP)", self.mcp_panel)
        layout.addLayout(form)

        self.notice = named(QLabel(), "NoticeLabel")
        self.notice.setWordWrap(True)
        self.notice.setVisible(False)
        layout.addWidget(self.notice)
        privacy = named(
            QLabel(
                "Hearth makes no network request unless you download a model, search Hugging Face or "
                "add a remote engine; the sidebar names every host it contacted. Chats stay in a "
                "database on this computer."
            ),
            "Muted",
        )
        privacy.setWordWrap(True)
        layout.addWidget(privacy)
        close = QHBoxLayout()
        if about is not None:
            self.about_button = QPushButton("About Hearth…")
            self.about_button.clicked.connect(about)
            close.addWidget(self.about_button)
        close.addStretch(1)
        self.close_button = named(QPushButton("Done"), "PrimaryButton")
        self.close_button.setMinimumHeight(30)
        self.close_button.setMinimumWidth(90)
        self.close_button.clicked.connect(self.accept)
        close.addWidget(self.close_button)
        layout.addLayout(close)

        from app.gui.about import BuildChoiceLookup

        self.lookup = BuildChoiceLookup(self)
        self.lookup.ready.connect(self._on_choice)
        self.lookup.start()
        library.message.connect(self._on_message)
        library.tokenChanged.connect(self._on_token)
        self._show_folder()
        if library.has_token is None:
            library.check_token()
        else:
            self._on_token(library.has_token)

    def _kv_row(self) -> QVBoxLayout:
        """How much disk the engine may use for chats' KV states (a long chat reopens at once)."""
        from app.core.engine import kvcache

        row = QVBoxLayout()
        self.kv_cap = QComboBox()
        self.kv_cap.setAccessibleName("Disk for saved chat state")
        for cap in kvcache.CAP_CHOICES:
            self.kv_cap.addItem("Keep none" if cap == 0 else f"Up to {cap >> 30} GiB", cap)
        self.kv_cap.setCurrentIndex(max(0, self.kv_cap.findData(kvcache.configured_cap())))
        self.kv_cap.currentIndexChanged.connect(self._on_kv_cap)
        row.addWidget(self.kv_cap)
        self.kv_state = named(
            QLabel(
                "The model's memory of each chat is saved on disk, so a long chat answers again "
                "without reading its whole history; the least recently used go first."
            ),
            "Muted",
        )
        self.kv_state.setWordWrap(True)
        row.addWidget(self.kv_state)
        return row

    def _on_kv_cap(self) -> None:
        from app.core.engine import kvcache

        cap = int(self.kv_cap.currentData())
        try:
            freed = kvcache.set_configured_cap(cap)
        except OSError as exc:
            self._on_message(f"The choice could not be saved: {exc.strerror or exc}.")
            return
        from app.core.units import format_bytes

        done = f"Freed {format_bytes(freed)}. " if freed else ""
        self.kv_state.setText(f"{done}Takes effect the next time a model loads.")

    def _on_theme(self) -> None:
        mode = str(self.theme.currentData())
        manager = theme.manager()
        if manager is not None:
            manager.set_mode(mode)
        try:
            self.store.set_setting(SETTING_THEME, mode)
        except StoreError as exc:
            self._on_message(str(exc))

    def _on_engine(self) -> None:
        value = self.engine.currentData()
        try:
            llama_builds.set_preferred_build(value if isinstance(value, str) else None)
        except OSError as exc:
            self._on_message(f"The engine choice could not be saved: {exc.strerror or exc}.")
            return
        self._engine_changed = True
        self.engine_state.setText("Checking…")
        self.lookup.start()

    def _on_choice(self, choice: BuildChoice) -> None:
        lines = [f"In use: {choice.reason}", *choice.tried]
        if self._engine_changed:
            lines.append("Takes effect the next time a model loads.")
        self.engine_state.setText("\n".join(lines))

    def _show_folder(self) -> None:
        current = paths.models_dir(create=False)
        self.folder.setText(str(current))
        self.default_folder.setEnabled(current != paths.data_dir(create=False) / "models")

    def _choose_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Keep models in", str(paths.models_dir(create=False)))
        if name:
            self._set_folder(name)

    def _set_folder(self, folder: str | None) -> None:
        self.library.set_models_folder(folder)
        self._show_folder()

    def _edit_token(self) -> None:
        from app.gui.library.token_dialog import TokenDialog

        dialog = TokenDialog(self.library, self)
        dialog.exec()
        dialog.deleteLater()  # freed, and its connections to the library with it

    def _on_token(self, present: bool) -> None:
        self.token_state.setText(
            "A token is saved in the system keyring."
            if present
            else "No token saved (only gated or private models need one)."
        )
        self.token_button.setText("Change token…" if present else "Set token…")

    def _on_message(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
