"""Widgets for rendered Markdown: prose blocks, code blocks, and the view that streams them.

`MarkdownView` shows a text as a column of block widgets. Fed while a reply streams, it keeps
the closed blocks as they are and re-renders only the open last block (see markdown.py), so the
cost of an update does not grow with the length of the reply.
"""

from __future__ import annotations

import re
import time

from PySide6.QtCore import QEvent, QRectF, QSize, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QDesktopServices,
    QGuiApplication,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QTextCursor,
    QTextDocument,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollBar,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui import theme
from app.gui.chat.markdown import Block, StreamingMarkdown, breakable, cached_blocks, highlight_code
from app.gui.theme import named

BLOCK_SPACING = 12
SAFE_SCHEMES = ("http", "https", "mailto")
HIGHLIGHT_EVERY_S = 0.5  # an open code block is re-highlighted at most this often
CHUNK_BLOCKS = 12
SIZE_HINT_WIDTH = theme.COLUMN_WIDTH
COPIED_MS = 1500  # how long a Copy button says "Copied"
_CLOSING_TAGS = re.compile(r"(?:</[a-z0-9]+>\s*)+$")


def flash_copied(button: QToolButton, text: str = "Copy") -> None:
    """Feedback for a Copy button: "Copied ✓" for a moment, then its label again."""
    button.setText("Copied ✓")
    QTimer.singleShot(COPIED_MS, button, lambda: button.setText(text))


def open_link(href: str) -> None:
    """Open a link the user clicked in the system browser; other schemes are ignored."""
    url = QUrl(href)
    if url.scheme().lower() in SAFE_SCHEMES:
        QDesktopServices.openUrl(url)


class ProseBlock(QLabel):
    """A paragraph, heading, list, quote or table, as rich text."""

    def __init__(self, html: str, *, muted: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._muted = muted
        self._hfw: dict[int, int] = {}
        self._layout_key: tuple[object, ...] = ()
        self._html = ""
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setWordWrap(True)
        self.setOpenExternalLinks(False)
        self.linkActivated.connect(open_link)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.LinksAccessibleByMouse
        )
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        if muted:
            self.setStyleSheet(f"color: {theme.current().muted};")
        self.set_html(html)

    def retheme(self) -> None:
        """The theme changed: the same HTML with the new colours."""
        if self._muted:
            self.setStyleSheet(f"color: {theme.current().muted};")
        self.set_html(self._html)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        # QLabel's own hint is the height at a narrow width; a scroll area would take that
        # (much taller) height as the column's minimum. The layout uses heightForWidth instead.
        return QSize(40, self.fontMetrics().height())

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        # QLabel's own hint for wrapped rich text lays the text out several times to guess a
        # width (a table: half the cost of showing it); the column decides the width anyway.
        # The column's own width: the width the label will have in all but narrow windows, so
        # the layouts' size hints ask for the height already computed for the real layout.
        return QSize(SIZE_HINT_WIDTH, self.heightForWidth(SIZE_HINT_WIDTH))

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt API)
        # Qt's layouts ask every label again on each layout pass and QLabel lays its rich text
        # out anew each time; remembered here, an update costs one label's layout, not all.
        height = self._hfw.get(width)
        if height is None:
            height = super().heightForWidth(width)
            if len(self._hfw) > 8:
                self._hfw.clear()
            self._hfw[width] = height
        return height

    def setText(self, text: str) -> None:  # noqa: N802 (Qt API)
        self._hfw.clear()
        super().setText(text)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt API)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            # Polishing on first show is a StyleChange that changes nothing the layout of the
            # text depends on: keep the heights then (each costs a layout of the rich text).
            margins = self.contentsMargins()
            key = (self.font().key(), margins.left(), margins.top(), margins.right(), margins.bottom())
            if key != self._layout_key:
                self._layout_key = key
                self._hfw.clear()
        super().changeEvent(event)

    def set_html(self, html: str) -> None:
        self._html = html
        if "<a " in html:
            # Links must be reachable from the keyboard too.
            self.setTextInteractionFlags(self.textInteractionFlags() | Qt.TextInteractionFlag.LinksAccessibleByKeyboard)
            self.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.setText(theme.markdown_css(theme.current(), muted=self._muted) + html)


