"""Process-lifetime exclusive locks on files: one Hearth window per data folder, one download
manager per downloads folder. The OS drops a lock when its process dies, even by kill -9, so a
crash never leaves a stale lock behind."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import IO


def try_lock(path: Path) -> IO[str] | None:
    """An exclusive, non-blocking lock on `path` (created if missing), held while the returned file
    stays open; None when another process (or another open of it) holds it."""
    fh = path.open("a+")
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


def release(fh: IO[str]) -> None:
    """Unlock and close (no error if the file is already gone)."""
    with contextlib.suppress(OSError):
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        fh.close()
