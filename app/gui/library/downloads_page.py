"""The Downloads page: one row per job (bar, bytes, speed, ETA, Pause / Resume / Cancel, a clear line
when the user must act) and a summary over the jobs in progress; a finished one opens in chat."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.core.downloads import DownloadJob, ErrorKind, JobState
from app.gui.library.controller import LibraryController
from app.gui.library.widgets import JobProgress, page_scaffold, size_text, speed_text
from app.gui.theme import bold, named


class JobRow(QFrame):
    openClicked = Signal(str)  # installed path
    removeClicked = Signal(str)  # job id
    tokenRequested = Signal()

    def __init__(self, job: DownloadJob, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(6)
        top = QHBoxLayout()
        self.title = bold(QLabel())
        top.addWidget(self.title, 1)
        self.open_button = named(QPushButton("Open in chat"), "PrimaryButton")
        self.open_button.setMinimumHeight(28)
        self.open_button.clicked.connect(lambda: self.openClicked.emit(self.job.installed_path or ""))
        self.token_button = QPushButton("Add token…")
        self.token_button.clicked.connect(self.tokenRequested)
        self.remove_button = QPushButton("Remove from list")
        self.remove_button.clicked.connect(lambda: self.removeClicked.emit(self.job.id))
        for button in (self.open_button, self.token_button, self.remove_button):
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            top.addWidget(button)
        layout.addLayout(top)
        self.progress = JobProgress()
        layout.addWidget(self.progress)
        self.set_job(job)

    def set_job(self, job: DownloadJob) -> None:
        self.job = job
        self.title.setText(f"{job.name}   ·   {job.repo}")
        self.setAccessibleName(f"Download of {job.name}")
        self.progress.set_job(job)
        done = job.state == JobState.DONE
        self.open_button.setVisible(done and bool(job.installed_path))
        self.open_button.setAccessibleName(f"Open {job.name} in chat")
        self.token_button.setVisible(job.error_kind == ErrorKind.GATED and not done)
        self.remove_button.setVisible(
            job.state in (JobState.DONE, JobState.CANCELLED, JobState.FAILED, JobState.PAUSED)
        )
        self.remove_button.setAccessibleName(f"Remove {job.name} from the list")
        self.progress.bar.setVisible(not done and job.state != JobState.CANCELLED)


class DownloadsPage(QWidget):
    backRequested = Signal()
    openModel = Signal(str)  # path
    tokenRequested = Signal()

    def __init__(self, controller: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.rows: dict[str, JobRow] = {}
        column, _top, back = page_scaffold(self, "Downloads")
        back.clicked.connect(self.backRequested)
        self.summary = named(QLabel(), "Muted")
        self.summary.setAccessibleName("Downloads summary")
        column.addWidget(self.summary)
        self.notice = named(QLabel(), "NoticeLabel")
        self.notice.setWordWrap(True)
        self.notice.setVisible(False)
        column.addWidget(self.notice)
        self.list = QVBoxLayout()
        self.list.setSpacing(8)
        column.addLayout(self.list)
        column.addStretch(1)
        controller.jobChanged.connect(self._on_job)
        controller.message.connect(self._show_notice)
        self.sync()

    def sync(self) -> None:
        jobs = self.controller.jobs()
        ids = {j.id for j in jobs}
        for job_id in [i for i in self.rows if i not in ids]:
            self.rows.pop(job_id).deleteLater()
        for job in reversed(jobs):  # newest first
            self._on_job(job, update_summary=False)
        self._update_summary()

    def _on_job(self, job: DownloadJob | None, update_summary: bool = True) -> None:
        if job is None:
            self.sync()
            return
        row = self.rows.get(job.id)
        if row is None:
            row = JobRow(job)
            row.openClicked.connect(self.openModel)
            row.removeClicked.connect(self.controller.remove)
            row.tokenRequested.connect(self.tokenRequested)
            row.progress.pauseClicked.connect(self.controller.pause)
            row.progress.resumeClicked.connect(self.controller.resume)
            row.progress.cancelClicked.connect(self.controller.cancel)
            self.rows[job.id] = row
            self.list.insertWidget(0, row)
        else:
            row.set_job(job)
        if update_summary:
            self._update_summary()

    def _update_summary(self) -> None:
        count, done, total, speed = self.controller.summary()
        if not self.rows:
            self.summary.setText("No downloads. Pick a model in the Library.")
        elif count == 0:
            self.summary.setText("Nothing downloading right now.")
        else:
            amount = f"{size_text(done)} of {size_text(total)}" if total else size_text(done)
            parts = [f"{count} download{'s' if count != 1 else ''} in progress", amount, speed_text(speed)]
            self.summary.setText(" · ".join(p for p in parts if p))

    def _show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
