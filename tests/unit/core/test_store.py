from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core import paths
from app.core.store import (
    SCHEMA_VERSION,
    ChatStore,
    NotFoundError,
    ReplyWriter,
    StoreError,
)

REPO_ROOT = Path(__file__).resolve().parents[3]

# The first schema exactly as version 1 of Hearth created it. Frozen here on purpose: the
# migration test must start from what real old files contain, not from the current code.
V1_DDL = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
PRAGMA user_version = 1;
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "chats.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[ChatStore]:
    with ChatStore(db_path) as opened:
        yield opened


def run_python(code: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def assert_one_sentence(error: StoreError) -> None:
    text = str(error)
    assert text.endswith(".") and "\n" not in text and len(text) < 300


# -- opening, schema, refusals -----------------------------------------------------------------


def test_new_database_is_wal_with_current_schema(db_path: Path, store: ChatStore) -> None:
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"conversations_by_activity", "messages_by_conversation"} <= indexes
    conn.close()


def test_default_path_is_under_hearth_home(hearth_home: Path) -> None:
    with ChatStore() as store:
        store.create_conversation()
        assert store.path == hearth_home / "data" / "hearth.sqlite3" == paths.database_path()
    assert (hearth_home / "data" / "hearth.sqlite3").is_file()


def test_migrates_a_real_version_1_database(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.executescript(V1_DDL)
    conn.execute("INSERT INTO conversations VALUES (1, 'Old chat', 100.0, 200.0)")
    conn.execute("INSERT INTO conversations VALUES (2, 'Older chat', 50.0, 60.0)")
    conn.executemany(
        "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?, ?, ?, ?)",
        [(1, "user", "Hi there 🙂", 101.0), (1, "assistant", "Hello!", 102.0), (2, "user", "x", 55.0)],
    )
    conn.commit()
    conn.close()

    with ChatStore(db_path) as store:
        assert [c.title for c in store.list_conversations()] == ["Old chat", "Older chat"]
        old = store.get_conversation(1)
        assert old is not None
        assert (old.system_prompt, old.model, old.effort) == ("", None, "medium")
        assert (old.created_at, old.updated_at) == (100.0, 200.0)
        messages = store.messages(1)
        assert [(m.role, m.content, m.created_at) for m in messages] == [
            ("user", "Hi there 🙂", 101.0),
            ("assistant", "Hello!", 102.0),
        ]
        assert all(
            (m.reasoning, m.stats, m.model, m.state, m.error) == ("", None, None, "complete", None) for m in messages
        )
        # Everything version 2 adds works on the migrated file.
        store.set_setting("theme", "dark")
        reply = store.begin_reply(1, "gpt-oss-20b")
        store.finish_reply(reply, "ok", "thought", {"tokens": 3}, "complete")
        assert store.search_conversations("THERE") == [store.get_conversation(1)]
        assert store.delete_conversation(2)
        assert store.messages(2) == []

    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 3
    conn.close()


def test_refuses_newer_schema_and_leaves_file_alone(db_path: Path) -> None:
    ChatStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(StoreError, match="newer version of Hearth") as caught:
        ChatStore(db_path)
    assert_one_sentence(caught.value)
    assert db_path.read_bytes() == before


def test_refuses_a_file_that_is_not_a_database(db_path: Path) -> None:
    garbage = b"These are my notes, not a database.\n" * 200
    db_path.write_bytes(garbage)
    with pytest.raises(StoreError, match="not a Hearth database") as caught:
        ChatStore(db_path)
    assert_one_sentence(caught.value)
    assert db_path.read_bytes() == garbage


def test_refuses_a_corrupt_database(db_path: Path) -> None:
    with ChatStore(db_path) as store:
        conversation = store.create_conversation("doomed")
        for _ in range(20):
            store.add_message(conversation.id, "user", "text " * 500)
    data = db_path.read_bytes()
    corrupt = data[:100] + b"\xff" * 3000 + data[3100:]  # the schema page, header kept
    db_path.write_bytes(corrupt)
    with pytest.raises(StoreError, match="damaged") as caught:
        ChatStore(db_path)
    assert_one_sentence(caught.value)
    assert db_path.read_bytes() == corrupt


def test_refuses_another_programs_sqlite_database(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
    conn.commit()
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(StoreError, match="another program") as caught:
        ChatStore(db_path)
    assert_one_sentence(caught.value)
    assert db_path.read_bytes() == before


def test_closed_store_says_so(db_path: Path) -> None:
    store = ChatStore(db_path)
    store.close()
    store.close()  # harmless twice
    with pytest.raises(StoreError, match="closed"):
        store.list_conversations()


# -- conversations -----------------------------------------------------------------------------


def test_conversation_round_trip(store: ChatStore) -> None:
    created = store.create_conversation("Plans", system_prompt="Be brief.", model="gpt-oss-20b", effort="high")
    assert store.get_conversation(created.id) == created
    assert (created.title, created.system_prompt, created.model, created.effort) == (
        "Plans",
        "Be brief.",
        "gpt-oss-20b",
        "high",
    )
    default = store.create_conversation()
    assert (default.title, default.system_prompt, default.model, default.effort) == (
        "New chat",
        "",
        None,
        "medium",
    )
    assert store.get_conversation(9999) is None

    renamed = store.rename_conversation(created.id, "Holiday plans ✈️")
    assert renamed.title == "Holiday plans ✈️"

    updated = store.update_conversation(created.id, effort="low")
    assert (updated.system_prompt, updated.model, updated.effort) == ("Be brief.", "gpt-oss-20b", "low")
    updated = store.update_conversation(created.id, system_prompt="", model=None)
    assert (updated.system_prompt, updated.model, updated.effort) == ("", None, "low")
    assert store.get_conversation(created.id) == updated

    with pytest.raises(ValueError):
        store.update_conversation(created.id, effort="extreme")
    with pytest.raises(ValueError):
        store.create_conversation(effort="max")
    with pytest.raises(NotFoundError):
        store.rename_conversation(9999, "x")
    with pytest.raises(NotFoundError):
        store.update_conversation(9999, effort="low")


def test_list_is_ordered_by_last_activity(store: ChatStore) -> None:
    a = store.create_conversation("a")
    b = store.create_conversation("b")
    c = store.create_conversation("c")

    def titles() -> list[str]:
        return [conversation.title for conversation in store.list_conversations()]

    assert titles() == ["c", "b", "a"]
    store.add_message(a.id, "user", "hello")
    assert titles() == ["a", "c", "b"]
    store.rename_conversation(b.id, "b2")  # renaming is not activity
    store.update_conversation(c.id, effort="high")
    assert titles() == ["a", "c", "b2"]
    reply = store.begin_reply(b.id, "m")
    assert titles() == ["b2", "a", "c"]
    store.add_message(c.id, "user", "hi")
    store.finish_reply(reply, "done", "", None, "complete")
    assert titles() == ["b2", "c", "a"]


def test_delete_cascades_to_messages(db_path: Path, store: ChatStore) -> None:
    keep = store.create_conversation("keep")
    doomed = store.create_conversation("doomed")
    store.add_message(keep.id, "user", "stays")
    for i in range(5):
        store.add_message(doomed.id, "user", f"goes {i}")
    assert store.delete_conversation(doomed.id) is True
    assert store.delete_conversation(doomed.id) is False
    assert store.get_conversation(doomed.id) is None
    assert store.messages(doomed.id) == []
    assert [m.content for m in store.messages(keep.id)] == ["stays"]
    raw = sqlite3.connect(db_path)
    assert raw.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    raw.close()


# -- search ------------------------------------------------------------------------------------


@pytest.fixture
def searchable(store: ChatStore) -> dict[str, int]:
    contents = {
        "english": ("Groceries", "Remember to buy Milk and bread"),
        "percent": ("Progress", "We are 100% done"),
        "no_percent": ("Other", "There were 1000 done"),
        "underscore": ("Code", "call my_func please"),
        "no_underscore": ("More code", "call myXfunc please"),
        "backslash": ("Windows", r"C:\Users\me"),
        "emoji": ("Party 🎉", "that was 🔥🔥 tonight"),
        "hebrew": ("עברית", "שלום עולם"),
        "arabic": ("Arabic", "مرحبا بالعالم"),
        "decomposed": ("Cafe", "un cafe\u0301 noir"),  # é as e + combining acute
        "german": ("Travel", "Die Straße ist lang"),
        "greek": ("ΣΟΦΙΑ", "nothing here"),
    }
    ids = {}
    for key, (title, text) in contents.items():
        conversation = store.create_conversation(title)
        store.add_message(conversation.id, "user", text)
        ids[key] = conversation.id
    return ids


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("milk", {"english"}),
        ("GROCER", {"english"}),  # title
        ("0%", {"percent"}),
        ("100% done", {"percent"}),
        ("%", {"percent"}),
        ("my_func", {"underscore"}),
        ("_", {"underscore"}),
        ("\\users", {"backslash"}),
        ("🔥", {"emoji"}),
        ("🎉", {"emoji"}),
        ("עולם", {"hebrew"}),
        ("עברית", {"hebrew"}),
        ("بالعالم", {"arabic"}),
        ("CAFÉ", {"decomposed"}),  # precomposed query, decomposed text
        ("cafe\u0301", {"decomposed"}),
        ("STRASSE", {"german"}),
        ("σοφια", {"greek"}),
        ("absent", set()),
    ],
)
def test_search(store: ChatStore, searchable: dict[str, int], query: str, expected: set[str]) -> None:
    found = {conversation.id for conversation in store.search_conversations(query)}
    assert found == {searchable[key] for key in expected}


