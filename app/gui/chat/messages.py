"""One widget per message: the user's (a soft bubble on the right) and the assistant's (full width,
no bubble, an optional Thinking section, the answer, a notice line, actions and stats)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QEnterEvent, QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from app.core.store import Message as StoredMessage
from app.gui.chat.blocks import MarkdownView
from app.gui.chat.markdown import breakable
from app.gui.chat.thinking import ThinkingSection
from app.gui.theme import named, repolish

if TYPE_CHECKING:
    from app.core.formats.base import ParsedEvent

USER_PREVIEW_CHARS = 20_000  # a 1 MB paste is stored whole and shown in part
BUBBLE_TEXT_WIDTH = 560


def stats_text(stats: dict[str, Any] | None) -> str:
    """e.g. "412 tokens · 38.5 tok/s · 0.4 s to first token"."""
    if not stats or not stats.get("generated_tokens"):
        return ""
    parts = [f"{stats['generated_tokens']:,} tokens"]
    if stats.get("tokens_per_s"):
        parts.append(f"{stats['tokens_per_s']:.1f} tok/s")
    if stats.get("time_to_first_token_s") is not None:
        parts.append(f"{stats['time_to_first_token_s']:.1f} s to first token")
    prompt, evaluated = stats.get("prompt_tokens") or 0, stats.get("prompt_tokens_evaluated") or 0
    if prompt and evaluated < prompt:
        restored = stats.get("prompt_tokens_restored") or 0
        where = "from the saved chat state" if restored else "cached"
        parts.append(f"{prompt - evaluated:,} of {prompt:,} prompt tokens {where}")
    return " · ".join(parts)


class WrappedLabel(QLabel):
    """A word-wrapped label whose minimum height is one line (see ProseBlock.minimumSizeHint)."""

    def __init__(self, text: str = "", name: str = "") -> None:
        super().__init__(text)
        self.setObjectName(name)
        self.setWordWrap(True)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(40, self.fontMetrics().height())


def _action(text: str, accessible: str) -> QToolButton:
    button = named(QToolButton(), "ActionButton", text)
    button.setAccessibleName(accessible)
    button.setToolTip(accessible)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    return button


class _HoverActions(QWidget):
    """Base for message widgets whose action row shows on hover, on focus, or always when pinned."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.actions_row = QWidget()
        policy = self.actions_row.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # no jump when the row appears
        self.actions_row.setSizePolicy(policy)
        self._pinned = False

    def set_pinned(self, pinned: bool) -> None:
        """The last message keeps its actions visible."""
        self._pinned = pinned
        self.actions_row.setVisible(pinned)

    def enterEvent(self, event: QEnterEvent) -> None:  # noqa: N802 (Qt API)
        self.actions_row.setVisible(True)
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt API)
        focus = QGuiApplication.focusObject()
        inside = isinstance(focus, QWidget) and self.isAncestorOf(focus)
        self.actions_row.setVisible(self._pinned or inside)
        super().leaveEvent(event)


class BubbleLabel(QLabel):
    """Plain text that is as wide as its longest line, up to `max_text_width`, then wraps."""

    def __init__(self, text: str, max_text_width: int) -> None:
        super().__init__(text)
        self._max = max_text_width
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        lines = text.split("\n", 200)[:200]
        metrics = self.fontMetrics()
        self._natural = max((metrics.horizontalAdvance(line) for line in lines), default=0) + 2

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        width = min(self._natural, self._max)
        return QSize(width, self.heightForWidth(width))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(min(self._natural, 80), self.fontMetrics().height())


