"""SQLite storage for conversations, messages (answer, reasoning, stats) and settings.

One `ChatStore` wraps one connection. It may be used from any thread, one call at a time (a lock
serialises calls), and several stores, in one process or several, may share a file: the database
runs in WAL mode, writes take the write lock up front (BEGIN IMMEDIATE) and wait for it up to the
busy timeout instead of failing.

The schema is versioned with PRAGMA user_version; `MIGRATIONS[n]` turns version n into n + 1 and
is applied in its own transaction. Never edit a released migration: add a new one.

Messages form a tree (version 3): each has a `parent_id`, the message it follows. Regenerating a
reply or editing a message adds a sibling — an *alternative* — instead of deleting anything, and the
conversation's `leaf_id` names the last message of the branch that is shown. `messages()` returns
that branch from the first message to the leaf: what the window shows and what the prompt is built
from. Switching to another alternative (`choose`) moves the leaf down that alternative's branch,
following at each step the child chosen most recently (`chosen_at`), so a branch comes back as it
was left. Later kinds of rows (tool calls, their results) join the same chain with a parent.

A reply being generated is saved while it streams (`ReplyWriter` flushes about once a second), so
a crash or kill -9 loses at most the last second; at start-up `recover_interrupted()` marks such
left-over replies 'interrupted'.
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.core import paths

EFFORTS = ("low", "medium", "high")
STATES = ("complete", "streaming", "interrupted", "error", "stopped")
FINAL_STATES = tuple(s for s in STATES if s != "streaming")
ROLES = ("system", "user", "assistant", "tool")

# Version 1: the first schema Hearth shipped. Kept verbatim so old files migrate from what they are.
_V1 = (
    """CREATE TABLE conversations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX messages_by_conversation ON messages(conversation_id, id)",
)

# Version 2: per-conversation settings, reasoning/stats/state on messages, app settings.
_V2 = (
    "ALTER TABLE conversations ADD COLUMN system_prompt TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE conversations ADD COLUMN model TEXT",
    "ALTER TABLE conversations ADD COLUMN effort TEXT NOT NULL DEFAULT 'medium'"
    " CHECK (effort IN ('low', 'medium', 'high'))",
    "ALTER TABLE messages ADD COLUMN reasoning TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE messages ADD COLUMN stats TEXT",  # JSON object, or NULL
    "ALTER TABLE messages ADD COLUMN model TEXT",
    "ALTER TABLE messages ADD COLUMN state TEXT NOT NULL DEFAULT 'complete'"
    " CHECK (state IN ('complete', 'streaming', 'interrupted', 'error', 'stopped'))",
    "ALTER TABLE messages ADD COLUMN error TEXT",
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",  # value: JSON text
    # The conversation list, most recent activity first.
    "CREATE INDEX conversations_by_activity ON conversations(updated_at DESC, id DESC)",
    # recover_interrupted() at every start-up; partial so it stays tiny.
    "CREATE INDEX messages_streaming ON messages(state) WHERE state = 'streaming'",
)

# Version 3: messages form a tree (alternatives from regenerate and edit), and a conversation keeps
# its own model settings (`options`, a JSON object: temperature, top_p, ...). No REFERENCES on the new
# columns: a cascade along a chain of parents recurses once per message and SQLite stops at 1,000
# levels; the store keeps them consistent itself. Existing messages become one chain, in id order.
_V3 = (
    "ALTER TABLE messages ADD COLUMN parent_id INTEGER",
    "ALTER TABLE messages ADD COLUMN chosen_at REAL NOT NULL DEFAULT 0",
    "ALTER TABLE conversations ADD COLUMN leaf_id INTEGER",
    "ALTER TABLE conversations ADD COLUMN options TEXT NOT NULL DEFAULT '{}'",
    "UPDATE messages SET chosen_at = created_at, parent_id = (SELECT max(p.id) FROM messages AS p"
    " WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id)",
    "UPDATE conversations SET leaf_id ="
    " (SELECT max(m.id) FROM messages AS m WHERE m.conversation_id = conversations.id)",
    "CREATE INDEX messages_by_parent ON messages(parent_id)",
)

