"""The library's state for the GUI: catalog rows with fit verdicts, disk usage, the download queue,
hub search, imports, deletes and the Hugging Face token. Qt-side glue over app.core.catalog,
app.core.downloads and app.core.secrets; everything slow runs on a background thread.

The download manager is created only when it is needed: when the user starts a download or opens
the Downloads page, or at start-up when unfinished jobs were left by the last session (so an
interrupted download continues). Nothing here touches the network unless the user downloads or
searches."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal

from app.core import paths
from app.gui.library.tasks import Background

if TYPE_CHECKING:
    from app.core import catalog
    from app.core.downloads import DownloadJob, DownloadManager, HubModel

# The core modules behind the library (catalog, downloads, secrets) are imported on first use:
# the main window creates this controller at start-up, before its first frame.
UNFINISHED = ("queued", "running", "verifying", "paused")
CLOSE_WAIT_S = 3.0  # the longest the app's exit waits for the download worker and background work


def _core() -> tuple[Any, Any, Any]:
    from app.core import catalog, downloads, secrets

    return catalog, downloads, secrets


def _problem(exc: BaseException) -> str:
    """One sentence for the user; a token never reaches the screen."""
    text = str(exc).strip() or type(exc).__name__
    return _core()[2].redact(text if text.endswith((".", "?", "!")) else text + ".")


class LibraryController(QObject):
    rowsChanged = Signal()  # rows, disk and hardware were refreshed
    jobChanged = Signal(object)  # a DownloadJob snapshot
    modelsChanged = Signal()  # the set of installed models changed (download, import, delete)
    searchDone = Signal(str, object)  # query, list[HubRepo]
    repoDone = Signal(str, object)  # repo, list[tuple[HubModel, Fit]]
    searchFailed = Signal(str)
    tokenChanged = Signal(bool)  # whether a token is stored now
    tokenFailed = Signal(str)  # saving the token failed: why
    message = Signal(str)  # a problem (or news) the user should read
    _job = Signal(object)  # from the download worker thread

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        manager_factory: Callable[[], DownloadManager] | None = None,
        is_loaded: Callable[[str | None], bool] | None = None,
    ) -> None:
        super().__init__(parent)
        self.tasks = Background(self)
        self.rows: list[dict[str, Any]] = []
        self.disk: tuple[int, int] | None = None
        self.hw: Any = None
        self.has_token: bool | None = None
        self.refreshing = False
        self._refresh_again = False
        self._manager_factory = manager_factory
        self._manager: DownloadManager | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._jobs: dict[str, DownloadJob] = {}
        self._catalog: catalog.Catalog | None = None
        self.is_loaded = is_loaded or (lambda _path: False)
        self._closed = False
        self._job.connect(self._on_job, Qt.ConnectionType.QueuedConnection)

    # -- catalog rows, fit verdicts, disk -------------------------------------------------------

    def refresh(self) -> None:
        """Re-read installed models, fit verdicts and disk usage (in the background)."""
        if self.refreshing:
            self._refresh_again = True
            return
        self.refreshing = True

        def work() -> tuple[Any, list[dict[str, Any]], tuple[int, int]]:
            from app.core import catalog, hardware

            root = paths.models_dir()
            hw = hardware.probe(root, refresh=True, check_offload=False)
            rows = catalog.library(hw, catalog=self.catalog(), models_dir=root)
            for row in rows:
                entry = self.catalog().get(str(row["id"])) if row.get("size_bytes") is None else None
                if entry is not None:  # the hub tells the real size at download time; until then an estimate
                    row["size_estimate"] = entry.estimated_size
            return hw, rows, catalog.disk_usage(root)

        self.tasks.submit(work, self._on_rows, self._on_rows_failed, name="library")

    def _on_rows(self, result: tuple[Any, list[dict[str, Any]], tuple[int, int]]) -> None:
        if self._closed:
            return
        self.hw, self.rows, self.disk = result
        self._refreshed()
        self.rowsChanged.emit()

    def _on_rows_failed(self, exc: BaseException) -> None:
        self._refreshed()
        self.message.emit(f"The model library could not be read: {_problem(exc)}")

    def _refreshed(self) -> None:
        self.refreshing = False
        if self._refresh_again:
            self._refresh_again = False
            self.refresh()

    def catalog(self) -> catalog.Catalog:
        if self._catalog is None:
            self._catalog = _core()[0].load_catalog()
        return self._catalog

    def row(self, model_id: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["id"] == model_id), None)

    # -- downloads ------------------------------------------------------------------------------

    @property
    def manager(self) -> DownloadManager | None:
        return self._manager

    def ensure_manager(self) -> DownloadManager | None:
        """The download manager, started on first use; None (with a message) when another Hearth
        process holds the downloads folder."""
        if self._manager is None and not self._closed:
            downloads = _core()[1]
            try:
                manager = (self._manager_factory or downloads.DownloadManager)()
            except (downloads.DownloadError, OSError) as exc:
                self.message.emit(_problem(exc))
                return None
            self._unsubscribe = manager.subscribe(self._job.emit)
            self._manager = manager
            for job in manager.jobs():
                self._jobs[job.id] = job
                self.jobChanged.emit(job)
            manager.start()
        return self._manager

    def resume_unfinished(self) -> None:
        """At start-up: continue downloads the last session left unfinished (and only then start
        the manager)."""
        try:
            saved = json.loads((paths.downloads_dir(create=False) / paths.JOBS_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            return
        jobs = saved.get("jobs", saved) if isinstance(saved, dict) else saved
        if isinstance(jobs, list) and any(isinstance(j, dict) and j.get("state") in UNFINISHED for j in jobs):
            self.ensure_manager()

    def jobs(self) -> list[DownloadJob]:
        return sorted(self._jobs.values(), key=lambda j: j.created_at)

    def job_for_model(self, model_id: str) -> DownloadJob | None:
        matches = [j for j in self.jobs() if j.model_id == model_id]
        unfinished = [j for j in matches if not j.finished]
        candidates = unfinished or matches
        return candidates[-1] if candidates else None

    def download(self, model_id: str) -> DownloadJob | None:
        entry = self.catalog().get(model_id)
        if entry is None:
            self.message.emit(f"'{model_id}' is not in Hearth's catalog.")
            return None
        return self._call(lambda m: m.enqueue(entry))

    def download_hub(self, model: HubModel) -> DownloadJob | None:
        return self._call(
            lambda m: m.enqueue_files(model.model_id, model.name.removesuffix(".gguf"), model.repo, list(model.files))
        )

    def pause(self, job_id: str) -> None:
        self._call(lambda m: m.pause(job_id))

    def resume(self, job_id: str) -> None:
        self._call(lambda m: m.resume(job_id))

    def cancel(self, job_id: str) -> None:
        self._call(lambda m: m.cancel(job_id))

    def remove(self, job_id: str) -> None:
        """Forget a resting job (the manager refuses, with a message, one still running)."""
        self._call(lambda m: m.remove(job_id))
        if self._manager is not None and all(j.id != job_id for j in self._manager.jobs()):
            self._jobs.pop(job_id, None)
            self.jobChanged.emit(None)  # None: the list itself changed

    def _call(self, fn: Callable[[DownloadManager], Any]) -> Any:
        manager = self.ensure_manager()
        if manager is None:
            return None
        downloads = _core()[1]
        try:
            result = fn(manager)
        except downloads.DownloadError as exc:
            self.message.emit(_problem(exc))
            return None
        if isinstance(result, downloads.DownloadJob):
            self._on_job(result)
        return result

    def _on_job(self, job: DownloadJob) -> None:
        if self._closed:
            return  # queued before close(): the window and its store may be gone
        previous = self._jobs.get(job.id)
        if previous is not None and job.updated_at < previous.updated_at:
            return  # an older snapshot delivered late
        self._jobs[job.id] = job
        self.jobChanged.emit(job)
        if job.state.value == "done" and (previous is None or previous.state.value != "done"):
            self.modelsChanged.emit()
            self.refresh()

    def summary(self) -> tuple[int, int, int | None, float]:
        """(unfinished jobs, bytes done, bytes total or None, bytes/s) over the jobs in progress."""
        active = [j for j in self._jobs.values() if j.state.value in ("queued", "running", "verifying")]
        totals = [j.bytes_total for j in active]
        total = sum(t for t in totals if t is not None) if all(t is not None for t in totals) else None
        return len(active), sum(j.bytes_done for j in active), total, sum(j.speed for j in active)

    # -- import and delete -----------------------------------------------------------------------

    def import_file(self, path: str | Path) -> None:
        core_catalog = _core()[0]

        def done(model: catalog.InstalledModel) -> None:
            self.message.emit(f"Imported {model.name}.")
            self.modelsChanged.emit()
            self.refresh()

        def failed(exc: BaseException) -> None:
            self.message.emit(_problem(exc))

        self.tasks.submit(lambda: core_catalog.import_model(path), done, failed, name="import")

    def delete(self, model_id: str) -> bool:
        """Delete an installed model; refused (False, with a message) while it is loaded."""
        row = self.row(model_id)
        path = row.get("path") if row else None
        if path and self.is_loaded(path):
            name = row["name"] if row else model_id
            self.message.emit(f"{name} is loaded in the chat; switch to another model before deleting it.")
            return False

        def done(_: object) -> None:
            self.modelsChanged.emit()
            self.refresh()

        def failed(exc: BaseException) -> None:
            self.message.emit(_problem(exc))
            self.refresh()

        self.tasks.submit(lambda: _core()[0].delete_model(model_id), done, failed, name="delete")
        return True

    def set_models_folder(self, folder: str | Path | None) -> bool:
        """Keep models in `folder` from now on (None: back to the default); says what happened.
        Models already in the old folder stay there."""
        old = paths.models_dir(create=False)
        try:
            new = paths.set_models_dir(folder)
        except OSError as exc:
            self.message.emit(f"Hearth cannot keep models in {folder}: {exc.strerror or exc}. Pick another folder.")
            return False
        note = f"Models are now kept in {new}."
        if new != old:
            note += f" Models in {old} stay there: move their folders over, or import their files."
        self.message.emit(note)
        self.modelsChanged.emit()
        self.refresh()
        return True

    # -- hub search ------------------------------------------------------------------------------

    def search(self, query: str) -> None:
        query = query.strip()
        if not query:
            self.searchFailed.emit("Type a model name to search Hugging Face.")
            return
        _catalog, downloads, secrets = _core()
        self.tasks.submit(
            lambda: downloads.search_gguf_repos(query, token=secrets.get_hf_token()),
            lambda repos: self.searchDone.emit(query, repos),
            lambda exc: self.searchFailed.emit(_problem(exc)),
            name="search",
        )

    def open_repo(self, repo: str) -> None:
        from app.core import hardware

        core_catalog, downloads, secrets = _core()

        def work() -> list[tuple[HubModel, catalog.Fit]]:
            hw = self.hw or hardware.probe(paths.models_dir(), check_offload=False)
            models = downloads.repo_gguf_models(repo, token=secrets.get_hf_token())
            return [(m, core_catalog.fit_for_size(m.size_bytes, hw)) for m in models]

        self.tasks.submit(
            work,
            lambda found: self.repoDone.emit(repo, found),
            lambda exc: self.searchFailed.emit(_problem(exc)),
            name="repo",
        )

    # -- the Hugging Face token ------------------------------------------------------------------

    def check_token(self) -> None:
        self.tasks.submit(_core()[2].has_hf_token, self._token_state, name="token")

    def set_token(self, token: str) -> None:
        secrets = _core()[2]

        def failed(exc: BaseException) -> None:
            self.tokenFailed.emit(
                _problem(exc)
                if isinstance(exc, secrets.SecretsError)
                else "The token could not be saved in the system keyring."
            )

        self.tasks.submit(lambda: secrets.set_hf_token(token), lambda _: self._token_state(True), failed, name="token")

    def delete_token(self) -> None:
        self.tasks.submit(_core()[2].delete_hf_token, lambda _: self._token_state(False), name="token")

    def _token_state(self, present: bool) -> None:
        self.has_token = bool(present)
        self.tokenChanged.emit(self.has_token)

    # -- shutdown ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Interrupt a running download (it continues next time) and drop pending work."""
        if self._closed:
            return
        self._closed = True
        self.tasks.forget()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._manager is not None:
            # A download stuck in a stalled read is not waited for long: its .part file is a true
            # prefix whenever the process ends, and the saved job continues on the next start.
            self._manager.close(timeout=CLOSE_WAIT_S)
            self._manager = None
        self.tasks.join(CLOSE_WAIT_S)  # a slow hub search is abandoned (its result is dropped)