class UserMessageWidget(_HoverActions):
    copyRequested = Signal(str)
    editRequested = Signal(int)  # message id

    def __init__(self, message_id: int, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message_id = message_id
        self.text = text
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        row = QHBoxLayout()
        row.addStretch(1)
        bubble = named(QFrame(), "UserBubble")
        bubble.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        bubble_layout = QVBoxLayout(bubble)
        bubble_layout.setContentsMargins(16, 10, 16, 10)
        shown = text if len(text) <= USER_PREVIEW_CHARS else text[:USER_PREVIEW_CHARS]
        self.label = BubbleLabel(breakable(shown), BUBBLE_TEXT_WIDTH)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        bubble_layout.addWidget(self.label)
        if len(text) > USER_PREVIEW_CHARS:
            more = named(
                QLabel(f"Showing the first {USER_PREVIEW_CHARS:,} of {len(text):,} characters."), "NoticeLabel"
            )
            bubble_layout.addWidget(more)
        bubble.setMaximumWidth(BUBBLE_TEXT_WIDTH + 32)
        row.addWidget(bubble)
        layout.addLayout(row)
        actions = QHBoxLayout(self.actions_row)
        actions.setContentsMargins(0, 0, 0, 0)
        actions.addStretch(1)
        self.copy_button = _action("Copy", "Copy message")
        self.edit_button = _action("Edit", "Edit and resend message")
        self.copy_button.clicked.connect(lambda: self.copyRequested.emit(self.text))
        self.edit_button.clicked.connect(lambda: self.editRequested.emit(self.message_id))
        actions.addWidget(self.copy_button)
        actions.addWidget(self.edit_button)
        layout.addWidget(self.actions_row)
        self.set_editable(False)
        self.set_pinned(False)
        self.setAccessibleName("Your message")

    def set_editable(self, editable: bool) -> None:
        self.edit_button.setVisible(editable)


class AssistantMessageWidget(_HoverActions):
    """A reply; streamed (`start`, `add_events`, `flush`, `finish`) or stored (`show_stored`)."""

    copyRequested = Signal(str)
    regenerateRequested = Signal()
    retryRequested = Signal()

    def __init__(self, message_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message_id = message_id
        self.state = "streaming"
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.waiting = named(QLabel("Reading the conversation…"), "Muted")
        self.waiting.setVisible(False)
        self.thinking = ThinkingSection()
        self.thinking.setVisible(False)
        self.answer = MarkdownView()
        self.answer.setAccessibleName("Reply")
        self.notice_row = QWidget()
        notice_layout = QHBoxLayout(self.notice_row)
        notice_layout.setContentsMargins(0, 0, 0, 0)
        self.notice = WrappedLabel(name="NoticeLabel")
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.retry_button = _action("Retry", "Retry")
        notice_layout.addWidget(self.notice, 1)
        notice_layout.addWidget(self.retry_button, 0, Qt.AlignmentFlag.AlignTop)
        self.notice_row.setVisible(False)
        layout.addWidget(self.waiting)
        layout.addWidget(self.thinking)
        layout.addWidget(self.answer)
        layout.addWidget(self.notice_row)
        actions = QHBoxLayout(self.actions_row)
        actions.setContentsMargins(0, 0, 0, 0)
        actions.setSpacing(2)
        self.copy_button = _action("Copy", "Copy reply")
        self.regenerate_button = _action("Regenerate", "Regenerate reply")
        self.stats_label = named(QLabel(), "StatsLabel")
        self.copy_button.clicked.connect(lambda: self.copyRequested.emit(self.answer_text()))
        self.regenerate_button.clicked.connect(self.regenerateRequested)
        self.retry_button.clicked.connect(self.retryRequested)
        for w in (self.copy_button, self.regenerate_button):
            actions.addWidget(w)
        actions.addSpacing(8)
        actions.addWidget(self.stats_label)
        actions.addStretch(1)
        layout.addWidget(self.actions_row)
        self.retry_button.setVisible(False)
        self.set_regenerable(False)
        self.set_pinned(False)
        self.setAccessibleName("Assistant reply")

    # -- text ---------------------------------------------------------------------------------

    def answer_text(self) -> str:
        return self.answer.text()

    def reasoning_text(self) -> str:
        return self.thinking.text()

    def set_regenerable(self, yes: bool) -> None:
        self.regenerate_button.setVisible(yes)

    # -- streaming ----------------------------------------------------------------------------

    def start(self) -> None:
        self.state = "streaming"
        self.waiting.setVisible(True)
        self.actions_row.setVisible(False)

    def add_events(self, events: list[ParsedEvent]) -> None:
        """Take a batch of events; call `flush()` once after the batch."""
        from app.core.formats.base import AnswerDelta, PreambleDelta, ReasoningDelta, ToolCallEvent

        for event in events:
            if isinstance(event, ReasoningDelta):
                if not self.thinking.isVisible():
                    self.thinking.setVisible(True)
                self.thinking.append(event.text)
            elif isinstance(event, (AnswerDelta, PreambleDelta)):
                if self.thinking.live:
                    self.thinking.flush()
                    self.thinking.stop()
                self.answer.append(event.text)
            elif isinstance(event, ToolCallEvent):
                self._show_notice(f"The model asked to call the tool {event.name}, which Hearth does not offer yet.")
        if events:
            self.waiting.setVisible(False)

    def flush(self) -> None:
        self.thinking.flush()
        self.answer.flush()

    def finish(self, state: str, stats: dict[str, Any] | None, error: str | None, stop_reason: str = "") -> None:
        """The reply ended (complete, stopped or failed): close everything and show how."""
        self.state = state
        self.waiting.setVisible(False)
        self.thinking.flush()
        seconds = (stats or {}).get("thinking_s")
        self.thinking.stop(seconds)
        self.answer.flush()
        self.answer.finish()
        self._show_outcome(state, stats, error, stop_reason)

    # -- stored -------------------------------------------------------------------------------

    def show_stored(self, message: StoredMessage) -> None:
        self.state = message.state
        if message.reasoning:
            self.thinking.setVisible(True)
            self.thinking.set_finished(message.reasoning, (message.stats or {}).get("thinking_s"))
        self.answer.set_text(message.content)
        self._show_outcome(message.state, message.stats, message.error)

    def _show_outcome(self, state: str, stats: dict[str, Any] | None, error: str | None, stop_reason: str = "") -> None:
        self.stats_label.setText(stats_text(stats))
        dropped = (stats or {}).get("dropped_turns") or 0
        notes: list[str] = []
        if state == "stopped":
            notes.append("Stopped.")
        elif state == "interrupted":
            notes.append(error or "This reply was interrupted when Hearth closed.")
        elif state == "error":
            notes.append(error or "The reply failed.")
        if stop_reason == "length":
            notes.append("The reply reached the length limit.")
        if dropped:
            turns = "turn was" if dropped == 1 else "turns were"
            notes.append(f"{dropped} earlier {turns} left out of the prompt to fit the model's context.")
        if notes:
            self._show_notice(" ".join(notes), error=state == "error")
        self.retry_button.setVisible(state in ("error", "interrupted"))
        self.actions_row.setVisible(self._pinned)

    def _show_notice(self, text: str, *, error: bool = False) -> None:
        self.notice.setObjectName("ErrorLabel" if error else "NoticeLabel")
        repolish(self.notice)
        self.notice.setText(text)
        self.notice_row.setVisible(True)