# Version 4: a full-text index of message text for the sidebar's search (a LIKE scan of 20,000
# messages took 0.26 s per keystroke). Trigrams over the case-folded text keep the substring
# semantics of search_conversations; the triggers keep it in step with every write.
_V4 = (
    "CREATE VIRTUAL TABLE message_text USING fts5(text, tokenize = 'trigram case_sensitive 1')",
    "INSERT INTO message_text (rowid, text) SELECT id, hearth_fold(content) FROM messages",
    "CREATE TRIGGER message_text_insert AFTER INSERT ON messages BEGIN"
    " INSERT INTO message_text (rowid, text) VALUES (new.id, hearth_fold(new.content)); END",
    "CREATE TRIGGER message_text_update AFTER UPDATE OF content ON messages BEGIN"
    " UPDATE message_text SET text = hearth_fold(new.content) WHERE rowid = new.id; END",
    "CREATE TRIGGER message_text_delete AFTER DELETE ON messages BEGIN"
    " DELETE FROM message_text WHERE rowid = old.id; END",
)

TRIGRAM = 3  # queries shorter than this (after folding) cannot use the index: they scan

# Version 5, tool calls (issue 11): each call an assistant reply made, in its own table keyed by the reply's
# message, with its result and how it went; and the tools each conversation offers. The round's
# reasoning and preamble ride on its first call, so a reply re-renders exactly as it was generated.
_V5 = (
    """CREATE TABLE tool_calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        round INTEGER NOT NULL,
        position INTEGER NOT NULL,
        call_id TEXT NOT NULL,
        name TEXT NOT NULL,
        arguments TEXT NOT NULL,
        header TEXT NOT NULL DEFAULT '',
        server TEXT NOT NULL DEFAULT '',
        tool TEXT NOT NULL DEFAULT '',
        reasoning TEXT NOT NULL DEFAULT '',
        preamble TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL
            CHECK (status IN ('waiting', 'running', 'done', 'failed', 'denied', 'cancelled')),
        approval TEXT NOT NULL DEFAULT '' CHECK (approval IN ('', 'once', 'always', 'auto', 'denied')),
        result TEXT,
        result_full TEXT,
        error TEXT,
        started_at REAL,
        duration_s REAL,
        created_at REAL NOT NULL,
        UNIQUE (message_id, round, position)
    )""",
    """CREATE TABLE conversation_tools (
        conversation_id INTEGER PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
        selectors TEXT NOT NULL
    )""",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """A problem with the chat database, worded as one sentence a user can read."""


class DamagedDatabaseError(StoreError):
    """The database file is damaged or is not Hearth's; `move_aside(self.path)` keeps it under
    another name so that Hearth can start with an empty one."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class NotFoundError(StoreError, LookupError):
    """The conversation or message does not exist (any more)."""


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    system_prompt: str
    model: str | None
    effort: str
    created_at: float  # Unix seconds
    updated_at: float  # last activity: a message added, a reply finished
    # This chat's own model settings (what the window's model settings panel saves for it):
    # keys temperature, top_p, max_tokens, n_ctx, gpu_layers; absent means the default.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    role: str
    content: str  # for an assistant message: the answer
    reasoning: str
    stats: dict[str, Any] | None
    model: str | None
    state: str
    error: str | None
    created_at: float
    parent_id: int | None = None  # the message this one follows; None for a first message


@dataclass(frozen=True)
class Thread:
    """The branch of a conversation that is shown, and where it has alternatives."""

    messages: list[Message]
    # For each message of the branch that has siblings: all of them (itself included), oldest
    # first — what "‹ 2/3 ›" counts and switches between.
    alternatives: dict[int, tuple[int, ...]]

    def position(self, message_id: int) -> tuple[int, int]:
        """(1-based index among its alternatives, how many there are); (1, 1) without any."""
        siblings = self.alternatives.get(message_id)
        return (siblings.index(message_id) + 1, len(siblings)) if siblings else (1, 1)


TOOL_STATUSES = ("waiting", "running", "done", "failed", "denied", "cancelled")
TOOL_APPROVALS = ("", "once", "always", "auto", "denied")


@dataclass(frozen=True)
class ToolCall:
    """One tool call of an assistant reply, with its result: what the tool card shows and what the
    prompt is rebuilt from. `round` counts the reply's generations (0 first); `position` orders the
    calls of a round. `reasoning` and `preamble` are the round's own texts (on its first call)."""

    message_id: int | None
    round: int
    position: int
    call_id: str
    name: str  # as the model wrote it
    arguments: str  # JSON text, as the model wrote it
    header: str = ""  # harmony: the call's header as generated (formats.base.ToolCallRequest)
    server: str = ""  # "builtin", an MCP server's name; "" for a tool nobody offers
    tool: str = ""  # the tool's own name on its server
    reasoning: str = ""
    preamble: str = ""
    status: str = "waiting"  # waiting | running | done | failed | denied | cancelled
    approval: str = ""  # "" (not decided) | once | always | auto (--yes) | denied
    result: str | None = None  # what the model reads (possibly cut short)
    result_full: str | None = None  # the whole result when `result` was cut, for the user
    error: str | None = None  # a sentence for the user when the call failed
    started_at: float | None = None
    duration_s: float | None = None
    created_at: float = 0.0


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET

_CONVERSATION_COLUMNS = "id, title, system_prompt, model, effort, created_at, updated_at, options"
_MESSAGE_COLUMNS = "id, conversation_id, role, content, reasoning, stats, model, state, error, created_at, parent_id"
_TOOL_CALL_FIELDS = tuple(ToolCall.__dataclass_fields__)


def _fold(text: str | None) -> str | None:
    """Caseless, normalisation-insensitive form for search (SQLite's LIKE folds ASCII only)."""
    if text is None:
        return None
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).casefold())


