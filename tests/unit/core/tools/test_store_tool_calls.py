"""Tool calls in the store: the migration from schema 4, round trips, cascades, calls on the
alternatives of the message tree (real SQLite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.core.store import MIGRATIONS, SCHEMA_VERSION, ChatStore, NotFoundError, ToolCall

TOOLS_VERSION = 5  # the migration that adds tool calls (after the message tree, 3, and the search index, 4)


def write_version_4(path: Path) -> None:
    """A database exactly as Hearth with schema 4 wrote it: a conversation whose reply was
    regenerated once (two alternatives under the user's message, the second one shown)."""
    conn = sqlite3.connect(path)
    conn.create_function("hearth_fold", 1, lambda text: text.casefold() if text is not None else None)
    for migration in MIGRATIONS[: TOOLS_VERSION - 1]:
        for statement in migration:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {TOOLS_VERSION - 1}")
    conn.execute(
        "INSERT INTO conversations (id, title, created_at, updated_at, effort) VALUES (1, 'Weather', 1.0, 2.0, 'high')"
    )
    conn.executemany(
        "INSERT INTO messages (id, conversation_id, role, content, reasoning, created_at, parent_id, chosen_at)"
        " VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
        [
            (1, "user", "Weather in Paris?", "", 1.5, None, 1.5),
            (2, "assistant", "Sunny.", "Guess.", 1.6, 1, 1.6),
            (3, "assistant", "Rainy.", "Look it up.", 1.7, 1, 1.7),
        ],
    )
    conn.execute("UPDATE conversations SET leaf_id = 3 WHERE id = 1")
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


def test_a_version_4_database_migrates_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "chat.sqlite3"
    write_version_4(path)
    with ChatStore(path) as store:
        thread = store.thread(1)
        [user, reply] = thread.messages
        assert (user.content, reply.content, reply.reasoning) == ("Weather in Paris?", "Rainy.", "Look it up.")
        assert thread.position(reply.id) == (2, 2)
        assert store.search_conversations("rainy") != []  # the index of schema 4 still answers
        assert store.tool_calls([1, 2, 3]) == {}
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


def test_each_alternative_keeps_its_own_calls(tmp_path: Path) -> None:
    """Regenerate keeps the earlier reply as an alternative: its calls stay with it, and the
    branch shown finds the calls of the reply it shows."""
    with ChatStore(tmp_path / "c.sqlite3") as store:
        conv = store.create_conversation()
        question = store.add_message(conv.id, "user", "Weather?")
        first = store.begin_reply(conv.id, "m")
        store.add_tool_call(call(first, result="sun"))
        store.rewind_to(conv.id, question.id)
        second = store.begin_reply(conv.id, "m")
        store.add_tool_call(call(second, result="rain"))
        store.add_tool_call(call(second, 1, 0, result="still rain"))
        shown = [m.id for m in store.messages(conv.id)]
        assert shown == [question.id, second]
        calls = store.tool_calls(shown)
        assert [c.result for c in calls[second]] == ["rain", "still rain"] and question.id not in calls
        store.choose(first)
        assert [c.result for c in store.tool_calls([m.id for m in store.messages(conv.id)])[first]] == ["sun"]
        store.delete_messages_after(conv.id, question.id)  # both alternatives go, with their calls
        assert store.tool_calls([first, second]) == {}


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
