"""The model settings side panel (opened from the header, never a dialog): temperature, top-p, max
reply length, context size and GPU layers, for this chat or as the defaults for new chats, each
showing what it falls back to (the model's own sampling, the planner's choice and its reason) with
a Reset; and the system prompt — this chat's, or the default one new chats start with.

Sampling and length apply to the next reply; context size and GPU layers are how the model is
loaded, so Apply reloads it when they change (the panel says so before). Precedence, per setting:
the chat's own value, else the defaults for new chats, else the model's / the planner's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.theme import bold, named, repolish

if TYPE_CHECKING:
    from app.core.engine.types import Sampling
    from app.core.store import ChatStore

SETTING_DEFAULTS = "model.defaults"  # store setting: the defaults for new chats (and "system_prompt")
OPTION_KEYS = ("temperature", "top_p", "max_tokens", "n_ctx", "gpu_layers")
LOAD_KEYS = ("n_ctx", "gpu_layers")  # settings of the load, not of a reply: they reload the model
PANEL_WIDTH = 340
MIN_CTX = 512
CHAT, DEFAULTS = "chat", "defaults"


@dataclass(frozen=True)
class Baseline:
    """What "default" means for the loaded model: its own sampling and the planner's plan."""

    temperature: float = 0.8
    top_p: float = 0.95
    n_ctx: int = 0  # the planner's context size (0: no model loaded)
    ctx_limit: int = 131_072  # the most the model was trained for
    gpu_layers: int = 0  # the planner's
    layers_total: int = 0
    gpu: bool = False  # whether this machine can offload layers at all
    reason: str = ""  # the planner's sentence


def read_defaults(store: ChatStore) -> dict[str, Any]:
    from app.core.store import StoreError

    try:
        value = store.get_setting(SETTING_DEFAULTS, {})
    except StoreError:
        return {}
    return value if isinstance(value, dict) else {}


def only_options(values: dict[str, Any]) -> dict[str, Any]:
    """The model settings among `values` that are set (a value of None means: the default)."""
    return {k: values[k] for k in OPTION_KEYS if values.get(k) is not None}


