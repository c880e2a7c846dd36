"""The log file: what went wrong, with tracebacks, for the user to send and us to read.

`setup()` sends Python's logging to a rotating file in the logs folder (`hearth.log`, 2 MB × 5):
everything at INFO and above, DEBUG too with `--debug`. llama.cpp's own log reaches it from the
engine process (see `engine/child.py` and `engine/host.py`): its warnings and errors as such, its
chatter at DEBUG. Nothing secret is logged: the Hugging Face token never passes through here (a
test checks the file after a session that used one).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import threading
from pathlib import Path

from app.core import paths

LOG_NAME = "hearth.log"
MAX_BYTES = 2 << 20
BACKUPS = 5
FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d %(threadName)s] %(message)s"

_lock = threading.Lock()
_handler: logging.Handler | None = None


def log_path() -> Path:
    return paths.logs_dir(create=False) / LOG_NAME


def setup(debug: bool = False) -> Path | None:
    """Log to the rotating file (once per process); returns its path, or None when the logs
    folder cannot be written (a read-only home: the app runs on without a log)."""
    global _handler
    with _lock:
        root = logging.getLogger()
        if _handler is None:
            try:
                folder = paths.logs_dir()
                handler: logging.Handler = logging.handlers.RotatingFileHandler(
                    folder / LOG_NAME, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True
                )
            except OSError:
                return None
            handler.setFormatter(logging.Formatter(FORMAT))
            root.addHandler(handler)
            _handler = handler
        level = logging.DEBUG if debug or os.environ.get("HEARTH_DEBUG") == "1" else logging.INFO
        root.setLevel(level)
        _handler.setLevel(level)
        return log_path()
