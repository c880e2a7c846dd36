"""Starting on a damaged database or a full disk, and the log: the real app as a user starts it
(`python -m app`) in a subprocess, and the real dialogs with pytest-qt.

A full disk is real: a 2 MB tmpfs, mounted directly as root, or inside a user namespace
(`unshare --user --map-root-user --mount`) otherwise; where neither is allowed the test fails
and says why (it never skips)."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, QTimer, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from app.core import logs, paths
from app.core.store import ChatStore, DamagedDatabaseError
from app.gui import app as gui_app

ROOT = Path(__file__).resolve().parents[2]
GARBAGE = bytes(range(256)) * 64  # 16 KiB that is no SQLite file


def hearth(*args: str, home: Path, probe: bool = True, wrap: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HEARTH_HOME": str(home), "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    if probe:
        env["HEARTH_STARTUP_PROBE"] = "1"  # leave once the first frame is up
    command = [*(wrap or []), sys.executable, "-m", "app", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def damaged_home(tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    db = home / "data" / paths.DATABASE_FILENAME
    db.write_bytes(GARBAGE)
    return home, db


def test_a_damaged_database_is_kept_and_the_command_line_says_how_to_start_fresh(tmp_path: Path) -> None:
    home, db = damaged_home(tmp_path)
    refused = hearth(home=home)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "is damaged or is not a Hearth database" in lines[0]
    assert "--move-damaged-database" in lines[0]
    assert db.read_bytes() == GARBAGE  # untouched

    fresh = hearth("--move-damaged-database", home=home)
    assert fresh.returncode == 0 and "window shown" in fresh.stdout, fresh.stderr
    kept = [p for p in db.parent.iterdir() if p.name.startswith(f"{db.name}.damaged-")]
    assert len(kept) == 1 and kept[0].read_bytes() == GARBAGE  # kept, byte for byte
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert "kept as" in (home / "logs" / logs.LOG_NAME).read_text(encoding="utf-8")


def test_the_window_offers_to_move_a_damaged_database_aside(
    themed_app: QApplication, qtbot: QtBot, tmp_path: Path, hearth_home: Path
) -> None:
    db = paths.database_path()
    db.write_bytes(GARBAGE)
    asked: list[str] = []

    def answer(exc: DamagedDatabaseError) -> bool:
        box, fresh = gui_app.fresh_start_box(exc)
        asked.append(box.text())

        def click() -> None:
            modal = QApplication.activeModalWidget()
            assert isinstance(modal, QMessageBox)
            button = next(b for b in modal.buttons() if b.text() == gui_app.FRESH_START_BUTTON)
            button.click()

        QTimer.singleShot(0, click)
        box.exec()
        return box.clickedButton() is fresh

    store = gui_app.open_store(answer)
    try:
        assert asked and "is damaged" in asked[0]
        assert store.list_conversations() == []
        store.create_conversation("works")
        kept = [p for p in db.parent.iterdir() if ".damaged-" in p.name]
        assert [p.read_bytes() for p in kept] == [GARBAGE]
    finally:
        store.close()


def test_refusing_the_fresh_start_leaves_the_database_alone(hearth_home: Path) -> None:
    db = paths.database_path()
    db.write_bytes(GARBAGE)
    try:
        gui_app.open_store(lambda _exc: False)
    except DamagedDatabaseError as exc:
        assert exc.path == db
    else:
        raise AssertionError("a damaged database was opened")
    assert db.read_bytes() == GARBAGE and len(list(db.parent.iterdir())) == 1


def test_another_programs_database_is_offered_the_same_way(hearth_home: Path) -> None:
    db = paths.database_path()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    before = db.read_bytes()
    store = gui_app.open_store(lambda exc: "another program" in str(exc))
    store.close()
    assert [p.read_bytes() for p in db.parent.iterdir() if ".damaged-" in p.name] == [before]
    with ChatStore(db) as again:
        assert again.list_conversations() == []


def _tmpfs_runner(mount_point: Path) -> list[str]:
    """A command prefix that runs its command with a full 2 MB tmpfs at `mount_point`."""
    fill = f"dd if=/dev/zero of={mount_point}/ballast bs=64k 2>/dev/null; "
    script = f"mount -t tmpfs -o size=2m tmpfs {mount_point} && {fill}" + 'exec "$@"'
    prefix = ["sh", "-c", script, "sh"]
    if os.geteuid() != 0:
        prefix = ["unshare", "--user", "--map-root-user", "--mount", *prefix]
    else:
        prefix = ["unshare", "--mount", *prefix]  # the mount dies with the child
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, f"this machine allows no tmpfs for the full-disk test: {probe.stderr.strip()}"
    return prefix


def test_a_full_disk_is_one_sentence_with_the_path_and_no_window(tmp_path: Path) -> None:
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    result = hearth(home=mount_point / "hearth", wrap=_tmpfs_runner(mount_point))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hearth: ") and "is full" in lines[0]
    assert str(mount_point / "hearth") in lines[0]  # which disk: the path is in the sentence
    assert "window shown" not in result.stdout and "Traceback" not in result.stderr


def test_start_up_writes_nothing_to_stderr(tmp_path: Path) -> None:
    result = hearth(home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (tmp_path / "logs" / logs.LOG_NAME).parent.is_dir()


def test_qt_messages_go_to_the_log(themed_app: QApplication, caplog: pytest.LogCaptureFixture) -> None:
    from PySide6.QtCore import qInfo, qInstallMessageHandler

    previous = gui_app.install_qt_log()
    try:
        with caplog.at_level(logging.INFO, logger="hearth.qt"):
            qInfo("a message from Qt")
    finally:
        qInstallMessageHandler(previous)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("hearth.qt", logging.INFO, "a message from Qt")
    ]


class _UrlCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


def test_show_log_folder_opens_the_logs_folder(themed_app: QApplication, qtbot: QtBot) -> None:
    from app.gui.about import AboutDialog

    catcher = _UrlCatcher()
    # Qt's hook: what a file manager would get. The stubs want bytes for the slot's name, but PySide6
    # refuses bytes there at run time and takes a str.
    QDesktopServices.setUrlHandler("file", catcher, "open")  # type: ignore[arg-type]
    try:
        dialog = AboutDialog()
        qtbot.addWidget(dialog)
        assert dialog.log_button.text() == "Show log folder"
        dialog.log_button.click()
        assert [Path(u.toLocalFile()) for u in catcher.urls] == [paths.logs_dir()]
        # Its thread ends before the test (also when its answer already arrived during the click).
        qtbot.waitUntil(lambda: dialog.lookup.choice is not None, timeout=60_000)
    finally:
        QDesktopServices.unsetUrlHandler("file")
    shutil.rmtree(paths.logs_dir(), ignore_errors=True)
