"""The conversation: a centred, readable column of messages that sticks to the bottom while a reply
streams, unless the user scrolled up; an empty state with example prompts.

A long conversation opens at once: each message has a *slot* in the column, and a slot is only
built (Markdown → blocks → widgets) when it comes near the viewport — the last screenful before the
first paint, the rest as the user scrolls, a few milliseconds per event-loop turn so the window
never stalls. Until built, a slot holds the place with an estimated height; when a slot above the
viewport gets its real height, the scroll position moves with it, so what the user reads stays put.
The view places the messages itself, on a canvas without a layout: a Qt box layout of hundreds of
items walks every one of them on each pass (10-15 ms a pass at 500 messages on a 2-core machine),
where the view only moves the messages whose place changed.
The Markdown of the whole conversation is parsed (and its code highlighted) ahead of need on a
background thread and cached (`markdown.prepare`). A built slot has a fixed height, recomputed
only when its width changes or its content asks for it, so a streamed token costs the same however
long the conversation is; only the reply being written follows its content's height as it grows.
A theme change re-colours the built slots the same way: the visible ones at once, the rest in slices.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable

import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.core.store import Message as StoredMessage
from app.core.store import Thread
from app.gui import theme
from app.gui.chat.messages import AssistantMessageWidget, UserMessageWidget
from app.gui.theme import bold, named, repolish

EXAMPLE_PROMPTS = (
    "Explain how a transformer model reads a sentence",
    "Write a Python function that merges two sorted lists",
    "Plan a three-day trip to Lisbon on a budget",
)
STICK_MARGIN_PX = 48  # within this distance of the bottom counts as "at the bottom"
SLICE_S = 0.010  # the most one event-loop turn spends building or re-colouring slots
FILL_SLICE_S = 0.010  # the same while the viewport of a conversation just opened is filled
DIG_PIECE = 40  # widgets deleted at most at once when a left conversation is cleared away
PREFETCH_SCREENS = 1.0  # slots this many viewport heights above and below are built too
HEADROOM_SCREENS = 4  # the blank reserve above the first message that slots built above the view grow into
MESSAGE_SPACING = 20
COLUMN_MARGIN = 24

MessageWidget = UserMessageWidget | AssistantMessageWidget


class EmptyState(QWidget):
    promptChosen = Signal(str)
    openModelRequested = Signal()
    libraryRequested = Signal()
    downloadRequested = Signal(str)  # a catalog model id: the recommendation's Download button

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(16)
        layout.addStretch(2)
        title = bold(QLabel("What can I help you with?"), 1.6)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        subtitle = named(QLabel("Everything stays on this computer. No account, no network."), "Muted")
        subtitle.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(title)
        layout.addWidget(subtitle)
        chips = QHBoxLayout()
        chips.setSpacing(8)
        chips.addStretch(1)
        self.chips: list[QPushButton] = []
        for prompt in EXAMPLE_PROMPTS:
            chip = named(QPushButton(prompt), "Chip")
            chip.setCursor(Qt.CursorShape.PointingHandCursor)
            chip.setAccessibleName(f"Example prompt: {prompt}")
            chip.clicked.connect(lambda _=False, p=prompt: self.promptChosen.emit(p))
            chip.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
            self.chips.append(chip)
        chip_column = QVBoxLayout()
        chip_column.setSpacing(8)
        for chip in self.chips:
            chip_column.addWidget(chip, 0, Qt.AlignmentFlag.AlignHCenter)
        chips.addLayout(chip_column)
        chips.addStretch(1)
        layout.addLayout(chips)
        self.no_model_card = named(QFrame(), "Card")
        self.no_model_card.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        card = QVBoxLayout(self.no_model_card)
        card.setContentsMargins(16, 16, 16, 16)
        card_title = bold(QLabel("No model installed yet"))
        card_text = named(
            QLabel(
                "Hearth runs models from GGUF files. Download one that fits this computer from the "
                "Library, or open a GGUF file you already have."
            ),
            "Muted",
        )
        card_text.setWordWrap(True)
        self.card_text = card_text
        library_button = named(QPushButton("Browse the library"), "PrimaryButton")
        library_button.setMinimumHeight(32)
        library_button.clicked.connect(self.libraryRequested)
        self.library_button = library_button
        open_button = QPushButton("Open a GGUF file…")
        open_button.setMinimumHeight(32)
        open_button.clicked.connect(self.openModelRequested)
        card.addWidget(card_title)
        card.addWidget(card_text)
        self.recommendation = QLabel()
        self.recommendation.setWordWrap(True)
        self.recommendation.setAccessibleName("Recommended model")
        self.recommendation.setVisible(False)
        card.addWidget(self.recommendation)
        self.recommend_button = named(QPushButton(), "PrimaryButton")
        self.recommend_button.setMinimumHeight(32)
        self.recommend_button.setVisible(False)
        self._recommended: str = ""
        self.recommend_button.clicked.connect(lambda: self.downloadRequested.emit(self._recommended))
        card.addWidget(self.recommend_button, 0, Qt.AlignmentFlag.AlignLeft)
        buttons = QHBoxLayout()
        buttons.addWidget(library_button)
        buttons.addWidget(open_button)
        buttons.addStretch(1)
        card.addLayout(buttons)
        self.no_model_card.setMaximumWidth(520)
        # Not added with an alignment: an aligned item gets its size hint's width and the wrapped
        # labels a height for another width (their text was cut mid-line). Stretches centre it.
        card_row = QHBoxLayout()
        card_row.setContentsMargins(24, 0, 24, 0)
        card_row.addStretch(1)
        card_row.addWidget(self.no_model_card, 100)
        card_row.addStretch(1)
        layout.addLayout(card_row)
        self.no_model_card.setVisible(False)
        layout.addStretch(3)

    def set_no_model(self, no_model: bool) -> None:
        self.no_model_card.setVisible(no_model)

    def set_recommendation(self, model_id: str, name: str, detail: str) -> None:
        """The best catalog model for this machine, with its own Download button ("" hides it)."""
        self._recommended = model_id
        self.recommendation.setText(f"Recommended for this computer: <b>{name}</b> — {detail}" if model_id else "")
        self.recommend_button.setText(f"Download {name}")
        self.recommend_button.setAccessibleName(f"Download {name}")
        self.recommendation.setVisible(bool(model_id))
        self.recommend_button.setVisible(bool(model_id))
        # One primary action: Download when there is a recommendation, else Browse the library.
        self.library_button.setObjectName("" if model_id else "PrimaryButton")
        repolish(self.library_button)

    @property
    def recommended(self) -> str:
        return self._recommended


class _Holder(QWidget):
    """A built message on the canvas: the widget at its height for the canvas's width (recomputed
    when the width changes or the content asks), or — for the reply being written — at the height
    its content grows to."""

    def __init__(self, view: ChatView, widget: MessageWidget, *, live: bool) -> None:
        # Made on the canvas (hidden until the view shows it): a polished widget tree that moves
        # into another parent is styled all over again, which cost as much as building it.
        super().__init__(view.canvas)
        self.hide()
        self.view = view
        self.widget = widget
        self.live = live
        self.stale_theme = False
        self._fitted_width = -1
        self._box = QVBoxLayout(self)
        self._box.setContentsMargins(0, 0, 0, 0)
        self._box.addWidget(widget)
        widget.ensurePolished()  # the style sheet's paddings count in the height fitted next
        self.set_live(live)

    def set_live(self, live: bool) -> int:
        """Returns the change in height (a settled reply is fitted once more)."""
        self.live = live
        self._fitted_width = -1
        return self.fit(self.view.content_width())

    def fit(self, width: int) -> int:
        """Give the message its height at `width`; returns the change in height."""
        if width <= 0 or width == self._fitted_width:
            return 0
        self._fitted_width = width
        height = self._box.totalHeightForWidth(width)
        if height < 0:
            height = self._box.totalSizeHint().height()
        change = height - self.height()
        if change or self.width() != width:
            self.resize(width, height)
        return change

    @property
    def needs_fit(self) -> bool:
        return self._fitted_width != self.view.content_width()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            # Something inside changed its size (a streamed token, Thinking opened, a notice
            # appeared): refit now, and the view moves what follows.
            self._fitted_width = -1
            if self.fit(self.width() or self.view.content_width()):
                self.view.holder_resized(self)
        return super().event(event)


class _Slot:
    """One message's place on the canvas: an estimated height until the message is built (no
    widget, no style, no events), then its `_Holder`'s. `y` is set by ChatView._place."""

    __slots__ = ("estimate", "holder", "made", "message", "y")

    def __init__(self, message: StoredMessage | None, estimate: int) -> None:
        self.message = message
        self.holder: _Holder | None = None
        # Built, not yet shown on the canvas: the message's widgets, then its holder (ChatView._build).
        self.made: MessageWidget | _Holder | None = None
        self.estimate = max(estimate, 1)
        self.y = 0

    @property
    def widget(self) -> MessageWidget | None:
        return self.holder.widget if self.holder is not None else None

    @property
    def built(self) -> bool:
        return self.holder is not None

    @property
    def message_id(self) -> int:
        if self.holder is not None:
            return self.holder.widget.message_id
        return self.message.id if self.message is not None else 0

    @property
    def role(self) -> str:
        if self.holder is not None:
            return "user" if isinstance(self.holder.widget, UserMessageWidget) else "assistant"
        return self.message.role if self.message is not None else ""

    def height(self) -> int:
        return self.holder.height() if self.holder is not None else self.estimate

    def top(self) -> int:
        return self.y

    def bottom(self) -> int:
        return self.y + self.height()

    @property
    def needs_fit(self) -> bool:
        return self.holder is not None and self.holder.needs_fit

    @property
    def stale_theme(self) -> bool:
        return self.holder is not None and self.holder.stale_theme