def _like_pattern(query: str) -> str:
    escaped = _fold(query) or ""
    for char in ("\\", "%", "_"):
        escaped = escaped.replace(char, "\\" + char)
    return f"%{escaped}%"


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        system_prompt=row["system_prompt"],
        model=row["model"],
        effort=row["effort"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        options=_json_object(row["options"]),
    )


def _message(row: sqlite3.Row) -> Message:
    stats: dict[str, Any] | None = None
    if row["stats"] is not None:
        try:
            loaded = json.loads(row["stats"])
        except ValueError:
            loaded = None
        stats = loaded if isinstance(loaded, dict) else None
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=row["role"],
        content=row["content"],
        reasoning=row["reasoning"],
        stats=stats,
        model=row["model"],
        state=row["state"],
        error=row["error"],
        created_at=row["created_at"],
        parent_id=row["parent_id"],
    )


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


def _dump_stats(stats: dict[str, Any] | None) -> str | None:
    return None if stats is None else json.dumps(stats, ensure_ascii=False)


def _error(exc: sqlite3.Error, path: Path) -> StoreError:
    message = _describe(exc, path)
    return DamagedDatabaseError(message, path) if "damaged" in message else StoreError(message)


def _describe(exc: sqlite3.Error, path: Path) -> str:
    text = str(exc).lower()
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return f"The chat database {path} is damaged or is not a Hearth database, so Hearth left it untouched."
    if "locked" in text or "busy" in text:
        return f"The chat database {path} is busy in another program; try again in a moment."
    if "readonly" in text or "read-only" in text:
        return f"The chat database {path} is read-only, so Hearth cannot save to it."
    if "disk" in text and "full" in text:
        return f"The disk holding the chat database {path} is full; free up some space and start Hearth again."
    if "unable to open" in text:
        return f"The chat database {path} cannot be opened: check the folder exists and is writable."
    return f"The chat database {path} failed: {exc}."


