"""The local backend: llama.cpp in a child process that Hearth starts and owns.

One engine process per loaded model. Loading a model starts a fresh process (the previous one
exits, so its memory goes back to the OS); unloading ends it. Everything native — llama.cpp's
asserts, a GPU driver's segfault, the OS killing the process for memory — ends that process only:
the caller gets an `EngineCrashedError` (while loading) or a reply that ends with
`Done(stop_reason='crashed')`, with a sentence that quotes llama.cpp's last message when there was
one. The model file is validated here before the process sees it, and again in the process.

Cancel is immediate: a generation that has not ended within `cancel_grace_s` of its cancel is
ended by killing the process; `needs_reload` then tells the caller to load the model again.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from app.core.engine.types import (
    CancelToken,
    EngineBusyError,
    EngineCrashedError,
    EngineError,
    GenerateRequest,
    LoadResult,
)
from app.core.formats.base import Done, Event, GenerationStats

if TYPE_CHECKING:
    from app.core.gguf_file import ModelInfo
    from app.core.planner import LoadPlan

log = logging.getLogger("hearth.engine")
llama_log = logging.getLogger("hearth.llama")
engine_log = logging.getLogger("hearth.engine.process")
_TAGGED = re.compile(r"^\[llama:([NIWED])\] ?(.*)$")
_PY_TAGGED = re.compile(r"^\[py:([A-Z]+)\] (hearth[\w.]*): (.*)$")
# llama.cpp's INFO is chatter (every tensor, every buffer): kept at DEBUG.
_LLAMA_LEVELS = {"E": logging.ERROR, "W": logging.WARNING, "N": logging.INFO, "I": logging.DEBUG, "D": logging.DEBUG}

CANCEL_GRACE_S = 0.3
START_TIMEOUT_S = 120.0  # a frozen app on a slow disk takes a while to import; a hung start does not
STOP_TIMEOUT_S = 5.0
SAVE_AND_STOP_TIMEOUT_S = 30.0  # a long conversation's KV state may be hundreds of MB to write
_TAIL_LINES = 64
_MAX_LOG_LINE = 16 << 10  # bytes of one line of the engine's stderr that reach the log
_EXITED = object()

_processes: weakref.WeakSet[EngineProcess] = weakref.WeakSet()


def live_processes() -> list[EngineProcess]:
    """Engine processes still running (tests check that none is left behind)."""
    return [p for p in list(_processes) if p.alive]


def engine_command() -> list[str]:
    """How to start an engine process: the frozen app or this interpreter, with the flag that
    `app.cli.main` turns into `child.main()`."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--engine-process"]
    return [sys.executable, "-m", "app", "--engine-process"]


def engine_env(extra: Mapping[str, str] | None = None) -> tuple[dict[str, str], str]:
    """The environment of a new engine process, and the name of the llama.cpp build it loads."""
    from app.core import llama_builds

    # The llama.cpp build the hardware probe planned with (CUDA, Vulkan, Metal, CPU): cached, tested
    # in a child process the first time on a machine (llama_builds).
    choice = llama_builds.choose_build(llama_builds.preferred_build())
    env = llama_builds.child_env(choice)
    env.setdefault("GGML_NO_BACKTRACE", "1")  # ggml would attach gdb to the dying process
    if not getattr(sys, "frozen", False):
        # The child must import this same `app`, wherever it was imported from.
        root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env, choice.build.name


# ---- what a dead engine process said ---------------------------------------------------------

_ASSERT = re.compile(r"GGML_ASSERT\((.+)\) failed")
_WHAT = re.compile(r"what\(\):\s*(.+)")
_ABORT = re.compile(r"^\S+\.(?:c|cpp|h|cu|m|mm):\d+:\s*(.+)$")
_ERROR = re.compile(r"(?:error|failed)[^:]*:\s*(.+)", re.IGNORECASE)