def test_search_results_ordered_and_blank_query_lists_all(store: ChatStore, searchable: dict[str, int]) -> None:
    store.add_message(searchable["no_underscore"], "user", "bump")
    found = store.search_conversations("call my")
    assert [c.id for c in found] == [searchable["no_underscore"], searchable["underscore"]]
    assert store.search_conversations("  ") == store.list_conversations()


# -- messages and replies ----------------------------------------------------------------------


def test_message_round_trip(store: ChatStore) -> None:
    conversation = store.create_conversation()
    user = store.add_message(conversation.id, "user", "Why is the sky blue?")
    assert (user.role, user.content, user.state, user.reasoning, user.stats) == (
        "user",
        "Why is the sky blue?",
        "complete",
        "",
        None,
    )
    stats = {"tokens": 42, "tokens_per_second": 7.25, "stop": "eos", "nested": {"a": [1, 2]}}
    assistant = store.add_message(
        conversation.id,
        "assistant",
        "Rayleigh scattering.",
        reasoning="Think about wavelengths.",
        stats=stats,
        model="gpt-oss-20b",
    )
    assert store.messages(conversation.id) == [user, assistant]
    assert store.get_message(assistant.id) == assistant
    assert assistant.stats == stats and assistant.model == "gpt-oss-20b"
    assert store.get_message(9999) is None
    with pytest.raises(ValueError):
        store.add_message(conversation.id, "wizard", "x")
    with pytest.raises(NotFoundError):
        store.add_message(9999, "user", "orphan")


