"""`hearth models [--json]` and `hearth download MODEL_ID`, wired into app/cli.py by
`add_parsers(subparsers)` and `run(args) -> int`.

`hearth download` shows a progress bar on a terminal (one line per 10 % otherwise); Ctrl+C pauses
the download and keeps what was fetched, and running the same command again resumes it. Errors
reach the user as one sentence on stderr with exit code 1 (130 after Ctrl+C).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from app.core.downloads import format_duration
from app.core.units import format_bytes

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
_BAR_WIDTH = 28
_REDRAW_S = 0.2

_FIT_LABELS = {"gpu": "GPU", "partial": "GPU+CPU", "cpu": "CPU", "too_large": "too large", "unknown": "?"}


def add_parsers(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="list catalog and installed models with how they fit this machine")
    models.add_argument("--json", action="store_true", help="print a JSON list")
    download = subparsers.add_parser("download", help="download a catalog model (Ctrl+C pauses; run again to resume)")
    download.add_argument("model_id", metavar="MODEL_ID", help="an id from `hearth models`, e.g. gpt-oss-20b")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from app.core.catalog import CatalogError
    from app.core.downloads import DownloadError
    from app.core.secrets import SecretsError

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        if args.command == "models":
            return _models(args, out)
        if args.command == "download":
            return _download(args.model_id, out, err)
    except (CatalogError, DownloadError, SecretsError) as exc:
        err.write(f"hearth: {exc}\n")
        return EXIT_ERROR
    raise ValueError(f"cli_models cannot run the command {args.command!r}")


# ---- hearth models --------------------------------------------------------------------------------


def _models(args: argparse.Namespace, out: TextIO) -> int:
    from app.core import catalog

    rows = catalog.library()
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return EXIT_OK
    width = max(len(r["id"]) for r in rows) + 2
    out.write(f"{'ID':<{width}}{'SIZE':>9}  {'FIT':<11}{'INSTALLED':<11}NAME\n")
    for r in rows:
        size = _gb(r["size_bytes"]) if r.get("size_bytes") else "?"
        fit = _FIT_LABELS.get(r["fit"]["verdict"], r["fit"]["verdict"])
        mark = " *" if r.get("recommended") and r["fit"]["fits"] else ""
        installed = "yes" if r["installed"] else ("broken" if r.get("problem") else "-")
        out.write(f"{r['id']:<{width}}{size:>9}  {fit:<11}{installed:<11}{r['name']}{mark}\n")
        out.write(f"{'':<{width}}{'':>9}  {r['problem'] or r['fit']['reason']}\n")
    if any(r.get("recommended") and r["fit"]["fits"] for r in rows):
        out.write("\n* recommended for this machine\n")
    return EXIT_OK


# ---- hearth download ------------------------------------------------------------------------------


def _download(model_id: str, out: TextIO, err: TextIO) -> int:
    from app.core import catalog
    from app.core.downloads import DownloadManager, JobState

    entry = catalog.load_catalog().require(model_id)
    installed = catalog.find_installed(entry.id)
    if installed is not None and installed.problem is None:
        out.write(f"{entry.name} is already installed: {installed.path}\n")
        return EXIT_OK
    manager = DownloadManager()
    try:
        job = manager.enqueue(entry)
        if job.bytes_done:
            out.write(f"Resuming {entry.name} from {_gb(job.bytes_done)}.\n")
        manager.start()
        bar = _ProgressBar(out)
        try:
            while True:
                job = manager.wait(job.id, _REDRAW_S)
                bar.show(job)
                if job.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.PAUSED):
                    break
        except KeyboardInterrupt:
            manager.pause(job.id)
            job = manager.wait(job.id, 60)
            bar.finish()
            err.write(
                f"hearth: paused with {_gb(job.bytes_done)} kept; run `hearth download {model_id}` again to resume.\n"
            )
            return EXIT_INTERRUPTED
        bar.finish()
    finally:
        manager.close()
    if job.state == JobState.DONE:
        out.write(f"Installed {entry.name}: {job.installed_path}\n")
        return EXIT_OK
    err.write(f"hearth: {job.message}\n")
    if job.state == JobState.PAUSED:
        err.write(f"hearth: run `hearth download {model_id}` again to resume.\n")
    return EXIT_ERROR


class _ProgressBar:
    """A redrawn line on a terminal; on a pipe or a log file, a line per 10 % and per state change."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last_draw = 0.0
        self._last_decile = -1
        self._last_message = ""
        self._drawn = False

    def show(self, job: Any) -> None:
        pct = job.percent
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw < _REDRAW_S and job.state.value == "running":
                return
            self._last_draw = now
            filled = int(_BAR_WIDTH * (pct or 0) / 100)
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            total = f" / {_gb(job.bytes_total)}" if job.bytes_total else ""
            speed = f"  {_gb(job.speed)}/s" if job.speed > 0 else ""
            eta = f"  {format_duration(job.eta_seconds)} left" if job.eta_seconds is not None else ""
            status = "" if job.state.value == "running" else f"  {job.state.value}"
            line = f"[{bar}] {pct or 0:5.1f} %  {_gb(job.bytes_done)}{total}{speed}{eta}{status}"
            self.out.write("\r" + line[:120].ljust(100))
            self.out.flush()
            self._drawn = True
            if job.message != self._last_message and job.message.startswith("Connection problem"):
                self.out.write("\n" + job.message + "\n")
            self._last_message = job.message
            return
        decile = int((pct or 0) // 10)
        if decile != self._last_decile and pct is not None:
            self._last_decile = decile
            self.out.write(f"{pct:5.1f} %  {_gb(job.bytes_done)}\n")
        elif job.message != self._last_message and not job.message.startswith("Downloading"):
            self.out.write(job.message + "\n")
        self._last_message = job.message
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\n")
            self.out.flush()


def _gb(n: float | None) -> str:
    return "?" if n is None else format_bytes(n)