def llama_message(tail: list[str]) -> str:
    """llama.cpp's own last words, from the end of the engine's stderr (empty if none)."""
    found = ""
    for pattern in (_ASSERT, _WHAT, _ABORT, _ERROR):
        for line in reversed(tail):
            m = pattern.search(line)
            if m:
                found = m.group(1).strip()
                break
        if found:
            break
    clean = "".join(c if c.isprintable() else " " for c in found).strip()
    return clean if len(clean) <= 200 else clean[:197] + "..."


def _how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return {
            "SIGABRT": "aborted",
            "SIGSEGV": "crashed (segmentation fault)",
            "SIGBUS": "crashed (bus error)",
            "SIGILL": "crashed (an instruction this CPU does not have)",
            "SIGKILL": "was killed, perhaps by the system for lack of memory",
        }.get(name, f"was ended by {name}")
    return f"exited with code {returncode}"


def crash_sentence(during: str, name: str, returncode: int | None, tail: list[str]) -> tuple[str, str]:
    """(sentence, llama.cpp's message) for an engine process that died `during` ('loading', ...)."""
    what = f"The model engine stopped while {during} {name}" if name else f"The model engine stopped while {during}"
    if any(line.startswith("Traceback (most recent call last)") for line in tail):
        # Our own Python code failed in the engine process (the traceback is in the log).
        last = next((line.strip() for line in reversed(tail) if line.strip()), "")
        return f"{what}: an internal error ({last[:200]}); the log has the details.", ""
    detail = llama_message(tail)
    if detail:
        return f"{what}: llama.cpp reported '{detail}'.", detail
    return f"{what}: it {_how_it_ended(returncode)}.", ""


# ---- one process --------------------------------------------------------------------------------


