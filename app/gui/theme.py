"""Colours, fonts and the application style sheet; light or dark following the OS.

One accent colour, an 8 px spacing grid, the system UI font at the OS default size. Widgets never
hard-code colours: they read `current()` (a `Theme`) and repaint on `ThemeManager.changed`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TypeVar

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

SPACING = 8  # the grid every margin and gap is a multiple of
SIDEBAR_WIDTH = 260
COLUMN_WIDTH = 800  # the readable conversation column
RADIUS = 10
SETTING_THEME = "appearance.theme"  # store setting: "system" | "light" | "dark" (Settings dialog)
STYLE_FROM_ARGV = "hearth_style_from_argv"  # an application property: Fusion was set by argv


@dataclass(frozen=True)
class Theme:
    dark: bool
    window: str  # the conversation background
    sidebar: str
    surface: str  # raised things: the composer, cards, menus
    text: str
    muted: str
    faint: str  # hairlines, separators
    rule: str  # the Thinking section's left rule
    accent: str
    accent_text: str  # text on the accent colour
    user_bubble: str
    code_bg: str
    code_bar: str
    inline_code_bg: str
    hover: str
    selected: str
    danger: str
    ok: str
    warn: str
    pygments_style: str

    @property
    def mono_family(self) -> str:
        return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()


LIGHT = Theme(
    dark=False,
    window="#ffffff",
    sidebar="#f6f5f4",
    surface="#ffffff",
    text="#1f1f22",
    muted="#6b6b73",
    faint="#e4e2df",
    rule="#cfcbc6",
    accent="#d4582a",
    accent_text="#ffffff",
    user_bubble="#f1efed",
    code_bg="#f7f6f5",
    code_bar="#eeece9",
    inline_code_bg="#efedea",
    hover="#ebe9e6",
    selected="#e4e1dd",
    danger="#b42318",
    ok="#2f8f46",
    warn="#b7791f",
    pygments_style="friendly",
)

DARK = Theme(
    dark=True,
    window="#1d1d20",
    sidebar="#161618",
    surface="#26262a",
    text="#ececee",
    muted="#a0a0a8",
    faint="#34343a",
    rule="#4a4a52",
    accent="#ee7a45",
    accent_text="#1d1d20",
    user_bubble="#2d2d32",
    code_bg="#141416",
    code_bar="#232327",
    inline_code_bg="#2e2e33",
    hover="#2a2a2f",
    selected="#33333a",
    danger="#f97066",
    ok="#5cc27a",
    warn="#e0a84a",
    pygments_style="github-dark",
)

_current: Theme = LIGHT


W = TypeVar("W", bound=QWidget)


def named(widget: W, name: str = "", text: str | None = None) -> W:
    """Set a widget's object name (what the style sheet's #Name rules match) and text; typed,
    unlike PySide's property keyword arguments."""
    if name:
        widget.setObjectName(name)
    if text is not None:
        widget.setText(text)  # type: ignore[attr-defined]
    return widget


def bold(widget: W, scale: float = 1.0) -> W:
    """Semi-bold text (headings, titles), optionally `scale` times the widget's font size."""
    font = widget.font()
    font.setWeight(font.Weight.DemiBold)
    if scale != 1.0:
        font.setPointSizeF(font.pointSizeF() * scale)
    widget.setFont(font)
    return widget


def repolish(widget: QWidget) -> None:
    """Re-apply the style sheet after a change to a widget's object name or dynamic properties.
    A widget not yet polished (still being built) needs nothing: it is polished when first shown,
    and asking for its style() then would build PySide's QStyle wrapper during start-up."""
    if widget.testAttribute(Qt.WidgetAttribute.WA_WState_Polished):
        style = widget.style()
        style.unpolish(widget)
        style.polish(widget)


def keyboard_focus_only(root: QWidget) -> None:
    """Buttons under `root` take the focus from Tab, not from a click: the focus ring then shows
    where the keyboard is, and does not linger on a button the mouse pressed."""
    from PySide6.QtWidgets import QAbstractButton

    for button in root.findChildren(QAbstractButton):
        if button.focusPolicy() != Qt.FocusPolicy.NoFocus:
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)


def current() -> Theme:
    return _current


def os_prefers_dark() -> bool:
    hints = QGuiApplication.styleHints()
    scheme = hints.colorScheme() if hints is not None else Qt.ColorScheme.Unknown
    if scheme == Qt.ColorScheme.Unknown:
        # Older desktops: judge by the platform palette's window colour.
        return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128
    return scheme == Qt.ColorScheme.Dark


def mono_font() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


