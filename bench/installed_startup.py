"""Start-up of an installed (frozen) Hearth against the pip-installed one: time from launch to the
main window shown (HEARTH_STARTUP_PROBE), both fresh processes on the same Qt platform, alternated,
on one throw-away HEARTH_HOME.

    python bench/installed_startup.py [--exe /opt/hearth/hearth] [--rounds 7]

Last line: installed_startup_ratio X (installed ÷ pip-installed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.gui.app import STARTUP_PROBE_ENV  # noqa: E402
from bench.startup import time_to_line  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", default="/opt/hearth/hearth")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as home:
        env = {**os.environ, "HEARTH_HOME": home, STARTUP_PROBE_ENV: "1"}
        if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
            env["QT_QPA_PLATFORM"] = "offscreen"
        frozen_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        pip_cmd, frozen_cmd = [sys.executable, "-m", "app"], [args.exe]
        time_to_line(pip_cmd, env)  # warm-ups: the page cache, the llama.cpp build probe's cache
        time_to_line(frozen_cmd, frozen_env)
        pips, frozens = [], []
        for i in range(args.rounds):
            pips.append(time_to_line(pip_cmd, env))
            frozens.append(time_to_line(frozen_cmd, frozen_env))
            print(f"round {i + 1}: installed {frozens[-1]:.2f} s, pip-installed {pips[-1]:.2f} s", flush=True)
    print(
        f"platform {env.get('QT_QPA_PLATFORM', 'default')}; medians: installed {statistics.median(frozens):.2f} s, "
        f"pip-installed {statistics.median(pips):.2f} s"
    )
    print(f"installed_startup_ratio {statistics.median(frozens) / statistics.median(pips):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