def test_one_megabyte_message(store: ChatStore) -> None:
    conversation = store.create_conversation()
    big = ("Lorem ipsum ✓ שלום 🙂 " * 60_000)[: 1024 * 1024 - 10] + "NEEDLE-42"
    message = store.add_message(conversation.id, "assistant", big, reasoning=big)
    (stored,) = store.messages(conversation.id)
    assert stored == message and stored.content == big and stored.reasoning == big
    assert [c.id for c in store.search_conversations("needle-42")] == [conversation.id]


def test_reply_lifecycle(store: ChatStore) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Hi")
    reply_id = store.begin_reply(conversation.id, "gpt-oss-20b")
    reply = store.get_message(reply_id)
    assert reply is not None
    assert (reply.role, reply.content, reply.state, reply.model) == (
        "assistant",
        "",
        "streaming",
        "gpt-oss-20b",
    )

    store.update_reply(reply_id, "Hel", "user says hi")
    partial = store.get_message(reply_id)
    assert partial is not None and (partial.content, partial.reasoning) == ("Hel", "user says hi")

    final = store.finish_reply(reply_id, "Hello!", "user says hi", {"tokens": 2}, "complete")
    assert (final.content, final.reasoning, final.stats, final.state, final.error) == (
        "Hello!",
        "user says hi",
        {"tokens": 2},
        "complete",
        None,
    )
    failed_id = store.begin_reply(conversation.id, None)
    failed = store.finish_reply(failed_id, "", "", None, "error", error="Out of memory.")
    assert (failed.state, failed.error) == ("error", "Out of memory.")
    with pytest.raises(ValueError):
        store.finish_reply(failed_id, "", "", None, "streaming")
    with pytest.raises(NotFoundError):
        store.update_reply(9999, "", "")
    with pytest.raises(NotFoundError):
        store.begin_reply(9999, None)