class ChatStore:
    """Conversations, messages and settings in one SQLite file."""

    def __init__(self, path: str | Path | None = None, *, busy_timeout: float = 10.0) -> None:
        self._path = Path(path) if path is not None else paths.database_path()
        self._lock = threading.RLock()
        self._last_time = 0.0
        self._conn: sqlite3.Connection | None = None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(
                self._path,
                timeout=busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # the lock below makes cross-thread use safe
            )
        except sqlite3.Error as exc:
            raise _error(exc, self._path) from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.create_function("hearth_fold", 1, _fold, deterministic=True)
            self._open(conn, busy_timeout)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @property
    def path(self) -> Path:
        return self._path

    # -- opening ----------------------------------------------------------------------------

    def _open(self, conn: sqlite3.Connection, busy_timeout: float) -> None:
        with self._errors():
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            # Read-only checks first: a file we refuse must stay byte-for-byte as it was.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"The chat database {self._path} was written by a newer version of Hearth "
                    f"(schema {version}, this one knows up to {SCHEMA_VERSION}); update Hearth to open it."
                )
            if version == 0:
                tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()[0]
                if tables:
                    raise DamagedDatabaseError(
                        f"The file {self._path} is an SQLite database of another program, so Hearth left it untouched.",
                        self._path,
                    )
            conn.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL survives any crash of the app; only a power cut may lose the last
            # commits. FULL would fsync on every reply flush.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        while True:
            # The version is re-read inside the write transaction: another process may have
            # migrated the file while we waited for the lock.
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version >= SCHEMA_VERSION:
                    conn.execute("COMMIT")
                    return
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _error(exc, self._path) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("The chat store is closed.")
        return self._conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            yield self._connection()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _now(self) -> float:
        # Strictly increasing, so "most recent first" holds even where the clock is coarse.
        now = max(time.time(), self._last_time + 1e-6)
        self._last_time = now
        return now

    def _touch(self, conn: sqlite3.Connection, conversation_id: int, now: float) -> None:
        cursor = conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        if cursor.rowcount == 0:
            raise NotFoundError(f"Conversation {conversation_id} does not exist.")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ChatStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- conversations ----------------------------------------------------------------------

    def create_conversation(
        self,
        title: str = "New chat",
        system_prompt: str = "",
        model: str | None = None,
        effort: str = "medium",
        options: dict[str, Any] | None = None,
    ) -> Conversation:
        _check_choice("effort", effort, EFFORTS)
        with self._write() as conn:
            now = self._now()
            cursor = conn.execute(
                "INSERT INTO conversations (title, system_prompt, model, effort, created_at, updated_at, options)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (title, system_prompt, model, effort, now, now, json.dumps(options or {}, ensure_ascii=False)),
            )
            assert cursor.lastrowid is not None
            return self._get_conversation(conn, cursor.lastrowid)

    def _get_conversation(self, conn: sqlite3.Connection, conversation_id: int) -> Conversation:
        row = conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"Conversation {conversation_id} does not exist.")
        return _conversation(row)

    def get_conversation(self, conversation_id: int) -> Conversation | None:
        """The conversation, or None when there is no such id."""
        with self._read() as conn:
            try:
                return self._get_conversation(conn, conversation_id)
            except NotFoundError:
                return None

    def list_conversations(self) -> list[Conversation]:
        """All conversations, most recent activity first."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_CONVERSATION_COLUMNS} FROM conversations ORDER BY updated_at DESC, id DESC"
            ).fetchall()
        return [_conversation(row) for row in rows]

    def rename_conversation(self, conversation_id: int, title: str) -> Conversation:
        """Rename; does not count as activity, so the list order stays put."""
        with self._write() as conn:
            conn.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))
            return self._get_conversation(conn, conversation_id)

    def update_conversation(
        self,
        conversation_id: int,
        *,
        system_prompt: str | _Unset = UNSET,
        model: str | None | _Unset = UNSET,
        effort: str | _Unset = UNSET,
        options: dict[str, Any] | _Unset = UNSET,
    ) -> Conversation:
        """Change the given fields only (model=None clears the model); not counted as activity."""
        changes: dict[str, object] = {}
        if not isinstance(options, _Unset):
            changes["options"] = json.dumps(options, ensure_ascii=False)
        if not isinstance(system_prompt, _Unset):
            changes["system_prompt"] = system_prompt
        if not isinstance(model, _Unset):
            changes["model"] = model
        if not isinstance(effort, _Unset):
            _check_choice("effort", effort, EFFORTS)
            changes["effort"] = effort
        with self._write() as conn:
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                conn.execute(
                    f"UPDATE conversations SET {assignments} WHERE id = ?",
                    (*changes.values(), conversation_id),
                )
            return self._get_conversation(conn, conversation_id)

    def delete_conversation(self, conversation_id: int) -> bool:
        """Delete it and its messages; False when it did not exist."""
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            return cursor.rowcount > 0

    def search_conversations(self, query: str) -> list[Conversation]:
        """Conversations whose title or any message text contains `query`, ignoring case.

        Matching is on Unicode case-folded, NFC-normalised text, so "ÉTÉ" finds "été" whether
        the accents were typed precomposed or combining; % and _ are literal. Message text is
        looked up in the trigram index (milliseconds for tens of thousands of messages); a query
        of one or two characters cannot use it and scans instead. Titles are few and scanned.
        """
        if not query.strip():
            return self.list_conversations()
        folded = _fold(query) or ""
        params = {"p": _like_pattern(query), "q": '"' + folded.replace('"', '""') + '"'}
        if len(folded) >= TRIGRAM:
            in_messages = (
                "c.id IN (SELECT m.conversation_id FROM message_text AS t JOIN messages AS m ON m.id = t.rowid"
                " WHERE message_text MATCH :q)"
            )
        else:
            in_messages = (
                "EXISTS (SELECT 1 FROM messages AS m WHERE m.conversation_id = c.id"
                " AND hearth_fold(m.content) LIKE :p ESCAPE '\\')"
            )
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_CONVERSATION_COLUMNS} FROM conversations AS c"
                f" WHERE hearth_fold(c.title) LIKE :p ESCAPE '\\' OR {in_messages}"
                " ORDER BY c.updated_at DESC, c.id DESC",
                params,
            ).fetchall()
        return [_conversation(row) for row in rows]

    # -- messages ---------------------------------------------------------------------------

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        reasoning: str = "",
        stats: dict[str, Any] | None = None,
        model: str | None = None,
        state: str = "complete",
        error: str | None = None,
        parent_id: int | None | _Unset = UNSET,
    ) -> Message:
        """Append a finished message (the user's, before generation starts) to the branch shown,
        or, with `parent_id`, after that message (None: as a first message) — an edit's new
        alternative. The new message ends the branch shown."""
        _check_choice("role", role, ROLES)
        _check_choice("state", state, STATES)
        stats_json = _dump_stats(stats)
        with self._write() as conn:
            now = self._now()
            self._touch(conn, conversation_id, now)
            parent = self._parent_for(conn, conversation_id, parent_id)
            cursor = conn.execute(
                "INSERT INTO messages (conversation_id, role, content, reasoning, stats, model, state, error,"
                " created_at, parent_id, chosen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, reasoning, stats_json, model, state, error, now, parent, now),
            )
            assert cursor.lastrowid is not None
            self._set_leaf(conn, conversation_id, cursor.lastrowid)
            return self._get_message(conn, cursor.lastrowid)

    def _parent_for(self, conn: sqlite3.Connection, conversation_id: int, parent_id: int | None | _Unset) -> int | None:
        if isinstance(parent_id, _Unset):
            branch = self._branch_ids(conn, conversation_id)
            return branch[-1] if branch else None
        if parent_id is not None:
            self._require_in(conn, conversation_id, parent_id)
        return parent_id

    def _require_in(self, conn: sqlite3.Connection, conversation_id: int, message_id: int) -> None:
        found = conn.execute(
            "SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?", (message_id, conversation_id)
        ).fetchone()
        if found is None:
            raise NotFoundError(f"Message {message_id} is not in conversation {conversation_id}.")

    def _set_leaf(self, conn: sqlite3.Connection, conversation_id: int, leaf_id: int | None) -> None:
        conn.execute("UPDATE conversations SET leaf_id = ? WHERE id = ?", (leaf_id, conversation_id))

    def _branch_ids(self, conn: sqlite3.Connection, conversation_id: int) -> list[int]:
        """The ids of the branch shown, first message first."""
        return _branch(self._tree(conn, conversation_id), self._leaf(conn, conversation_id))

    def _leaf(self, conn: sqlite3.Connection, conversation_id: int) -> int | None:
        row = conn.execute("SELECT leaf_id FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        return row[0] if row is not None else None

    def _tree(self, conn: sqlite3.Connection, conversation_id: int) -> dict[int, tuple[int | None, float]]:
        rows = conn.execute(
            "SELECT id, parent_id, chosen_at FROM messages WHERE conversation_id = ?", (conversation_id,)
        ).fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}

    def _get_message(self, conn: sqlite3.Connection, message_id: int) -> Message:
        row = conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"Message {message_id} does not exist.")
        return _message(row)

    def get_message(self, message_id: int) -> Message | None:
        with self._read() as conn:
            try:
                return self._get_message(conn, message_id)
            except NotFoundError:
                return None

    def messages(self, conversation_id: int) -> list[Message]:
        """The branch shown, in order: what the window shows and what the model is sent."""
        return self.thread(conversation_id).messages

    def all_messages(self, conversation_id: int) -> list[Message]:
        """Every message of the conversation, every alternative included, in the order added."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
            ).fetchall()
        return [_message(row) for row in rows]

    def thread(self, conversation_id: int) -> Thread:
        """The branch shown and, for its messages that have them, their alternatives."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS}, chosen_at FROM messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
            leaf = self._leaf(conn, conversation_id)
        tree = {row["id"]: (row["parent_id"], row["chosen_at"]) for row in rows}
        by_id = {row["id"]: row for row in rows}
        ids = _branch(tree, leaf)
        siblings: dict[int | None, list[int]] = {}
        for message_id, (parent, _chosen) in tree.items():  # in id order: oldest alternative first
            siblings.setdefault(parent if parent in tree else None, []).append(message_id)
        alternatives = {}
        for message_id in ids:
            parent = tree[message_id][0]
            group = siblings[parent if parent in tree else None]
            if len(group) > 1:
                alternatives[message_id] = tuple(group)
        return Thread([_message(by_id[i]) for i in ids], alternatives)

    def choose(self, message_id: int) -> Thread:
        """Show the alternative `message_id` (and, below it, the branch chosen there last time)."""
        with self._write() as conn:
            message = self._get_message(conn, message_id)
            now = self._now()
            conn.execute("UPDATE messages SET chosen_at = ? WHERE id = ?", (now, message_id))
            tree = self._tree(conn, message.conversation_id)
            self._set_leaf(conn, message.conversation_id, _descend(tree, message_id))
        return self.thread(message.conversation_id)

    def rewind_to(self, conversation_id: int, message_id: int | None) -> None:
        """End the branch shown at `message_id` (None: before the first message), keeping what
        followed as an alternative: the next message added or reply begun starts a new one."""
        with self._write() as conn:
            if message_id is not None:
                self._require_in(conn, conversation_id, message_id)
            self._set_leaf(conn, conversation_id, message_id)

    def begin_reply(self, conversation_id: int, model: str | None) -> int:
        """Create an empty assistant message in state 'streaming' at the end of the branch shown
        (so a reply after `rewind_to` becomes an alternative); returns its id."""
        with self._write() as conn:
            now = self._now()
            self._touch(conn, conversation_id, now)
            parent = self._parent_for(conn, conversation_id, UNSET)
            cursor = conn.execute(
                "INSERT INTO messages (conversation_id, role, content, model, state, created_at, parent_id, chosen_at)"
                " VALUES (?, 'assistant', '', ?, 'streaming', ?, ?, ?)",
                (conversation_id, model, now, parent, now),
            )
            assert cursor.lastrowid is not None
            self._set_leaf(conn, conversation_id, cursor.lastrowid)
            return cursor.lastrowid

    def update_reply(self, message_id: int, answer: str, reasoning: str) -> None:
        """Save the partial text of a streaming reply (the whole text so far, not a delta)."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE messages SET content = ?, reasoning = ? WHERE id = ?",
                (answer, reasoning, message_id),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"Message {message_id} does not exist.")

    def finish_reply(
        self,
        message_id: int,
        answer: str,
        reasoning: str,
        stats: dict[str, Any] | None,
        state: str,
        error: str | None = None,
    ) -> Message:
        """Save the final text and how the reply ended ('complete', 'stopped', 'error'...)."""
        _check_choice("state", state, FINAL_STATES)
        stats_json = _dump_stats(stats)
        with self._write() as conn:
            message = self._get_message(conn, message_id)
            conn.execute(
                "UPDATE messages SET content = ?, reasoning = ?, stats = ?, state = ?, error = ? WHERE id = ?",
                (answer, reasoning, stats_json, state, error, message_id),
            )
            self._touch(conn, message.conversation_id, self._now())
            return self._get_message(conn, message_id)

    def delete_messages_after(self, conversation_id: int, message_id: int, *, inclusive: bool = False) -> int:
        """Delete what follows `message_id` — every message below it, on every branch — and it
        too when inclusive; the branch shown then ends there. Returns how many were deleted.

        (Regenerate and edit keep the earlier messages as alternatives instead; this is for
        throwing a branch away.)"""
        with self._write() as conn:
            message = self._get_message(conn, message_id)
            if message.conversation_id != conversation_id:
                raise NotFoundError(f"Message {message_id} is not in conversation {conversation_id}.")
            start = (
                "SELECT id FROM messages WHERE id = ?" if inclusive else "SELECT id FROM messages WHERE parent_id = ?"
            )
            cursor = conn.execute(  # DELETE first: Python's sqlite3 counts rows only for such statements
                f"DELETE FROM messages WHERE id IN (WITH RECURSIVE below(id) AS ({start}"
                " UNION ALL SELECT m.id FROM messages AS m JOIN below ON m.parent_id = below.id) SELECT id FROM below)",
                (message_id,),
            )
            self._set_leaf(conn, conversation_id, message.parent_id if inclusive else message_id)
            self._touch(conn, conversation_id, self._now())
            return cursor.rowcount

    def recover_interrupted(self) -> list[int]:
        """Mark replies left 'streaming' by a crash as 'interrupted'; returns their ids.

        Call once at start-up, before any reply starts: a reply streaming in another running
        Hearth would be marked too.
        """
        with self._write() as conn:
            ids = [
                row[0]
                for row in conn.execute("SELECT id FROM messages WHERE state = 'streaming' ORDER BY id").fetchall()
            ]
            conn.execute("UPDATE messages SET state = 'interrupted' WHERE state = 'streaming'")
            return ids

    # -- settings ---------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        """The stored JSON value, or `default` when absent or unreadable."""
        with self._read() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except ValueError:
            return default

    def set_setting(self, key: str, value: Any) -> None:
        """Store any JSON-serialisable value (TypeError otherwise)."""
        text = json.dumps(value, ensure_ascii=False)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    def delete_setting(self, key: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM settings WHERE key = ?", (key,))

    # -- tool calls -------------------------------------------------------------------------

    def add_tool_call(self, call: ToolCall) -> ToolCall:
        """Record a call of a stored reply (`call.message_id`); returns it with its time set."""
        _check_choice("status", call.status, TOOL_STATUSES)
        _check_choice("approval", call.approval, TOOL_APPROVALS)
        if call.message_id is None:
            raise ValueError("a stored tool call needs the id of its message")
        with self._write() as conn:
            call = replace(call, created_at=self._now())
            values = {name: getattr(call, name) for name in _TOOL_CALL_FIELDS}
            conn.execute(
                f"INSERT INTO tool_calls ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()),
            )
            return call

    def update_tool_call(self, call: ToolCall) -> None:
        """Save what changed in a call (status, approval, result...); found by message and call id."""
        _check_choice("status", call.status, TOOL_STATUSES)
        _check_choice("approval", call.approval, TOOL_APPROVALS)
        changing = ("status", "approval", "result", "result_full", "error", "started_at", "duration_s", "server",
                    "tool")  # fmt: skip
        with self._write() as conn:
            cursor = conn.execute(
                f"UPDATE tool_calls SET {', '.join(f'{c} = ?' for c in changing)} WHERE message_id = ? AND call_id = ?",
                (*(getattr(call, c) for c in changing), call.message_id, call.call_id),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"Tool call {call.call_id} of message {call.message_id} does not exist.")

    def tool_calls(self, message_ids: list[int]) -> dict[int, list[ToolCall]]:
        """The calls of these messages, each list in the order they were made; messages without
        calls are absent."""
        out: dict[int, list[ToolCall]] = {}
        if not message_ids:
            return out
        with self._read() as conn:
            for start in range(0, len(message_ids), 500):  # SQLite's limit on bound parameters
                chunk = message_ids[start : start + 500]
                rows = conn.execute(
                    f"SELECT {', '.join(_TOOL_CALL_FIELDS)} FROM tool_calls"
                    f" WHERE message_id IN ({', '.join('?' * len(chunk))}) ORDER BY message_id, round, position",
                    chunk,
                ).fetchall()
                for row in rows:
                    call = ToolCall(**{name: row[name] for name in _TOOL_CALL_FIELDS})
                    out.setdefault(row["message_id"], []).append(call)
        return out

    def conversation_tools(self, conversation_id: int) -> list[str] | None:
        """The tools a conversation offers the model ("server/tool" or "server/*"); None when the
        user never chose (the app's default applies)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT selectors FROM conversation_tools WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()
        if row is None:
            return None
        try:
            loaded = json.loads(row[0])
        except ValueError:
            return None
        return [str(x) for x in loaded] if isinstance(loaded, list) else None

    def set_conversation_tools(self, conversation_id: int, selectors: list[str] | None) -> None:
        """Choose the tools of a conversation (None: back to the app's default)."""
        with self._write() as conn:
            if selectors is None:
                conn.execute("DELETE FROM conversation_tools WHERE conversation_id = ?", (conversation_id,))
                return
            self._get_conversation(conn, conversation_id)
            conn.execute(
                "INSERT INTO conversation_tools (conversation_id, selectors) VALUES (?, ?)"
                " ON CONFLICT(conversation_id) DO UPDATE SET selectors = excluded.selectors",
                (conversation_id, json.dumps(list(selectors), ensure_ascii=False)),
            )


def _branch(tree: dict[int, tuple[int | None, float]], leaf: int | None) -> list[int]:
    """The ids from the first message down to `leaf`; without a usable leaf (a database written
    before version 3 had none, or the leaf was deleted), the branch chosen most recently."""
    if leaf is None or leaf not in tree:
        roots = [i for i, (parent, _) in tree.items() if parent is None or parent not in tree]
        if not roots:
            return []
        leaf = _descend(tree, max(roots, key=lambda i: (tree[i][1], i)))
    ids: list[int] = []
    seen: set[int] = set()
    node: int | None = leaf
    while node is not None and node in tree and node not in seen:  # `seen`: a damaged file's loop ends
        seen.add(node)
        ids.append(node)
        node = tree[node][0]
    ids.reverse()
    return ids


def _descend(tree: dict[int, tuple[int | None, float]], start: int) -> int:
    """From `start`, follow the child chosen most recently down to a leaf."""
    children: dict[int, list[int]] = {}
    for message_id, (parent, _) in tree.items():
        if parent is not None:
            children.setdefault(parent, []).append(message_id)
    node, seen = start, {start}
    while children.get(node):
        node = max(children[node], key=lambda i: (tree[i][1], i))
        if node in seen:
            break
        seen.add(node)
    return node


def move_aside(path: str | Path | None = None) -> Path:
    """Rename a database Hearth refused (and its -wal / -shm files) to `<name>.damaged-<time>`,
    keeping every byte, so that the next ChatStore starts an empty one there. Returns the new name."""
    source = Path(path) if path is not None else paths.database_path()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = source.with_name(f"{source.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = source.with_name(f"{source.name}.damaged-{stamp}-{n}")
    for suffix in ("-wal", "-shm"):  # first: a journal without its database is harmless, the reverse is not
        side = source.with_name(source.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    os.replace(source, target)
    return target


class ReplyWriter:
    """Streams one assistant reply into the store, flushing at most every `interval` seconds.

    `append()` is called per event from the generation thread; the text reaches the database on
    the first append after the interval has passed, on `flush_if_due()` — which a timer calls, so
    text already shown is saved even while generation stalls — and on `flush()` / `finish()`. A
    kill -9 therefore loses at most about one interval of text. Thread-safe.
    """

    def __init__(
        self,
        store: ChatStore,
        message_id: int,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._message_id = message_id
        self._interval = interval
        self._clock = clock
        self._answer: list[str] = []
        self._reasoning: list[str] = []
        self._dirty = False
        self._finished = False
        self._last_flush = clock()
        self._lock = threading.RLock()

    @classmethod
    def begin(
        cls,
        store: ChatStore,
        conversation_id: int,
        model: str | None,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> ReplyWriter:
        """Create the 'streaming' message and a writer for it."""
        message_id = store.begin_reply(conversation_id, model)
        return cls(store, message_id, interval=interval, clock=clock)

    @property
    def message_id(self) -> int:
        return self._message_id

    @property
    def answer(self) -> str:
        return "".join(self._answer)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    def append(self, reasoning_delta: str = "", answer_delta: str = "") -> None:
        with self._lock:
            if self._finished:
                raise RuntimeError("append() after finish()")
            if reasoning_delta:
                self._reasoning.append(reasoning_delta)
                self._dirty = True
            if answer_delta:
                self._answer.append(answer_delta)
                self._dirty = True
            self.flush_if_due()

    def take_text(self) -> tuple[str, str]:
        """(answer, reasoning) so far, and start again from nothing: a tool round's texts move to
        its calls (ToolCall.preamble, .reasoning) and the message keeps the next round's."""
        with self._lock:
            answer, reasoning = self.answer, self.reasoning
            self._answer, self._reasoning = [], []
            self._dirty = True
            return answer, reasoning

    def flush_if_due(self) -> None:
        """Write the text if some is unsaved and the interval has passed (for a timer)."""
        with self._lock:
            if self._dirty and self._clock() - self._last_flush >= self._interval:
                self.flush()

    def flush(self) -> None:
        """Write the text so far now."""
        with self._lock:
            if self._finished or not self._dirty:
                return
            # Joined once per flush and kept joined, so a long reply is not re-joined from pieces.
            answer, reasoning = self.answer, self.reasoning
            self._answer, self._reasoning = [answer], [reasoning]
            try:
                self._store.update_reply(self._message_id, answer, reasoning)
            finally:
                # A failed write is not retried at once on every token (a full disk would stall the
                # stream); the next try comes an interval later, and finish() writes everything.
                self._last_flush = self._clock()
            self._dirty = False

    def finish(
        self,
        state: str = "complete",
        stats: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Message:
        """Final write with how the reply ended; the writer cannot be used afterwards."""
        with self._lock:
            if self._finished:
                raise RuntimeError("finish() called twice")
            message = self._store.finish_reply(self._message_id, self.answer, self.reasoning, stats, state, error)
            self._finished = True
            return message
