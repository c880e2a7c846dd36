from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.conversation_file import ConversationFileError, load_conversation, parse_conversation


def test_openai_shape_with_tools_and_thinking(tmp_path: Path) -> None:
    f = tmp_path / "c.json"
    f.write_text(
        json.dumps(
            {
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "Weather"}, {"type": "text", "text": "?"}]},
                    {
                        "role": "assistant",
                        "thinking": "Need the tool.",
                        "content": "",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": {"city": "Oslo"}},
                            }
                        ],
                    },
                    {"role": "tool", "name": "get_weather", "tool_call_id": "c1", "content": '{"t": 3}'},
                ],
            }
        ),
        encoding="utf-8",
    )
    conv = load_conversation(f)
    assert [m.role for m in conv.messages] == ["system", "user", "assistant", "tool"]
    assert conv.messages[1].content == "Weather?"
    assert conv.messages[2].thinking == "Need the tool."
    assert conv.messages[2].tool_calls[0].name == "get_weather"
    assert json.loads(conv.messages[2].tool_calls[0].arguments) == {"city": "Oslo"}
    assert conv.tools[0]["function"]["name"] == "get_weather"


def test_a_plain_list_is_accepted() -> None:
    assert parse_conversation([{"role": "user", "content": "hi"}]).messages[0].content == "hi"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON .line 1, column 2"),
        ('[{"role": "wizard", "content": "x"}]', "unknown role 'wizard'"),
        ('[{"content": "x"}]', "unknown role None"),
        ('["just a string"]', "Message 1 is not an object"),
        ('{"messages": 3}', "must be a list of messages"),
        ('[{"role": "user", "content": 5}]', "neither text nor a list"),
        ('[{"role": "user", "content": [{"type": "image_url"}]}]', "not text"),
        ('[{"role": "assistant", "tool_calls": [{"function": {}}]}]', "without a function name"),
    ],
)
def test_bad_files_get_one_clear_sentence(tmp_path: Path, content: str, match: str) -> None:
    f = tmp_path / "c.json"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ConversationFileError, match=match):
        load_conversation(f)


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConversationFileError, match="Cannot read"):
        load_conversation(tmp_path / "missing.json")
    f = tmp_path / "latin1.json"
    f.write_bytes(b'[{"role": "user", "content": "caf\xe9"}]')
    with pytest.raises(ConversationFileError, match="not UTF-8"):
        load_conversation(f)
