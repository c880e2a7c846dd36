"""What the user allowed: once (nothing kept), always in one chat, always everywhere, or denied.

Kept in the store's settings (`tool_approvals`): {"always": [keys], "revoked": [keys],
"chats": {"<conversation id>": [keys]}}. A key is "server/tool". The built-in clock and
calculator are allowed unless revoked; a tool marked `ask_every_time` (the Python tool) is never
allowed without asking.
"""

from __future__ import annotations

import enum
import threading
from typing import Any

from app.core.tools.base import ToolSpec
from app.core.tools.builtin import SAFE_BY_DEFAULT

SETTING = "tool_approvals"


class Decision(enum.Enum):
    ONCE = "once"
    ALWAYS_IN_CHAT = "chat"
    ALWAYS = "always"
    DENY = "deny"


class Approvals:
    def __init__(self, store: Any = None) -> None:
        self._store = store  # a ChatStore, or None (kept in memory only)
        self._lock = threading.Lock()
        raw = store.get_setting(SETTING, {}) if store is not None else {}
        raw = raw if isinstance(raw, dict) else {}
        self._always = {str(k) for k in raw.get("always", []) if isinstance(k, str)}
        self._revoked = {str(k) for k in raw.get("revoked", []) if isinstance(k, str)}
        chats = raw.get("chats", {}) if isinstance(raw.get("chats"), dict) else {}
        self._chats = {
            str(c): {str(k) for k in keys if isinstance(k, str)} for c, keys in chats.items() if isinstance(keys, list)
        }

    def allowed(self, spec: ToolSpec, conversation_id: int | None = None) -> bool:
        """Whether this call may run without asking."""
        if spec.ask_every_time:
            return False
        with self._lock:
            if spec.key in self._revoked:
                return False
            if spec.key in self._always or spec.key in SAFE_BY_DEFAULT:
                return True
            return conversation_id is not None and spec.key in self._chats.get(str(conversation_id), set())

    def remember(self, spec: ToolSpec, decision: Decision, conversation_id: int | None = None) -> None:
        if spec.ask_every_time or decision in (Decision.ONCE, Decision.DENY):
            return
        with self._lock:
            self._revoked.discard(spec.key)
            if decision is Decision.ALWAYS or conversation_id is None:
                self._always.add(spec.key)
            else:
                self._chats.setdefault(str(conversation_id), set()).add(spec.key)
            self._save()

    def revoke(self, key: str) -> None:
        """Ask again before this tool runs, everywhere (Settings)."""
        with self._lock:
            self._always.discard(key)
            for keys in self._chats.values():
                keys.discard(key)
            if key in SAFE_BY_DEFAULT:
                self._revoked.add(key)
            self._save()

    def always_allowed(self) -> list[str]:
        """What Settings lists as revocable."""
        with self._lock:
            keys = (self._always | set(SAFE_BY_DEFAULT)) - self._revoked
            return sorted(keys | {k for ks in self._chats.values() for k in ks})

    def _save(self) -> None:
        if self._store is None:
            return
        self._store.set_setting(
            SETTING,
            {
                "always": sorted(self._always),
                "revoked": sorted(self._revoked),
                "chats": {c: sorted(k) for c, k in self._chats.items() if k},
            },
        )
