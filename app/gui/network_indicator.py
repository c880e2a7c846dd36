"""The sidebar's network indicator: it tells the truth about this session's network calls.

Green "Offline · nothing leaves this computer" until something reaches another machine; then it
names the host and why ("Online · huggingface.co (download)"), and keeps naming it for the rest of
the session. While a remote engine answers the chats it says so and names that host. The tooltip
lists every host contacted this session. The calls themselves are recorded by the core
(`app.core.netlog`), on whatever thread made them; they reach this widget as queued signals.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QWidget

from app.core import netlog
from app.gui.theme import named

OFFLINE_TEXT = "Offline · nothing leaves this computer"


class NetworkIndicator(QWidget):
    _contact = Signal(object)  # a netlog.Contact, emitted on any thread, delivered queued

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SidebarFooter")
        layout = QGridLayout(self)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.setHorizontalSpacing(6)
        self.dot = named(QFrame(), "OfflineDot")
        self.dot.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.dot.setFixedSize(8, 8)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.api = named(QLabel(), "Muted")  # "API on :8080 · 2 waiting" while the local API is on
        self.api.setAccessibleName("Local API")
        self.api.setVisible(False)
        layout.addWidget(self.dot, 0, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.label, 0, 1)
        layout.addWidget(self.api, 1, 1)
        layout.setColumnStretch(1, 1)
        self._remote: str | None = None
        self._contact.connect(self._refresh, Qt.ConnectionType.QueuedConnection)
        self._stop = netlog.listen(self._contact.emit)
        self.destroyed.connect(lambda *_: self._stop())
        self._refresh()

    @property
    def text(self) -> str:
        return self.label.text()

    def set_api(self, text: str) -> None:
        """The local API's state ("" while it is off)."""
        self.api.setText(text)
        self.api.setVisible(bool(text))

    def set_remote(self, host: str | None) -> None:
        """A remote engine (at `host`) answers the chats now; None: the local engine does."""
        self._remote = host
        self._refresh()

    def _refresh(self, *_args: object) -> None:
        contacts = netlog.contacts()
        if self._remote:
            text, state = f"Remote engine · chats go to {self._remote}", "OnlineDot"
        elif contacts:
            latest = max(contacts, key=lambda c: c.last)
            hosts = {c.host for c in contacts}
            more = f" and {len(hosts) - 1} more" if len(hosts) > 1 else ""
            text, state = f"Online · {latest.host} ({latest.purpose}){more}", "OnlineDot"
        else:
            text, state = OFFLINE_TEXT, "OfflineDot"
        self.label.setText(text)
        self.label.setAccessibleName(text)
        if self.dot.objectName() != state:
            self.dot.setObjectName(state)
            self.dot.style().unpolish(self.dot)
            self.dot.style().polish(self.dot)
        if contacts:
            lines = [
                f"{c.host}: {c.purpose}, {c.count} call{'s' if c.count != 1 else ''}, "
                f"last at {time.strftime('%H:%M', time.localtime(c.last))}"
                for c in contacts
            ]
            self.setToolTip("Network calls this session:\n" + "\n".join(lines))
        else:
            self.setToolTip("No network call this session: chats, models and search history stay here.")