def test_delete_messages_after(store: ChatStore) -> None:
    conversation = store.create_conversation()
    other = store.create_conversation()
    other_message = store.add_message(other.id, "user", "untouched")
    q1 = store.add_message(conversation.id, "user", "q1")
    a1 = store.add_message(conversation.id, "assistant", "a1")
    q2 = store.add_message(conversation.id, "user", "q2")
    store.add_message(conversation.id, "assistant", "a2")

    assert store.delete_messages_after(conversation.id, q2.id) == 1  # regenerate
    assert [m.content for m in store.messages(conversation.id)] == ["q1", "a1", "q2"]
    assert store.delete_messages_after(conversation.id, q2.id, inclusive=True) == 1  # edit q2
    assert [m.id for m in store.messages(conversation.id)] == [q1.id, a1.id]
    assert store.delete_messages_after(conversation.id, a1.id) == 0
    with pytest.raises(NotFoundError):
        store.delete_messages_after(conversation.id, other_message.id)
    assert [m.content for m in store.messages(other.id)] == ["untouched"]


def test_recover_interrupted(db_path: Path) -> None:
    with ChatStore(db_path) as store:
        conversation = store.create_conversation()
        left = store.begin_reply(conversation.id, "m")
        store.update_reply(left, "partial answer", "partial thought")
        done = store.begin_reply(conversation.id, "m")
        store.finish_reply(done, "full", "", None, "stopped")
    with ChatStore(db_path) as store:
        assert store.recover_interrupted() == [left]
        assert store.recover_interrupted() == []
        recovered = store.get_message(left)
        assert recovered is not None
        assert (recovered.state, recovered.content, recovered.reasoning) == (
            "interrupted",
            "partial answer",
            "partial thought",
        )
        finished = store.get_message(done)
        assert finished is not None and finished.state == "stopped"


# -- settings ----------------------------------------------------------------------------------


def test_settings(db_path: Path) -> None:
    values = {
        "theme": "dark",
        "font_size": 13,
        "temperature": 1.0,
        "show_reasoning": False,
        "last_model": None,
        "window": {"w": 1200, "h": 800, "splitter": [300, 900]},
        "greeting": "שלום 🙂",
    }
    with ChatStore(db_path) as store:
        assert store.get_setting("theme") is None
        assert store.get_setting("theme", "light") == "light"
        for key, value in values.items():
            store.set_setting(key, value)
        store.set_setting("theme", "sepia")
        with pytest.raises(TypeError):
            store.set_setting("bad", object())
        store.set_setting("gone", 1)
        store.delete_setting("gone")
    with ChatStore(db_path) as store:
        for key, value in values.items():
            expected = "sepia" if key == "theme" else value
            assert store.get_setting(key, "default") == expected
        assert store.get_setting("gone", "default") == "default"
        assert store.get_setting("bad", "default") == "default"


