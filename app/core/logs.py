"""The log file: what went wrong, with tracebacks, for the user to send and us to read.

`setup()` sends Python's logging to a rotating file in the logs folder (`hearth.log`, 2 MB × 5):
everything at INFO and above, DEBUG too with `--debug` (which also copies the log to stderr).
Without `--debug` nothing reaches the terminal or the window's stderr: not llama.cpp's log (it
arrives from the engine process, see `engine/child.py` and `engine/host.py`: its warnings and
errors as such, its chatter at DEBUG), not Python's last-resort handler, not a traceback of an
exception that escaped a Qt slot or a thread (`sys.excepthook` and `threading.excepthook` log it).
When the logs folder cannot be written the records are dropped rather than printed.

Nothing secret is logged: the Hugging Face token never passes through here on purpose, and every
line is scrubbed of token-shaped text on its way to the file anyway (`secrets.redact`; a test
checks the file after a session that used one).

The rotating handler is a `logging.FileHandler` that rotates itself, because `logging.handlers`
imports `socket` and `pickle` (~15 ms), and the window's start-up is counted from the first import.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from app.core import paths

LOG_NAME = "hearth.log"
MAX_BYTES = 2 << 20
BACKUPS = 5
FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d %(threadName)s] %(message)s"
DEBUG_ENV = "HEARTH_DEBUG"

log = logging.getLogger("hearth")

_lock = threading.Lock()
_handler: logging.Handler | None = None
_stderr_handler: logging.Handler | None = None
_hooks_installed = False


def log_path() -> Path:
    return paths.logs_dir(create=False) / LOG_NAME


def log_folder() -> Path:
    """The folder the "Show log folder" action opens (created, so that there is one to open)."""
    try:
        return paths.logs_dir()
    except OSError:
        return paths.logs_dir(create=False)


class RedactingFormatter(logging.Formatter):
    """The usual format, with anything token-shaped (and the stored token) replaced."""

    def format(self, record: logging.LogRecord) -> str:
        from app.core import secrets

        return secrets.redact(super().format(record))


class RotatingFile(logging.FileHandler):
    """`hearth.log`, renamed to `hearth.log.1` (… `.5`) when it passes `max_bytes`."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True)
        self.max_bytes = max_bytes
        self.backups = backups
        try:
            self._size = path.stat().st_size
        except OSError:
            self._size = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + self.terminator
            size = len(text.encode("utf-8", errors="replace"))
            if self._size and self._size + size > self.max_bytes:
                self._rotate()
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(text)
            self.stream.flush()
            self._size += size
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's API)
        """A full or vanished disk: the record is lost, never printed to stderr in its place."""
        if self.stream is not None:
            try:
                self.stream.close()
            except OSError:
                pass
            self.stream = None

    def _rotate(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        base = self.baseFilename
        for i in range(self.backups - 1, 0, -1):
            older = f"{base}.{i}"
            if os.path.exists(older):
                os.replace(older, f"{base}.{i + 1}")
        if os.path.exists(base):
            os.replace(base, f"{base}.1")
        self._size = 0


def setup(debug: bool = False) -> Path | None:
    """Log to the rotating file (once per process); returns its path, or None when the logs
    folder cannot be written (a read-only home: the app runs on without a log, and prints nothing
    in its place)."""
    global _handler, _stderr_handler
    debug = debug or os.environ.get(DEBUG_ENV) == "1"
    with _lock:
        root = logging.getLogger()
        level = logging.DEBUG if debug else logging.INFO
        if _handler is None:
            handler: logging.Handler
            try:
                handler = RotatingFile(paths.logs_dir() / LOG_NAME)
            except OSError:
                handler = logging.NullHandler()  # keeps logging's last-resort handler off stderr
            handler.setFormatter(RedactingFormatter(FORMAT))
            root.addHandler(handler)
            _handler = handler
        if debug and _stderr_handler is None:
            _stderr_handler = logging.StreamHandler(sys.stderr)
            _stderr_handler.setFormatter(RedactingFormatter(FORMAT))
            root.addHandler(_stderr_handler)
        root.setLevel(level)
        _handler.setLevel(level)
        _install_hooks()
        return None if isinstance(_handler, logging.NullHandler) else log_path()


def _install_hooks() -> None:
    """Exceptions nobody caught (in a Qt slot, a thread) go to the log with their traceback."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, value, tb)
            return
        log.critical("uncaught exception", exc_info=(kind, value, tb))
        if _stderr_handler is not None:
            previous(kind, value, tb)

    def thread_hook(args: Any) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        log.critical(
            "uncaught exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
        )

    sys.excepthook = excepthook
    threading.excepthook = thread_hook


# Exceptions whose message is already a sentence for the user (the situation, not a bug of Hearth's),
# by class name so that checking one imports nothing.
SENTENCE_ERRORS = frozenset({
    "CliError", "GGUFError", "EngineError", "ConversationFileError", "TemplateRenderError", "CatalogError",
    "DownloadError", "SecretsError", "StoreError", "OSError", "KeyboardInterrupt",
})  # fmt: skip


def expected(exc: BaseException) -> bool:
    """Whether `exc` is one of the errors told as a sentence (else it is a bug to be logged in full)."""
    return any(c.__name__ in SENTENCE_ERRORS for c in type(exc).__mro__)


def failure(logger: logging.Logger, exc: BaseException, what: str) -> None:
    """Log a failure that a broad handler turns into a sentence: a line for the expected ones, the
    whole traceback for anything else (a bug must not end as a one-line message and nothing more)."""
    if expected(exc):
        logger.info("%s: %s", what, exc)
    else:
        logger.error("%s", what, exc_info=(type(exc), exc, exc.__traceback__))


def debug_enabled() -> bool:
    return _stderr_handler is not None
