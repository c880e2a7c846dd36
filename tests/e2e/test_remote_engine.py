"""Remote engines, for real: Hearth's chat service streaming from OpenAI-compatible servers on
127.0.0.1 — Hearth's own `hearth serve` (real llama.cpp behind it), llama.cpp's own llama-server
(tests/e2e/test_llama_server.py), and small real HTTP servers that misbehave on purpose (a web page,
malformed events, an empty stream, a connection cut mid-reply)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.core import netlog
from app.core.chat.service import ChatService, Loaded, LoadFailed, ReplyOutcome, ServiceEvent
from app.core.engine.remote import RemoteBackend, normalise_url
from app.core.engine.types import CancelToken, EngineError, GenerateRequest, Sampling
from app.core.formats.base import AnswerDelta, Conversation, Done, Message, ReasoningDelta
from app.core.store import ChatStore
from tests.e2e.test_api_server import KEY, Served

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

# A reply that does not end by itself: greedy, the starter counts on past 300 tokens (checked: it
# ends on "length"; where a request can say so, the end of text is ignored as well, since greedy
# output differs between CPUs). "Count to five hundred." at the default temperature often ended
# within 3 events ("Five hundred."), which made the Stop tests pass or fail by chance.
COUNTING = "Continue the list: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
GREEDY = Sampling(temperature=0.0, seed=1)


def ask(text: str, **kw: object) -> GenerateRequest:
    return GenerateRequest(Conversation((Message("user", text),)), **kw)  # type: ignore[arg-type]


def collect(backend: RemoteBackend, request: GenerateRequest, cancel: CancelToken | None = None) -> tuple[list, Done]:
    events = list(backend.generate(request, cancel))
    done = events[-1]
    assert isinstance(done, Done)
    return events[:-1], done


@pytest.fixture(scope="module")
def hearth_starter(starter_path: Path) -> Iterator[Served]:
    served = Served(starter_path)
    yield served
    served.close()


@pytest.fixture(scope="module")
def hearth_gptoss(tiny_gptoss_path: Path) -> Iterator[Served]:
    served = Served(tiny_gptoss_path, api_key=KEY)
    yield served
    served.close()


def test_addresses_are_understood_and_nonsense_refused() -> None:
    assert normalise_url("gpu-box.local:8080") == "http://gpu-box.local:8080/v1"
    assert normalise_url("https://h/v1/") == "https://h/v1"
    for bad in ("", "ftp://x", "http://"):
        with pytest.raises(EngineError):
            normalise_url(bad)


def test_a_reply_streams_from_another_hearth(hearth_starter: Served) -> None:
    netlog.clear()
    backend = RemoteBackend(hearth_starter.server.url)
    try:
        result = backend.load(hearth_starter.model)
        assert result.engine == f"Remote · 127.0.0.1:{hearth_starter.server.port}" and result.info is None
        events, done = collect(
            backend, ask("What is the capital of France?", max_tokens=24, sampling=Sampling(temperature=0.0, seed=1))
        )
        assert "Paris" in "".join(e.text for e in events if isinstance(e, AnswerDelta))
        assert done.stop_reason in ("stop", "length") and done.stats.generated_tokens > 0
        assert done.stats.prompt_tokens > 0 and done.stats.time_to_first_token_s > 0
        assert any(c.host == result.remote and "remote engine" in c.purpose for c in netlog.contacts())
    finally:
        backend.close()


def test_gpt_oss_reasoning_arrives_as_reasoning_and_the_key_is_used(hearth_gptoss: Served) -> None:
    backend = RemoteBackend(hearth_gptoss.server.url, KEY)
    try:
        result = backend.load(hearth_gptoss.model)
        assert result.takes_effort  # a gpt-oss model: the effort switch applies
        body = backend.body(ask("Hi", effort="high"))
        assert body["reasoning_effort"] == "high" and body["stream"] is True
        events, done = collect(backend, ask("Hi", max_tokens=48, effort="high", sampling=Sampling(seed=5)))
        assert done.stop_reason in ("stop", "length", "tool_call")
        assert all("<|" not in e.text for e in events if isinstance(e, (AnswerDelta, ReasoningDelta)))
    finally:
        backend.close()
    wrong = RemoteBackend(hearth_gptoss.server.url, "not-the-key")
    with pytest.raises(EngineError, match="refused the API key"):
        wrong.load(hearth_gptoss.model)


def test_stop_closes_the_stream(hearth_starter: Served) -> None:
    backend = RemoteBackend(hearth_starter.server.url)
    try:
        backend.load(hearth_starter.model)
        token = CancelToken()
        seen = 0
        counting = ask(COUNTING, max_tokens=2000, sampling=GREEDY, ignore_eos=True)
        assert backend.body(counting)["ignore_eos"] is True  # llama-server's extension, passed on
        stream = backend.generate(counting, token)
        for event in stream:
            if isinstance(event, Done):
                done = event
                break
            seen += 1
            if seen == 3:
                token.set()
        assert done.stop_reason == "cancelled"
        state = hearth_starter.server.state
        deadline = time.monotonic() + 30
        while state.running:  # the serving Hearth saw the disconnect and freed its engine
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        backend.close()


def test_a_model_the_server_does_not_offer_is_a_sentence(hearth_starter: Served) -> None:
    backend = RemoteBackend(hearth_starter.server.url)
    with pytest.raises(EngineError, match="does not offer 'llama-99b'; it offers"):
        backend.load("llama-99b")


def test_nothing_listening_is_a_sentence() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EngineError, match="cannot reach the server"):
        RemoteBackend(f"127.0.0.1:{port}").load("anything")


class Misbehaving(BaseHTTPRequestHandler):
    """A real HTTP server with a model list and a chosen way of answering chats."""

    answer: Callable[[BaseHTTPRequestHandler], None]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.server.mode == "html":  # type: ignore[attr-defined]
            self._send(200, "text/html", b"<!doctype html><title>Router login</title>")
        else:
            self._send(200, "application/json", json.dumps({"data": [{"id": "m"}]}).encode())

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "garbage":
            self._send(200, "text/event-stream", b"data: {not json\n\n")
        elif mode == "empty":
            self._send(200, "text/event-stream", b"data: [DONE]\n\n")
        elif mode == "cut":
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            chunk = {"choices": [{"index": 0, "delta": {"content": "Half an "}}]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
            time.sleep(0.2)
            self.connection.shutdown(socket.SHUT_RDWR)  # the server goes away mid-reply
        elif mode == "think":
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            for text in ("<think>Let me", " think.</think>", "The answer."):
                chunk = {"choices": [{"index": 0, "delta": {"content": text}}]}
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def misbehaving() -> Iterator[Callable[[str], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(mode: str) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
        server.mode = mode  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()


def test_a_web_page_instead_of_an_api_is_a_sentence(misbehaving: Callable[[str], str]) -> None:
    with pytest.raises(EngineError, match="answers with a web page"):
        RemoteBackend(misbehaving("html")).load("m")


@pytest.mark.parametrize(
    "mode, reason, phrase",
    [
        ("garbage", "error", "could not read"),
        ("empty", "error", "empty reply"),
        ("cut", "dropped", "dropped mid-reply"),
    ],
)
def test_a_misbehaving_stream_ends_with_a_sentence(
    misbehaving: Callable[[str], str], mode: str, reason: str, phrase: str
) -> None:
    backend = RemoteBackend(misbehaving(mode))
    backend.load("m")
    service = ChatService(None, backend)
    try:
        items = list(service.stream(ask("Hi")))
    finally:
        service.shutdown()
    done = items[-1]
    assert isinstance(done, Done) and done.stop_reason == reason and phrase in (done.error or "")
    if mode == "cut":
        assert [e.text for e in items[:-1] if isinstance(e, AnswerDelta)] == ["Half an "]  # kept


def test_inline_think_tags_become_reasoning(misbehaving: Callable[[str], str]) -> None:
    backend = RemoteBackend(misbehaving("think"))
    backend.load("m")
    events, done = collect(backend, ask("Hi"))
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Let me think."
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == "The answer."
    assert done.stop_reason == "stop"


def test_a_server_killed_mid_reply_keeps_the_partial_reply_marked(tmp_path: Path, starter_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HEARTH_HOME": str(tmp_path / "server-home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--model", str(starter_path), "--port", str(port), "--ctx", "2048"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = ChatStore(tmp_path / "chat.sqlite3")
    inbox: queue.Queue[ServiceEvent] = queue.Queue()
    service = ChatService(store, RemoteBackend(f"127.0.0.1:{port}"), listener=inbox.put)
    try:
        assert proc.stderr is not None and "serving" in proc.stderr.readline()
        service.load(starter_path.stem)
        while not isinstance(event := inbox.get(timeout=60), (Loaded, LoadFailed)):
            pass
        assert isinstance(event, Loaded), event
        conv = store.create_conversation("remote")
        store.add_message(conv.id, "user", COUNTING)
        _job, message_id = service.start_turn(conv.id, model_name=starter_path.stem, max_tokens=2000, sampling=GREEDY)
        killed = False
        while True:
            event = inbox.get(timeout=300)
            if isinstance(event, ReplyOutcome):
                break
            if not killed and getattr(event, "events", None):
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
        assert killed and event.state == "interrupted" and event.stop_reason == "dropped"
        stored = store.get_message(message_id)
        assert stored is not None and stored.state == "interrupted" and stored.content and stored.error
    finally:
        service.shutdown()
        store.close()
        proc.kill()
        proc.wait(30)


def test_hearth_ask_remote_from_the_command_line(hearth_starter: Served) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "ask",
            "--remote",
            hearth_starter.server.url,
            "--model",
            hearth_starter.model,
            "--max-tokens",
            "24",
            "--temperature",
            "0",
            "--json",
            "What is the capital of France?",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in json.loads(result.stdout)["answer"]
    missing = subprocess.run(
        [sys.executable, "-m", "app", "ask", "--remote", hearth_starter.server.url, "--model", "nope", "Hi"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "does not offer 'nope'" in missing.stderr
