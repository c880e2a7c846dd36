"""The per-chat tools menu under the composer: which tools the model may use in this chat.

A checkable entry per built-in tool and per MCP server (all its tools); the session keeps the
choice in the store (`conversation_tools`). The menu is filled when it opens, from what the
registry knows without starting anything.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QMenu, QToolButton, QWidget


class ToolsButton(QToolButton):
    changed = Signal(list)  # the new selectors

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LinkButton")
        self.setText("Tools: off")
        self.setAccessibleName("Tools the model can use in this chat")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.menu_ = QMenu(self)
        self.menu_.setAccessibleName("Tools of this chat")
        self.setMenu(self.menu_)
        self.menu_.aboutToShow.connect(self._fill)
        # (selector, label) pairs offered, and the chat's current selectors: set by the session.
        self.entries: Callable[[], list[tuple[str, str]]] = lambda: []
        self.current: Callable[[], list[str]] = lambda: []

    def refresh(self) -> None:
        chosen = self.current()
        labels = [label for selector, label in self.entries() if selector in chosen]
        self.setText("Tools: " + (", ".join(labels[:3]) + (" …" if len(labels) > 3 else "") if labels else "off"))

    def _fill(self) -> None:
        from app.core.tools.registry import matches

        self.menu_.clear()
        chosen = self.current()
        for selector, label in self.entries():
            action = self.menu_.addAction(label)
            action.setCheckable(True)
            action.setChecked(selector in chosen or any(matches(c, selector) for c in chosen if c.endswith("/*")))
            action.toggled.connect(lambda on, s=selector: self._toggle(s, on))
        if not self.menu_.actions():
            self.menu_.addAction("No tools are available").setEnabled(False)

    def _toggle(self, selector: str, on: bool) -> None:
        chosen = [c for c in self.current() if c != selector]
        if on:
            chosen.append(selector)
        self.changed.emit(chosen)
        self.refresh()
