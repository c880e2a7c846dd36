"""Every network call of this session, for the honest Offline indicator.

Code that reaches another machine (downloads, hub search, a remote engine) records the host and
why; listeners (the window's indicator) hear of each new host. Loopback addresses count too when a
remote engine uses them: the indicator says what the app talked to, not where it is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Contact:
    host: str
    purpose: str  # "download", "hub search", "remote engine (chat)", ...
    first: float  # time.time() of the first call
    last: float
    count: int


_lock = threading.Lock()
_contacts: dict[tuple[str, str], Contact] = {}
_listeners: list[Callable[[Contact], None]] = []


def host_of(url: str) -> str:
    """How a URL's host is named here and in the window: "huggingface.co", "gpu-box:8080"."""
    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{host}:{parts.port}" if parts.port else host


def record_url(url: str, purpose: str) -> None:
    record(host_of(url), purpose)


def record(host: str, purpose: str) -> None:
    now = time.time()
    with _lock:
        old = _contacts.get((host, purpose))
        contact = Contact(host, purpose, old.first if old else now, now, (old.count if old else 0) + 1)
        _contacts[(host, purpose)] = contact
        listeners = list(_listeners) if old is None else []
    for listener in listeners:
        listener(contact)


def contacts() -> list[Contact]:
    with _lock:
        return sorted(_contacts.values(), key=lambda c: c.first)


def listen(listener: Callable[[Contact], None]) -> Callable[[], None]:
    """Hear of each new (host, purpose); returns a function that stops listening."""
    with _lock:
        _listeners.append(listener)

    def stop() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return stop


def clear() -> None:
    """For tests: forget this session's calls."""
    with _lock:
        _contacts.clear()
