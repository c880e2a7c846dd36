"""The sidebar: New chat, search, conversations grouped by last activity, the network indicator
(Offline until something reaches another machine).

Rename edits the title in place (F2 or the context menu). Delete hides the conversation at once
and offers Undo for a few seconds; only then is it removed from the store. A search runs on a
background thread (the store answers from its full-text index); Esc clears it. Long titles end
in an ellipsis within the sidebar's width: the list never scrolls sideways.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.store import ChatStore, Conversation, StoreError
from app.gui import theme
from app.gui.theme import named

if TYPE_CHECKING:
    from PySide6.QtCore import QAbstractItemModel
    from PySide6.QtGui import QIcon

    from app.gui.library.tasks import Background

ID_ROLE = Qt.ItemDataRole.UserRole
UNDO_SECONDS = 8
SEARCH_DELAY_MS = 150


def group_label(timestamp: float, today: dt.date) -> str:
    day = dt.datetime.fromtimestamp(timestamp).date()
    age = (today - day).days
    if age <= 0:
        return "Today"
    if age == 1:
        return "Yesterday"
    if age <= 7:
        return "Previous 7 days"
    return "Older"


class ConversationDelegate(QStyledItemDelegate):
    """Rows never wider than the list (so a long title is elided, not scrolled to), and a rename
    editor tall enough to show its text."""

    def __init__(self, view: QListWidget) -> None:
        super().__init__(view)
        self._view = view

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802 (Qt API)
        hint = super().sizeHint(option, index)
        return QSize(min(hint.width(), max(1, self._view.viewport().width())), hint.height())

    def createEditor(  # noqa: N802 (Qt API)
        self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QWidget:
        editor = QLineEdit(parent)
        editor.setObjectName("RenameEdit")
        editor.setAccessibleName("New title")
        editor.setFrame(False)
        return editor

    def setEditorData(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:  # noqa: N802 (Qt API)
        if isinstance(editor, QLineEdit):
            editor.setText(str(index.data(Qt.ItemDataRole.EditRole) or ""))
            editor.selectAll()

    def setModelData(  # noqa: N802 (Qt API)
        self, editor: QWidget, model: QAbstractItemModel, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        if isinstance(editor, QLineEdit):
            model.setData(index, editor.text(), Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(  # noqa: N802 (Qt API)
        self, editor: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        rect = QRect(option.rect)
        height = max(rect.height(), editor.sizeHint().height())
        rect.setTop(rect.center().y() - height // 2)
        rect.setHeight(height)
        editor.setGeometry(rect)


class ConversationList(QListWidget):
    renameRequested = Signal(QListWidgetItem)
    deleteRequested = Signal(QListWidgetItem)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        item = self.currentItem()
        if item is not None and item.data(ID_ROLE) is not None and self.state() != self.State.EditingState:
            if event.key() == Qt.Key.Key_F2:
                self.renameRequested.emit(item)
                return
            if event.key() == Qt.Key.Key_Delete:
                self.deleteRequested.emit(item)
                return
        super().keyPressEvent(event)


class Sidebar(QWidget):
    conversationActivated = Signal(int)
    newChatRequested = Signal()
    conversationDeleted = Signal(int)  # hidden now (Undo may still bring it back)
    conversationRestored = Signal(int)
    conversationRenamed = Signal(int, str)
    errorOccurred = Signal(str)
    libraryRequested = Signal()
    downloadsRequested = Signal()
    settingsRequested = Signal()
    exportRequested = Signal(int, str)  # conversation id, "markdown" | "json"
    importRequested = Signal()
    searchFinished = Signal()  # the list shows the current query's results

    def __init__(self, store: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._store = store
        self._current: int | None = None
        self._pending_delete: dict[int, str] = {}
        self._building = False
        self._rows: list[tuple[str, int, str]] = []  # what the list shows: (group, id, title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)

        self.new_button = named(QPushButton("+   New chat"), "NewChat")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip("New chat (Ctrl+N)")
        self.new_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.new_button.clicked.connect(self.newChatRequested)
        layout.addWidget(self.new_button)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search chats")
        self.search.setAccessibleName("Search chats")
        self.search.setToolTip("Search titles and messages (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.installEventFilter(self)  # Esc clears it
        layout.addWidget(self.search)
        self._search_ticket = 0
        self._searches: Background | None = None
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _text: self._search_timer.start())

        self.list = named(ConversationList(), "ConversationList")
        self.list.setAccessibleName("Conversations")
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.itemClicked.connect(self._on_item_activated)
        self.list.itemActivated.connect(self._on_item_activated)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.renameRequested.connect(self.begin_rename)
        self.list.deleteRequested.connect(lambda item: self.delete(item.data(ID_ROLE)))
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setWordWrap(False)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)  # rows re-fit when the sidebar resizes
        self.list.setItemDelegate(ConversationDelegate(self.list))
        layout.addWidget(self.list, 1)

        self.empty_label = named(QLabel("No chats yet."), "Muted")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.empty_label)

        self.undo_bar = named(QFrame(), "UndoBar")
        self.undo_bar.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        undo_layout = QHBoxLayout(self.undo_bar)
        undo_layout.setContentsMargins(10, 4, 4, 4)
        self.undo_label = QLabel()
        self.undo_label.setWordWrap(True)
        self.undo_button = named(QToolButton(), text="Undo")
        self.undo_button.setAccessibleName("Undo delete")
        self.undo_button.clicked.connect(self.undo_delete)
        undo_layout.addWidget(self.undo_label, 1)
        undo_layout.addWidget(self.undo_button)
        self.undo_bar.setVisible(False)
        layout.addWidget(self.undo_bar)
        self._undo_timer = QTimer(self)
        self._undo_timer.setSingleShot(True)
        self._undo_timer.setInterval(UNDO_SECONDS * 1000)
        self._undo_timer.timeout.connect(self.commit_deletes)

        self.library_button = named(QPushButton("Library"), "NavButton")
        self.library_button.setAccessibleName("Model library")
        self.library_button.setToolTip("Models that fit this computer, downloads, imports (Ctrl+Shift+M)")
        self.library_button.clicked.connect(self.libraryRequested)
        self.downloads_button = named(QPushButton("Downloads"), "NavButton")
        self.downloads_button.setAccessibleName("Downloads")
        self.downloads_button.setToolTip("Downloads in progress and finished (Ctrl+J)")
        self.downloads_button.clicked.connect(self.downloadsRequested)
        self.settings_button = named(QPushButton("Settings"), "NavButton")
        self.settings_button.setAccessibleName("Settings")
        self.settings_button.setToolTip("Appearance, models folder, Hugging Face token (Ctrl+,)")
        self.settings_button.clicked.connect(self.settingsRequested)
        self.import_button = named(QPushButton("Import a chat…"), "NavButton")
        self.import_button.setAccessibleName("Import a chat")
        self.import_button.setToolTip("A chat exported as JSON (the OpenAI messages shape), from Hearth or elsewhere")
        self.import_button.clicked.connect(self.importRequested)
        for button in (self.library_button, self.downloads_button, self.settings_button, self.import_button):
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            layout.addWidget(button)

        from app.gui.network_indicator import NetworkIndicator

        self.network = NetworkIndicator()
        layout.addWidget(self.network)
        self.refresh()

    def set_downloads_progress(self, text: str, fraction: float | None = None) -> None:
        """The Downloads button while something downloads: a small progress ring (a spinner-less
        empty ring when the total is unknown) and a note ("Downloads · 42%")."""
        self.downloads_button.setText(f"Downloads · {text}" if text else "Downloads")
        self.downloads_button.setAccessibleDescription(text)
        if text:
            self.downloads_button.setIcon(progress_ring(fraction))
        elif not self.downloads_button.icon().isNull():
            from PySide6.QtGui import QIcon

            self.downloads_button.setIcon(QIcon())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if (
            watched is self.search
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Escape
            and self.search.text()
        ):
            self.search.clear()
            return True
        return super().eventFilter(watched, event)

    # -- listing ------------------------------------------------------------------------------

    def conversations(self) -> list[Conversation]:
        """What the list shows now (read on the calling thread)."""
        query = self.search.text()
        found = self._store.search_conversations(query) if query.strip() else self._store.list_conversations()
        return [c for c in found if c.id not in self._pending_delete]

    def refresh(self) -> None:
        """List the conversations again: all of them at once; a search's matches when the
        background search answers (an answer to an older query is dropped)."""
        self._search_ticket += 1
        query = self.search.text()
        if not query.strip():
            try:
                found = self._store.list_conversations()
            except StoreError as exc:
                self.errorOccurred.emit(str(exc))
                return
            self._show([c for c in found if c.id not in self._pending_delete])
            return
        if self._searches is None:
            from app.gui.library.tasks import Background

            self._searches = Background(self)
        ticket = self._search_ticket
        store = self._store
        self._searches.submit(
            lambda: store.search_conversations(query),
            lambda found: self._on_found(ticket, found),
            lambda exc: self._on_search_failed(ticket, exc),
            name="search",
        )

    def _on_found(self, ticket: int, found: list[Conversation]) -> None:
        if ticket == self._search_ticket:
            self._show([c for c in found if c.id not in self._pending_delete])

    def _on_search_failed(self, ticket: int, exc: BaseException) -> None:
        if ticket == self._search_ticket:
            self.errorOccurred.emit(str(exc) if isinstance(exc, StoreError) else f"The search failed: {exc}")

    def _show(self, conversations: list[Conversation]) -> None:
        today = dt.date.today()
        rows = [(group_label(conv.updated_at, today), conv.id, conv.title) for conv in conversations]
        if rows and rows == self._rows:
            # The same list (opening a chat, a reply that leaves the order as it was): rebuilding
            # 400 rows and laying them out again cost the open ~30 ms of the GUI thread.
            self.set_current(self._current)
        else:
            self._rebuild(conversations, today)
            self._rows = rows
        self.empty_label.setVisible(not conversations)
        self.empty_label.setText("No matches." if self.search.text().strip() else "No chats yet.")
        self.searchFinished.emit()

    def _rebuild(self, conversations: list[Conversation], today: dt.date) -> None:
        self._building = True
        self.list.clear()
        group = ""
        selected: QListWidgetItem | None = None
        for conv in conversations:
            label = group_label(conv.updated_at, today)
            if label != group:
                group = label
                header = QListWidgetItem(label)
                header.setFlags(Qt.ItemFlag.NoItemFlags)
                font = header.font()
                font.setPointSizeF(font.pointSizeF() * 0.85)
                font.setWeight(font.Weight.DemiBold)
                header.setFont(font)
                self.list.addItem(header)
            item = QListWidgetItem(conv.title)
            item.setData(ID_ROLE, conv.id)
            item.setToolTip(conv.title)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            self.list.addItem(item)
            if conv.id == self._current:
                selected = item
        if selected is not None:
            self.list.setCurrentItem(selected)
        self._building = False

    def set_current(self, conversation_id: int | None) -> None:
        self._current = conversation_id
        self._building = True
        self.list.clearSelection()
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(ID_ROLE) == conversation_id and conversation_id is not None:
                self.list.setCurrentItem(item)
        self._building = False

    def item_for(self, conversation_id: int) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(ID_ROLE) == conversation_id:
                return item
        return None

    def titles(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count()) if self.list.item(i).data(ID_ROLE)]

    def _on_item_activated(self, item: QListWidgetItem) -> None:
        conversation_id = item.data(ID_ROLE)
        if conversation_id is not None and not self._building:
            self.conversationActivated.emit(int(conversation_id))

    # -- rename -------------------------------------------------------------------------------

    def begin_rename(self, item: QListWidgetItem) -> None:
        self.list.setCurrentItem(item)
        self.list.editItem(item)

    def rename(self, conversation_id: int, title: str) -> None:
        self._rows = []  # the edited row shows the typed text: rebuild it from the store in any case
        title = " ".join(title.split())
        if not title:
            self.refresh()
            return
        try:
            self._store.rename_conversation(conversation_id, title)
        except StoreError as exc:
            self.errorOccurred.emit(str(exc))
        self.refresh()
        self.conversationRenamed.emit(conversation_id, title)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._building or item.data(ID_ROLE) is None:
            return
        # Deferred: refreshing the list from inside its own itemChanged would delete this item.
        conversation_id, title = int(item.data(ID_ROLE)), item.text()
        QTimer.singleShot(0, lambda: self.rename(conversation_id, title))

    # -- delete with undo ---------------------------------------------------------------------

    def delete(self, conversation_id: int) -> None:
        """Hide it now; delete it from the store when the Undo offer ends."""
        self.commit_deletes()
        conv = self._store.get_conversation(conversation_id)
        if conv is None:
            return
        self._pending_delete[conversation_id] = conv.title
        self.undo_label.setText(f"Deleted “{conv.title}”.")
        self.undo_bar.setVisible(True)
        self._undo_timer.start()
        self.refresh()
        self.conversationDeleted.emit(conversation_id)
        self.undo_button.setFocus()

    def undo_delete(self) -> None:
        self._undo_timer.stop()
        restored = list(self._pending_delete)
        self._pending_delete.clear()
        self.undo_bar.setVisible(False)
        self.refresh()
        for conversation_id in restored:
            self.conversationRestored.emit(conversation_id)

    def commit_deletes(self) -> None:
        self._undo_timer.stop()
        pending, self._pending_delete = self._pending_delete, {}
        self.undo_bar.setVisible(False)
        for conversation_id in pending:
            try:
                conversation = self._store.get_conversation(conversation_id)
                self._store.delete_conversation(conversation_id)
            except StoreError as exc:
                self.errorOccurred.emit(str(exc))
                continue
            if conversation is not None:
                from app.core.chat.service import forget_conversation

                forget_conversation(conversation)  # its saved KV states (a few files)

    def _context_menu(self, pos: object) -> None:
        item = self.list.itemAt(pos)  # type: ignore[call-overload]
        if item is None or item.data(ID_ROLE) is None:
            return
        from PySide6.QtGui import QAction  # here: only a right-click needs it (start-up time)

        menu = QMenu(self)
        rename = QAction("Rename", menu)
        rename.triggered.connect(lambda: self.begin_rename(item))
        delete = QAction("Delete", menu)
        delete.triggered.connect(lambda: self.delete(int(item.data(ID_ROLE))))
        conversation_id = int(item.data(ID_ROLE))
        as_markdown = QAction("Export as Markdown…", menu)
        as_markdown.triggered.connect(lambda: self.exportRequested.emit(conversation_id, "markdown"))
        as_json = QAction("Export as JSON…", menu)
        as_json.triggered.connect(lambda: self.exportRequested.emit(conversation_id, "json"))
        menu.addAction(rename)
        menu.addAction(as_markdown)
        menu.addAction(as_json)
        menu.addSeparator()
        menu.addAction(delete)
        menu.exec(self.list.viewport().mapToGlobal(pos))  # type: ignore[call-overload]


def progress_ring(fraction: float | None, size: int = 14) -> QIcon:
    """A ring icon: the track in the faint colour, the done part as an accent arc from 12 o'clock."""
    from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap  # only while downloading

    t = theme.current()
    ratio = 2  # drawn at twice the size: crisp on high-DPI screens, scaled down elsewhere
    pixmap = QPixmap(size * ratio, size * ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    width = 2 * ratio
    box = pixmap.rect().adjusted(width, width, -width, -width)
    painter.setPen(QPen(QColor(t.faint), width))
    painter.drawEllipse(box)
    if fraction is not None and fraction > 0:
        painter.setPen(QPen(QColor(t.accent), width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawArc(box, 90 * 16, -int(min(fraction, 1.0) * 360 * 16))  # clockwise from the top
    painter.end()
    return QIcon(pixmap)
