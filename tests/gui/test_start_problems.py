"""Starting Hearth where something is wrong: each case a clear sentence, a non-zero exit where the
window cannot open, and nothing lost or written where it should not be. The app runs as a user
starts it (`python -m app`, which is `hearth`), in a subprocess. A read-only home folder is real:
the immutable attribute (chattr +i, which binds root as well) or, for other users, chmod."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core import paths
from app.core.store import ChatStore
from tests.gui.conftest import WindowFactory

ROOT = Path(__file__).resolve().parents[2]


def hearth(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_no_display_says_so_and_exits_non_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["HEARTH_HOME"] = str(tmp_path)
    result = hearth(env=env)
    if not sys.platform.startswith("linux"):
        pytest.skip("only Linux can lack a display")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "hearth: no display found (neither DISPLAY nor WAYLAND_DISPLAY is set): start Hearth from a desktop "
        "session, or use its terminal commands (hearth --help)."
    ]
    assert not (tmp_path / "data").exists()  # it stopped before touching anything


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "read-only-home"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o755)


def test_a_read_only_home_folder_is_a_clear_sentence(read_only: Path) -> None:
    with pytest.raises(OSError):
        (read_only / "probe").write_text("x")  # really read-only, for root too
    env = {**os.environ, "HEARTH_HOME": str(read_only / "hearth"), "QT_QPA_PLATFORM": "offscreen",
           "HEARTH_STARTUP_PROBE": "1"}  # fmt: skip
    result = hearth(env=env)
    assert result.returncode == 1
    assert f"hearth: Hearth cannot write to its data folder {read_only / 'hearth' / 'data'} (" in result.stderr
    assert "make it writable, or start Hearth with HEARTH_HOME set to a folder you can write to." in result.stderr
    assert "Traceback" not in result.stderr


def test_a_models_folder_on_a_missing_drive(make_window: WindowFactory, store: ChatStore, tmp_path: Path) -> None:
    gone = tmp_path / "usb-drive" / "models"
    gone.mkdir(parents=True)
    paths.set_models_dir(gone)
    shutil.rmtree(tmp_path / "usb-drive")  # the drive is unplugged
    expected = (f"The models folder {gone} is not available (is its drive connected?): reconnect it, or choose "
                "another folder in Settings.")  # fmt: skip
    assert paths.models_folder_problem() == expected
    with pytest.raises(paths.ModelsFolderUnavailable, match="is not available"):
        paths.models_dir()  # a writer: never re-creates the folder on the empty mount point
    window = make_window(store)
    assert window.banner.label.text() == expected and window.banner.isVisibleTo(window)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = hearth("models", env=env)
    assert result.returncode == 1 and "is not available (is its drive connected?)" in result.stderr
    assert not (tmp_path / "usb-drive").exists()