class EngineProcess:
    """A running engine child: its pipes, a thread reading its frames and one reading its stderr."""

    def __init__(self, command: list[str], env: dict[str, str], on_exit: Callable[[EngineProcess], None]) -> None:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0
        self.popen = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            bufsize=0,
            creationflags=flags,
        )
        self.pid = self.popen.pid
        _processes.add(self)
        self.frames: queue.Queue[Any] = queue.Queue()
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self.expected_exit = False  # set before we end it ourselves
        self.killed_for_cancel = False
        self.build = "cpu"  # the llama.cpp build it loads (llama_builds)
        self._on_exit = on_exit
        self._send_lock = threading.Lock()
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self._stderr_done = threading.Event()
        threading.Thread(
            target=self._read_stderr, args=(self.popen.stderr,), name="hearth-engine-stderr", daemon=True
        ).start()
        threading.Thread(
            target=self._read_frames, args=(self.popen.stdout,), name="hearth-engine-frames", daemon=True
        ).start()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, message: dict[str, Any]) -> None:
        from app.core.engine.wire import write_frame

        assert self.popen.stdin is not None
        with self._send_lock:
            try:
                write_frame(self.popen.stdin, message)
            except (BrokenPipeError, OSError, ValueError):
                pass  # the process is gone; its frame reader reports the exit

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next frame from the process; None once it has exited. Raises queue.Empty on timeout."""
        item = self.frames.get(timeout=timeout)
        if item is _EXITED:
            self.frames.put(_EXITED)  # every later call sees the exit too
            return None
        assert isinstance(item, dict)
        return item

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """End the process: close its stdin (it exits at once), kill it if it does not."""
        self.expected_exit = True
        if self.popen.stdin is not None:
            try:
                self.popen.stdin.close()
            except OSError:
                pass
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        try:
            self.popen.kill()
        except OSError:
            pass
        self.popen.wait()

    def exit_tail(self) -> list[str]:
        self._stderr_done.wait(2.0)  # the last lines may still be in the pipe
        return list(self.tail)

    def _read_frames(self, stream: IO[bytes]) -> None:
        from app.core.engine.wire import WireError, read_frame

        try:
            while True:
                message = read_frame(stream)
                if message is None:
                    break
                self.frames.put(message)
        except (WireError, OSError, ValueError) as exc:
            log.warning("engine process %s sent a bad frame: %s", self.pid, exc)
            self.kill()
        self.popen.wait()
        self.frames.put(_EXITED)
        self._on_exit(self)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        # Buffered: readline() on the raw pipe reads one byte per system call, and llama-cpp-python
        # prints a file's whole metadata on one line (a damaged file's 20 MB "name" took 40 s).
        buffered = io.BufferedReader(stream, 1 << 16) if isinstance(stream, io.RawIOBase) else stream
        try:
            for raw in iter(buffered.readline, b""):
                line = raw[:_MAX_LOG_LINE].decode("utf-8", errors="replace").rstrip()
                if not line:
                    continue
                m = _TAGGED.match(line)
                py = _PY_TAGGED.match(line) if m is None else None
                if m:  # llama.cpp's log, with its level (child.install_llama_log)
                    line = m.group(2)
                    llama_log.log(_LLAMA_LEVELS.get(m.group(1), logging.DEBUG), "%s", line)
                elif py:  # a log record of the engine process's own Python code
                    level = logging.getLevelName(py.group(1))
                    logging.getLogger(py.group(2)).log(level if isinstance(level, int) else logging.INFO,
                                                       "[engine %s] %s", self.pid, py.group(3))  # fmt: skip
                else:  # Python in the engine process, or native code writing to stderr itself
                    engine_log.info("%s", line)
                self.tail.append(line)
        except (OSError, ValueError):
            pass
        finally:
            self._stderr_done.set()


# ---- the backend --------------------------------------------------------------------------------


class LocalBackend:
    """The `Backend` for local GGUF files (see the module docstring)."""

    def __init__(
        self,
        *,
        command: list[str] | None = None,
        env: Callable[[], Mapping[str, str]] | None = None,
        on_crash: Callable[[str], None] | None = None,
        cancel_grace_s: float = CANCEL_GRACE_S,
        check_models: bool = True,
        kv_dir: Path | None = None,
        kv_cap: int | None = None,
    ) -> None:
        """`env`: extra environment for each new engine process (the llama.cpp build to use);
        `on_crash`: told (from a reader thread) when an idle engine process dies;
        `check_models=False` is for tests only: it lets a file the validator would refuse reach
        llama.cpp, to prove that what then aborts is the engine process alone. `kv_dir`, `kv_cap`:
        where the engine saves conversations' KV states, and how many bytes of them at most
        (default: the cache folder's kv/, kvcache.DEFAULT_CAP_BYTES)."""
        self._command = command or engine_command()
        self._env = env
        self._on_crash = on_crash
        self._grace = cancel_grace_s
        self._check_models = check_models
        self.kv_dir = kv_dir
        self.kv_cap = kv_cap
        self._lock = threading.Lock()
        self._proc: EngineProcess | None = None
        self._result: LoadResult | None = None
        self._busy = False
        self._loading: EngineProcess | None = None
        self._load_interrupted = False
        self._job = 0
        self._running_job: int | None = None
        self._last_build = "cpu"
        self.needs_reload = False  # the process was killed to end a generation: load it again

    # -- state ----------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        proc = self._proc
        return self._result is not None and proc is not None and proc.alive

    @property
    def result(self) -> LoadResult | None:
        return self._result if self.loaded else None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.alive else None

    # -- processes ------------------------------------------------------------------------------

    def _start(self) -> EngineProcess:
        env, build = engine_env(self._env() if self._env is not None else None)
        if not self._check_models:
            env["HEARTH_UNCHECKED_MODELS"] = "1"
        proc = EngineProcess(self._command, env, self._exited)
        proc.build = build
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                message = proc.next(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                proc.kill()
                raise EngineError("The model engine did not start within two minutes.") from None
            if message is None:
                sentence, detail = crash_sentence("starting", "", proc.popen.returncode, proc.exit_tail())
                raise EngineCrashedError(sentence, detail)
            if message.get("t") == "ready":
                return proc

    def _exited(self, proc: EngineProcess) -> None:
        """Called from the frame reader when a process has exited."""
        with self._lock:
            current = proc is self._proc
            idle = current and not self._busy and self._loading is None
            name = self._result.name if current and self._result is not None else ""
            if current:
                self._result = None
        if idle and not proc.expected_exit and self._on_crash is not None:
            sentence, _detail = crash_sentence("holding", name, proc.popen.returncode, proc.exit_tail())
            self._on_crash(sentence)

    def _stop_process(self) -> None:
        with self._lock:
            proc, self._proc, self._result = self._proc, None, None
        if proc is not None:
            # The conversation it holds is saved first (the process handles commands in order).
            proc.send({"op": "save"})
            proc.stop(SAVE_AND_STOP_TIMEOUT_S)

    def save_session(self) -> None:
        """Have the engine save the KV state of the conversation it holds (when the app leaves it)."""
        proc = self._proc
        if proc is not None and proc.alive:
            proc.send({"op": "save"})

    def open_session(self, session: str) -> None:
        """Have the engine bring back a conversation's saved KV state now (when the app opens it),
        so that the reply the user then asks for evaluates only the new turn."""
        proc = self._proc
        if proc is not None and proc.alive and self._result is not None:
            proc.send({"op": "open", "session": session})

    # -- loading ----------------------------------------------------------------------------------

    def load(
        self,
        model: Path | str,
        *,
        ctx_cap: int | None = None,
        on_plan: Callable[[ModelInfo, LoadPlan], None] | None = None,
        gpu_layers: int | None = None,
    ) -> LoadResult:
        """Validate, plan and load in a fresh engine process (`gpu_layers`: the user's choice in
        place of the planner's). If that process dies while loading
        on a GPU build, the build is left out for this session and the load is tried once more
        with the next build (in the end the CPU), which the result's notices say."""
        from app.core import hardware, llama_builds

        model = Path(model)
        try:
            return self._load(model, ctx_cap, on_plan, gpu_layers)
        except EngineCrashedError as crash:
            build = self._last_build
            if build == "cpu" or self._load_interrupted:
                raise
            llama_builds.leave_out(build)
            hardware.clear_cache()  # the next plan is for the next build's devices
            label = llama_builds.LABELS.get(build, build)
            log.warning("the %s build crashed while loading %s; trying the next build", label, model)
            result = self._load(model, ctx_cap, on_plan, gpu_layers)
            result.notices.insert(
                0,
                f"{crash} The {label} build of llama.cpp is left out until Hearth restarts; "
                f"loaded with {result.engine or 'another build'} instead.",
            )
            return result

    def _load(
        self,
        model: Path,
        ctx_cap: int | None,
        on_plan: Callable[[ModelInfo, LoadPlan], None] | None,
        gpu_layers: int | None = None,
    ) -> LoadResult:
        from app.core.engine.wire import decode_plan, encode_plan
        from app.core.gguf_file import inspect_gguf
        from app.core.hardware import probe
        from app.core.planner import plan_load

        info = inspect_gguf(model, checks=self._check_models)
        hardware = probe(info.path.parent)  # the devices of the llama.cpp build the engine will load
        plan = plan_load(hardware, info, ctx_cap=ctx_cap)
        if not plan.fits:
            raise EngineError(plan.reason)
        if gpu_layers is not None and gpu_layers != plan.n_gpu_layers:
            from app.core.planner import with_gpu_layers

            plan = with_gpu_layers(plan, gpu_layers)
        if on_plan is not None:
            on_plan(info, plan)
        self._stop_process()  # the old model's memory goes back before the new one loads
        with self._lock:
            self._load_interrupted = False
            self.needs_reload = False
        proc = self._start()
        self._last_build = proc.build
        with self._lock:
            self._proc, self._loading = proc, proc
            if self._load_interrupted:
                proc.kill()
        try:
            from app.core.engine import kvcache

            kv_dir = self.kv_dir if self.kv_dir is not None else kvcache.cache_root()
            cap = self.kv_cap if self.kv_cap is not None else kvcache.configured_cap()
            # A cap of 0 (Settings: "Keep none"): no folder, so the engine saves no state at all.
            load = {"op": "load", "path": str(info.path), "plan": encode_plan(plan)}
            proc.send({**load, "kv_dir": str(kv_dir) if cap > 0 else "", "kv_cap": cap})
            while True:
                message = proc.next()
                if message is None:
                    if self._load_interrupted:
                        raise EngineError(f"Loading {info.name} was stopped.")
                    sentence, detail = crash_sentence("loading", info.name, proc.popen.returncode, proc.exit_tail())
                    raise EngineCrashedError(sentence, detail)
                kind = message.get("t")
                if kind == "load_failed":
                    self._stop_process()
                    raise EngineError(str(message.get("message") or f"llama.cpp could not load {info.name}."))
                if kind == "loaded":
                    notices = message.get("notices")
                    result = LoadResult(
                        info,
                        decode_plan(message["plan"]),
                        float(message.get("load_s") or 0.0),
                        [str(n) for n in notices] if isinstance(notices, list) else [],
                        str(message.get("engine") or ""),
                    )
                    with self._lock:
                        self._result = result
                    return result
        finally:
            with self._lock:
                self._loading = None

    def interrupt_load(self) -> None:
        with self._lock:
            self._load_interrupted = True
            proc = self._loading
        if proc is not None:
            proc.expected_exit = True
            proc.kill()

    def unload(self) -> None:
        self._stop_process()

    def close(self) -> None:
        self.interrupt_load()
        self._stop_process()

    # -- generating -------------------------------------------------------------------------------

    def cancel(self) -> None:
        with self._lock:
            proc, job = self._proc, self._running_job
        if proc is not None and job is not None:
            self._cancel_job(proc, job)

    def generate(self, request: GenerateRequest, cancel: CancelToken | None = None) -> Iterator[Event]:
        return self._stream(request, cancel or CancelToken())

    def _stream(self, request: GenerateRequest, cancel: CancelToken) -> Iterator[Event]:
        from app.core.engine.wire import decode_done, decode_event, encode_request

        with self._lock:
            if self._busy:
                raise EngineBusyError("A reply is already being generated; stop it first.")
            proc, result = self._proc, self._result
            if proc is None or result is None or not proc.alive:
                raise EngineError("No model is loaded.")
            self._busy = True
            self._job += 1
            job = self._running_job = self._job
        try:
            proc.send({"op": "generate", "job": job, "request": encode_request(request)})
            cancel.on_cancel(lambda: self._cancel_job(proc, job))
            while True:
                message = proc.next()
                if message is None:
                    yield self._ended_by_exit(proc, result.name)
                    return
                if message.get("job") != job:
                    continue  # a late frame of an earlier job
                kind = message.get("t")
                if kind == "events":
                    for item in message.get("ev") or ():
                        yield decode_event(item)
                elif kind == "done":
                    yield decode_done(message)
                    return
                elif kind == "failed":
                    raise EngineError(str(message.get("message") or "The reply failed."))
        finally:
            with self._lock:
                self._busy = False
                self._running_job = None

    def _ended_by_exit(self, proc: EngineProcess, name: str) -> Done:
        if proc.killed_for_cancel:
            return Done(GenerationStats(), "cancelled")
        sentence, _detail = crash_sentence("answering with", name, proc.popen.returncode, proc.exit_tail())
        return Done(GenerationStats(), "crashed", sentence)

    def _cancel_job(self, proc: EngineProcess, job: int) -> None:
        proc.send({"op": "cancel", "job": job})
        timer = threading.Timer(self._grace, self._kill_if_still_running, args=(proc, job))
        timer.daemon = True
        timer.start()

    def _kill_if_still_running(self, proc: EngineProcess, job: int) -> None:
        with self._lock:
            if self._running_job != job or self._proc is not proc or not proc.alive:
                return
            proc.killed_for_cancel = proc.expected_exit = True
            self.needs_reload = True
        log.warning(
            "generation %s did not stop within %.0f ms of its cancel; restarting the engine", job, self._grace * 1000
        )
        proc.kill()