def palette_for(t: Theme) -> QPalette:
    p = QPalette()
    role = QPalette.ColorRole
    for r, c in (
        (role.Window, t.window),
        (role.Base, t.surface),
        (role.AlternateBase, t.sidebar),
        (role.Text, t.text),
        (role.WindowText, t.text),
        (role.ButtonText, t.text),
        (role.Button, t.surface),
        (role.Highlight, t.accent),
        (role.HighlightedText, t.accent_text),
        (role.Link, t.accent),
        (role.LinkVisited, t.accent),
        (role.PlaceholderText, t.muted),
        (role.ToolTipBase, t.surface),
        (role.ToolTipText, t.text),
        (role.Mid, t.faint),
    ):
        p.setColor(r, QColor(c))
    p.setColor(QPalette.ColorGroup.Disabled, role.ButtonText, QColor(t.muted))
    p.setColor(QPalette.ColorGroup.Disabled, role.Text, QColor(t.muted))
    p.setColor(QPalette.ColorGroup.Disabled, role.WindowText, QColor(t.muted))
    return p


def style_sheet(t: Theme) -> str:
    """The application-wide style sheet. Object names (#...) pick out the few special widgets."""
    return f"""
QMainWindow, #ChatPane {{ background: {t.window}; }}
QToolTip {{ background: {t.surface}; color: {t.text}; border: 1px solid {t.faint}; padding: 4px 8px; }}
QScrollArea {{ border: none; background: transparent; }}
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 2px; }}
QScrollBar::handle:vertical {{ background: {t.faint}; border-radius: 3px; min-height: 32px; }}
QScrollBar::handle:vertical:hover {{ background: {t.muted}; }}
QScrollBar:horizontal {{ background: transparent; height: 10px; margin: 2px; }}
QScrollBar::handle:horizontal {{ background: {t.faint}; border-radius: 3px; min-width: 32px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: transparent; }}

#Sidebar {{ background: {t.sidebar}; }}
#ChatPane QLineEdit, QDialog QLineEdit {{
    background: {t.surface}; color: {t.text}; border: 1px solid {t.faint}; border-radius: 8px; padding: 6px 8px;
}}
#ChatPane QLineEdit:focus, QDialog QLineEdit:focus {{ border-color: {t.accent}; }}
#Sidebar QLineEdit {{
    background: {t.surface}; border: 1px solid {t.faint}; border-radius: 8px; padding: 6px 8px;
}}
#Sidebar QLineEdit:focus {{ border-color: {t.accent}; }}
#Sidebar QLineEdit#RenameEdit {{
    padding: 1px 6px; border: 1px solid {t.accent}; border-radius: 6px; background: {t.surface}; color: {t.text};
}}
#NewChat {{
    background: {t.surface}; border: 1px solid {t.faint}; border-radius: 8px; padding: 8px 12px;
    text-align: left; font-weight: 600;
}}
#NewChat:hover {{ background: {t.hover}; }}
#ConversationList {{ background: transparent; border: none; outline: none; }}
#ConversationList::item {{ padding: 6px 8px; border-radius: 6px; color: {t.text}; }}
#ConversationList::item:hover {{ background: {t.hover}; }}
#ConversationList::item:selected {{ background: {t.selected}; color: {t.text}; }}
#ConversationList::item:disabled {{ color: {t.muted}; background: transparent; }}
#SidebarFooter QLabel {{ color: {t.muted}; }}
#NavButton {{ text-align: left; padding: 6px 8px; border-radius: 6px; color: {t.text}; }}
#NavButton:hover {{ background: {t.hover}; }}
#NavButton[current="true"] {{ background: {t.selected}; font-weight: 600; }}
#CapChip {{ color: {t.muted}; background: {t.hover}; border-radius: 9px; padding: 1px 8px; }}
#RecommendedTag {{ color: {t.accent}; font-weight: 600; padding-left: 6px; }}
#OfflineDot {{ background: {t.ok}; border-radius: 4px; }}
#OnlineDot {{ background: {t.warn}; border-radius: 4px; }}
#UndoBar {{ background: {t.surface}; border: 1px solid {t.faint}; border-radius: 8px; }}

#Header {{ background: {t.window}; border-bottom: 1px solid {t.faint}; }}
#PlanLabel, #Muted, #StatsLabel, #HintLabel, #NoticeLabel {{ color: {t.muted}; }}
#ErrorLabel {{ color: {t.danger}; }}
QComboBox {{
    background: {t.surface}; border: 1px solid {t.faint}; border-radius: 8px; padding: 5px 10px;
    color: {t.text}; min-height: 20px;
}}
QComboBox:hover, QComboBox:focus {{ border-color: {t.muted}; }}
QComboBox::drop-down {{ border: none; width: 24px; }}
QComboBox::down-arrow {{ image: url({chevron_path(t)}); width: 10px; height: 10px; margin-right: 8px; }}
QComboBox QAbstractItemView {{
    background: {t.surface}; color: {t.text}; border: 1px solid {t.faint};
    selection-background-color: {t.selected}; selection-color: {t.text}; outline: none;
}}

QPushButton, QToolButton {{
    background: transparent; color: {t.text}; border: none; border-radius: 6px; padding: 4px 8px;
}}
QPushButton:hover, QToolButton:hover {{ background: {t.hover}; }}
QPushButton:focus, QToolButton:focus, QComboBox:focus, QLineEdit:focus, QListWidget:focus {{
    outline: none;
}}
QPushButton:focus, QToolButton:focus {{ border: 1px solid {t.accent}; }}
QPushButton:disabled, QToolButton:disabled {{ color: {t.muted}; }}
#PrimaryButton {{ background: {t.accent}; color: {t.accent_text}; border-radius: 16px; font-weight: 600; }}
#PrimaryButton:hover {{ background: {t.accent}; }}
#PrimaryButton:disabled {{ background: {t.faint}; color: {t.muted}; }}
#StopButton {{ background: {t.text}; color: {t.window}; border-radius: 16px; font-weight: 600; }}
#EffortGroup QToolButton {{ border: 1px solid {t.faint}; border-radius: 0; padding: 4px 10px; color: {t.muted}; }}
#EffortGroup QToolButton:checked {{ background: {t.selected}; color: {t.text}; }}
#EffortGroup QToolButton:focus {{ border-color: {t.accent}; }}
#ActionButton {{ color: {t.muted}; padding: 2px 6px; }}
#ActionButton:hover {{ color: {t.text}; }}
#LinkButton {{ color: {t.accent}; padding: 0 2px; font-weight: 600; }}
#LinkButton:hover {{ background: transparent; text-decoration: underline; }}
#Chip {{
    background: {t.surface}; border: 1px solid {t.faint}; border-radius: 14px; padding: 8px 14px;
    color: {t.text};
}}
#Chip:hover {{ background: {t.hover}; }}

#Composer {{ background: {t.surface}; border: 1px solid {t.faint}; border-radius: 18px; }}
#Composer[focused="true"] {{ border-color: {t.muted}; }}
#ComposerEdit {{ background: transparent; border: none; color: {t.text}; }}
#EditBanner {{ color: {t.muted}; }}

#UserBubble {{ background: {t.user_bubble}; border-radius: 16px; }}
#ThinkingHeader {{ color: {t.muted}; padding: 2px 4px; text-align: left; }}
#ThinkingBody {{ border: none; border-left: 2px solid {t.rule}; }}
#CodeBlock {{ background: {t.code_bg}; border: 1px solid {t.faint}; border-radius: 8px; }}
#CodeBar {{ background: {t.code_bar}; border-top-left-radius: 8px; border-top-right-radius: 8px; }}
#CodeBar QLabel {{ color: {t.muted}; }}
#CodeScroll, #CodeScroll > QWidget > QWidget {{ background: transparent; }}
#Card {{ background: {t.surface}; border: 1px solid {t.faint}; border-radius: 12px; }}
#SidePanel {{ background: {t.sidebar}; border-left: 1px solid {t.faint}; }}
#SidePanelBody {{ background: {t.sidebar}; }}
#SidePanel QSpinBox, #SidePanel QDoubleSpinBox {{
    background: {t.surface}; color: {t.text}; border: 1px solid {t.faint}; border-radius: 6px; padding: 4px 6px;
}}
#SidePanel QSpinBox:focus, #SidePanel QDoubleSpinBox:focus {{ border-color: {t.accent}; }}
#Banner {{ background: {t.surface}; border: 1px solid {t.faint}; border-radius: 8px; }}
QProgressBar {{ background: {t.faint}; border: none; border-radius: 2px; max-height: 4px; }}
QProgressBar::chunk {{ background: {t.accent}; border-radius: 2px; }}
QPlainTextEdit, QTextEdit {{ background: {t.surface}; color: {t.text}; border: 1px solid {t.faint};
    border-radius: 8px; }}
QMenu {{ background: {t.surface}; color: {t.text}; border: 1px solid {t.faint}; padding: 4px; }}
QMenu::item {{ padding: 6px 16px; border-radius: 4px; }}
QMenu::item:selected {{ background: {t.hover}; }}
QSplitter::handle {{ background: {t.faint}; }}

/* The keyboard focus, visible on every control (buttons take focus from Tab only, see
   keyboard_focus_only, so a mouse click leaves no ring behind). ID rules are repeated because an
   ID selector outranks QPushButton:focus. */
QPushButton:focus, QToolButton:focus, #NewChat:focus, #NavButton:focus, #Chip:focus, #ActionButton:focus,
#LinkButton:focus, #PrimaryButton:focus, #StopButton:focus, #EffortGroup QToolButton:focus,
#ThinkingHeader:focus {{ border: 2px solid {t.accent}; }}
QComboBox:focus, #Sidebar QLineEdit:focus, #ChatPane QLineEdit:focus, QDialog QLineEdit:focus {{
    border: 1px solid {t.accent};
}}
#ConversationList:focus {{ border: 1px solid {t.accent}; border-radius: 8px; }}
QPlainTextEdit:focus, QTextEdit:focus {{ border: 1px solid {t.accent}; }}
#ComposerEdit:focus {{ border: none; }}
"""


