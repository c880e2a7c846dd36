"""The Library page: catalog and installed models as cards with fit badges and one primary action
(Download / progress with Pause and Cancel / Use in chat), hub search, import, disk usage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core import paths
from app.core.catalog import Fit
from app.core.downloads import DownloadJob, ErrorKind, HubModel, HubRepo, JobState
from app.gui.library.controller import LibraryController
from app.gui.library.widgets import FitBadge, JobProgress, chip, page_scaffold, repolish, row_size_text, size_text
from app.gui.theme import bold, named


def _clear_layout(layout: QHBoxLayout | QVBoxLayout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        widget = item.widget() if item is not None else None
        if widget is not None:
            widget.deleteLater()


def _inside_models_dir(path: object) -> bool:
    if not path:
        return False
    try:
        Path(str(path)).resolve().relative_to(paths.models_dir(create=False).resolve())
    except (ValueError, OSError):
        return False
    return True


def _context_text(n: int | None) -> str:
    if not n:
        return ""
    return f"{n // 1024}K context" if n >= 1024 and n % 1024 == 0 else f"{n:,} context"


def _params_text(params: dict[str, Any] | None) -> str:
    if not params or not params.get("total"):
        return ""
    total, active = params["total"], params.get("active")
    text = f"{total / 1e9:.1f}B params".replace(".0B", "B")
    if active and active != total:
        text += f" ({active / 1e9:.1f}B active)"
    return text


class ModelCard(QFrame):
    """One model: what it is, whether it fits, and what can be done with it."""

    downloadClicked = Signal(str)  # model id
    useClicked = Signal(str)
    deleteClicked = Signal(str)
    tokenRequested = Signal()

    def __init__(self, row: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.model_id = str(row["id"])
        self.row = row
        self.job: DownloadJob | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(6)

        top = QHBoxLayout()
        self.title = bold(QLabel(), 1.1)
        top.addWidget(self.title)
        self.recommended = named(QLabel("Recommended"), "RecommendedTag")
        top.addWidget(self.recommended)
        top.addStretch(1)
        self.badge = FitBadge()
        top.addWidget(self.badge)
        layout.addLayout(top)

        self.description = named(QLabel(), "Muted")
        self.description.setWordWrap(True)
        layout.addWidget(self.description)
        self.meta = named(QLabel(), "Muted")
        self.meta.setWordWrap(True)
        layout.addWidget(self.meta)
        self.chips = QHBoxLayout()
        self.chips.setSpacing(6)
        layout.addLayout(self.chips)
        self.fit_reason = named(QLabel(), "Muted")
        self.fit_reason.setWordWrap(True)
        layout.addWidget(self.fit_reason)

        actions = QHBoxLayout()
        actions.setSpacing(8)
        self.download_button = named(QPushButton("Download"), "PrimaryButton")
        self.use_button = named(QPushButton("Use in chat"), "PrimaryButton")
        self.delete_button = QPushButton("Delete")
        self.token_button = QPushButton("Add token…")
        for button in (self.download_button, self.use_button):
            button.setMinimumHeight(32)
            button.setMinimumWidth(120)
        for button in (self.download_button, self.use_button, self.delete_button, self.token_button):
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            actions.addWidget(button)
        actions.addStretch(1)
        self.download_button.clicked.connect(lambda: self.downloadClicked.emit(self.model_id))
        self.use_button.clicked.connect(lambda: self.useClicked.emit(self.model_id))
        self.delete_button.clicked.connect(lambda: self.deleteClicked.emit(self.model_id))
        self.token_button.clicked.connect(self.tokenRequested)
        layout.addLayout(actions)
        self.progress = JobProgress()
        layout.addWidget(self.progress)
        self.problem = named(QLabel(), "ErrorLabel")
        self.problem.setWordWrap(True)
        layout.addWidget(self.problem)
        self.set_row(row)

    def set_row(self, row: dict[str, Any]) -> None:
        self.row = row
        name = str(row.get("name") or row["id"])
        self.title.setText(name)
        self.setAccessibleName(f"Model {name}")
        self.recommended.setVisible(bool(row.get("recommended")) and bool(row.get("fit", {}).get("fits")))
        self.description.setText(str(row.get("description") or row.get("repo") or ""))
        self.description.setVisible(bool(self.description.text()))
        bits = [
            row_size_text(row),
            _context_text(row.get("context_length")),
            _params_text(row.get("parameters")),
            str(row.get("quantization") or ""),
            str(row.get("license") or ""),
        ]
        self.meta.setText(" · ".join(b for b in bits if b))
        _clear_layout(self.chips)
        for cap in row.get("capabilities") or []:
            self.chips.addWidget(chip(str(cap).capitalize()))
        self.chips.addStretch(1)
        fit = row.get("fit") or {}
        self.badge.set_fit(fit)
        self.fit_reason.setText(str(fit.get("reason", "")))
        for button, verb in (
            (self.download_button, "Download"),
            (self.use_button, "Use in chat"),
            (self.delete_button, "Delete"),
        ):
            button.setAccessibleName(f"{verb} {name}")
        self._update_actions()

    def set_job(self, job: DownloadJob | None) -> None:
        self.job = job
        if job is not None:
            self.progress.set_job(job)
        self._update_actions()

    @property
    def installed(self) -> bool:
        return bool(self.row.get("installed"))

    def _update_actions(self) -> None:
        job = self.job
        downloading = (
            job is not None
            and not self.installed
            and job.state in (JobState.QUEUED, JobState.RUNNING, JobState.VERIFYING, JobState.PAUSED, JobState.FAILED)
        )
        self.progress.setVisible(downloading)
        self.download_button.setVisible(not self.installed and not downloading)
        self.download_button.setEnabled(self.row.get("source") in (None, "catalog"))
        self.use_button.setVisible(self.installed)
        self.delete_button.setVisible(self.installed and self.row.get("source") != "starter")
        gated = job is not None and job.error_kind == ErrorKind.GATED and job.state != JobState.DONE
        self.token_button.setVisible(gated)
        problem = str(self.row.get("problem") or "")
        cancelled = job is not None and job.state == JobState.CANCELLED
        if job is not None and (cancelled or (job.state == JobState.FAILED and not downloading)):
            problem = job.message
        repolish(self.problem, "Muted" if cancelled else "ErrorLabel")  # a cancel is no error
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))


class HubResults(QWidget):
    """Hub search results: repos, then the chosen repo's GGUF models with sizes and fit badges."""

    repoChosen = Signal(str)
    downloadRequested = Signal(object)  # HubModel

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(6)
        self.status = named(QLabel(), "Muted")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Search status")
        self.layout_.addWidget(self.status)
        self.items = QVBoxLayout()
        self.items.setSpacing(4)
        self.layout_.addLayout(self.items)
        self.repo_buttons: dict[str, QPushButton] = {}
        self.model_rows: dict[str, QWidget] = {}

    def _clear(self) -> None:
        self.repo_buttons.clear()
        self.model_rows.clear()
        _clear_layout(self.items)

    def show_status(self, text: str, error: bool = False) -> None:
        repolish(self.status, "ErrorLabel" if error else "Muted")
        self.status.setText(text)
        self.setVisible(True)

    def show_repos(self, query: str, repos: list[HubRepo]) -> None:
        self._clear()
        if not repos:
            self.show_status(f"No GGUF models on Hugging Face match “{query}”.")
            return
        self.show_status(f"{len(repos)} GGUF repositories match “{query}”; pick one to see its files.")
        for repo in repos:
            label = f"{repo.id}   ·   {repo.downloads:,} downloads" + ("   ·   gated" if repo.gated else "")
            button = QPushButton(label)
            button.setStyleSheet("text-align: left;")
            button.setAccessibleName(f"Show files of {repo.id}")
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.clicked.connect(lambda _=False, r=repo.id: self.repoChosen.emit(r))
            self.repo_buttons[repo.id] = button
            self.items.addWidget(button)

    def show_models(self, repo: str, found: list[tuple[HubModel, Fit]]) -> None:
        self._clear()
        if not found:
            self.show_status(f"{repo} has no GGUF chat model files.")
            return
        self.show_status(f"{repo}: {len(found)} GGUF model{'s' if len(found) != 1 else ''}.")
        for model, fit in found:
            row = named(QFrame(), "Card")
            row.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
            line = QHBoxLayout(row)
            line.setContentsMargins(12, 8, 12, 8)
            parts = f" ({len(model.files)} parts)" if len(model.files) > 1 else ""
            name = QLabel(f"{model.name}{parts}   ·   {size_text(model.size_bytes)}")
            name.setAccessibleName(f"{model.name}, {size_text(model.size_bytes)}")
            line.addWidget(name, 1)
            badge = FitBadge()
            badge.set_fit(fit.to_dict())
            line.addWidget(badge)
            button = named(QPushButton("Download"), "PrimaryButton")
            button.setMinimumHeight(28)
            button.setAccessibleName(f"Download {model.name}")
            button.clicked.connect(lambda _=False, m=model: self.downloadRequested.emit(m))
            line.addWidget(button)
            self.model_rows[model.name] = row
            self.items.addWidget(row)


