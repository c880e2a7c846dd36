"""The collapsible "Thinking" section above an answer: live and open while the model reasons,
folded away ("Thought for 4.2 s") when the answer starts; click or keyboard toggles it."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QToolButton, QVBoxLayout, QWidget

from app.gui.chat.blocks import MarkdownView
from app.gui.theme import named

DOTS = ("", ".", "..", "...")


class ThinkingSection(QWidget):
    toggled = Signal()  # read `expanded`

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.header = named(QToolButton(), "ThinkingHeader")
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setArrowType(Qt.ArrowType.RightArrow)
        self.header.setCursor(Qt.CursorShape.PointingHandCursor)
        self.header.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.header.clicked.connect(self.toggle)
        self.body = named(QFrame(), "ThinkingBody")
        self.body.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        body_layout = QVBoxLayout(self.body)
        body_layout.setContentsMargins(14, 2, 0, 2)
        self.view = MarkdownView(muted=True)
        body_layout.addWidget(self.view)
        layout.addWidget(self.header, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.body)
        self._expanded = False
        self._live = False
        self._started = 0.0
        self._seconds: float | None = None
        self._pending_text: str | None = None  # stored reasoning, rendered on first expand
        self._tick = 0
        self._timer = QTimer(self)
        self._timer.setInterval(400)
        self._timer.timeout.connect(self._animate)
        self.body.setVisible(False)
        self._update_header()

    # -- state --------------------------------------------------------------------------------

    @property
    def expanded(self) -> bool:
        return self._expanded

    @property
    def live(self) -> bool:
        return self._live

    @property
    def seconds(self) -> float | None:
        return self._seconds

    def header_text(self) -> str:
        return self.header.text()

    def text(self) -> str:
        return self._pending_text if self._pending_text is not None else self.view.text()

    # -- streaming ----------------------------------------------------------------------------

    def start(self) -> None:
        """The model began to reason: open the section and animate its header."""
        self._live = True
        self._started = time.monotonic()
        self._timer.start()
        self.set_expanded(True)

    def append(self, text: str) -> None:
        if not self._live and self._seconds is None:
            self.start()
        self.view.append(text)

    def flush(self) -> None:
        self.view.flush()

    def stop(self, seconds: float | None = None) -> None:
        """Reasoning ended (the answer began, or the reply ended): fold it away. A later call with
        `seconds` (the engine thread's measurement, which is what gets stored) corrects the time."""
        if not self._live:
            if seconds is not None and self._seconds is not None:
                self._seconds = seconds
                self._update_header()
            return
        self._live = False
        self._timer.stop()
        self._seconds = seconds if seconds is not None else time.monotonic() - self._started
        self.view.finish()
        self.set_expanded(False)

    # -- stored replies -----------------------------------------------------------------------

    def set_finished(self, text: str, seconds: float | None) -> None:
        """A stored reply's reasoning: collapsed, rendered only when first opened."""
        self._live = False
        self._timer.stop()
        self._seconds = seconds
        self._pending_text = text
        self.set_expanded(False)

    # -- toggling -----------------------------------------------------------------------------

    def toggle(self) -> None:
        self.set_expanded(not self._expanded)

    def set_expanded(self, expanded: bool) -> None:
        if expanded and self._pending_text is not None:
            self.view.set_text(self._pending_text)
            self._pending_text = None
        changed = expanded != self._expanded
        self._expanded = expanded
        self.body.setVisible(expanded)
        self._update_header()
        if changed:
            self.toggled.emit()

    def _animate(self) -> None:
        self._tick = (self._tick + 1) % len(DOTS)
        self._update_header()

    def _update_header(self) -> None:
        if self._live:
            title = f"Thinking{DOTS[self._tick]}"
        elif self._seconds is not None:
            title = f"Thought for {self._seconds:.1f} s"
        else:
            title = "Thoughts"
        self.header.setText(title)
        self.header.setArrowType(Qt.ArrowType.DownArrow if self._expanded else Qt.ArrowType.RightArrow)
        state = "expanded" if self._expanded else "collapsed"
        self.header.setAccessibleName(f"{title.rstrip('.')}, {state}")
        self.header.setToolTip("Hide the reasoning" if self._expanded else "Show the reasoning")
