"""Small pieces shared by the Library and Downloads pages: sizes, speeds and ETAs in words, the fit
badge, capability chips, and a job's progress block (bar, numbers, Pause / Resume / Cancel)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.downloads import DownloadJob, ErrorKind, JobState
from app.core.units import format_bytes, format_rate
from app.gui.theme import COLUMN_WIDTH, bold, current, named
from app.gui.theme import repolish as theme_repolish

FIT_TEXT = {
    "gpu": "Fits your GPU",
    "partial": "GPU + CPU",
    "cpu": "Runs on CPU",
    "too_large": "Too large",
    "unknown": "Fit unknown",
}


size_text = format_bytes  # the one formatter (app.core.units), under the name the pages use
speed_text = format_rate


def row_size_text(row: dict[str, object]) -> str:
    """A library row's size: the catalog's or the file's, else the estimate from its parameters."""
    size, estimate = row.get("size_bytes"), row.get("size_estimate")
    if isinstance(size, int) and size > 0:
        return size_text(size)
    if isinstance(estimate, int) and estimate > 0:
        return f"about {size_text(estimate)}"
    return ""


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"


def progress_text(job: DownloadJob) -> str:
    total = job.bytes_total
    parts = [f"{size_text(job.bytes_done)} of {size_text(total)}" if total else size_text(job.bytes_done)]
    if job.state == JobState.RUNNING:
        parts += [t for t in (speed_text(job.speed), eta_text(job.eta_seconds)) if t]
    return " · ".join(parts)


class FitBadge(QLabel):
    """A coloured pill: green fits the GPU, amber CPU or partial, red too large; the planner's
    sentence is its tooltip and accessible description."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("FitBadge")
        self.verdict = "unknown"

    def set_fit(self, fit: dict[str, object]) -> None:
        self.verdict = str(fit.get("verdict", "unknown"))
        reason = str(fit.get("reason", ""))
        t = current()
        colour = {"gpu": t.ok, "partial": t.warn, "cpu": t.warn, "too_large": t.danger}.get(self.verdict, t.muted)
        self.setText(FIT_TEXT.get(self.verdict, self.verdict))
        self.setToolTip(reason)
        self.setAccessibleName(f"Fit: {self.text()}")
        self.setAccessibleDescription(reason)
        self.setStyleSheet(
            f"#FitBadge {{ color: {colour}; border: 1px solid {colour}; border-radius: 9px; padding: 1px 8px; }}"
        )


def chip(text: str) -> QLabel:
    label = named(QLabel(text), "CapChip")
    label.setAccessibleName(f"Capability: {text}")
    return label


class JobProgress(QWidget):
    """A download's bar, numbers and controls. Emits the job id with the button pressed."""

    pauseClicked = Signal(str)
    resumeClicked = Signal(str)
    cancelClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: DownloadJob | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setAccessibleName("Download progress")
        layout.addWidget(self.bar)
        row = QHBoxLayout()
        row.setSpacing(8)
        self.numbers = named(QLabel(), "Muted")
        self.numbers.setAccessibleName("Downloaded")
        row.addWidget(self.numbers, 1)
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.cancel_button = QPushButton("Cancel")
        for button, signal in (
            (self.pause_button, self.pauseClicked),
            (self.resume_button, self.resumeClicked),
            (self.cancel_button, self.cancelClicked),
        ):
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.clicked.connect(lambda _=False, s=signal: self.job and s.emit(self.job.id))
            row.addWidget(button)
        layout.addLayout(row)
        self.state_label = QLabel()
        self.state_label.setWordWrap(True)
        self.state_label.setAccessibleName("Download status")
        layout.addWidget(self.state_label)

    def set_job(self, job: DownloadJob) -> None:
        self.job = job
        name = job.name
        for button, verb in (
            (self.pause_button, "Pause"),
            (self.resume_button, "Resume"),
            (self.cancel_button, "Cancel"),
        ):
            button.setAccessibleName(f"{verb} download of {name}")
        percent = job.percent
        if percent is None:
            self.bar.setRange(0, 0)  # busy indicator until the size is known
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(percent * 10))
        self.numbers.setText(progress_text(job) + (f" · {percent:.0f}%" if percent is not None else ""))
        running = job.state in (JobState.QUEUED, JobState.RUNNING, JobState.VERIFYING)
        self.pause_button.setVisible(running and job.state != JobState.VERIFYING)
        self.resume_button.setVisible(
            job.state in (JobState.PAUSED, JobState.FAILED)
            and job.error_kind not in (ErrorKind.HASH_MISMATCH, ErrorKind.NOT_FOUND)
        )
        self.cancel_button.setVisible(not job.finished or job.state == JobState.FAILED)
        needs_user = job.state in (JobState.PAUSED, JobState.FAILED) and job.error_kind is not None
        repolish(self.state_label, "ErrorLabel" if needs_user else "Muted")
        self.state_label.setText(job.message)


def repolish(widget: QWidget, name: str) -> None:
    """Give a widget another style-sheet name and apply it now."""
    if widget.objectName() != name:
        widget.setObjectName(name)
        theme_repolish(widget)


def page_scaffold(page: QWidget, title: str) -> tuple[QVBoxLayout, QHBoxLayout, QPushButton]:
    """A full-height page beside the sidebar: a scrolling, centred column in the chat's width with
    a top row ("← Chat", the title in large type). Returns (column, top row, back button)."""
    page.setObjectName("ChatPane")
    page.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
    outer = QVBoxLayout(page)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    outer.addWidget(scroll)
    body = named(QWidget(), "ChatPane")
    scroll.setWidget(body)
    centre = QHBoxLayout(body)
    centre.setContentsMargins(24, 16, 24, 24)
    column_widget = QWidget()
    column_widget.setMaximumWidth(COLUMN_WIDTH)
    centre.addStretch(0)
    centre.addWidget(column_widget, 1)
    centre.addStretch(0)
    column = QVBoxLayout(column_widget)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(12)
    top = QHBoxLayout()
    back = QPushButton("← Chat")
    back.setAccessibleName("Back to the chat")
    top.addWidget(back)
    top.addWidget(bold(QLabel(title), 1.5))
    top.addStretch(1)
    column.addLayout(top)
    return column, top, back
