"""The app as a user starts it: `hearth --selftest`, and `hearth` itself (one instance only)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def hearth(*args: str, home: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HEARTH_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_selftest_with_a_model_file(tmp_path: Path, starter_path: Path) -> None:
    result = hearth("--selftest", "--model", str(starter_path), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "selftest passed" in result.stdout and "tok/s" in result.stdout
    assert not (tmp_path / "data" / "hearth.sqlite3").exists()  # the user's history is not touched


def test_selftest_with_the_default_starter_model(tmp_path: Path) -> None:
    result = hearth("--selftest", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Gemma 3" in result.stdout


def test_selftest_with_a_missing_model_fails_clearly(tmp_path: Path) -> None:
    result = hearth("--selftest", "--model", str(tmp_path / "nope.gguf"), home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"hearth: There is no model file {tmp_path / 'nope.gguf'}."]


def test_selftest_with_a_broken_model_fails_clearly(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    result = hearth("--selftest", "--model", str(broken), home=tmp_path)
    assert result.returncode == 1
    assert "the model did not load" in result.stderr


def test_hearth_opens_the_window_and_a_second_start_focuses_it(tmp_path: Path) -> None:
    env = {**os.environ, "HEARTH_HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    first = subprocess.Popen(
        [sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        database = tmp_path / "data" / "hearth.sqlite3"
        deadline = time.monotonic() + 120
        second = None
        while time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()[1]
            if database.exists():
                second = hearth(home=tmp_path, timeout=120)
                if "already open" in second.stderr:
                    break
            time.sleep(0.5)
        assert second is not None and second.returncode == 0 and "already open" in second.stderr
        assert first.poll() is None  # the first one is still running
    finally:
        first.terminate()
        first.wait(60)


def test_the_installed_pyside_keeps_true_alive_across_emits(qapp: object) -> None:
    """PySide6 6.12.0 drops a reference to True on every Python-side emit(); a streaming reply
    emits ~30 times a second, so the interpreter died within minutes ('bool_dealloc').
    pyproject excludes that version; this fails loudly if such a build is installed again."""
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    before = sys.getrefcount(True)
    for _ in range(100):
        probe.ping.emit()
    assert sys.getrefcount(True) - before > -50, "this PySide6 build loses a reference to True per emit()"


def test_the_window_lock_is_held_once_and_released_with_its_holder(hearth_home: Path) -> None:
    from app.gui.app import window_lock

    first = window_lock()
    assert first is not None
    try:
        assert window_lock() is None  # a second Hearth on this data folder finds it taken
    finally:
        first.close()
    again = window_lock()
    assert again is not None
    again.close()