class LiveProse(QWidget):
    """The open prose block of a streaming reply: the same HTML and CSS as a ProseBlock, laid out
    once per update.

    A QLabel lays its rich text out anew for every height it is asked and again to paint (about
    0.4 ms each for a long paragraph), and parses its style sheet with every text; while a reply
    streams that was most of the window's CPU, taken from llama.cpp's threads. This widget keeps
    one document with the style sheet parsed once, lays it out only when the text or the width
    changes, and paints that layout — and when the new text only adds to the end of the old, only
    from the old last line down. It is replaced by ProseBlocks (selectable, links) when the block
    closes or the reply ends."""

    def __init__(self, html: str, *, muted: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._muted = muted
        self._html = ""
        self._appended: list[str] = []  # plain text added since the HTML was set (append_text)
        self._doc = QTextDocument(self)
        self._doc.setDocumentMargin(0)
        self._doc.setUndoRedoEnabled(False)
        self._heights: dict[int, int] = {}
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        # Top-aligned text: growing taller repaints only the new strip, not the lines above.
        self.setAttribute(Qt.WidgetAttribute.WA_StaticContents, True)
        self._style()
        self.set_html(html)

    def _style(self) -> None:
        if self._muted:
            self.setStyleSheet(f"color: {theme.current().muted};")
        self._doc.setDefaultFont(self.font())
        self._doc.setDefaultStyleSheet(theme.markdown_sheet(theme.current(), muted=self._muted))

    def retheme(self) -> None:
        self._style()
        self._reload()

    def _reload(self) -> None:
        """The document made again from the HTML and the text appended to it (new colours or font)."""
        self._heights.clear()
        self._doc.setHtml(self._html.rstrip())
        if self._appended:
            self._insert_at_end("".join(self._appended))
        self.updateGeometry()
        self.update()

    def _insert_at_end(self, text: str) -> None:
        cursor = QTextCursor(self._doc)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)

    def text(self) -> str:
        """The HTML last set (append_text adds to what is shown, not to this)."""
        return self._html

    def shown_text(self) -> str:
        """What the paragraph shows, as plain text."""
        return self._doc.toPlainText().replace("\u200b", "")

    def set_html(self, html: str) -> None:
        if html == self._html:
            return
        top = self._unchanged_above(html)
        self._html = html
        self._appended.clear()
        self._heights.clear()
        # Without the renderer's closing newline, which would be a space after the last word,
        # where append_text then adds its text.
        self._doc.setHtml(html.rstrip())
        self.updateGeometry()
        self._repaint_from(top)

    def append_text(self, text: str) -> None:
        """Add plain text at the end, in the format of the text before it (the caller knows the
        Markdown would render it so: StreamingMarkdown.append_plain). Only the last paragraph is
        laid out again, and only from its old last line down is painted."""
        if not text:
            return
        top = self._last_line_top() if self._doc.textWidth() == self.width() else 0
        before = self._doc.size().height()
        text = breakable(text)
        self._appended.append(text)
        self._insert_at_end(text)
        self._heights.clear()
        if self._doc.size().height() != before:
            self.updateGeometry()
        self._repaint_from(top)

    def _repaint_from(self, top: int) -> None:
        """Paint again from `top` down (0: all of it)."""
        if top > 0:
            self.update(0, top, self.width(), max(self.height() - top, 0))
        else:
            self.update()

    def _last_line_top(self) -> int:
        block = self._doc.lastBlock()
        layout = block.layout()
        if layout is None or layout.lineCount() == 0:
            return 0
        line = layout.lineAt(layout.lineCount() - 1)
        return max(int(self._doc.documentLayout().blockBoundingRect(block).top() + line.y()), 0)

    def _unchanged_above(self, html: str) -> int:
        """How far down the text shown now stays as it is with `html`: above the old last line
        when `html` only continues the old text (and no table, whose columns would re-balance)."""
        old = self._html
        if not old or "<table" in html or self._doc.textWidth() != self.width():
            return 0
        if not html.startswith(_CLOSING_TAGS.sub("", old)):
            return 0
        return self._last_line_top()

    def _height_at(self, width: int) -> int:
        height = self._heights.get(width)
        if height is None:
            if self._doc.textWidth() != width:
                self._doc.setTextWidth(width)
            height = int(self._doc.size().height() + 0.999)
            if len(self._heights) > 8:
                self._heights.clear()
            self._heights[width] = height
        return height

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt API)
        return self._height_at(max(width, 1))

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        # The width the document is laid out at (its real width once shown): no second layout.
        laid = int(self._doc.textWidth())
        return QSize(SIZE_HINT_WIDTH, self._height_at(laid if laid > 0 else SIZE_HINT_WIDTH))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(40, self.fontMetrics().height())

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.FontChange:
            self._doc.setDefaultFont(self.font())
            self._reload()
        super().changeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        width = self.width()
        if self._doc.textWidth() != width:
            self._doc.setTextWidth(width)
        painter = QPainter(self)
        context = QAbstractTextDocumentLayout.PaintContext()
        context.palette = self.palette()
        context.clip = QRectF(event.rect())  # the painter is clipped already; this skips lines
        self._doc.documentLayout().draw(painter, context)
        painter.end()