def estimate_height(message: StoredMessage, width: int) -> int:
    """A guess at a message's height before it is built (Markdown, code and tables roughly)."""
    per_line = max(20, width // 8)
    text = message.content
    lines = 0
    in_code = False
    for line in text.split("\n"):
        if line.startswith("```"):
            in_code = not in_code
            lines += 1
            continue
        lines += 1 if in_code else max(1, (len(line) + per_line - 1) // per_line)
    line_height = 22
    if message.role == "user":
        return lines * line_height + 20 + 28
    return lines * line_height + (36 if message.reasoning else 0) + 40


class _Canvas(QWidget):
    """Where the messages are: no layout, the view places each one (ChatView._place)."""

    def __init__(self, view: ChatView) -> None:
        super().__init__()
        self.view = view
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(0)
        # Opaque (filled with the window colour it shows anyway): a streamed update repaints the
        # canvas and the message under it, not the window, splitter, stack and pane behind it.
        self.setAutoFillBackground(True)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.view._place()  # the new width for every message; their heights refit visible-first
            self.view.schedule()


class ChatView(QScrollArea):
    """Owns the message slots of the open conversation."""

    messageBuilt = Signal(object)  # a message widget just made (the session connects its actions)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChatView")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAccessibleName("Conversation")
        inner = named(QWidget(), "ChatPane")
        outer = QHBoxLayout(inner)
        outer.setContentsMargins(COLUMN_MARGIN, COLUMN_MARGIN, COLUMN_MARGIN, COLUMN_MARGIN)
        self.column = QWidget()
        self.column.setMaximumWidth(theme.COLUMN_WIDTH)
        self.column.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        outer.addStretch(0)
        outer.addWidget(self.column, 1)
        outer.addStretch(0)
        self._layout = QVBoxLayout(self.column)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(0)
        self.empty = EmptyState()
        self._layout.addWidget(self.empty)
        self.canvas = _Canvas(self)
        self._layout.addWidget(self.canvas)
        self._layout.addStretch(1)
        self.setWidget(inner)
        self._slots: list[_Slot] = []
        self._headroom = 0  # blank pixels above the first message (see _shift_above)
        self._thread: Thread | None = None
        self._stick = True
        self._streaming = False
        self._restoring = False
        self._filling = False
        self._graveyard: list[QWidget] = []
        self._prepare_stop: threading.Event | None = None
        self._idle = threading.Event()  # set while nothing waits to be built: see markdown.prepare
        # Whether a reply still 'streaming' in the store is being written by this window (set by
        # the session); one that is not was cut off, and is shown as interrupted.
        self.owns_reply: Callable[[int], bool] = lambda _message_id: False
        self._pump_timer = QTimer(self)
        self._pump_timer.setSingleShot(True)
        self._pump_timer.setInterval(0)
        self._pump_timer.timeout.connect(self._pump)
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range_changed)
        bar.valueChanged.connect(self._on_value_changed)
        self.empty.setVisible(True)

    # -- content ------------------------------------------------------------------------------

    @property
    def messages(self) -> list[MessageWidget]:
        """Every message's widget, in order. Builds the slots not built yet: for tests and rare
        callers — the window itself never needs all of them."""
        for slot in self._slots:
            self._build(slot)
        return [s.widget for s in self._slots if s.widget is not None]

    def built_widgets(self) -> list[MessageWidget]:
        return [s.widget for s in self._slots if s.widget is not None]

    def message_ids(self) -> list[int]:
        return [s.message_id for s in self._slots]

    def count(self) -> int:
        return len(self._slots)

    def busy(self) -> bool:
        """Whether slots near the viewport still wait to be built, fitted or re-coloured."""
        return self._pump_timer.isActive() or bool(self._graveyard)

    def clear(self) -> None:
        self._end_fill()
        self._stop_prepare()
        old = None
        if any(s.holder is not None for s in self._slots):
            # A fresh canvas: hiding the old one hides its hundreds of messages in one step
            # (hiding them one by one took ~50 ms at 500); they are deleted in slices after.
            old, self.canvas = self.canvas, _Canvas(self)
            self._layout.replaceWidget(old, self.canvas)
            old.hide()
            self.canvas.setVisible(self.column.isVisible())
        self._bury(self._slots)
        if old is not None:
            self._graveyard.insert(0, old)  # the last one deleted, once its messages are gone
        self._slots = []
        self._headroom = 0
        self._thread = None
        self.empty.setVisible(True)
        self._stick = True

    def show_messages(self, messages: list[StoredMessage], thread: Thread | None = None) -> None:
        """Replace the content with a stored conversation (its branch shown), built from the
        bottom: the last screenful now, the rest as it comes into view."""
        self.clear()
        self._thread = thread
        self._append_slots(messages)
        self._stick = True
        self._flush_layout()
        self.scroll_to_bottom()
        self._begin_fill()
        self._start_prepare(messages)

    def replace_from(self, index: int, messages: list[StoredMessage], thread: Thread | None) -> None:
        """Show `messages` in place of the slots from position `index` on (another alternative
        was chosen: what follows it is its branch)."""
        self._bury(self._slots[index:])
        del self._slots[index:]
        self._thread = thread
        self._append_slots(messages)
        self._flush_layout()
        self.refresh_actions()
        self._begin_fill()
        self._start_prepare(messages)

    def _begin_fill(self) -> None:
        """Build what the viewport will show in slices of FILL_SLICE_S (the window keeps
        answering), painting only once it is all there: the first paint shows the messages, not
        empty places, and until then the last picture stays on screen."""
        self._filling = True
        self.viewport().setUpdatesEnabled(False)
        self.schedule()

    def _end_fill(self) -> None:
        if self._filling:
            self._filling = False
            self.viewport().setUpdatesEnabled(True)

    def set_thread(self, thread: Thread | None) -> None:
        """Alternatives changed (a reply was regenerated): update every "‹ n/m ›"."""
        self._thread = thread
        self._apply_positions()

    def _append_slots(self, messages: list[StoredMessage]) -> None:
        width = self.content_width()
        start = len(self._slots)
        for message in messages:
            if message.role not in ("user", "assistant"):
                continue
            self._slots.append(_Slot(message, estimate_height(message, width)))
        self.empty.setVisible(not self._slots)
        self._place(start)

    def _hold(self, slot: _Slot, widget: MessageWidget, *, live: bool) -> None:
        """Put a built widget in the slot's place on the canvas."""
        self._show_holder(slot, _Holder(self, widget, live=live))  # at the canvas's width (it fits itself)

    def _show_holder(self, slot: _Slot, holder: _Holder) -> None:
        holder.fit(self.content_width())  # the width may have changed since it was made
        delta = holder.height() - slot.estimate
        above = not self._stick and slot.bottom() <= self._view_top()  # wholly above the viewport
        index = len(self._slots) - 1 if slot is self._slots[-1] else self._slots.index(slot)
        slot.holder = holder
        if not delta:
            holder.move(0, slot.y)
        elif above and delta <= self._headroom:
            self._shift_above(index, delta)
        else:
            if above:  # the reserve ran out: a fresh one, and everything placed once
                self._headroom += HEADROOM_SCREENS * max(self.viewport().height(), 100)
            self._place(0 if above else index)
        holder.setVisible(True)
        self.messageBuilt.emit(holder.widget)

    def _view_top(self) -> int:
        """The viewport's top on the canvas."""
        return self.verticalScrollBar().value() - self._origin()

    def _shift_above(self, index: int, delta: int) -> None:
        """Slot `index`, above the viewport, grew by `delta` (at most the headroom): it and the
        slots above it move up into the headroom — the blank reserve at the canvas's top —
        instead of everything under it moving down, so the messages in view and after stay
        where they are and nothing repaints (slots above the view are mostly not built yet)."""
        self._headroom -= delta
        width = self.canvas.width()
        for slot in self._slots[: index + 1]:
            slot.y -= delta
            if slot.holder is not None:
                slot.holder.setGeometry(0, slot.y, width, slot.holder.height())

    def holder_resized(self, holder: _Holder) -> None:
        """A built message changed its height (its content asked): what follows it moves."""
        for i in range(len(self._slots) - 1, -1, -1):  # the reply being written is the last one
            if self._slots[i].holder is holder:
                anchor = None if self._stick else self._anchor()
                self._place(i)
                self._restore(anchor)
                return

    def _place(self, start: int = 0) -> None:
        """Positions from slot `start` on, the built messages moved where theirs changed, and
        the canvas as tall as the messages (the scroll range follows)."""
        slots = self._slots
        start = max(0, min(start, len(slots)))
        y = slots[start - 1].bottom() + MESSAGE_SPACING if start else self._headroom
        width = self.canvas.width()
        for slot in slots[start:]:
            slot.y = y
            holder = slot.holder
            if holder is not None:
                if holder.y() != y or holder.width() != width:
                    holder.setGeometry(0, y, width, holder.height())
                y += holder.height() + MESSAGE_SPACING
            else:
                y += slot.estimate + MESSAGE_SPACING
        total = y - MESSAGE_SPACING if slots else 0
        if self.canvas.height() != total:
            self.canvas.setFixedHeight(total)

    def add_user(self, message_id: int, text: str) -> UserMessageWidget:
        widget = UserMessageWidget(message_id, text)
        self._add_live(widget, live=False)
        return widget

    def add_assistant(self, message_id: int) -> AssistantMessageWidget:
        """A reply about to stream: its slot keeps a live layout until `settle()`."""
        widget = AssistantMessageWidget(message_id)
        self._add_live(widget, live=True)
        return widget

    def _add_live(self, widget: MessageWidget, *, live: bool) -> None:
        self.empty.setVisible(False)
        slot = _Slot(None, 1)
        self._slots.append(slot)
        self._hold(slot, widget, live=live)
        self._apply_position(slot)

    def settle(self, message_id: int) -> None:
        """The reply finished: its slot gets a fixed height like the others."""
        slot = self._slot_for(message_id)
        if slot is not None and slot.holder is not None and slot.holder.live and slot.holder.set_live(False):
            self.holder_resized(slot.holder)

    def remove_from(self, message_id: int) -> None:
        """Remove the message with this id and every one after it (in the order shown)."""
        index = next((i for i, s in enumerate(self._slots) if s.message_id == message_id), None)
        if index is None:
            return
        self._bury(self._slots[index:])
        del self._slots[index:]
        self.empty.setVisible(not self._slots)
        self._place(index)

    def index_of(self, message_id: int) -> int | None:
        return next((i for i, s in enumerate(self._slots) if s.message_id == message_id), None)

    def _slot_for(self, message_id: int) -> _Slot | None:
        return next((s for s in reversed(self._slots) if s.message_id == message_id), None)

    def message(self, message_id: int) -> MessageWidget | None:
        slot = self._slot_for(message_id)
        if slot is None:
            return None
        self._build(slot)
        return slot.widget

    def stored(self, message_id: int) -> StoredMessage | None:
        slot = self._slot_for(message_id)
        return slot.message if slot is not None else None

    def _last(self, role: str) -> _Slot | None:
        return next((s for s in reversed(self._slots) if s.role == role), None)

    def last_user(self) -> UserMessageWidget | None:
        slot = self._last("user")
        if slot is None:
            return None
        self._build(slot)
        return slot.widget if isinstance(slot.widget, UserMessageWidget) else None

    def last_assistant(self) -> AssistantMessageWidget | None:
        slot = self._last("assistant")
        if slot is None:
            return None
        self._build(slot)
        return slot.widget if isinstance(slot.widget, AssistantMessageWidget) else None

    def refresh_actions(self, streaming: bool | None = None) -> None:
        """Only the last reply can be regenerated and only the last user message edited; the last
        message of each side keeps its actions in view. Slots not built yet get theirs when built."""
        if streaming is not None:
            self._streaming = streaming
        for slot in self._slots:
            if slot.widget is not None:
                self._apply_actions(slot)

    def _apply_actions(self, slot: _Slot) -> None:
        widget = slot.widget
        last = slot is self._last(slot.role)
        if isinstance(widget, UserMessageWidget):
            widget.set_editable(last and not self._streaming)
        elif isinstance(widget, AssistantMessageWidget):
            widget.set_regenerable(last and not self._streaming)
        if widget is not None:
            widget.set_pinned(last and not self._streaming)

    def _apply_positions(self) -> None:
        for slot in self._slots:
            self._apply_position(slot)

    def _apply_position(self, slot: _Slot) -> None:
        if slot.widget is not None:
            index, count = self._thread.position(slot.message_id) if self._thread else (1, 1)
            slot.widget.set_position(index, count)

    # -- building, visible first --------------------------------------------------------------

    def content_width(self) -> int:
        """The width of the canvas (known before the first layout from the viewport's)."""
        if self.canvas.width() > 0 and self.canvas.isVisible():
            return self.canvas.width()
        return max(120, min(theme.COLUMN_WIDTH, self.viewport().width() - 2 * COLUMN_MARGIN))

    def _build(self, slot: _Slot, *, step: bool = False) -> bool:
        """Build a slot's message. With `step`, a third at a time — the widgets, off screen; on
        a later call their holder, styled and fitted to the width, still hidden; then its place
        on the canvas — so that no event-loop turn pays for a whole long message."""
        if slot.widget is not None or slot.message is None:
            return False
        if slot.made is None:
            slot.made = self._make(slot.message)
            if step:
                return True
        if not isinstance(slot.made, _Holder):
            slot.made = _Holder(self, slot.made, live=False)
            if step:
                return True
        holder, slot.made = slot.made, None
        self._show_holder(slot, holder)
        self._apply_actions(slot)
        self._apply_position(slot)
        return True

    def _make(self, message: StoredMessage) -> MessageWidget:
        if message.role == "user":
            return UserMessageWidget(message.id, message.content)
        widget = AssistantMessageWidget(message.id)
        widget.show_stored(message, owned=self.owns_reply(message.id))
        return widget

    def schedule(self) -> None:
        self._idle.clear()
        if not self._pump_timer.isActive():
            self._pump_timer.start()

    def _visible_range(self, screens: float) -> tuple[int, int]:
        """Indices [first, last) of the slots within `screens` viewport heights of the view."""
        if not self._slots:
            return 0, 0
        top = self._view_top()
        height = self.viewport().height()
        low, high = top - screens * height, top + height + screens * height
        first = bisect.bisect_left(self._slots, low, key=_Slot.bottom)  # a few positions read, not all
        last = first
        while last < len(self._slots) and self._slots[last].top() <= high:
            last += 1
        return first, max(last, min(first + 1, len(self._slots)))

    def _work(self, slot: _Slot) -> bool:
        """Do what a slot still needs (build, fit, re-colour), a step of it; whether anything was
        done."""
        did = self._build(slot, step=True)
        if did and not slot.built:
            return True
        holder = slot.holder
        if holder is not None and holder.needs_fit:
            holder.fit(self.content_width())
            did = True
        if holder is not None and holder.stale_theme:
            holder.stale_theme = False
            holder.widget.retheme()
            did = True
        return did

    def _pending(self, slot: _Slot) -> bool:
        return (not slot.built and slot.message is not None) or slot.needs_fit or slot.stale_theme

    def _build_region(self, deadline: float | None, screens: float = PREFETCH_SCREENS) -> bool:
        """Build the slots near the viewport (bottom-up when at the bottom); False when the time
        ran out first."""
        first, last = self._visible_range(screens)
        order = range(last - 1, first - 1, -1) if self._stick else range(first, last)
        anchor = None if self._stick else self._anchor()
        done = True
        changed = False
        if first == 0 and self._headroom:
            self._headroom = 0  # the top is near: the reserve goes (one placement, the view kept)
            changed = True
        for i in order:
            slot = self._slots[i]
            if self._pending(slot):
                changed |= self._work(slot)
                if deadline is not None and time.perf_counter() > deadline:
                    done = False
                    break
        if changed:
            self._flush_layout()
            self._restore(anchor)
        # A slot is built a step per pass: the region is done once nothing in it waits.
        return done and not any(self._pending(self._slots[i]) for i in order if i < len(self._slots))

    def _anchor(self) -> tuple[_Slot, int] | None:
        """The first slot in view and how far its top is above the viewport's top."""
        first, _last = self._visible_range(0)
        if first >= len(self._slots):
            return None
        slot = self._slots[first]
        return slot, self.verticalScrollBar().value() - (self._origin() + slot.top())

    def _restore(self, anchor: tuple[_Slot, int] | None) -> None:
        if anchor is None or self._stick:
            if self._stick:
                self.scroll_to_bottom()
            return
        slot, offset = anchor
        self._restoring = True
        try:
            self.verticalScrollBar().setValue(self._origin() + slot.top() + offset)
        finally:
            self._restoring = False

    def _pump(self) -> None:
        self._work_slice()
        if not self._pump_timer.isActive():
            self._idle.set()

    def _work_slice(self) -> None:
        if self._filling:
            filled = self._build_region(time.perf_counter() + FILL_SLICE_S, screens=0)
            first, last = self._visible_range(0)
            if filled and not any(self._pending(s) for s in self._slots[first:last]):
                self._end_fill()
            self.schedule()
            return
        deadline = time.perf_counter() + SLICE_S
        if not self._build_region(deadline):
            self.schedule()
            return
        # Off-screen slots that are built but stale (a theme change, a new width): a slice a turn.
        anchor = None if self._stick else self._anchor()
        changed = False
        for slot in reversed(self._slots):
            if slot.built and (slot.needs_fit or slot.stale_theme):
                changed |= self._work(slot)
                if time.perf_counter() > deadline:
                    break
        if changed:
            self._flush_layout()
            self._restore(anchor)
        if any(s.built and (s.needs_fit or s.stale_theme) for s in self._slots):
            self.schedule()
        elif self._graveyard:
            self._dig(deadline)

    def _origin(self) -> int:
        """Where the canvas's top is in the scrolled content."""
        return self.column.y() + self.canvas.y()

    def _flush_layout(self) -> None:
        """Positions and the scroll range current now (messages placed, the column's own small
        layout of the empty state and the canvas applied)."""
        self._place()
        for _ in range(3):
            QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)

    def _bury(self, slots: list[_Slot]) -> None:
        """Take slots out of the column now; delete their widgets a slice at a time."""
        for slot in slots:
            if slot.holder is not None:
                if slot.holder.parentWidget() is self.canvas:
                    slot.holder.hide()
                self._graveyard.append(slot.holder)
                slot.holder = None
            if slot.made is not None:
                self._graveyard.append(slot.made)
                slot.made = None
        if self._graveyard:
            self.schedule()

    def _dig(self, deadline: float) -> None:
        """Delete buried widgets until the slice's time is up (deleteLater would delete them all
        in one later turn: a long conversation's worth at once). A widget with more than
        DIG_PIECE widgets inside (a reply of thousands of tokens) goes from the inside out, a
        child at a time: deleted whole, one such reply stalled the window 140 ms. Widgets are
        deleted where they are (reparenting one restyles all it holds)."""
        while self._graveyard:
            widget = self._graveyard.pop()
            if not shiboken6.isValid(widget):
                continue  # went with a parent deleted before it
            inner = widget.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
            if inner and len(widget.findChildren(QWidget)) > DIG_PIECE:
                self._graveyard.append(widget)  # deleted after what it holds
                self._graveyard.extend(inner)
            else:
                shiboken6.delete(widget)
            del widget
            if time.perf_counter() >= deadline:
                break
        if self._graveyard:
            self.schedule()

    def _start_prepare(self, messages: list[StoredMessage]) -> None:
        """Parse and highlight the conversation's Markdown ahead of need, newest first."""
        from app.gui.chat import markdown

        self._stop_prepare()
        texts = [m.content for m in reversed(messages) if m.role == "assistant" and m.content]
        texts += [m.reasoning for m in reversed(messages) if m.reasoning]
        if not texts:
            return
        stop = self._prepare_stop = threading.Event()
        style = theme.current().pygments_style
        threading.Thread(
            target=markdown.prepare, args=(texts, style, stop, self._idle), name="hearth-markdown", daemon=True
        ).start()

    def _stop_prepare(self) -> None:
        if self._prepare_stop is not None:
            self._prepare_stop.set()
            self._prepare_stop = None

    def retheme(self) -> None:
        """The theme changed: re-colour the slots in view now, the other built ones in slices."""
        for slot in self._slots:
            if slot.holder is not None:
                slot.holder.stale_theme = True
        first, last = self._visible_range(0)
        for slot in self._slots[first:last]:
            self._work(slot)
        self.schedule()

    # -- scrolling ----------------------------------------------------------------------------

    @property
    def sticks_to_bottom(self) -> bool:
        return self._stick

    def scroll_to_bottom(self) -> None:
        self._stick = True
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        if self._stick:
            self.verticalScrollBar().setValue(maximum)

    def _on_value_changed(self, value: int) -> None:
        bar = self.verticalScrollBar()
        if not self._restoring:
            self._stick = value >= bar.maximum() - STICK_MARGIN_PX
        self.schedule()  # slots coming into view get built

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self.schedule()