def chevron_path(t: Theme) -> str:
    """A small down chevron in the muted colour, as an SVG file (style sheets need a file)."""
    import tempfile
    from pathlib import Path

    from app.core import paths

    name = f"chevron-{t.muted.lstrip('#')}.svg"
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" viewBox="0 0 10 10">'
        f'<path d="M2 3.5 L5 6.5 L8 3.5" fill="none" stroke="{t.muted}" stroke-width="1.5" '
        'stroke-linecap="round" stroke-linejoin="round"/></svg>'
    )
    # A cache the window can do without: a full or read-only disk must not stop it from starting.
    for folder in (lambda: paths.cache_dir() / "ui", lambda: Path(tempfile.gettempdir()) / "hearth-ui"):
        try:
            path = folder() / name
            if not path.exists() or path.read_text(encoding="utf-8") != svg:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(svg, encoding="utf-8")
            return path.as_posix()
        except OSError:
            continue
    return ""


def markdown_css(t: Theme, *, muted: bool = False) -> str:
    """CSS for Markdown HTML inside a QLabel (Qt's rich-text subset of CSS 2.1), as a <style>."""
    return f"<style>{markdown_sheet(t, muted=muted)}</style>"


@functools.lru_cache(maxsize=16)
def markdown_sheet(t: Theme, *, muted: bool = False) -> str:
    """The style sheet of `markdown_css`, for a QTextDocument's default style sheet. Remembered
    per theme: it is asked for every block rendered, and the monospace family costs a font lookup."""
    color = t.muted if muted else t.text
    return f"""
body {{ color: {color}; }}
p {{ margin: 0; line-height: 150%; }}
li {{ line-height: 150%; margin-bottom: 2px; }}
ul, ol {{ margin-top: 0; margin-bottom: 0; margin-left: 0; -qt-list-indent: 1; }}
h1 {{ font-size: 1.5em; font-weight: 600; margin: 6px 0 0 0; }}
h2 {{ font-size: 1.3em; font-weight: 600; margin: 6px 0 0 0; }}
h3 {{ font-size: 1.15em; font-weight: 600; margin: 4px 0 0 0; }}
h4, h5, h6 {{ font-size: 1em; font-weight: 600; margin: 2px 0 0 0; }}
code {{ font-family: '{t.mono_family}'; background-color: {t.inline_code_bg}; }}
a {{ color: {t.accent}; text-decoration: none; }}
blockquote {{ margin: 0 0 0 16px; color: {t.muted}; }}
table {{ border-collapse: collapse; margin: 0; }}
th {{ border: 1px solid {t.faint}; padding: 6px 10px; background-color: {t.code_bar}; font-weight: 600; }}
td {{ border: 1px solid {t.faint}; padding: 6px 10px; }}
hr {{ color: {t.faint}; }}
"""


