"""A tool call inside a reply: the tool's name and server, its arguments as pretty JSON, a status
chip (Waiting for you / Running… / Done in 0.4 s / Denied / Failed / Stopped), and the result,
collapsed by default. While the call waits for approval the card holds Allow once, Always allow
in this chat, Always allow (every chat, revocable in Settings; neither is offered for a tool that
asks every time) and Deny — never a modal dialog.

Everything a tool or its server sent is shown as plain text (QPlainTextEdit), never as HTML or
Markdown, and cut for display past DISPLAY_CHARS (the whole result stays in the store).
"""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.store import ToolCall
from app.gui.theme import named

DISPLAY_CHARS = 200_000
ARGUMENT_LINES = 6  # arguments taller than this scroll


def status_text(call: ToolCall) -> str:
    if call.status == "waiting":
        return "Waiting for you" if call.approval == "" else "Waiting"
    if call.status == "running":
        return "Running…"
    if call.status == "done":
        return f"Done in {call.duration_s or 0:.1f} s"
    if call.status == "denied":
        return "Denied"
    if call.status == "cancelled":
        return "Stopped"
    return "Failed"


def pretty_arguments(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _plain(text: str, name: str) -> QPlainTextEdit:
    view = QPlainTextEdit()
    view.setReadOnly(True)
    view.setObjectName(name)
    view.setAccessibleName(name)
    view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    view.setPlainText(text if len(text) <= DISPLAY_CHARS else text[:DISPLAY_CHARS] + f"\n[… {len(text):,} characters]")
    return view


class ToolCard(QFrame):
    decided = Signal(str, str)  # call id, "once" | "chat" | "always" | "deny"

    def __init__(self, call: ToolCall, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ToolCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.call = call
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(6)
        top = QHBoxLayout()
        self.title = named(QLabel(), "ToolCardTitle")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.status = named(QLabel(), "ToolStatus")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        top.addWidget(self.title, 1)
        top.addWidget(self.status, 0)
        layout.addLayout(top)
        self.preamble = named(QLabel(), "Muted")
        self.preamble.setTextFormat(Qt.TextFormat.PlainText)
        self.preamble.setWordWrap(True)
        self.preamble.setVisible(False)
        layout.addWidget(self.preamble)
        self.arguments = _plain(pretty_arguments(call.arguments), "Tool arguments")
        lines = min(ARGUMENT_LINES, pretty_arguments(call.arguments).count("\n") + 1)
        self.arguments.setFixedHeight(self.arguments.fontMetrics().lineSpacing() * lines + 12)
        layout.addWidget(self.arguments)
        self.error = named(QLabel(), "ErrorLabel")
        self.error.setTextFormat(Qt.TextFormat.PlainText)
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        layout.addWidget(self.error)
        self.result_toggle = QToolButton()
        self.result_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.result_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.result_toggle.setText("Result")
        self.result_toggle.setAccessibleName("Show the tool's result")
        self.result_toggle.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.result_toggle.clicked.connect(self.toggle_result)
        self.result_toggle.setVisible(False)
        layout.addWidget(self.result_toggle, 0, Qt.AlignmentFlag.AlignLeft)
        self.result: QPlainTextEdit | None = None
        self._result_text = ""
        self.approval = QWidget()
        buttons = QHBoxLayout(self.approval)
        buttons.setContentsMargins(0, 0, 0, 0)
        self.allow_once = QPushButton("Allow once")
        self.allow_once.setDefault(True)
        self.allow_chat = QPushButton("Always allow in this chat")
        self.allow_always = QPushButton("Always allow")
        self.deny = QPushButton("Deny")
        for button, decision, name in (
            (self.allow_once, "once", "Allow this tool call once"),
            (self.allow_chat, "chat", "Always allow this tool in this chat"),
            (self.allow_always, "always", "Always allow this tool, in every chat (revocable in Settings)"),
            (self.deny, "deny", "Deny this tool call"),
        ):
            button.setAccessibleName(name)
            button.clicked.connect(lambda _=False, d=decision: self._decide(d))
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.approval.setVisible(False)
        layout.addWidget(self.approval)
        self.update_call(call)

    # -- state --------------------------------------------------------------------------------

    def update_call(self, call: ToolCall, *, needs_approval: bool = False, ask_every_time: bool = False) -> None:
        self.call = call
        where = f" · {call.server}" if call.server else ""
        self.title.setText(f"{call.name}{where}".upper() if len(call.name) < 80 else call.name[:80] + "…")
        self.setAccessibleName(f"Tool call {call.name}{where}: {status_text(call)}")
        self.status.setText(status_text(call))
        self.approval.setVisible(needs_approval and call.status == "waiting")
        self.allow_chat.setVisible(not ask_every_time)
        self.allow_always.setVisible(not ask_every_time)
        if needs_approval:
            self.allow_once.setFocus(Qt.FocusReason.OtherFocusReason)
        if call.preamble:
            self.preamble.setText(call.preamble)
            self.preamble.setVisible(True)
        if call.error and call.status in ("failed", "denied", "cancelled"):
            self.error.setText(call.error)
            self.error.setVisible(call.status == "failed")
        text = call.result_full if call.result_full is not None else call.result
        if text is not None and call.status in ("done", "failed"):
            self._result_text = text
            self.result_toggle.setVisible(True)
            if self.result is not None:
                self.result.setPlainText(text[:DISPLAY_CHARS])

    @property
    def waiting_for_user(self) -> bool:
        return self.approval.isVisible()

    def _decide(self, decision: str) -> None:
        self.approval.setVisible(False)
        self.status.setText("Running…" if decision != "deny" else "Denied")
        self.decided.emit(self.call.call_id, decision)

    def toggle_result(self) -> None:
        if self.result is None:
            self.result = _plain(self._result_text, "Tool result")
            self.result.setMaximumHeight(240)
            self.result.setVisible(False)
            box = self.layout()
            assert isinstance(box, QVBoxLayout)
            box.insertWidget(box.indexOf(self.result_toggle) + 1, self.result)
        show = not self.result.isVisible()
        self.result.setVisible(show)
        self.result_toggle.setArrowType(Qt.ArrowType.DownArrow if show else Qt.ArrowType.RightArrow)
        self.result_toggle.setAccessibleName("Hide the tool's result" if show else "Show the tool's result")

    @property
    def result_shown(self) -> bool:
        return self.result is not None and self.result.isVisible()
