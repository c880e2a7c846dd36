"""Tool calls in the store: the migration from schema 2, round trips, cascades (real SQLite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.core.store import MIGRATIONS, SCHEMA_VERSION, ChatStore, NotFoundError, ToolCall

TOOLS_VERSION = 3  # the migration that adds tool calls (renumbered if merged after others)


def write_version_2(path: Path) -> None:
    """A database exactly as Hearth with schema 2 wrote it, with a conversation in it."""
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS[:2]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO conversations (id, title, created_at, updated_at, effort) VALUES (1, 'Weather', 1.0, 2.0, 'high')"
    )
    conn.executemany(
        "INSERT INTO messages (conversation_id, role, content, reasoning, created_at) VALUES (1, ?, ?, ?, ?)",
        [("user", "Weather in Paris?", "", 1.5), ("assistant", "Rainy.", "Look it up.", 1.6)],
    )
    conn.commit()
    conn.close()


def call(message_id: int, round_: int = 0, position: int = 0, **fields: object) -> ToolCall:
    values: dict[str, object] = {
        "message_id": message_id,
        "round": round_,
        "position": position,
        "call_id": f"call_{round_}_{position}",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    values.update(fields)
    return ToolCall(**values)  # type: ignore[arg-type]


def test_a_version_2_database_migrates_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "chat.sqlite3"
    write_version_2(path)
    with ChatStore(path) as store:
        [user, reply] = store.messages(1)
        assert (user.content, reply.content, reply.reasoning) == ("Weather in Paris?", "Rainy.", "Look it up.")
        assert store.tool_calls([reply.id]) == {}
        assert store.conversation_tools(1) is None
        stored = store.add_tool_call(call(reply.id, status="done", result="rain"))
        assert store.tool_calls([reply.id]) == {reply.id: [stored]}
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= TOOLS_VERSION
    conn.close()


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    with ChatStore(tmp_path / "c.sqlite3") as store:
        conv = store.create_conversation()
        store.add_message(conv.id, "user", "?")
        reply = store.begin_reply(conv.id, "m")
        first = store.add_tool_call(
            call(
                reply,
                header=" to=functions.get_weather<|channel|>commentary json",
                server="weather",
                tool="get-weather",
                reasoning="Need the weather.",
                preamble="Checking…",
                status="running",
                approval="once",
                started_at=10.5,
            )
        )
        second = store.add_tool_call(call(reply, 0, 1, name="nope", status="failed", error="No such tool."))
        third = store.add_tool_call(call(reply, 1, 0, status="waiting"))
        done = ToolCall(**{**first.__dict__, "status": "done", "result": "x" * 100, "result_full": "x" * 5_000_000,
                           "duration_s": 0.25})  # fmt: skip
        store.update_tool_call(done)
        got = store.tool_calls([reply])[reply]
        assert got == [done, second, third]
        assert got[0].result_full is not None and len(got[0].result_full) == 5_000_000
        with pytest.raises(NotFoundError):
            store.update_tool_call(call(reply, 9, 9, call_id="missing"))
        with pytest.raises(ValueError):
            store.add_tool_call(call(reply, 2, 0, status="exploded"))


def test_calls_go_with_their_message_and_conversation(tmp_path: Path) -> None:
    with ChatStore(tmp_path / "c.sqlite3") as store:
        conv = store.create_conversation()
        first_user = store.add_message(conv.id, "user", "one")
        reply = store.begin_reply(conv.id, "m")
        store.add_tool_call(call(reply))
        store.delete_messages_after(conv.id, first_user.id)  # regenerate
        assert store.tool_calls([reply]) == {}
        reply2 = store.begin_reply(conv.id, "m")
        store.add_tool_call(call(reply2))
        store.set_conversation_tools(conv.id, ["builtin/time", "weather/*"])
        assert store.delete_conversation(conv.id)
        assert store.tool_calls([reply2]) == {}
        assert store.conversation_tools(conv.id) is None


def test_conversation_tools_are_chosen_per_conversation(tmp_path: Path) -> None:
    with ChatStore(tmp_path / "c.sqlite3") as store:
        a, b = store.create_conversation("a"), store.create_conversation("b")
        store.set_conversation_tools(a.id, ["builtin/calculator"])
        store.set_conversation_tools(b.id, [])
        assert store.conversation_tools(a.id) == ["builtin/calculator"]
        assert store.conversation_tools(b.id) == []
        store.set_conversation_tools(a.id, None)
        assert store.conversation_tools(a.id) is None
        with pytest.raises(NotFoundError):
            store.set_conversation_tools(999, ["builtin/time"])


def test_many_messages_are_read_in_chunks(tmp_path: Path) -> None:
    with ChatStore(tmp_path / "c.sqlite3") as store:
        conv = store.create_conversation()
        ids = []
        for _ in range(600):
            ids.append(store.begin_reply(conv.id, "m"))
        for message_id in ids[::2]:
            store.add_tool_call(call(message_id))
        assert sorted(store.tool_calls(ids)) == ids[::2]