# -- ReplyWriter -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reply_writer_flushes_at_most_once_per_interval(store: ChatStore) -> None:
    conversation = store.create_conversation()
    clock = FakeClock()
    writer = ReplyWriter.begin(store, conversation.id, "m", interval=1.0, clock=clock)

    def stored() -> tuple[str, str, str]:
        message = store.get_message(writer.message_id)
        assert message is not None
        return message.content, message.reasoning, message.state

    writer.append(reasoning_delta="Let me ")
    clock.now = 0.5
    writer.append(reasoning_delta="think.")
    assert stored() == ("", "", "streaming")  # not yet: less than a second
    clock.now = 1.0
    writer.append(answer_delta="The ")
    assert stored() == ("The ", "Let me think.", "streaming")
    clock.now = 1.9
    writer.append(answer_delta="answer")
    assert stored() == ("The ", "Let me think.", "streaming")
    writer.flush()  # an explicit flush, e.g. from a timer when tokens stall
    assert stored() == ("The answer", "Let me think.", "streaming")
    writer.append(answer_delta=".")
    assert (writer.answer, writer.reasoning) == ("The answer.", "Let me think.")

    final = writer.finish("stopped", {"tokens": 5})
    assert (final.content, final.reasoning, final.state, final.stats) == (
        "The answer.",
        "Let me think.",
        "stopped",
        {"tokens": 5},
    )
    with pytest.raises(RuntimeError):
        writer.append(answer_delta="late")
    with pytest.raises(RuntimeError):
        writer.finish()


def test_reply_writer_survives_kill_9(db_path: Path) -> None:
    """A real process streams a reply and is SIGKILLed; what it flushed must survive."""
    ChatStore(db_path).close()
    child = run_python(
        f"""
        import time
        from app.core.store import ChatStore, ReplyWriter
        store = ChatStore({str(db_path)!r})
        conversation = store.create_conversation("kill test")
        store.add_message(conversation.id, "user", "stream something")
        writer = ReplyWriter.begin(store, conversation.id, "m", interval=1.0)
        print("ready", writer.message_id, flush=True)
        i = 0
        while True:
            writer.append(reasoning_delta=f"<{{i}}>", answer_delta=f"[{{i}}]")
            print(i, flush=True)
            i += 1
            time.sleep(0.01)
        """
    )
    received: list[tuple[float, int]] = []  # (when this process saw the line, chunk index)
    ready = threading.Event()
    message_id: list[int] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            word = line.split()
            if word[0] == "ready":
                message_id.append(int(word[1]))
                ready.set()
            else:
                received.append((time.monotonic(), int(word[0])))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), child.stderr.read() if child.stderr else "child never started"
        time.sleep(3.0)
        assert child.poll() is None, "the child ended by itself"
        killed_at = time.monotonic()
        if hasattr(signal, "SIGKILL"):
            os.kill(child.pid, signal.SIGKILL)
        else:  # Windows: TerminateProcess, just as abrupt
            child.kill()
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        reader.join(10)
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()

    # Every chunk this process had already seen 1.5 s before the kill was appended by then,
    # so a flush (at most ~1 s later) must have saved it. Lines arriving late only make the
    # bound looser, so a loaded machine cannot make this fail spuriously.
    old_enough = [index for seen, index in received if seen <= killed_at - 1.5]
    assert old_enough, "the child streamed for less than 1.5 s"
    must_have = max(old_enough)

    with ChatStore(db_path) as store:
        assert store.recover_interrupted() == message_id
        reply = store.get_message(message_id[0])
    assert reply is not None and reply.state == "interrupted"
    saved = reply.content.count("[")
    assert saved > must_have
    assert reply.content == "".join(f"[{i}]" for i in range(saved))  # a clean prefix
    assert reply.reasoning == "".join(f"<{i}>" for i in range(saved))


# -- concurrency -------------------------------------------------------------------------------