class ThemeManager(QObject):
    """Applies the theme to the application and follows the OS scheme when it changes."""

    changed = Signal(object)  # Theme

    def __init__(self, app: QApplication, forced: str | None = None) -> None:
        global _manager
        super().__init__(app)
        self._app = app
        self._forced = forced  # "light" | "dark" | None (follow the OS)
        _manager = self
        hints = QGuiApplication.styleHints()
        if hints is not None:
            hints.colorSchemeChanged.connect(lambda _scheme: self.apply())
        self.apply()

    @property
    def mode(self) -> str:
        """ "system", "light" or "dark"."""
        return self._forced or "system"

    def set_mode(self, mode: str) -> None:
        """Follow the OS ("system") or force "light" / "dark"; re-applies at once."""
        forced = mode if mode in ("light", "dark") else None
        if forced != self._forced:
            self._forced = forced
            self.apply()

    def apply(self) -> None:
        global _current
        dark = self._forced == "dark" if self._forced else os_prefers_dark()
        _current = DARK if dark else LIGHT
        if self._app.property(STYLE_FROM_ARGV) != "fusion":  # app.application() passed -style fusion
            self._app.setStyle("Fusion")
        self._app.setPalette(palette_for(_current))
        self._app.setStyleSheet(style_sheet(_current))
        self.changed.emit(_current)


_manager: ThemeManager | None = None


def manager() -> ThemeManager | None:
    """The application's ThemeManager (the latest one made), for the Settings dialog."""
    return _manager