class LibraryPage(QWidget):
    backRequested = Signal()
    useModel = Signal(str)  # the path of an installed model ("" for the starter model)
    tokenRequested = Signal()

    def __init__(self, controller: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.cards: dict[str, ModelCard] = {}
        column, top, self.back_button = page_scaffold(self, "Library")
        self.back_button.clicked.connect(self.backRequested)
        self.import_button = QPushButton("Import GGUF…")
        self.import_button.setAccessibleName("Import a GGUF file")
        self.import_button.setToolTip("Add a .gguf file from this computer (it is checked first)")
        self.import_button.clicked.connect(self.choose_import)
        top.addWidget(self.import_button)
        self.folder_button = QPushButton("Models folder…")
        self.folder_button.setAccessibleName("Choose the models folder")
        self.folder_button.setToolTip("Where downloaded and imported models are kept")
        self.folder_button.clicked.connect(self.choose_folder)
        top.addWidget(self.folder_button)
        self.token_button = QPushButton("Hugging Face token…")
        self.token_button.setAccessibleName("Hugging Face token")
        self.token_button.clicked.connect(self.tokenRequested)
        top.addWidget(self.token_button)

        self.disk_label = named(QLabel("Reading the models folder…"), "Muted")
        self.disk_label.setAccessibleName("Disk usage")
        self.disk_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column.addWidget(self.disk_label)
        self.notice = named(QLabel(), "NoticeLabel")
        self.notice.setWordWrap(True)
        self.notice.setAccessibleName("Library message")
        self.notice.setVisible(False)
        column.addWidget(self.notice)

        search_row = QHBoxLayout()
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText(
            "Filter the models below · Enter searches Hugging Face (needs the internet)"
        )
        self.search_edit.setAccessibleName("Filter models, or search Hugging Face")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.returnPressed.connect(self.search)
        self.search_edit.textChanged.connect(self.filter_cards)
        self.search_button = QPushButton("Search")
        self.search_button.setAccessibleName("Search Hugging Face")
        self.search_button.clicked.connect(self.search)
        search_row.addWidget(self.search_edit, 1)
        search_row.addWidget(self.search_button)
        column.addLayout(search_row)
        self.results = HubResults()
        self.results.setVisible(False)
        self.results.repoChosen.connect(self._open_repo)
        self.results.downloadRequested.connect(self._download_hub)
        column.addWidget(self.results)

        self.installed_title = bold(QLabel("On this computer"))
        column.addWidget(self.installed_title)
        self.installed_list = QVBoxLayout()
        self.installed_list.setSpacing(8)
        column.addLayout(self.installed_list)
        self.available_title = bold(QLabel("Available to download"))
        column.addWidget(self.available_title)
        self.available_list = QVBoxLayout()
        self.available_list.setSpacing(8)
        column.addLayout(self.available_list)
        column.addStretch(1)

        controller.rowsChanged.connect(self.rebuild)
        controller.jobChanged.connect(self._on_job)
        controller.message.connect(self.show_notice)
        controller.searchDone.connect(self.results.show_repos)
        controller.repoDone.connect(self.results.show_models)
        controller.searchFailed.connect(lambda text: self.results.show_status(text, error=True))
        self.rebuild()

    # -- cards -------------------------------------------------------------------------------------

    def rebuild(self) -> None:
        rows = self.controller.rows
        wanted = {str(r["id"]) for r in rows}
        for model_id in [m for m in self.cards if m not in wanted]:
            self.cards.pop(model_id).deleteLater()
        # Installed first (the starter last of them), then the catalog, recommended first.
        installed = [r for r in rows if r.get("installed")]
        available = sorted(
            (r for r in rows if not r.get("installed")),
            key=lambda r: (
                not (r.get("recommended") and r.get("fit", {}).get("fits")),
                not r.get("fit", {}).get("fits"),
            ),
        )
        for layout, group in ((self.installed_list, installed), (self.available_list, available)):
            for row in group:
                found = self.cards.get(str(row["id"]))
                if found is None:
                    card = ModelCard(row)
                    card.downloadClicked.connect(self._download)
                    card.useClicked.connect(self._use)
                    card.deleteClicked.connect(self._delete)
                    card.tokenRequested.connect(self.tokenRequested)
                    card.progress.pauseClicked.connect(self.controller.pause)
                    card.progress.resumeClicked.connect(self.controller.resume)
                    card.progress.cancelClicked.connect(self.controller.cancel)
                    self.cards[card.model_id] = card
                else:
                    card = found
                    card.set_row(row)
                card.set_job(self.controller.job_for_model(card.model_id))
                self.installed_list.removeWidget(card)
                self.available_list.removeWidget(card)
                layout.addWidget(card)  # in order: re-adding moves it into place
        self.installed_title.setVisible(bool(installed))
        self.available_title.setVisible(bool(available))
        self.filter_cards(self.search_edit.text())
        if self.controller.disk is not None:
            used, free = self.controller.disk
            self.disk_label.setText(
                f"Models use {size_text(used)} · {size_text(free)} free on this disk · {paths.models_dir(create=False)}"
            )
        elif self.controller.refreshing:
            self.disk_label.setText("Reading the models folder…")

    def filter_cards(self, text: str) -> None:
        """Show only the cards whose name, id, family or description holds every typed word (as
        the user types; Enter then searches Hugging Face as well)."""
        words = text.casefold().split()
        shown = {"installed": 0, "available": 0}
        for card in self.cards.values():
            row = card.row
            haystack = " ".join(
                str(row.get(k) or "") for k in ("name", "id", "repo", "description", "quantization")
            ).casefold()
            match = all(w in haystack for w in words)
            card.setVisible(match)
            if match:
                shown["installed" if card.installed else "available"] += 1
        has_installed = any(c.installed for c in self.cards.values())
        has_available = any(not c.installed for c in self.cards.values())
        self.installed_title.setVisible(has_installed and shown["installed"] > 0)
        self.available_title.setVisible(has_available and shown["available"] > 0)
        if words and not any(shown.values()):
            self.show_notice(f"No model here matches “{text.strip()}”; press Enter to search Hugging Face.")
        elif self.notice.text().startswith("No model here matches"):
            self.show_notice("")

    def _on_job(self, job: DownloadJob | None) -> None:
        if job is None:
            for card in self.cards.values():
                card.set_job(self.controller.job_for_model(card.model_id))
            return
        shown = self.cards.get(job.model_id)
        if shown is not None:
            shown.set_job(self.controller.job_for_model(job.model_id))

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    # -- actions -----------------------------------------------------------------------------------

    def _download(self, model_id: str) -> None:
        self.show_notice("")
        row = self.controller.row(model_id) or {}
        disk = self.controller.disk
        size = row.get("size_bytes")
        if disk is not None and size and size > disk[1]:
            self.show_notice(
                f"{row.get('name', model_id)} needs {size_text(size)}, but only {size_text(disk[1])} "
                "is free on this disk; free some space and try again."
            )
            return
        self.controller.download(model_id)

    def _download_hub(self, model: HubModel) -> None:
        self.show_notice("")
        job = self.controller.download_hub(model)
        if job is not None:
            self.show_notice(f"Downloading {model.name}; follow it in Downloads.")

    def _open_repo(self, repo: str) -> None:
        self.results.show_status(f"Reading the files of {repo}…")
        self.controller.open_repo(repo)

    def _use(self, model_id: str) -> None:
        row = self.controller.row(model_id) or {}
        self.useModel.emit("" if row.get("source") == "starter" else str(row.get("path") or ""))

    def _delete(self, model_id: str) -> None:
        row = self.controller.row(model_id) or {}
        name = row.get("name", model_id)
        inside = row.get("source") != "import" or _inside_models_dir(row.get("path"))
        detail = (
            "Its files are removed from the models folder."
            if inside
            else "Hearth forgets it; the file itself stays where it is."
        )
        answer = QMessageBox.question(
            self,
            "Delete model",
            f"Delete {name}? {detail}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.controller.delete(model_id)

    def choose_import(self) -> None:
        name, _filter = QFileDialog.getOpenFileName(
            self, "Import a GGUF model", str(Path.home()), "GGUF models (*.gguf)"
        )
        if name:
            self.import_file(name)

    def import_file(self, path: str | Path) -> None:
        self.show_notice(f"Checking {Path(path).name}…")
        self.controller.import_file(path)

    def choose_folder(self) -> None:
        current = str(paths.models_dir(create=False))
        name = QFileDialog.getExistingDirectory(self, "Keep models in", current)
        if name:
            self.set_models_folder(name)

    def set_models_folder(self, folder: str | Path | None) -> None:
        """Keep models in `folder` from now on (None: the default folder)."""
        self.controller.set_models_folder(folder)

    def search(self) -> None:
        query = self.search_edit.text().strip()
        self.results.show_status(f"Searching Hugging Face for “{query}”…" if query else "")
        self.controller.search(query)