def test_two_stores_on_one_file(db_path: Path) -> None:
    with ChatStore(db_path) as first, ChatStore(db_path) as second:
        conversation = first.create_conversation("shared")
        assert second.get_conversation(conversation.id) == conversation
        second.set_setting("k", [1, 2])
        assert first.get_setting("k") == [1, 2]

        errors: list[BaseException] = []

        def write(store: ChatStore, name: str) -> None:
            try:
                for i in range(100):
                    store.add_message(conversation.id, "user", f"{name}{i}")
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=write, args=(first, "a")),
            threading.Thread(target=write, args=(second, "b")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        contents = [m.content for m in first.messages(conversation.id)]
        assert sorted(contents) == sorted([f"a{i}" for i in range(100)] + [f"b{i}" for i in range(100)])
        assert [c for c in contents if c.startswith("a")] == [f"a{i}" for i in range(100)]


def test_two_processes_on_one_file(db_path: Path) -> None:
    with ChatStore(db_path) as store:
        conversation = store.create_conversation("shared")
        child = run_python(
            f"""
            from app.core.store import ChatStore
            with ChatStore({str(db_path)!r}) as store:
                for i in range(150):
                    store.add_message({conversation.id}, "user", f"child{{i}}")
            """
        )
        for i in range(150):
            store.add_message(conversation.id, "user", f"parent{i}")
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr
        contents = [m.content for m in store.messages(conversation.id)]
    assert len(contents) == 300
    assert [c for c in contents if c.startswith("child")] == [f"child{i}" for i in range(150)]


def test_store_used_from_another_thread(store: ChatStore) -> None:
    conversation = store.create_conversation()
    results: list[object] = []

    def worker() -> None:
        results.append(store.add_message(conversation.id, "user", "from a worker"))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(30)
    assert [m.content for m in store.messages(conversation.id)] == ["from a worker"]
    assert results == store.messages(conversation.id)


# -- alternatives (schema 3) and the search index (schema 4) -------------------------------------


def test_migrates_a_version_2_database_into_one_branch_and_indexes_it(db_path: Path) -> None:
    from app.core.store import _V1, _V2

    conn = sqlite3.connect(db_path)
    for statement in (*_V1, *_V2):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO conversations (id, title, created_at, updated_at) VALUES (1, 'Old', 1.0, 9.0)")
    conn.execute("INSERT INTO conversations (id, title, created_at, updated_at) VALUES (2, 'Empty', 1.0, 2.0)")
    conn.executemany(
        "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (1, ?, ?, ?)",
        [("user", "What is a Straße?", 2.0), ("assistant", "A street.", 3.0), ("user", "Thanks", 4.0)],
    )
    conn.commit()
    conn.close()

    with ChatStore(db_path) as store:
        messages = store.messages(1)
        assert [m.content for m in messages] == ["What is a Straße?", "A street.", "Thanks"]
        assert [m.parent_id for m in messages] == [None, messages[0].id, messages[1].id]
        assert store.thread(1).alternatives == {}
        assert store.messages(2) == []
        assert [c.id for c in store.search_conversations("STRASSE")] == [1]  # through the index
        assert [c.id for c in store.search_conversations("a street")] == [1]
        added = store.add_message(1, "assistant", "You are welcome.")
        assert added.parent_id == messages[2].id
        # Per-chat model settings (schema 3 too).
        conversation = store.get_conversation(1)
        assert conversation is not None
        assert conversation.options == {}
        assert store.update_conversation(1, options={"temperature": 0.4, "n_ctx": 8192}).options == {
            "temperature": 0.4,
            "n_ctx": 8192,
        }
        assert store.create_conversation("New", options={"top_p": 0.9}).options == {"top_p": 0.9}


def test_regenerate_keeps_the_earlier_reply_as_an_alternative(store: ChatStore) -> None:
    conversation = store.create_conversation()
    question = store.add_message(conversation.id, "user", "Name a colour.")
    first = store.add_message(conversation.id, "assistant", "Red.")
    store.rewind_to(conversation.id, question.id)  # Regenerate: the prompt ends at the question
    assert [m.id for m in store.messages(conversation.id)] == [question.id]
    second_id = store.begin_reply(conversation.id, "m")
    store.finish_reply(second_id, "Blue.", "", None, "complete")
    thread = store.thread(conversation.id)
    assert [m.content for m in thread.messages] == ["Name a colour.", "Blue."]
    assert thread.alternatives == {second_id: (first.id, second_id)}
    assert thread.position(second_id) == (2, 2) and thread.position(question.id) == (1, 1)
    # Switching back shows the first reply, and a follow-up continues that branch.
    assert [m.content for m in store.choose(first.id).messages] == ["Name a colour.", "Red."]
    follow = store.add_message(conversation.id, "user", "Why red?")
    assert follow.parent_id == first.id
    assert [m.content for m in store.messages(conversation.id)] == ["Name a colour.", "Red.", "Why red?"]
    assert {m.content for m in store.all_messages(conversation.id)} == {"Name a colour.", "Red.", "Blue.", "Why red?"}


def test_edit_keeps_the_earlier_branch_and_each_branch_comes_back_as_it_was_left(store: ChatStore) -> None:
    c = store.create_conversation().id
    q1 = store.add_message(c, "user", "q1")
    a1 = store.add_message(c, "assistant", "a1")
    q2 = store.add_message(c, "user", "q2")
    a2 = store.add_message(c, "assistant", "a2")
    # Edit q2: a sibling of q2 after a1; the old q2 and its reply stay.
    q2b = store.add_message(c, "user", "q2 edited", parent_id=q2.parent_id)
    a2b = store.add_message(c, "assistant", "a2b")
    assert [m.id for m in store.messages(c)] == [q1.id, a1.id, q2b.id, a2b.id]
    assert store.thread(c).position(q2b.id) == (2, 2)
    # Edit the very first message: a second first message.
    q1b = store.add_message(c, "user", "q1 edited", parent_id=None)
    assert [m.id for m in store.messages(c)] == [q1b.id]
    assert store.thread(c).alternatives == {q1b.id: (q1.id, q1b.id)}
    # Back to the first q1: its branch comes back with the edited q2 that was shown there last.
    assert [m.id for m in store.choose(q1.id).messages] == [q1.id, a1.id, q2b.id, a2b.id]
    assert [m.id for m in store.choose(q2.id).messages] == [q1.id, a1.id, q2.id, a2.id]
    assert [m.id for m in store.choose(q1b.id).messages] == [q1b.id]
    assert [m.id for m in store.choose(q1.id).messages] == [q1.id, a1.id, q2.id, a2.id]
    with pytest.raises(NotFoundError):
        store.add_message(c, "user", "x", parent_id=9999)


def test_a_long_chain_deletes_without_recursion_limits(store: ChatStore) -> None:
    """A cascade along parent links would recurse once per message (SQLite stops at 1,000)."""
    c = store.create_conversation().id
    ids = [store.add_message(c, "user" if i % 2 == 0 else "assistant", f"m{i}").id for i in range(1_500)]
    assert len(store.messages(c)) == 1_500
    assert store.delete_messages_after(c, ids[10]) == 1_489
    assert [m.id for m in store.messages(c)] == ids[:11]
    assert store.delete_conversation(c)
    assert store.all_messages(c) == [] and store.search_conversations("m1") == []


def test_the_search_index_follows_every_write_and_is_used(db_path: Path, store: ChatStore) -> None:
    c = store.create_conversation("Chat").id
    reply = store.begin_reply(c, None)
    store.update_reply(reply, "the partial mentions zanzibar", "")
    assert [x.id for x in store.search_conversations("ZANZIBAR")] == [c]
    store.finish_reply(reply, "the final text mentions timbuktu", "", None, "complete")
    assert store.search_conversations("zanzibar") == [] and [x.id for x in store.search_conversations("timbuk")] == [c]
    store.delete_messages_after(c, reply, inclusive=True)
    assert store.search_conversations("timbuk") == []
    conn = sqlite3.connect(db_path)
    plan = " ".join(
        str(row[-1])
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT rowid FROM message_text WHERE message_text MATCH ?", ('"abc"',)
        )
    )
    conn.close()
    assert "VIRTUAL TABLE INDEX" in plan
