"""One run of the real window under Xvfb (the xcb platform, as on a desktop) that saves
screenshots as test artifacts (artifacts/screenshots, not committed): a finished reply with its
reasoning expanded, the same collapsed, and the empty state. CI installs Debian's xvfb."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

ROOT = Path(__file__).resolve().parents[2]


def test_screenshots_under_xvfb(tmp_path: Path) -> None:
    xvfb_run = shutil.which("xvfb-run")
    assert xvfb_run, "xvfb-run is missing: apt-get install xvfb (see .ci/run)"
    out = ROOT / "artifacts" / "screenshots"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}  # the real xcb platform
    env["HEARTH_HOME"] = str(tmp_path)
    result = subprocess.run(
        [xvfb_run, "-a", "-s", "-screen 0 1400x960x24", sys.executable, "scripts/screenshot.py", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    shots = {
        name: QImage(str(out / name))
        for name in ("reply-reasoning-expanded.png", "reply-reasoning-collapsed.png", "empty-state.png", "library.png")
    }
    for name, image in shots.items():
        assert not image.isNull() and image.width() >= 1000, name
        colours = {image.pixel(x, y) for x in range(0, image.width(), 37) for y in range(0, image.height(), 29)}
        assert len(colours) > 5, f"{name} looks blank"  # a blank or black window has one or two
    # Expanded shows the reasoning text, so the two pictures of the same reply differ.
    assert shots["reply-reasoning-expanded.png"] != shots["reply-reasoning-collapsed.png"]
