"""Start-up: time from launching `python -m app` to its main window shown, ÷ the same for a
script that shows a bare PySide6 window. Both are fresh processes on the same Qt platform
(offscreen unless a display is set), alternated; the app runs on a throw-away HEARTH_HOME with
its real start-up work (store, window, the model load it starts after the window is up). The
app reports "shown" from its first event-loop turn after show() (HEARTH_STARTUP_PROBE).

The home is one Hearth has been used in, as a returning user's is: a warm-up start creates its
database, and the starter model is assembled there first (on a first start the picker reads the
starter's size from its package, a one-time cost).

The app's modules are byte-compiled first, as an installed copy's are (pip compiles wheels on
install); without that, a PYTHONDONTWRITEBYTECODE environment would charge the app for compiling
its own source on every launch.

    python bench/startup.py [--rounds 5]

Last line: startup_ratio X (target <= 2).
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.gui.app import STARTUP_PROBE_ENV, STARTUP_PROBE_LINE  # noqa: E402

BARE = f"""
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication(sys.argv)
w = QWidget()
w.resize(1180, 780)
w.show()
QTimer.singleShot(0, lambda: (print({STARTUP_PROBE_LINE!r}, flush=True), app.quit()))
app.exec()
"""


def time_to_line(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == STARTUP_PROBE_LINE:
            elapsed = time.perf_counter() - started
            break
    else:
        raise SystemExit(f"{cmd} never reported its window")
    proc.wait(600)  # the app finishes its model load and shuts down cleanly before the next round
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    compileall.compile_dir(ROOT / "app", quiet=1)
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as home:
        env = {**os.environ, "HEARTH_HOME": home, STARTUP_PROBE_ENV: "1"}
        if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
            env["QT_QPA_PLATFORM"] = "offscreen"
        os.environ["HEARTH_HOME"] = home  # the starter is assembled where the app will find it
        from app.core.starter import starter_model_path

        starter_model_path()
        time_to_line([sys.executable, "-m", "app"], env)  # warm-up: creates the database
        apps, bares = [], []
        for i in range(args.rounds):
            bares.append(time_to_line([sys.executable, "-c", BARE], env))
            apps.append(time_to_line([sys.executable, "-m", "app"], env))
            print(f"round {i + 1}: app {apps[-1]:.2f} s, bare PySide6 window {bares[-1]:.2f} s", flush=True)
    print(
        f"platform {env.get('QT_QPA_PLATFORM', 'default')}; medians: app {statistics.median(apps):.2f} s, "
        f"bare {statistics.median(bares):.2f} s"
    )
    print(f"startup_ratio {statistics.median(apps) / statistics.median(bares):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
