"""The CLI on a headless machine, run as a real subprocess (`python -m app …`): every bad input is
one sentence on stderr (never "unexpected error"), the question may come from stdin, `--model`
takes an installed model's id, a closed pipe ends quietly, and llama.cpp's log reaches the log
file, not the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.hostile_gguf import HOSTILE_FILES

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def hearth(
    *args: str | bytes, home: Path, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    environ = {**os.environ, "HEARTH_HOME": str(home), "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "app", *args], input=stdin, capture_output=True, cwd=ROOT, env=environ, timeout=600
    )


def one_sentence(result: subprocess.CompletedProcess[bytes]) -> str:
    """The single stderr line of a failed command (checked), without the "hearth: " prefix."""
    err = result.stderr.decode("utf-8", errors="replace")
    lines = err.strip().splitlines()
    assert result.returncode == 1, err
    assert len(lines) == 1 and lines[0].startswith("hearth: "), err
    assert "unexpected error" not in err and "Traceback" not in err, err
    return lines[0].removeprefix("hearth: ")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ((b"ask", b"caf\xe9?"), "The question is not valid UTF-8 text"),  # Latin-1 bytes from a terminal
        ((b"ask", b"--system", b"\xff\xfe", b"hi"), "The system prompt is not valid UTF-8 text"),
        (("ask", "--model", "no-such-model", "hi"), "neither a model file nor an installed model"),
        (("ask", "--model", "gpt-oss-20b", "hi"), "is not installed; `hearth download gpt-oss-20b`"),
        (("probe", "--model", "/no/such/file.gguf"), "There is no model file /no/such/file.gguf."),
    ],
)
def test_bad_arguments_are_sentences(tmp_path: Path, argv: tuple[str | bytes, ...], expected: str) -> None:
    assert expected in one_sentence(hearth(*argv, home=tmp_path))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("ask", "--max-tokens", "-5", "hi"), "argument --max-tokens: it must be a whole number from 1"),
        (("ask", "--max-tokens", "0", "hi"), "argument --max-tokens: it must be a whole number from 1"),
        (("ask", "--temperature", "nan", "hi"), "argument --temperature: it must be a number from 0 to 5, not nan"),
        (("ask", "--temperature", "inf", "hi"), "argument --temperature: it must be a number from 0 to 5"),
        (("ask", "--seed", "-1", "hi"), "argument --seed: it must be a whole number from 0 to 4,294,967,295"),
        (("probe", "--ctx", "many"), "argument --ctx: 'many' is not a whole number"),
    ],
)
def test_impossible_numbers_are_refused(tmp_path: Path, argv: tuple[str, ...], expected: str) -> None:
    result = hearth(*argv, home=tmp_path)
    assert result.returncode == 2  # argparse's usage error, never accepted silently
    assert expected in result.stderr.decode()


CONVERSATIONS: list[tuple[str, bytes, str]] = [
    ("invalid-utf8", b'[{"role": "user", "content": "caf\xe9"}]', "is not UTF-8 text"),
    ("lone-surrogate", b'[{"role": "user", "content": "a\\ud800b"}]', "not valid Unicode text (a lone surrogate"),
    ("surrogate-in-tool", b'[{"role": "tool", "content": "ok", "name": "\\udfff"}]', "lone surrogate"),
    ("deep", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("deep-object", b'{"messages": [' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"]}", "nested too deeply"),
    ("tool-calls-number", b'[{"role": "assistant", "tool_calls": 5}]', '"tool_calls" that is not a list'),
    ("tool-call-no-name", b'[{"role": "assistant", "tool_calls": [{"function": {}}]}]', "without a function name"),
    ("not-a-list", b'{"messages": 3}', "must be a list of messages"),
    ("tools-not-objects", b'{"messages": [], "tools": [1]}', '"tools" must be a list'),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "expected"), CONVERSATIONS, ids=[c[0] for c in CONVERSATIONS])
def test_bad_conversation_files_are_sentences(
    tiny_gptoss_path: Path, tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    conv = tmp_path / f"{name}.json"
    conv.write_bytes(content)
    sentence = one_sentence(
        hearth("prompt", "--model", str(tiny_gptoss_path), "--conversation", str(conv), home=tmp_path)
    )
    assert expected in sentence


@pytest.mark.parametrize("command", ["probe", "prompt", "ask"])
def test_a_context_length_of_2_to_the_32_is_a_sentence(tmp_path: Path, command: str) -> None:
    case = next(c for c in HOSTILE_FILES if c.name == "tiny-context-length-4294967295")
    model = case.write(tmp_path)
    conv = tmp_path / "chat.json"
    conv.write_text('[{"role": "user", "content": "hi"}]', encoding="utf-8")
    argv = {
        "probe": ("probe", "--model", str(model)),
        "prompt": ("prompt", "--model", str(model), "--conversation", str(conv)),
        "ask": ("ask", "--model", str(model), "hi"),
    }[command]
    assert "says its context length is 4,294,967,295 tokens" in one_sentence(hearth(*argv, home=tmp_path))


def test_ask_reads_the_question_from_stdin(tmp_path: Path) -> None:
    question = b"What is the capital of France?"
    result = hearth(
        "ask", "--seed", "1", "--temperature", "0", "--max-tokens", "30", "-", stdin=question, home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert b"Paris" in result.stdout
    # Longer than a shell argument may be (128 KiB): read whole, then refused for the model's context.
    long = ("Tell me about this. " * 10_000).encode()
    assert len(long) > 128 * 1024
    sentence = one_sentence(hearth("ask", "--ctx", "2048", "-", stdin=long, home=tmp_path))
    assert "tokens long" in sentence and "context" in sentence
    assert "not valid UTF-8" in one_sentence(hearth("ask", "-", stdin=b"caf\xe9", home=tmp_path))
    assert "empty" in one_sentence(hearth("ask", "-", stdin=b"  \n", home=tmp_path))


def test_model_takes_an_installed_models_id(tiny_gptoss_path: Path, tmp_path: Path) -> None:
    env = {"HEARTH_HOME": str(tmp_path)}
    imported = subprocess.run(
        [sys.executable, "-c", "import sys; from app.core import catalog; print(catalog.import_model(sys.argv[1]).id)",
         str(tiny_gptoss_path)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, check=True,
    ).stdout.strip()  # fmt: skip
    assert imported.startswith("import-")
    probe = hearth("probe", "--json", "--model", imported, home=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout)["model"]["architecture"] == "gpt-oss"
    asked = hearth("ask", "--model", imported, "--max-tokens", "4", "--json", "hi", home=tmp_path)
    assert asked.returncode == 0 and json.loads(asked.stdout)["stats"]["generated_tokens"] >= 1, asked.stderr
    starter = hearth("probe", "--json", "--model", "gemma-3-270m-starter", home=tmp_path)
    assert json.loads(starter.stdout)["model"]["architecture"] == "gemma3"


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`hearth models | head -1`, and a reader that goes away before anything is written."""
    env = {**os.environ, "HEARTH_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    shell = subprocess.run(
        ["bash", "-c", f"'{sys.executable}' -m app models | head -1; echo \"rc=${{PIPESTATUS[0]}}\" >&2"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert shell.stdout.startswith("ID ") and len(shell.stdout.splitlines()) == 1
    assert "Broken pipe" not in shell.stderr and "Errno" not in shell.stderr
    assert shell.stderr.strip().splitlines()[-1] in ("rc=0", "rc=141")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "models", "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first byte
    err = proc.stderr.read()
    assert proc.wait(120) == 141 and err == b""


def test_llama_cpp_writes_nothing_to_the_terminal(tiny_gptoss_path: Path, tmp_path: Path) -> None:
    """Its log (the engine process's stderr) goes to the log file; only the reply's statistics line
    reaches stderr. `prompt`, `probe` and `models` never load llama.cpp in the CLI's process."""
    asked = hearth("ask", "--max-tokens", "8", "--seed", "2", "hi", home=tmp_path)
    assert asked.returncode == 0, asked.stderr
    err_lines = asked.stderr.decode().strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("[") and "tok/s" in err_lines[0], asked.stderr
    log = (tmp_path / "logs" / "hearth.log").read_text(encoding="utf-8")
    assert "WARNING hearth.llama" in log and "control-looking token" in log  # llama.cpp's warning about Gemma
    conv = tmp_path / "chat.json"
    conv.write_text('[{"role": "user", "content": "hi"}]', encoding="utf-8")
    script = (
        "import sys\nfrom app.cli import main\nrc = main(sys.argv[1:])\n"
        "sys.stdout.flush()\n"
        "print('llama_cpp loaded' if 'llama_cpp' in sys.modules else 'no llama_cpp', file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    for argv in (
        ["prompt", "--model", str(tiny_gptoss_path), "--conversation", str(conv)],
        ["probe", "--model", str(tiny_gptoss_path)],
        ["models"],
    ):
        result = subprocess.run(
            [sys.executable, "-c", script, *argv], capture_output=True, text=True, cwd=ROOT, timeout=300,
            env={**os.environ, "HEARTH_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stderr == "no llama_cpp\n", (argv, result.stderr)
