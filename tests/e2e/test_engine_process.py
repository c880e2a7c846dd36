"""llama.cpp in its own process: real llama.cpp, real GGUF files, real child processes.

What the engine process guarantees: the app's process never loads llama.cpp; an abort in
llama.cpp or a kill -9 ends the engine only, with a sentence that quotes llama.cpp; cancel is per
job (a Stop before the first token is kept) and immediate (a generation that ignores it is ended
by restarting the process); unloading returns the model's memory (the process exits); prefix
reuse across turns keeps working inside the engine process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from app.core.engine.host import LocalBackend, crash_sentence, llama_message
from app.core.engine.types import CancelToken, EngineCrashedError, EngineError, GenerateRequest, Sampling
from app.core.formats.base import Conversation, Done, Event, Message
from app.core.gguf_file import GGUFError
from tests.fixtures.hostile_gguf import HOSTILE_FILES, TINY_CASES, HostileFile

pytestmark = pytest.mark.slow

GREEDY = Sampling(temperature=0.0, seed=7)
CTX = 2048
ROOT = Path(__file__).resolve().parents[2]


def ask(text: str, max_tokens: int | None = 16, history: tuple[Message, ...] = ()) -> GenerateRequest:
    return GenerateRequest(Conversation((*history, Message("user", text))), max_tokens=max_tokens, sampling=GREEDY)


def run(backend: LocalBackend, request: GenerateRequest, cancel: CancelToken | None = None) -> tuple[str, Done]:
    text: list[str] = []
    for event in backend.generate(request, cancel):
        if isinstance(event, Done):
            return "".join(text), event
        text.append(getattr(event, "text", ""))
    raise AssertionError("no Done")


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    b = LocalBackend()
    yield b
    b.close()


@pytest.fixture(scope="module")
def crashing_gptoss(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny gpt-oss whose header says 5 of its 4 experts are used per token: llama.cpp aborts
    on GGML_ASSERT(n_expert_used_max <= hparams.n_expert)."""
    case = next(c for c in TINY_CASES if c.name == "tiny-expert-used-5-of-4")
    return case.write(tmp_path_factory.mktemp("hostile"))


