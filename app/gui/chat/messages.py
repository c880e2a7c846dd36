"""One widget per message: the user's (a soft bubble on the right) and the assistant's (full width,
no bubble, an optional Thinking section, the answer, a notice line, actions and stats)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QEnterEvent, QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from app.core.store import Message as StoredMessage
from app.core.store import ToolCall
from app.gui.theme import named, repolish

# The rendering modules (Markdown, code blocks, the reasoning section, tool cards) are imported
# when the first message is built, not with this module: a window that opens on an empty chat
# does not need them before its first frame (~8 ms of start-up).

if TYPE_CHECKING:
    from app.core.formats.base import ParsedEvent
    from app.gui.chat.thinking import ThinkingSection
    from app.gui.chat.tool_card import ToolCard

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


class AlternativeSwitcher(QWidget):
    """ "‹ 2/3 ›": which of a message's alternatives (regenerated replies, edited messages) is
    shown, with a step to the previous and the next one."""

    stepRequested = Signal(int)  # -1 or +1

    def __init__(self, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._what = what
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.previous = _action("‹", f"Previous {what}")
        self.label = named(QLabel(), "StatsLabel")
        self.next = _action("›", f"Next {what}")
        self.previous.clicked.connect(lambda: self.stepRequested.emit(-1))
        self.next.clicked.connect(lambda: self.stepRequested.emit(1))
        layout.addWidget(self.previous)
        layout.addWidget(self.label)
        layout.addWidget(self.next)
        self.index, self.count = 1, 1
        self.setVisible(False)

    def set_position(self, index: int, count: int) -> None:
        self.index, self.count = index, count
        self.label.setText(f"{index}/{count}")
        self.label.setAccessibleName(f"{self._what.capitalize()} {index} of {count}")
        self.previous.setEnabled(index > 1)
        self.next.setEnabled(index < count)
        self.setVisible(count > 1)

    def text(self) -> str:
        return f"‹ {self.index}/{self.count} ›" if self.count > 1 else ""


ACTIONS_HEIGHT = 28  # the action row's height, reserved before the row exists


class _HoverActions(QWidget):
    """Base for message widgets whose action row shows on hover, on focus, or always when pinned
    (the last message) or when the message has alternatives. The row is made the first time it is
    needed — most messages of a long conversation are never hovered — with its height reserved
    from the start, so nothing moves when it appears."""

    alternativeRequested = Signal(int, int)  # message id, step (-1 / +1)

    def __init__(self, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message_id = 0
        self._what = what
        self._row: QWidget | None = None
        self._switcher: AlternativeSwitcher | None = None
        self._position = (1, 1)
        self._pinned = False

    def _reserve_actions(self, layout: QVBoxLayout) -> None:
        """Call last in the subclass's constructor: the room the action row will take."""
        self._layout_ref = layout
        layout.addSpacing(ACTIONS_HEIGHT)

    @property
    def actions_row(self) -> QWidget:
        if self._row is None:
            row = QWidget()
            row.setFixedHeight(ACTIONS_HEIGHT)
            policy = row.sizePolicy()
            policy.setRetainSizeWhenHidden(True)  # no jump when the row appears
            row.setSizePolicy(policy)
            actions = QHBoxLayout(row)
            actions.setContentsMargins(0, 0, 0, 0)
            actions.setSpacing(2)
            self._row = row
            self._fill_actions(actions)
            layout = self._layout_ref
            layout.takeAt(layout.count() - 1)  # the reserved spacing
            layout.addWidget(row)
            row.setVisible(False)
        return self._row

    def _fill_actions(self, actions: QHBoxLayout) -> None:
        raise NotImplementedError

    @property
    def switcher(self) -> AlternativeSwitcher:
        if self._switcher is None:
            self._switcher = AlternativeSwitcher(self._what)
            self._switcher.stepRequested.connect(lambda step: self.alternativeRequested.emit(self.message_id, step))
            self._switcher.set_position(*self._position)
        return self._switcher

    def has_alternatives(self) -> bool:
        return self._position[1] > 1

    def set_position(self, index: int, count: int) -> None:
        """Where this message stands among its alternatives (count 1: it has none)."""
        self._position = (index, count)
        if count > 1 or self._switcher is not None:
            self.switcher.set_position(index, count)
        if count > 1:
            self.actions_row.setVisible(True)  # the switcher says there is more: keep it in view

    def retheme(self) -> None:
        """The theme changed (the style sheet restyles the rest)."""

    def set_pinned(self, pinned: bool) -> None:
        """The last message keeps its actions visible (so does one with alternatives)."""
        self._pinned = pinned
        if pinned or self.has_alternatives():
            self.actions_row.setVisible(True)
        elif self._row is not None:
            self._row.setVisible(False)

    def enterEvent(self, event: QEnterEvent) -> None:  # noqa: N802 (Qt API)
        self.actions_row.setVisible(True)
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt API)
        focus = QGuiApplication.focusObject()
        inside = isinstance(focus, QWidget) and self.isAncestorOf(focus)
        if self._row is not None:
            self._row.setVisible(self._pinned or inside or self.has_alternatives())
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
        super().__init__("version of this message", parent)
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
        from app.gui.chat.markdown import breakable

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
        self._editable = False
        self._reserve_actions(layout)
        self.setAccessibleName("Your message")

    def _fill_actions(self, actions: QHBoxLayout) -> None:
        actions.addStretch(1)
        self.copy_button = _action("Copy", "Copy message")
        self.edit_button = _action("Edit", "Edit and resend message")
        self.copy_button.clicked.connect(self._copy)
        self.edit_button.clicked.connect(lambda: self.editRequested.emit(self.message_id))
        actions.addWidget(self.switcher)
        actions.addWidget(self.copy_button)
        actions.addWidget(self.edit_button)
        self.edit_button.setVisible(self._editable)

    def set_editable(self, editable: bool) -> None:
        self._editable = editable
        if self._row is not None or editable:
            self.actions_row  # noqa: B018 (made on demand)
            self.edit_button.setVisible(editable)

    def _copy(self) -> None:
        from app.gui.chat.blocks import flash_copied

        self.copyRequested.emit(self.text)
        flash_copied(self.copy_button)


