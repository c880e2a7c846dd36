"""Secrets: a Hugging Face token reaches no file Hearth writes, no log, no stdout or stderr.

One data folder, real processes, all with --debug where the command takes it: `hearth token set`
(from stdin, into a stand-in keyring: tests/fixtures/keyring.py `FileKeyring`, a JSON file outside
the data folder), `token status`, gated downloads from the local hub (tests/hub_server.py): one the
token opens, one it does not (403), a gated catalog model, one more with a second token in HF_TOKEN;
`models`, then the real window (start-up, the starter, a chat, Library, Settings, which shows the
token's state) with the token in the keyring. Then every file under the data folder and the hub's
cache (logs, database, settings, downloads, partial files) and every byte of output is searched for
both tokens and for their inner 20 characters (a token shown half-masked is still a leak).

The hub must have seen the token (the gated download used it: the search would be empty for a run
that never read it), and the keyring file must hold it (the search finds it there: it is not blind).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests import reliability
from tests.hub_server import HubServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GEMMA_REPO, GEMMA_FILE = "ggml-org/gemma-3-1b-it-qat-GGUF", "gemma-3-1b-it-qat-Q4_0.gguf"  # a catalog entry


def new_token() -> str:
    return "hf_" + secrets.token_urlsafe(30).replace("-", "a").replace("_", "b")


def test_the_token_reaches_no_file_log_or_output(tmp_path: Path) -> None:
    from tests.fixtures.tiny_gptoss import write_tiny_gptoss

    token, env_token = new_token(), new_token()
    home, hf_home, ring = tmp_path / "home", tmp_path / "hf-home", tmp_path / "keyring.json"
    model = write_tiny_gptoss(tmp_path / "tiny-Q8_0.gguf").read_bytes()
    outputs: list[tuple[str, str]] = []
    with HubServer(redirect=True) as hub:
        hub.add_repo("someone/gated-GGUF", {"tiny-Q8_0.gguf": model}, gated=True, tokens=(token,))
        hub.add_repo("someone/closed-GGUF", {"tiny-Q8_0.gguf": model}, gated=True, tokens=())
        hub.add_repo(GEMMA_REPO, {GEMMA_FILE: model}, gated=True, tokens=())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update(
            HEARTH_HOME=str(home),
            HF_HOME=str(hf_home),
            HF_ENDPOINT=hub.url,
            PYTHONPATH=str(ROOT),
            PYTHON_KEYRING_BACKEND="tests.fixtures.keyring.FileKeyring",
            HEARTH_TEST_KEYRING=str(ring),
            QT_QPA_PLATFORM="offscreen",
        )

        def run(name: str, argv: list[str], stdin: str = "", extra: dict[str, str] | None = None) -> int:
            result = subprocess.run(
                [sys.executable, *argv], input=stdin, capture_output=True, text=True,
                env={**env, **(extra or {})}, cwd=ROOT, timeout=600,
            )  # fmt: skip
            outputs.append((name, result.stdout + result.stderr))
            return result.returncode

        hearth = ["-m", "app", "--debug"]
        assert run("token set", [*hearth, "token", "set"], stdin=token + "\n") == 0, outputs[-1]
        assert run("token status", [*hearth, "token", "status"]) == 0, outputs[-1]
        assert run("gated download", [*hearth, "download", "someone/gated-GGUF"]) == 0, outputs[-1]
        assert run("refused download", [*hearth, "download", "someone/closed-GGUF"]) == 1, outputs[-1]
        assert "licence" in outputs[-1][1] or "access" in outputs[-1][1], outputs[-1]
        assert run("refused catalog download", [*hearth, "download", "gemma-3-1b-it-qat"]) == 1, outputs[-1]
        assert (
            run("HF_TOKEN download", [*hearth, "download", "someone/closed-GGUF"], extra={"HF_TOKEN": env_token}) == 1
        ), outputs[-1]
        assert run("models", [*hearth, "models", "--json"]) == 0, outputs[-1]
        assert run("window", ["-m", "tests.fixtures.window_driver", "tour"]) == 0, outputs[-1]
        assert "DRIVER DONE" in outputs[-1][1]
        authorized = [r for r in hub.log if r.authorized]
        cdn_authorized = [r for r in authorized if r.server == "cdn"]

    # The search is not blind: the keyring holds the token, the hub saw it, the log was written.
    assert any(r.status in (200, 206) and "gated-GGUF" in r.path for r in authorized)
    assert any(r.status == 403 for r in authorized)
    logs = list((home / "logs").rglob("*.log*"))
    assert logs and sum(f.stat().st_size for f in logs) > 0

    needles = [t.encode() for t in (token, env_token)] + [t[8:28].encode() for t in (token, env_token)]
    assert any(n in ring.read_bytes() for n in needles)  # the search finds a token where there is one
    leaks: list[str] = []
    files = [f for folder in (home, hf_home) if folder.exists() for f in folder.rglob("*") if f.is_file()]
    scanned = 0
    for f in files:
        data = f.read_bytes()
        scanned += len(data)
        leaks += [f"{f.relative_to(tmp_path)}" for n in needles if n in data]
    for name, text in outputs:
        leaks += [f"output of {name}" for n in needles if n.decode() in text]
    reliability.report(
        "secrets",
        commands=len(outputs),
        files_scanned=len(files),
        log_files=len(logs),
        bytes_scanned=scanned,
        output_chars=sum(len(t) for _, t in outputs),
        hub_requests_with_token=len(authorized),
        cdn_requests_with_token=len(cdn_authorized),
        leaks=len(leaks),
    )
    assert leaks == []
    assert cdn_authorized == [], "the token went to the file host the hub redirected to"