class CodeView(QWidget):
    """The body of a code block: no wrapping; a horizontal scroll bar only when a line is longer
    than the width. A plain label until then — a QScrollArea (viewport, two scroll bars) for every
    code block of a long conversation cost more than the code itself."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("CodeScroll")
        self.label = QLabel(self)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setFont(theme.mono_font())
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setContentsMargins(12, 10, 12, 10)
        self.label.setAutoFillBackground(False)
        self._bar: QScrollBar | None = None
        self._natural = QSize(0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def horizontalScrollBar(self) -> QScrollBar:  # noqa: N802 (as QScrollArea names it)
        if self._bar is None:
            self._bar = QScrollBar(Qt.Orientation.Horizontal, self)
            self._bar.valueChanged.connect(lambda value: self.label.move(-value, 0))
            self._bar.setVisible(False)
        return self._bar

    def set_html(self, html: str) -> None:
        self.label.setText(html)
        self._natural = self.label.sizeHint()
        self._lay_out()

    def _lay_out(self) -> None:
        width, natural = self.width(), self._natural
        scrolls = width > 0 and natural.width() > width
        height = natural.height()
        if scrolls:
            bar = self.horizontalScrollBar()
            bar_height = bar.sizeHint().height()
            bar.setRange(0, natural.width() - width)
            bar.setPageStep(width)
            bar.setGeometry(0, height, width, bar_height)
            bar.setVisible(True)
            height += bar_height
        elif self._bar is not None:
            self._bar.setValue(0)
            self._bar.setVisible(False)
        offset = self._bar.value() if scrolls and self._bar is not None else 0
        self.label.setGeometry(-offset, 0, max(natural.width(), width), natural.height())
        if height != self.height() or self.minimumHeight() != height:
            self.setFixedHeight(height)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._lay_out()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt API)
        bar = self._bar
        if bar is not None and bar.isVisible() and event.angleDelta().x():
            bar.setValue(bar.value() - event.angleDelta().x())
            event.accept()
            return
        super().wheelEvent(event)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(self._natural.width(), self.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(0, self.height())


class CodeBlock(QFrame):
    """Monospace code on a tinted, rounded panel; a top bar with the language and a Copy button."""

    def __init__(self, block: Block, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("CodeBlock")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.setSpacing(0)
        bar = named(QWidget(), "CodeBar")
        bar.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        bar_layout = QHBoxLayout(bar)
        bar_layout.setContentsMargins(12, 2, 4, 2)
        self.language_label = QLabel()
        self.copy_button = named(QToolButton(), "ActionButton", "Copy")
        self.copy_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.copy_button.clicked.connect(self.copy)
        bar_layout.addWidget(self.language_label)
        bar_layout.addStretch(1)
        bar_layout.addWidget(self.copy_button)
        self.view = CodeView()
        layout.addWidget(bar)
        layout.addWidget(self.view)
        self._code = ""
        self._language = ""
        self._closed = False
        self._highlighted_at = 0.0
        self._highlighted_lines = 0
        self._highlighted_html = ""
        self.set_block(block)

    @property
    def code(self) -> str:
        return self._code

    def set_block(self, block: Block) -> None:
        if block.code == self._code and block.language == self._language and block.closed == self._closed:
            return
        self._code, self._language, self._closed = block.code, block.language, block.closed
        name = block.language or "code"
        self.language_label.setText(name)
        self.copy_button.setAccessibleName(f"Copy {name} code")
        self.setAccessibleName(f"{name} code block")
        self.view.set_html(self._html())

    def retheme(self) -> None:
        self._highlighted_lines, self._highlighted_html = 0, ""
        self.view.set_html(self._html())

    def _html(self) -> str:
        style = theme.current().pygments_style
        if self._closed:
            return highlight_code(self._code, self._language, style)
        # While the block streams: highlight the complete lines at most every HIGHLIGHT_EVERY_S and
        # show the rest plain, so a long block does not cost a full highlight per update.
        import html as _html

        lines = self._code.split("\n")
        complete = len(lines) - 1
        now = time.monotonic()
        if complete != self._highlighted_lines and now - self._highlighted_at >= HIGHLIGHT_EVERY_S:
            prefix = "\n".join(lines[:complete]) + "\n" if complete else ""
            self._highlighted_html = highlight_code(prefix, self._language, style)[len("<pre style='margin:0'>") : -6]
            self._highlighted_lines, self._highlighted_at = complete, now
        rest = "\n".join(lines[self._highlighted_lines :])
        return f"<pre style='margin:0'>{self._highlighted_html}{_html.escape(rest)}</pre>"

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self._code)
        flash_copied(self.copy_button)


def merged(blocks: list[Block]) -> list[Block]:
    """Runs of prose blocks joined into one, each after the first spaced as the layout would."""
    out: list[Block] = []
    for block in blocks:
        if block.kind == "prose" and out and out[-1].kind == "prose":
            spaced = f'<div style="margin-top:{BLOCK_SPACING}px">{block.html}</div>'
            out[-1] = Block("prose", html=out[-1].html + spaced)
        else:
            out.append(block)
    return out


class _Chunk(QWidget):
    """Up to CHUNK_BLOCKS closed blocks. Inside a scroll area Qt re-asks the height of every
    height-for-width widget, at several widths, on every layout pass; a sealed chunk answers
    with a fixed height (recomputed only when its width changes), so a streaming update costs
    the same at the end of a long reply as at its start."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.box = QVBoxLayout(self)
        self.box.setContentsMargins(0, 0, 0, 0)
        self.box.setSpacing(BLOCK_SPACING)
        self._sealed = False
        self._fitted_width = -1

    def widgets(self) -> list[QWidget]:
        items = (self.box.itemAt(i) for i in range(self.box.count()))
        return [w for w in (item.widget() for item in items if item is not None) if w is not None]

    @property
    def sealed(self) -> bool:
        return self._sealed

    def seal(self) -> None:
        if self._sealed:
            return
        self._sealed = True
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._fit(self.width())

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt API)
        return not self._sealed and super().hasHeightForWidth()

    def _fit(self, width: int) -> None:
        if width <= 0 or width == self._fitted_width:
            return
        self._fitted_width = width
        height = self.box.totalHeightForWidth(width)
        if height >= 0 and height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        if self._sealed:
            self._fit(event.size().width())

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest and self._sealed:
            # A block inside changed its height (a code block gained a scroll bar): refit.
            self._fitted_width = -1
            self._fit(self.width())
        return super().event(event)