class AssistantMessageWidget(_HoverActions):
    """A reply; streamed (`start`, `add_events`, `flush`, `finish`) or stored (`show_stored`)."""

    copyRequested = Signal(str)
    regenerateRequested = Signal(int)  # this reply's message id: a new alternative in its place
    retryRequested = Signal(int)  # the same, from the notice of a failed or interrupted reply
    toolDecided = Signal(int, str, str)  # message id, call id, "once" | "chat" | "always" | "deny"

    def __init__(self, message_id: int, parent: QWidget | None = None) -> None:
        super().__init__("reply", parent)
        self.message_id = message_id
        self.state = "streaming"
        self.tools_offered = False  # the tool loop runs this reply's calls (else a call is only noted)
        self.tool_cards: dict[tuple[int, int], ToolCard] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self._box = layout
        # Made when first needed (a stored reply rarely needs them): see the properties below.
        self._waiting: QLabel | None = None
        self._thinking: ThinkingSection | None = None
        self._notice_row: QWidget | None = None
        from app.gui.chat.blocks import MarkdownView

        self.answer = MarkdownView()
        self.answer.setAccessibleName("Reply")
        layout.addWidget(self.answer)
        self._stats = ""
        self._regenerable = False
        self._retry: tuple[str, str] | None = None  # (text, accessible name) while offered
        self._reserve_actions(layout)
        self.setAccessibleName("Assistant reply")

    def _insert(self, widget: QWidget, before: QWidget) -> None:
        self._box.insertWidget(self._box.indexOf(before), widget)

    @property
    def waiting(self) -> QLabel:
        if self._waiting is None:
            self._waiting = named(QLabel("Reading the conversation…"), "Muted")
            self._waiting.setVisible(False)
            self._insert(self._waiting, self._thinking or self.answer)
        return self._waiting

    @property
    def thinking(self) -> ThinkingSection:
        if self._thinking is None:
            from app.gui.chat.thinking import ThinkingSection

            self._thinking = ThinkingSection()
            self._thinking.setVisible(False)
            self._insert(self._thinking, self.answer)
        return self._thinking

    @property
    def notice_row(self) -> QWidget:
        if self._notice_row is None:
            row = QWidget()
            notice_layout = QHBoxLayout(row)
            notice_layout.setContentsMargins(0, 0, 0, 0)
            self.notice = WrappedLabel(name="NoticeLabel")
            self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.retry_button = _action("Retry", "Retry")
            self.retry_button.clicked.connect(lambda: self.retryRequested.emit(self.message_id))
            notice_layout.addWidget(self.notice, 1)
            notice_layout.addWidget(self.retry_button, 0, Qt.AlignmentFlag.AlignTop)
            row.setVisible(False)
            self.retry_button.setVisible(False)
            self._box.insertWidget(self._box.indexOf(self.answer) + 1, row)
            self._notice_row = row
        return self._notice_row

    def _fill_actions(self, actions: QHBoxLayout) -> None:
        self.copy_button = _action("Copy", "Copy reply")
        self.regenerate_button = _action("Regenerate", "Regenerate reply")
        self.stats_label = named(QLabel(self._stats), "StatsLabel")
        self.copy_button.clicked.connect(self._copy)
        self.regenerate_button.clicked.connect(lambda: self.regenerateRequested.emit(self.message_id))
        for w in (self.switcher, self.copy_button, self.regenerate_button):
            actions.addWidget(w)
        actions.addSpacing(8)
        actions.addWidget(self.stats_label)
        actions.addStretch(1)
        self.regenerate_button.setVisible(self._regenerable)

    # -- text ---------------------------------------------------------------------------------

    def answer_text(self) -> str:
        return self.answer.text()

    def reasoning_text(self) -> str:
        return self._thinking.text() if self._thinking is not None else ""

    def set_regenerable(self, yes: bool) -> None:
        self._regenerable = yes
        if self._row is not None or yes:
            self.actions_row  # noqa: B018 (made on demand)
            self.regenerate_button.setVisible(yes)

    def _copy(self) -> None:
        from app.gui.chat.blocks import flash_copied

        self.copyRequested.emit(self.answer_text())
        flash_copied(self.copy_button)

    def retheme(self) -> None:
        self.answer.retheme()
        if self._thinking is not None:
            self._thinking.view.retheme()

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
                if self._thinking is not None and self._thinking.live:
                    self._thinking.flush()
                    self._thinking.stop()
                self.answer.append(event.text)
            elif isinstance(event, ToolCallEvent) and not self.tools_offered:
                self._show_notice(
                    f"The model asked to call the tool {event.name[:80]}; tools are not turned on for this chat."
                )
        if events and self._waiting is not None:
            self._waiting.setVisible(False)

    def flush(self) -> None:
        if self._thinking is not None:
            self._thinking.flush()
        self.answer.flush()

    def finish(self, state: str, stats: dict[str, Any] | None, error: str | None, stop_reason: str = "") -> None:
        """The reply ended (complete, stopped or failed): close everything and show how."""
        self.state = state
        if self._waiting is not None:
            self._waiting.setVisible(False)
        if self._thinking is not None:
            self._thinking.flush()
            self._thinking.stop((stats or {}).get("thinking_s"))
        self.answer.flush()
        self.answer.finish()
        self._show_outcome(state, stats, error, stop_reason)

    # -- tool calls ---------------------------------------------------------------------------

    def show_tool_call(self, call: ToolCall, *, needs_approval: bool = False, ask_every_time: bool = False) -> ToolCard:
        """Add or update the card of a call. A new round's first card takes the text streamed
        before it (the preamble) out of the answer, which then holds only what follows."""
        key = (call.round, call.position)
        card = self.tool_cards.get(key)
        if card is None:
            if self.state == "streaming" and call.position == 0:
                self.answer.flush()
                self.answer.clear()
            from app.gui.chat.tool_card import ToolCard

            card = ToolCard(call)
            card.decided.connect(lambda call_id, decision: self.toolDecided.emit(self.message_id, call_id, decision))
            self.tool_cards[key] = card
            self._insert(card, self.answer)
            if self._waiting is not None:
                self._waiting.setVisible(False)
        card.update_call(call, needs_approval=needs_approval, ask_every_time=ask_every_time)
        return card

    def add_notice(self, text: str) -> None:
        """A sentence about this reply while it streams (tools left out, a server that failed)."""
        previous = self.notice.text() if self._notice_row is not None and self._notice_row.isVisible() else ""
        self._show_notice(f"{previous} {text}".strip())

    def show_stored_calls(self, calls: list[ToolCall]) -> None:
        for call in calls:
            self.show_tool_call(call)

    # -- stored -------------------------------------------------------------------------------

    def show_stored(self, message: StoredMessage, *, owned: bool = False) -> None:
        """A stored reply. One still marked 'streaming' that no reply of this window is writing
        (`owned` False) was cut off by a crash or a kill: it is shown as interrupted."""
        self.state = message.state if owned or message.state != "streaming" else "interrupted"
        if message.reasoning:
            self.thinking.setVisible(True)
            self.thinking.set_finished(message.reasoning, (message.stats or {}).get("thinking_s"))
        self.answer.set_text(message.content)
        self._show_outcome(self.state, message.stats, message.error)

    def _show_outcome(self, state: str, stats: dict[str, Any] | None, error: str | None, stop_reason: str = "") -> None:
        self._stats = stats_text(stats)
        if self._row is not None:
            self.stats_label.setText(self._stats)
        dropped = (stats or {}).get("dropped_turns") or 0
        notes: list[str] = []
        if state == "stopped":
            notes.append("Stopped.")
        elif state == "interrupted":
            notes.append(
                f"Interrupted: {error.rstrip('.')}."
                if error
                else "Interrupted: Hearth stopped before this reply was finished."
            )
        elif state == "error":
            notes.append(error or "The reply failed.")
        elif error:  # a finished reply with a note (the tool loop's round cap)
            notes.append(error)
        if stop_reason == "length":
            notes.append("The reply reached the length limit.")
        if dropped:
            turns = "turn was" if dropped == 1 else "turns were"
            notes.append(f"{dropped} earlier {turns} left out of the prompt to fit the model's context.")
        if notes:
            self._show_notice(" ".join(notes), error=state == "error")
        # A reply that did not finish always offers to write it again (a new alternative).
        if state in ("error", "interrupted") or self._notice_row is not None:
            self.notice_row  # noqa: B018 (made on demand)
            self.retry_button.setText("Regenerate" if state == "interrupted" else "Retry")
            self.retry_button.setAccessibleName("Regenerate this reply" if state == "interrupted" else "Retry")
            self.retry_button.setVisible(state in ("error", "interrupted"))
        self.set_pinned(self._pinned)

    def _show_notice(self, text: str, *, error: bool = False) -> None:
        self.notice_row  # noqa: B018 (made on demand)
        self.notice.setObjectName("ErrorLabel" if error else "NoticeLabel")
        repolish(self.notice)
        self.notice.setText(text)
        self.notice_row.setVisible(True)