def effective(chat: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The settings a reply of this chat uses: the chat's own, else the defaults'."""
    return {**only_options(defaults), **only_options(chat)}


def sampling_for(options: dict[str, Any], base: Sampling | None) -> Sampling | None:
    """The model's sampling with the chosen temperature and top-p; None when nothing is chosen
    (the engine then uses the model's own)."""
    temperature, top_p = options.get("temperature"), options.get("top_p")
    if temperature is None and top_p is None:
        return None
    from app.core.engine.types import Sampling

    sampling = base or Sampling()
    return replace(
        sampling,
        temperature=float(temperature) if temperature is not None else sampling.temperature,
        top_p=float(top_p) if top_p is not None else sampling.top_p,
    )


def load_options(options: dict[str, Any]) -> tuple[int | None, int | None]:
    """(context size, GPU layers) chosen, each None for the planner's."""
    n_ctx, layers = options.get("n_ctx"), options.get("gpu_layers")
    return (int(n_ctx) if n_ctx else None), (int(layers) if layers is not None else None)


class _Row(QWidget):
    """A number with what it falls back to, and Reset."""

    changed = Signal()

    def __init__(self, box: QSpinBox | QDoubleSpinBox, name: str) -> None:
        super().__init__()
        self.box = box
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        line = QHBoxLayout()
        line.setSpacing(6)
        box.setAccessibleName(name)
        box.setKeyboardTracking(False)
        # Its size hint (from its longest text) must not widen the panel past its width.
        box.setMinimumWidth(60)
        box.setToolTip(f"{name}: type a value, or use the arrow keys; Reset goes back to the default")
        box.valueChanged.connect(lambda _v: self._update())
        self.reset = named(QToolButton(), "ActionButton", "Reset")
        self.reset.setAccessibleName(f"Reset {name.lower()}")
        self.reset.clicked.connect(self.clear)
        line.addWidget(box, 1)
        line.addWidget(self.reset)
        layout.addLayout(line)
        self.note = named(QLabel(), "Muted")
        self.note.setWordWrap(True)
        small = self.note.font()
        small.setPointSizeF(small.pointSizeF() * 0.9)
        self.note.setFont(small)
        layout.addWidget(self.note)

    def value(self) -> float | int | None:
        """The chosen value, or None while it shows the default."""
        v = self.box.value()
        return None if v == self.box.minimum() else v

    def set_value(self, value: float | int | None) -> None:
        self.box.blockSignals(True)
        if isinstance(self.box, QDoubleSpinBox):
            self.box.setValue(self.box.minimum() if value is None else float(value))
        else:
            self.box.setValue(self.box.minimum() if value is None else int(value))
        self.box.blockSignals(False)
        self.reset.setEnabled(value is not None)

    def set_default(self, text: str, note: str = "") -> None:
        """What the field falls back to, shown in the field while nothing is chosen."""
        self.box.setSpecialValueText(text)
        self.note.setText(note)
        self.note.setVisible(bool(note))

    def clear(self) -> None:
        if isinstance(self.box, QDoubleSpinBox):
            self.box.setValue(self.box.minimum())
        else:
            self.box.setValue(self.box.minimum())

    def _update(self) -> None:
        self.reset.setEnabled(self.value() is not None)
        self.changed.emit()


class ModelSettingsPanel(QFrame):
    applied = Signal(str, dict, str)  # scope ("chat" | "defaults"), options, system prompt
    closeRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SidePanel")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setFixedWidth(PANEL_WIDTH)
        self.setAccessibleName("Model settings")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer.addWidget(scroll)
        body = named(QWidget(), "SidePanelBody")
        scroll.setWidget(body)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(16, 12, 16, 16)
        layout.setSpacing(12)

        top = QHBoxLayout()
        top.addWidget(bold(QLabel("Model settings"), 1.1))
        top.addStretch(1)
        close = named(QToolButton(), "ActionButton", "✕")
        close.setAccessibleName("Close the model settings")
        close.setToolTip("Close (Esc)")
        close.clicked.connect(self.closeRequested)
        top.addWidget(close)
        layout.addLayout(top)

        scopes = named(QWidget(), "EffortGroup")
        scope_row = QHBoxLayout(scopes)
        scope_row.setContentsMargins(0, 0, 0, 0)
        scope_row.setSpacing(0)
        self._scope_group = QButtonGroup(self)
        self.scope_buttons: dict[str, QToolButton] = {}
        for scope, text in ((CHAT, "This chat"), (DEFAULTS, "New chats")):
            button = named(QToolButton(), text=text)
            button.setCheckable(True)
            button.setAccessibleName(f"Settings for {text.lower()}")
            button.clicked.connect(lambda _=False, sc=scope: self.set_scope(sc))
            self._scope_group.addButton(button)
            self.scope_buttons[scope] = button
            scope_row.addWidget(button)
        scope_row.addStretch(1)
        layout.addWidget(scopes)

        self.prompt_label = named(QLabel("System prompt"), "Muted")
        layout.addWidget(self.prompt_label)
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setPlaceholderText("e.g. You are a concise assistant. Answer in British English.")
        self.system_prompt.setTabChangesFocus(True)
        self.system_prompt.setFixedHeight(110)
        self.system_prompt.textChanged.connect(self._changed)
        layout.addWidget(self.system_prompt)

        form = QFormLayout()
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(10)
        self.temperature = _Row(self._float_box(-0.05, 2.0, 0.05), "Temperature")
        self.top_p = _Row(self._float_box(-0.01, 1.0, 0.01), "Top-p")
        self.max_tokens = _Row(self._int_box(0, 131_072, 256, " tokens"), "Max reply length")
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("Max reply", self.max_tokens)
        layout.addLayout(form)
        reload_title = named(QLabel("How the model is loaded"), "Muted")
        layout.addWidget(reload_title)
        load_form = QFormLayout()
        load_form.setHorizontalSpacing(10)
        load_form.setVerticalSpacing(10)
        self.n_ctx = _Row(self._int_box(0, 131_072, 1024, " tokens"), "Context size")
        self.gpu_layers = _Row(self._int_box(-1, 999, 1, " layers"), "GPU layers")
        load_form.addRow("Context", self.n_ctx)
        load_form.addRow("GPU layers", self.gpu_layers)
        layout.addLayout(load_form)
        self.plan_note = named(QLabel(), "Muted")  # the planner's sentence: why its defaults
        self.plan_note.setWordWrap(True)
        self.plan_note.setAccessibleName("The planner's choice")
        layout.addWidget(self.plan_note)
        self.rows = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "n_ctx": self.n_ctx,
            "gpu_layers": self.gpu_layers,
        }
        for row in self.rows.values():
            row.changed.connect(self._changed)

        self.note = named(QLabel(), "NoticeLabel")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.revert_button = QPushButton("Revert")
        self.revert_button.setAccessibleName("Revert the unapplied changes")
        self.revert_button.clicked.connect(self._revert)
        self.apply_button = named(QPushButton("Apply"), "PrimaryButton")
        self.apply_button.setMinimumHeight(30)
        self.apply_button.setMinimumWidth(96)
        self.apply_button.clicked.connect(self.apply)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.apply_button)
        layout.addLayout(buttons)
        layout.addStretch(1)

        self.scope = CHAT
        self._values: dict[str, tuple[dict[str, Any], str]] = {CHAT: ({}, ""), DEFAULTS: ({}, "")}
        self._inherited: dict[str, Any] = {}  # the defaults' values, what a chat falls back to
        self._loaded: tuple[int | None, int | None] | None = None  # None: no model loaded
        self.baseline = Baseline()
        self.scope_buttons[CHAT].setChecked(True)
        self._show()

    # -- contents -------------------------------------------------------------------------------

    @staticmethod
    def _float_box(low: float, high: float, step: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(low, high)
        box.setSingleStep(step)
        box.setDecimals(2)
        return box

    @staticmethod
    def _int_box(low: int, high: int, step: int, suffix: str) -> QSpinBox:
        box = QSpinBox()
        box.setRange(low, high)
        box.setSingleStep(step)
        box.setSuffix(suffix)
        box.setGroupSeparatorShown(True)
        return box

    def set_values(
        self,
        chat: dict[str, Any],
        chat_prompt: str,
        defaults: dict[str, Any],
        default_prompt: str,
        *,
        loaded: tuple[int | None, int | None] | None = None,
    ) -> None:
        """What is saved now: this chat's settings and the defaults (and, for a loaded model, the
        context size and GPU layers it was loaded with, so Apply knows when to reload; None: no
        model is loaded)."""
        self._values = {CHAT: (only_options(chat), chat_prompt), DEFAULTS: (only_options(defaults), default_prompt)}
        self._inherited = only_options(defaults)
        self._loaded = loaded
        self._show()

    def set_baseline(self, baseline: Baseline) -> None:
        self.baseline = baseline
        self._show_defaults()

    def set_scope(self, scope: str) -> None:
        self.scope = scope
        self.scope_buttons[scope].setChecked(True)
        self._show()

    def _show(self) -> None:
        options, prompt = self._values[self.scope]
        for key, row in self.rows.items():
            row.set_value(options.get(key))
        self.system_prompt.blockSignals(True)
        self.system_prompt.setPlainText(prompt)
        self.system_prompt.blockSignals(False)
        self.prompt_label.setText(
            "System prompt for this chat" if self.scope == CHAT else "Default system prompt for new chats"
        )
        self._show_defaults()
        self._changed()

    def _show_defaults(self) -> None:
        b = self.baseline
        inherit = self._inherited if self.scope == CHAT else {}
        where = " (new chats' setting)"

        def fallback(key: str, model_text: str) -> str:
            if key in inherit:
                value = inherit[key]
                shown = f"{value:g}" if isinstance(value, float) else f"{value:,}"
                return f"Default: {shown}{where}"
            return model_text

        self.temperature.set_default(fallback("temperature", f"Model default: {b.temperature:g}"))
        self.top_p.set_default(fallback("top_p", f"Model default: {b.top_p:g}"))
        self.max_tokens.set_default(
            fallback("max_tokens", "No limit"), "Until the model ends its reply or the context is full."
        )
        planner = f"Planner: {b.n_ctx:,}" if b.n_ctx else "Planner's choice"
        self.n_ctx.set_default(fallback("n_ctx", planner))
        self.plan_note.setText(f"The planner's choice for this computer: {b.reason}" if b.reason else "")
        self.plan_note.setVisible(bool(b.reason))
        self.n_ctx.box.setMaximum(b.ctx_limit or 131_072)
        self.gpu_layers.box.setMaximum(b.layers_total or 999)
        if b.gpu or not b.n_ctx:
            self.gpu_layers.set_default(
                fallback("gpu_layers", f"Planner: {b.gpu_layers}" if b.n_ctx else "Planner's choice")
            )
            self.gpu_layers.setEnabled(True)
        else:
            self.gpu_layers.set_default("Planner: 0", "No GPU that llama.cpp can use: every layer runs on the CPU.")
            self.gpu_layers.setEnabled(False)

    # -- changes --------------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        return {key: row.value() for key, row in self.rows.items() if row.value() is not None}

    def _pending(self) -> bool:
        options, prompt = self._values[self.scope]
        return self.values() != options or self.system_prompt.toPlainText().strip() != prompt.strip()

    def needs_reload(self) -> bool:
        """Whether applying changes the context size or GPU layers the loaded model runs this chat
        with (a chat's own values win over the defaults, so the defaults may not matter)."""
        if self._loaded is None:
            return False
        if self.scope == CHAT:
            chosen = effective(self.values(), self._inherited)
        else:
            chosen = effective(self._values[CHAT][0], self.values())
        return load_options(chosen) != self._loaded

    def problem(self) -> str:
        """A sentence for a value that cannot work, or ""."""
        n_ctx = self.n_ctx.value()
        if n_ctx is not None and int(n_ctx) < MIN_CTX:
            return f"A context of {int(n_ctx):,} tokens cannot hold a conversation: choose {MIN_CTX:,} or more."
        return ""

    def _changed(self) -> None:
        pending = self._pending()
        reload = pending and self.needs_reload()
        problem = self.problem()
        self.apply_button.setEnabled(pending and not problem)
        self.revert_button.setEnabled(pending)
        self.apply_button.setText("Apply and reload" if reload else "Apply")
        self.note.setObjectName("ErrorLabel" if problem else "NoticeLabel")
        repolish(self.note)
        if problem:
            self.note.setText(problem)
        elif reload:
            self.note.setText("The context size or GPU layers changed: Apply reloads the model (a few seconds).")
        elif self.scope == DEFAULTS:
            self.note.setText("New chats start with these; a chat's own settings win over them.")
        else:
            self.note.setText("")
        self.note.setVisible(bool(self.note.text()))

    def _revert(self) -> None:
        self._show()

    def apply(self) -> None:
        if not self._pending() or self.problem():
            return
        options = self.values()
        prompt = self.system_prompt.toPlainText().strip()
        self._values[self.scope] = (options, prompt)
        if self.scope == DEFAULTS:
            self._inherited = options
        self.applied.emit(self.scope, options, prompt)
        self._changed()

    def focus_system_prompt(self) -> None:
        self.system_prompt.setFocus()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt's name)
        if event.key() == Qt.Key.Key_Escape:
            self.closeRequested.emit()
            return
        super().keyPressEvent(event)