class MarkdownView(QWidget):
    """A Markdown text as a column of blocks; static (`set_text`) or streamed (`append`/`flush`)."""

    def __init__(self, *, muted: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._muted = muted
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(BLOCK_SPACING)
        self._chunks: list[_Chunk] = []
        self._stream: StreamingMarkdown | None = None
        self._tail: QWidget | None = None  # the open block, below the chunks
        self._text = ""
        self._dirty = False
        if muted:
            font = self.font()
            font.setPointSizeF(font.pointSizeF() * 0.92)
            self.setFont(font)

    # -- static -------------------------------------------------------------------------------

    def set_text(self, text: str) -> None:
        """A finished text. Consecutive prose blocks share one label (fewer widgets to build and
        lay out in a long conversation; the same spacing as separate blocks)."""
        self.clear()
        self._text = text
        for block in merged(cached_blocks(text)):
            self._add_closed(block)

    def retheme(self) -> None:
        """Colours changed: every block re-renders its own HTML (nothing is parsed again)."""
        for widget in self.block_widgets():
            if isinstance(widget, (ProseBlock, LiveProse, CodeBlock)):
                widget.retheme()

    def clear(self) -> None:
        while self._layout.count():
            item = self._layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.hide()
                widget.deleteLater()
        self._chunks.clear()
        self._stream, self._tail, self._text = None, None, ""

    def text(self) -> str:
        return self._stream.text if self._stream is not None else self._text

    def block_widgets(self) -> list[QWidget]:
        widgets = [w for chunk in self._chunks for w in chunk.widgets()]
        return widgets + ([self._tail] if self._tail is not None else [])

    # -- streaming ----------------------------------------------------------------------------

    def append(self, text: str) -> None:
        """Take more text; shown at the next `flush()`."""
        if self._stream is None:
            self._stream = StreamingMarkdown()
            self._stream.feed(self._text)
        self._stream.feed(text)
        self._dirty = True

    def flush(self) -> None:
        if not self._dirty or self._stream is None:
            return
        self._dirty = False
        if isinstance(self._tail, LiveProse):
            plain = self._stream.append_plain()
            if plain is not None:
                self._tail.append_text(plain)
                return
        closed, tail = self._stream.update()
        self._apply(closed, tail)

    def finish(self) -> None:
        """The text is complete: render what is still open as closed blocks."""
        if self._stream is None:
            return
        self._dirty = False
        self._apply(self._stream.finish(), None)
        self._text = self._stream.text
        self._stream = None

    def _apply(self, closed: list[Block], tail: Block | None) -> None:
        if closed:
            self._drop_tail()  # the first closed block is the one the tail showed
            for block in closed:
                self._add_closed(block)
        if tail is None:
            self._drop_tail()
        elif self._tail is not None and self._fits(self._tail, tail):
            self._update(self._tail, tail)
        else:
            self._drop_tail()
            self._tail = self._widget_for(tail, live=True)
            self._layout.addWidget(self._tail)

    def _add_closed(self, block: Block) -> None:
        if not self._chunks or self._chunks[-1].box.count() >= CHUNK_BLOCKS:
            if self._chunks:
                self._chunks[-1].seal()
            chunk = _Chunk()
            self._layout.insertWidget(len(self._chunks), chunk)
            self._chunks.append(chunk)
        self._chunks[-1].box.addWidget(self._widget_for(block))

    def _drop_tail(self) -> None:
        if self._tail is not None:
            self._layout.removeWidget(self._tail)
            self._tail.hide()
            self._tail.deleteLater()
            self._tail = None

    @staticmethod
    def _fits(widget: QWidget, block: Block) -> bool:
        return isinstance(widget, CodeBlock) == (block.kind == "code")

    @staticmethod
    def _update(widget: QWidget, block: Block) -> None:
        if isinstance(widget, CodeBlock):
            widget.set_block(block)
        elif isinstance(widget, (ProseBlock, LiveProse)):
            widget.set_html(block.html)

    def _widget_for(self, block: Block, *, live: bool = False) -> QWidget:
        if block.kind == "code":
            return CodeBlock(block)
        if live:
            return LiveProse(block.html, muted=self._muted)
        return ProseBlock(block.html, muted=self._muted)