def test_the_apps_process_never_loads_llama_cpp(tmp_path: Path, starter_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from app.core.chat.service import ChatService\n"
        "from app.core.engine.types import GenerateRequest, Sampling\n"
        "from app.core.formats.base import Conversation, Message, Done\n"
        "import queue\n"
        "q = queue.Queue()\n"
        "s = ChatService(None, listener=q.put, ctx_cap=2048)\n"
        f"s.load(Path({str(starter_path)!r}))\n"
        "while type(q.get()).__name__ not in ('Loaded', 'LoadFailed'): pass\n"
        "req = GenerateRequest(Conversation((Message('user', 'Hi'),)), max_tokens=4,\n"
        "                      sampling=Sampling(temperature=0))\n"
        "done = [e for e in s.stream(req) if isinstance(e, Done)][0]\n"
        "s.shutdown()\n"
        "assert done.stats.generated_tokens > 0, done\n"
        "print('llama_cpp' in sys.modules, [m for m in sys.modules if m.startswith('llama_cpp')])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "False []"


def test_load_and_generate_in_a_child_process(backend: LocalBackend, starter_path: Path) -> None:
    plans: list[object] = []
    result = backend.load(starter_path, ctx_cap=CTX, on_plan=lambda info, plan: plans.append(plan))
    assert plans and result.plan is not None and result.plan.n_ctx == CTX and result.engine.startswith("CPU")
    pid = backend.pid
    assert pid is not None and pid != os.getpid() and psutil.pid_exists(pid)
    text, done = run(backend, ask("What is the capital of France?", 24))
    assert done.stop_reason in ("stop", "length") and done.stats.generated_tokens > 0
    assert "Paris" in text


def test_prefix_reuse_across_turns_inside_the_engine_process(backend: LocalBackend, starter_path: Path) -> None:
    backend.load(starter_path, ctx_cap=CTX)
    first = ask("Tell me about the river Seine in two sentences.", 24)
    text, done1 = run(backend, first)
    history = (Message("user", first.conversation.messages[-1].content), Message("assistant", text))
    _text2, done2 = run(backend, ask("And the Loire?", 8, history))
    assert done2.stats.prompt_tokens > done1.stats.prompt_tokens
    # Only the new turn is evaluated: the earlier turns' tokens stay in the engine's KV cache.
    assert done2.stats.prompt_tokens_evaluated < done2.stats.prompt_tokens - done1.stats.prompt_tokens // 2


def test_a_file_that_slips_past_the_validator_kills_only_the_engine(crashing_gptoss: Path) -> None:
    backend = LocalBackend(check_models=False)  # test-only: let llama.cpp see what it aborts on
    try:
        with pytest.raises(EngineCrashedError) as caught:
            backend.load(crashing_gptoss, ctx_cap=CTX)
        message = str(caught.value)
        assert message.startswith("The model engine stopped while loading tiny gpt-oss")
        assert "llama.cpp reported 'n_expert_used_max <= hparams.n_expert'" in message
        assert caught.value.detail == "n_expert_used_max <= hparams.n_expert"
        assert not backend.loaded and backend.pid is None
    finally:
        backend.close()


ABORTING = [c for c in HOSTILE_FILES if c.llama == "abort"]


@pytest.mark.parametrize("case", ABORTING, ids=[c.name for c in ABORTING])
def test_every_file_that_aborts_llama_cpp_costs_only_the_engine(case: HostileFile, tmp_path: Path) -> None:
    """With the validator off, each file that aborts llama.cpp (tests/fixtures/hostile_gguf.py)
    ends the engine process with llama.cpp's message, on load or on the first reply; this process
    goes on. With it on, the same file is refused with a sentence before llama.cpp sees it."""
    path = case.write(tmp_path)
    unchecked = LocalBackend(check_models=False)
    try:
        crash: str | None = None
        if case.probe == "load":
            with pytest.raises(EngineError) as caught:
                unchecked.load(path, ctx_cap=case.n_ctx or None)
            if isinstance(caught.value, EngineCrashedError):
                crash = str(caught.value)
            else:
                # So absurd that the planner refuses it before an engine starts (2^32 layers need
                # millions of GB): a second gate in front of llama.cpp, not a crash.
                assert "needs about" in str(caught.value) and unchecked.pid is None
        else:  # loads, then aborts on the first text it tokenizes
            unchecked.load(path, ctx_cap=case.n_ctx or None)
            _text, done = run(unchecked, ask("Bonjour à tous, ça va ? 😀", 4))
            assert done.stop_reason == "crashed"
            crash = done.error or ""
        if crash is not None:
            assert crash.startswith("The model engine stopped while")
            assert "llama.cpp reported" in crash or "it aborted" in crash
        assert not unchecked.loaded and unchecked.pid is None
    finally:
        unchecked.close()
    checked = LocalBackend()
    try:
        with pytest.raises(GGUFError) as refused:
            checked.load(path, ctx_cap=case.n_ctx or None)
        assert case.expected in str(refused.value)
        assert checked.pid is None  # refused before any engine process started
    finally:
        checked.close()


def test_kill_9_mid_reply_ends_the_stream_as_crashed_and_keeps_what_came(
    backend: LocalBackend, starter_path: Path
) -> None:
    backend.load(starter_path, ctx_cap=CTX)
    pid = backend.pid
    assert pid is not None
    events: list[Event] = []
    # The end of text ignored: greedy, this reply ended after 8 tokens on the CI machine, before the kill.
    request = replace(ask("Count from one to two hundred, one number per line.", 400), ignore_eos=True)
    for event in backend.generate(request):
        events.append(event)
        if len(events) == 3:
            os.kill(pid, signal.SIGKILL)
        if isinstance(event, Done):
            break
    done = events[-1]
    assert isinstance(done, Done) and done.stop_reason == "crashed"
    assert done.error is not None and "was killed" in done.error and "Gemma 3 270m" in done.error
    assert len(events) > 3 and not backend.loaded


def test_stop_before_the_first_token_is_not_lost(backend: LocalBackend, starter_path: Path) -> None:
    backend.load(starter_path, ctx_cap=CTX)
    token = CancelToken()
    token.set()  # Stop pressed before the reply even started
    _text, done = run(backend, ask("Write a long story about a lighthouse.", None), token)
    assert done.stop_reason == "cancelled" and done.stats.generated_tokens == 0
    # The engine is still usable, and the cancel did not leak into the next reply.
    _text, done = run(backend, ask("Hi", 4))
    assert done.stop_reason in ("stop", "length") and done.stats.generated_tokens > 0


def test_stop_during_a_long_prompt_stops_it_in_the_engine(starter_path: Path) -> None:
    # A generous grace here: this test proves llama.cpp's abort callback stops a long prompt by
    # itself (no kill needed); the watchdog has its own test below. The latency is printed.
    backend = LocalBackend(cancel_grace_s=10.0)
    try:
        backend.load(starter_path, ctx_cap=8192)
        long_prompt = "Summarise this. " + "The quick brown fox jumps over the lazy dog. " * 600
        token = CancelToken()
        stopped_at: list[float] = []

        def stop_soon() -> None:
            time.sleep(1.0)
            stopped_at.append(time.perf_counter())
            token.set()

        threading.Thread(target=stop_soon).start()
        _text, done = run(backend, ask(long_prompt, 8), token)
        latency = time.perf_counter() - stopped_at[0]
        print(f"cancel latency during prompt processing: {latency * 1000:.0f} ms")
        assert done.stop_reason == "cancelled" and done.stats.generated_tokens == 0
        assert not backend.needs_reload and backend.loaded  # stopped by llama.cpp, not by a kill
    finally:
        backend.close()


def test_a_generation_that_ignores_stop_is_ended_by_restarting_the_engine(tiny_gptoss_path: Path) -> None:
    """The fake engine (tests/fixtures/stubborn_engine.py) never honours a cancel."""
    backend = LocalBackend(command=[sys.executable, "-m", "tests.fixtures.stubborn_engine"])
    try:
        backend.load(tiny_gptoss_path, ctx_cap=512)
        pid = backend.pid
        token = CancelToken()
        stream = backend.generate(ask("hi", None), token)
        next(stream)
        started = time.perf_counter()
        token.set()
        done = [e for e in stream if isinstance(e, Done)][0]
        elapsed = time.perf_counter() - started
        print(f"stubborn engine ended {elapsed * 1000:.0f} ms after Stop")
        assert done.stop_reason == "cancelled"
        assert backend.needs_reload and not backend.loaded
        assert pid is not None and not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        backend.close()


def test_unload_ends_the_process_and_returns_its_memory(backend: LocalBackend, starter_path: Path) -> None:
    backend.load(starter_path, ctx_cap=CTX)
    pid = backend.pid
    assert pid is not None
    rss = psutil.Process(pid).memory_info().rss
    assert rss > 200 << 20  # the model's weights and cache live in the engine process
    backend.unload()
    assert not backend.loaded and backend.pid is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_generating_without_a_model_is_a_sentence(backend: LocalBackend) -> None:
    with pytest.raises(EngineError, match="No model is loaded"):
        next(iter(backend.generate(ask("hi"))))


def test_the_crash_sentence_quotes_llama_cpp() -> None:
    tail = ["llama_model_loader: loaded meta data", "/src/llama-model.cpp:1362: GGML_ASSERT(a <= b) failed"]
    assert llama_message(tail) == "a <= b"
    assert (
        llama_message(
            ["terminate called after throwing an instance of 'std::out_of_range'", "  what():  unordered_map::at"]
        )
        == "unordered_map::at"
    )
    assert crash_sentence("loading", "X", -9, [])[0] == (
        "The model engine stopped while loading X: it was killed, perhaps by the system for lack of memory."
    )
    assert crash_sentence("loading", "X", -11, ["noise \x1b[0m"])[0].endswith("crashed (segmentation fault).")
