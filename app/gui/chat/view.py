"""The conversation: a centred, readable column of message widgets that sticks to the bottom while
a reply streams, unless the user scrolled up; an empty state with example prompts."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
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
from app.gui import theme
from app.gui.chat.messages import AssistantMessageWidget, UserMessageWidget
from app.gui.theme import bold, named

EXAMPLE_PROMPTS = (
    "Explain how a transformer model reads a sentence",
    "Write a Python function that merges two sorted lists",
    "Plan a three-day trip to Lisbon on a budget",
)
STICK_MARGIN_PX = 48  # within this distance of the bottom counts as "at the bottom"

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
        library_button = named(QPushButton("Browse the library"), "PrimaryButton")
        library_button.setMinimumHeight(32)
        library_button.clicked.connect(self.libraryRequested)
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
        layout.addWidget(self.no_model_card, 0, Qt.AlignmentFlag.AlignHCenter)
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


class ChatView(QScrollArea):
    """Owns the message widgets of the open conversation."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChatView")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAccessibleName("Conversation")
        inner = named(QWidget(), "ChatPane")
        outer = QHBoxLayout(inner)
        outer.setContentsMargins(24, 24, 24, 24)
        self.column = QWidget()
        self.column.setMaximumWidth(theme.COLUMN_WIDTH)
        self.column.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        outer.addStretch(0)
        outer.addWidget(self.column, 1)
        outer.addStretch(0)
        self._layout = QVBoxLayout(self.column)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(20)
        self.empty = EmptyState()
        self._layout.addWidget(self.empty)
        self._layout.addStretch(1)
        self.setWidget(inner)
        self._messages: list[MessageWidget] = []
        self._stick = True
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range_changed)
        bar.valueChanged.connect(self._on_value_changed)
        self.empty.setVisible(True)

    # -- content ------------------------------------------------------------------------------

    @property
    def messages(self) -> list[MessageWidget]:
        return list(self._messages)

    def clear(self) -> None:
        for widget in self._messages:
            self._layout.removeWidget(widget)
            widget.hide()
            widget.deleteLater()
        self._messages.clear()
        self.empty.setVisible(True)
        self._stick = True

    def show_messages(self, messages: list[StoredMessage]) -> None:
        """Replace the content with a stored conversation."""
        self.setUpdatesEnabled(False)
        try:
            self.clear()
            for message in messages:
                if message.role == "user":
                    self.add_user(message.id, message.content)
                elif message.role == "assistant":
                    self.add_assistant(message.id).show_stored(message)
            self.refresh_actions()
        finally:
            self.setUpdatesEnabled(True)
        self.scroll_to_bottom()

    def add_user(self, message_id: int, text: str) -> UserMessageWidget:
        widget = UserMessageWidget(message_id, text)
        self._add(widget)
        return widget

    def add_assistant(self, message_id: int) -> AssistantMessageWidget:
        widget = AssistantMessageWidget(message_id)
        self._add(widget)
        return widget

    def _add(self, widget: MessageWidget) -> None:
        self.empty.setVisible(False)
        self._layout.insertWidget(self._layout.count() - 1, widget)
        self._messages.append(widget)

    def remove_from(self, message_id: int) -> None:
        """Remove the message with this id and every one after it."""
        keep = [w for w in self._messages if w.message_id < message_id]
        for widget in self._messages[len(keep) :]:
            self._layout.removeWidget(widget)
            widget.hide()
            widget.deleteLater()
        self._messages = keep
        self.empty.setVisible(not keep)

    def message(self, message_id: int) -> MessageWidget | None:
        return next((w for w in self._messages if w.message_id == message_id), None)

    def last_user(self) -> UserMessageWidget | None:
        return next((w for w in reversed(self._messages) if isinstance(w, UserMessageWidget)), None)

    def last_assistant(self) -> AssistantMessageWidget | None:
        return next((w for w in reversed(self._messages) if isinstance(w, AssistantMessageWidget)), None)

    def refresh_actions(self, streaming: bool = False) -> None:
        """Only the last reply can be regenerated and only the last user message edited."""
        last_user, last_reply = self.last_user(), self.last_assistant()
        for widget in self._messages:
            if isinstance(widget, UserMessageWidget):
                widget.set_editable(widget is last_user and not streaming)
            else:
                widget.set_regenerable(widget is last_reply and not streaming)
            # The last message of each side keeps its actions in view (and in the Tab order).
            widget.set_pinned(widget in (last_user, last_reply) and not streaming)

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
        self._stick = value >= bar.maximum() - STICK_MARGIN_PX
