"""The composer: a rounded field that grows to about 8 lines, Send and Stop in the same place.

Enter sends, Shift+Enter starts a new line, Esc stops a streaming reply. Send is disabled while
the text is blank, and until a model is ready: then the hint line says why, with "Open the
Library" when no model is loaded (typing is always possible; nothing typed is lost). In edit mode
(editing the last user message) a banner says so, with Cancel.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFocusEvent, QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.theme import named, repolish

MAX_LINES = 8
HINT = "Enter to send · Shift+Enter for a new line"


class ComposerEdit(QPlainTextEdit):
    submitted = Signal()
    escapePressed = Signal()
    focusIn = Signal()
    focusOut = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ComposerEdit")
        self.setPlaceholderText("Message Hearth")
        self.setAccessibleName("Message")
        self.setTabChangesFocus(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().documentLayout().documentSizeChanged.connect(lambda _size: self._fit())
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.submitted.emit()
            return
        if event.key() == Qt.Key.Key_Escape:
            self.escapePressed.emit()
            return
        super().keyPressEvent(event)

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802 (Qt API)
        super().focusInEvent(event)
        self.focusIn.emit()

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 (Qt API)
        super().focusOutEvent(event)
        self.focusOut.emit()

    def _line_height(self) -> int:
        return self.fontMetrics().lineSpacing()

    def _fit(self) -> None:
        needed = int(self.document().size().height())  # in lines, for a plain-text document
        lines = max(1, min(MAX_LINES, needed))
        policy = Qt.ScrollBarPolicy.ScrollBarAsNeeded if needed > MAX_LINES else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        self.setVerticalScrollBarPolicy(policy)
        margins = self.contentsMargins()
        frame = int(self.document().documentMargin() * 2) + margins.top() + margins.bottom()
        self.setFixedHeight(lines * self._line_height() + frame)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(400, self.height())


class Composer(QWidget):
    sendRequested = Signal(str)
    stopRequested = Signal()
    editCancelled = Signal()
    libraryRequested = Signal()  # "Open the Library", offered while no model is loaded

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(6)
        self.edit_banner = QWidget()
        banner = QHBoxLayout(self.edit_banner)
        banner.setContentsMargins(12, 0, 4, 0)
        banner_label = named(
            QLabel("Editing your last message; sending starts a new version, the old one stays (‹ ›)."), "EditBanner"
        )
        self.cancel_edit_button = named(QToolButton(), "ActionButton", "Cancel")
        self.cancel_edit_button.setAccessibleName("Cancel editing")
        self.cancel_edit_button.clicked.connect(self.cancel_edit)
        banner.addWidget(banner_label)
        banner.addStretch(1)
        banner.addWidget(self.cancel_edit_button)
        self.edit_banner.setVisible(False)
        outer.addWidget(self.edit_banner)

        self.frame = named(QFrame(), "Composer")
        self.frame.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        row = QHBoxLayout(self.frame)
        row.setContentsMargins(14, 8, 8, 8)
        row.setSpacing(8)
        self.edit = ComposerEdit()
        self.button = QPushButton()
        self.button.setFixedSize(QSize(32, 32))
        bold = self.button.font()
        bold.setPointSizeF(bold.pointSizeF() * 1.2)
        bold.setWeight(bold.Weight.Bold)
        self.button.setFont(bold)
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.clicked.connect(self._on_button)
        row.addWidget(self.edit, 1)
        row.addWidget(self.button, 0, Qt.AlignmentFlag.AlignBottom)
        outer.addWidget(self.frame)
        hint_row = QHBoxLayout()
        hint_row.setContentsMargins(0, 0, 0, 0)
        hint_row.setSpacing(6)
        self.hint = named(QLabel(HINT), "HintLabel")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        small = self.hint.font()
        small.setPointSizeF(small.pointSizeF() * 0.9)
        self.hint.setFont(small)
        self.library_button = named(QToolButton(), "LinkButton", "Open the Library")
        self.library_button.setAccessibleName("Open the Library to get a model")
        self.library_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.library_button.setFont(small)
        self.library_button.clicked.connect(self.libraryRequested)
        self.library_button.setVisible(False)
        from app.gui.chat.tools_menu import ToolsButton

        self.tools_button = ToolsButton()
        self.tools_button.setFont(small)
        self.tools_button.setVisible(False)  # shown once the window has a tool registry
        hint_row.addWidget(self.tools_button)
        hint_row.addStretch(1)
        hint_row.addWidget(self.hint)
        hint_row.addWidget(self.library_button)
        hint_row.addStretch(1)
        outer.addLayout(hint_row)
        self._hint_text = HINT

        self._streaming = False
        self._ready = True
        self._editing: int | None = None
        self.edit.textChanged.connect(self._update_button)
        self.edit.submitted.connect(self.submit)
        self.edit.escapePressed.connect(self._on_escape)
        self.edit.focusIn.connect(lambda: self._on_focus(focused=True))
        self.edit.focusOut.connect(lambda: self._on_focus(focused=False))
        self._update_button()

    # -- state --------------------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def editing(self) -> int | None:
        """The id of the message being edited, or None."""
        return self._editing

    def text(self) -> str:
        return self.edit.toPlainText()

    def set_text(self, text: str) -> None:
        self.edit.setPlainText(text)
        cursor = self.edit.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.edit.setTextCursor(cursor)

    def set_streaming(self, streaming: bool) -> None:
        self._streaming = streaming
        self._update_button()

    @property
    def ready(self) -> bool:
        return self._ready

    def set_model_state(self, state: str, name: str = "") -> None:
        """ "ready", "loading" (with the model's name) or "none": Send works only when ready."""
        self._ready = state == "ready"
        if state == "ready":
            self._hint_text = HINT
        elif state == "loading":
            self._hint_text = f"Loading {name}… you can type meanwhile; Send waits for the model." if name else HINT
        else:
            self._hint_text = "No model is loaded: pick one in the model list above, or"
        self.hint.setText(self._hint_text)
        self.library_button.setVisible(state == "none")
        self._update_button()

    def set_hint(self, text: str | None) -> None:
        """A hint for now ("Waiting for your approval"); None: back to the usual one."""
        self.hint.setText(text if text is not None else self._hint_text)

    def begin_edit(self, message_id: int, text: str) -> None:
        self._editing = message_id
        self.edit_banner.setVisible(True)
        self.set_text(text)
        self.edit.setFocus()

    def cancel_edit(self) -> None:
        if self._editing is None:
            return
        self._editing = None
        self.edit_banner.setVisible(False)
        self.edit.clear()
        self.editCancelled.emit()

    def end_edit(self) -> None:
        self._editing = None
        self.edit_banner.setVisible(False)

    # -- actions ------------------------------------------------------------------------------

    def can_send(self) -> bool:
        return not self._streaming and self._ready and bool(self.text().strip())

    def submit(self) -> None:
        if not self.can_send():
            return
        text = self.text()
        self.edit.clear()
        self.sendRequested.emit(text)

    def _on_button(self) -> None:
        if self._streaming:
            self.stopRequested.emit()
        else:
            self.submit()

    def _on_escape(self) -> None:
        if self._streaming:
            self.stopRequested.emit()
        elif self._editing is not None:
            self.cancel_edit()

    def _on_focus(self, focused: bool) -> None:
        self.frame.setProperty("focused", "true" if focused else "false")
        repolish(self.frame)

    def _update_button(self) -> None:
        if self._streaming:
            self.button.setObjectName("StopButton")
            self.button.setText("■")
            self.button.setAccessibleName("Stop")
            self.button.setToolTip("Stop (Esc)")
            self.button.setEnabled(True)
        else:
            self.button.setObjectName("PrimaryButton")
            self.button.setText("↑")
            self.button.setAccessibleName("Send")
            self.button.setToolTip("Send (Enter)" if self._ready else "Send: waits for a model to be loaded")
            self.button.setEnabled(self._ready and bool(self.text().strip()))
        repolish(self.button)
