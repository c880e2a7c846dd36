"""About Hearth (F1, and Settings → About): the version, the llama.cpp build and the engine in use,
the licence and the third-party notices. Also the app icon and the background lookup of the
llama.cpp build choice, which Settings shares."""

from __future__ import annotations

import threading
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from app import __version__
from app.gui.theme import named

if TYPE_CHECKING:
    from app.core.llama_builds import BuildChoice

ICON_SIZES = (16, 32, 64, 128, 256)


@cache
def app_icon() -> QIcon:
    """The window icon, from the PNG sizes that resources/make_icons.py puts into the package."""
    icon = QIcon()
    folder = resources.files("app") / "resources" / "icons"
    for size in ICON_SIZES:
        path = folder / f"hearth-{size}.png"
        if path.is_file():
            icon.addFile(str(path))
    return icon


def notices_text() -> str:
    return (resources.files("app") / "resources" / "THIRD_PARTY_NOTICES.md").read_text(encoding="utf-8")


class BuildChoiceLookup(QObject):
    """Asks app.core.llama_builds which llama.cpp build the engine loads, on a thread of its own: the
    first time on a machine it tests each bundled build in a child process (seconds)."""

    ready = Signal(object)  # BuildChoice

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.choice: BuildChoice | None = None

    def start(self, forced: str | None | bool = False) -> None:
        """`forced=False`: the Settings choice; None: automatic; a name: that build first."""

        def work() -> None:
            from app.core import llama_builds

            wanted = llama_builds.preferred_build() if forced is False else forced
            choice = llama_builds.choose_build(wanted if isinstance(wanted, str) else None)
            try:
                self.ready.emit(choice)  # queued to the GUI thread (this object lives there)
            except RuntimeError:  # the dialog was closed and deleted meanwhile
                pass

        self.ready.connect(self._keep, Qt.ConnectionType.UniqueConnection)
        threading.Thread(target=work, name="hearth-build-choice", daemon=True).start()

    def _keep(self, choice: BuildChoice) -> None:
        self.choice = choice


def show_log_folder() -> bool:
    """Open the logs folder in the system's file manager; False where there is none to open it."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices

    from app.core import logs

    return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(str(logs.log_folder()))))


def build_text(choice: BuildChoice | None) -> str:
    if choice is None:
        return "Checking which llama.cpp build this computer can run…"
    where = str(choice.build.lib_path) if choice.build.lib_path else "the llama_cpp package's own libraries"
    version = f"llama-cpp-python {choice.version}, " if choice.version else ""
    lines = [f"{choice.build.label} build ({version}{where})", choice.reason, *choice.tried]
    return "\n".join(lines)


class AboutDialog(QDialog):
    def __init__(self, engine_in_use: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Hearth")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        layout.setSpacing(12)
        top = QHBoxLayout()
        logo = QLabel()
        logo.setPixmap(QPixmap(str(resources.files("app") / "resources" / "icons" / "hearth-64.png")))
        top.addWidget(logo, 0, Qt.AlignmentFlag.AlignTop)
        heading = QVBoxLayout()
        self.title = QLabel(f"Hearth {__version__}")
        self.title.setAccessibleName("Version")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.title.setFont(font)
        heading.addWidget(self.title)
        tagline = QLabel("Offline chat with local language models. Licensed under the Apache License 2.0.")
        named(tagline, "Muted")
        tagline.setWordWrap(True)
        heading.addWidget(tagline)
        top.addLayout(heading, 1)
        layout.addLayout(top)

        self.build = QLabel(build_text(None))
        self.build.setWordWrap(True)
        self.build.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.build.setAccessibleName("llama.cpp build")
        layout.addWidget(self._titled("llama.cpp build", self.build))
        self.engine = QLabel(engine_in_use or "No model is loaded.")
        self.engine.setWordWrap(True)
        self.engine.setAccessibleName("Engine in use")
        layout.addWidget(self._titled("Engine in use", self.engine))

        self.notices = QTextBrowser()
        self.notices.setAccessibleName("Third-party notices")
        self.notices.setOpenExternalLinks(False)
        self.notices.setMarkdown(notices_text())
        self.notices.setMinimumHeight(220)
        layout.addWidget(self.notices, 1)
        buttons = QHBoxLayout()
        self.log_button = QPushButton("Show log folder")
        self.log_button.setToolTip("The folder of Hearth's log file, to look at or to send with a problem report.")
        self.log_button.clicked.connect(show_log_folder)
        buttons.addWidget(self.log_button)
        buttons.addStretch(1)
        close = named(QPushButton("Close"), "PrimaryButton")
        close.clicked.connect(self.accept)
        buttons.addWidget(close)
        layout.addLayout(buttons)

        self.lookup = BuildChoiceLookup(self)
        self.lookup.ready.connect(self._on_choice)
        self.lookup.start()

    def _titled(self, title: str, body: QWidget) -> QWidget:
        box = QWidget()
        col = QVBoxLayout(box)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        col.addWidget(named(QLabel(title), "Muted"))
        col.addWidget(body)
        return box

    def _on_choice(self, choice: BuildChoice) -> None:
        self.build.setText(build_text(choice))
