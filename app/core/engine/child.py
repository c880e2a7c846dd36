"""The engine process: llama.cpp runs here, so an abort in native code ends this process only.

Started by `host.LocalBackend` as `python -m app --engine-process` (or the frozen app with the same
flag). Frames (see `wire`) arrive on stdin and leave on the stdout the process started with; file
descriptor 1 is then pointed at stderr, so that anything native code prints cannot corrupt a frame.
stderr carries llama.cpp's own log, which the app keeps in its log and quotes when this process
dies ("llama.cpp reported 'n_expert_used_max <= hparams.n_expert'").

A reader thread takes commands as they come, so `cancel` acts at once — also on a job that has not
started yet — while the main thread loads and generates. Events leave in batches (`Batcher`: a few
dozen a second, and never held back by a stall).
When stdin closes (the app exited or was killed) this process exits at once: an orphaned engine
must not keep a model's memory.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from pathlib import Path
from typing import IO, Any


class _Channel:
    """The protocol's output, shared by the main thread, the flusher and the reader."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        from app.core.engine.wire import write_frame

        with self._lock:
            write_frame(self._out, message)


_LEVELS = {0: "N", 1: "D", 2: "I", 3: "W", 4: "E"}  # ggml.h ggml_log_level; 5 continues the last line
_log_callback: Any = None  # kept alive for as long as llama.cpp holds the pointer
_errors: list[str] = []  # llama.cpp's last error lines, to say why a load failed


def load_failed_sentence(exc: BaseException) -> str:
    """Why a load failed, in one sentence: llama-cpp-python's own exception only says "Failed to load
    model from file: PATH"; llama.cpp's error line says what is wrong."""
    from app.core.engine.host import llama_message

    text = str(exc) or type(exc).__name__
    detail = llama_message(_errors)
    _errors.clear()
    if detail and "Failed to load model from file" in text:
        text = text.split(": Failed to load model from file")[0] + f": {detail}"
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def install_llama_log() -> None:
    """llama.cpp's log as tagged lines on stderr ("[llama:W] …"), so the app can keep each line at
    its level (and quote the last one if this process dies)."""
    global _log_callback
    if _log_callback is not None:
        return
    import ctypes

    import llama_cpp

    state = {"level": "I", "pending": b""}

    def on_log(level: int, text: bytes, _data: ctypes.c_void_p) -> None:
        if level != 5:
            state["level"] = _LEVELS.get(level, "I")
        data = state["pending"] + (text or b"")  # type: ignore[operator]
        *lines, state["pending"] = data.split(b"\n")
        tag = f"[llama:{state['level']}] ".encode()
        if lines and state["level"] == "E":
            _errors.extend(line.decode("utf-8", errors="replace") for line in lines)
            del _errors[:-8]
        if lines:
            try:
                os.write(2, b"".join(tag + line + b"\n" for line in lines))
            except OSError:
                pass

    _log_callback = llama_cpp.llama_log_callback(on_log)
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


class EngineChild:
    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self._inp = inp
        self._channel = _Channel(out)
        self._commands: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._current: tuple[int, threading.Event] | None = None
        self._cancelled: set[int] = set()  # jobs cancelled before they started; emptied as they run
        self._engine: Any = None

    # -- commands -----------------------------------------------------------------------------

    def _read_commands(self) -> None:
        from app.core.engine.wire import WireError, read_frame

        try:
            while True:
                message = read_frame(self._inp)
                if message is None:
                    break
                if message.get("op") == "cancel":
                    self._cancel(message.get("job"))
                else:
                    self._commands.put(message)
        except (WireError, OSError, ValueError):
            pass
        # The app is gone (or spoke nonsense): stop whatever runs, then the main loop exits.
        with self._lock:
            if self._current is not None:
                self._current[1].set()
        self._commands.put(None)

    def _cancel(self, job: Any) -> None:
        if not isinstance(job, int):
            return
        with self._lock:
            if self._current is not None and self._current[0] == job:
                self._current[1].set()
            elif len(self._cancelled) < 1024:  # bounded: the app only cancels jobs it sent
                self._cancelled.add(job)

    def run(self) -> int:
        threading.Thread(target=self._read_commands, name="hearth-engine-commands", daemon=True).start()
        self._channel.send({"t": "ready", "pid": os.getpid()})
        while True:
            message = self._commands.get()
            if message is None:
                return 0
            op = message.get("op")
            if op == "load":
                self._load(message)
            elif op == "generate":
                self._generate(message)
            elif op == "unload":
                self._unload()
                self._channel.send({"t": "unloaded"})
            elif op == "save" and self._engine is not None:
                self._engine.save_session()
            elif op == "open" and self._engine is not None and isinstance(message.get("session"), str):
                self._engine.open_session(message["session"][:200])

    # -- loading ------------------------------------------------------------------------------

    def _load(self, message: dict[str, Any]) -> None:
        from app.core.engine import kvcache
        from app.core.engine.llama import Engine
        from app.core.engine.types import EngineError
        from app.core.engine.wire import WireError, decode_plan, encode_plan
        from app.core.gguf_file import GGUFError, inspect_gguf
        from app.core.hardware import probe

        try:
            self._unload()
            install_llama_log()
            # The engine process trusts nothing either: it validates the file it was sent.
            info = inspect_gguf(str(message["path"]), checks=os.environ.get("HEARTH_UNCHECKED_MODELS") != "1")
            plan = decode_plan(message["plan"])
            kv_dir = message.get("kv_dir")
            kv_cap = message.get("kv_cap")
            engine = Engine(
                native_log=True,
                kv_dir=Path(kv_dir) if isinstance(kv_dir, str) and kv_dir else None,
                kv_cap=kv_cap if isinstance(kv_cap, int) and kv_cap > 0 else kvcache.DEFAULT_CAP_BYTES,
            )
            result = engine.load(info, hardware=probe(info.path.parent, check_offload=False), plan=plan)
        except (GGUFError, EngineError, WireError, KeyError, OSError) as exc:
            self._channel.send({"t": "load_failed", "message": load_failed_sentence(exc)})
            return
        self._engine = engine
        assert result.plan is not None
        self._channel.send(
            {
                "t": "loaded",
                "plan": encode_plan(result.plan),
                "load_s": result.load_s,
                "notices": result.notices,
                "engine": result.engine,
            }
        )

    def _unload(self) -> None:
        if self._engine is not None:
            self._engine.unload()
            self._engine = None

    # -- generating ---------------------------------------------------------------------------

    def _generate(self, message: dict[str, Any]) -> None:
        from app.core.engine.types import EngineError
        from app.core.engine.wire import WireError, decode_request, encode_done
        from app.core.formats.base import Done

        job = message.get("job")
        if not isinstance(job, int):
            return
        cancel = threading.Event()
        with self._lock:
            if job in self._cancelled:
                self._cancelled.discard(job)
                cancel.set()
            self._current = (job, cancel)
        from app.core.chat.batching import Batcher
        from app.core.engine.wire import encode_event

        def send(events: list[Any]) -> None:
            self._channel.send({"t": "events", "job": job, "ev": [encode_event(e) for e in events]})

        batcher = Batcher(send, name="hearth-engine-flush")
        try:
            if self._engine is None:
                raise EngineError("No model is loaded.")
            request = decode_request(message["request"])
            for event in self._engine.generate(request, cancel):
                if isinstance(event, Done):
                    batcher.close()
                    self._channel.send({"t": "done", "job": job, **encode_done(event)})
                    return
                batcher.add(event)
            batcher.close()
            self._channel.send({"t": "failed", "job": job, "message": "The reply ended without finishing."})
        except (EngineError, WireError, KeyError) as exc:
            batcher.close()
            self._channel.send({"t": "failed", "job": job, "message": str(exc), "kind": type(exc).__name__})
        finally:
            batcher.close()
            with self._lock:
                self._current = None
                self._cancelled = {j for j in self._cancelled if j > job}


def main() -> int:
    """The engine process's entry point (see `app.cli.main`)."""
    # The protocol keeps the original stdout; fd 1 then goes to stderr (see the module docstring).
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")  # ggml would attach gdb to print a backtrace
    import logging

    # This process's own log records reach the app's log through stderr, tagged (see host.py).
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="[py:%(levelname)s] %(name)s: %(message)s")
    code = 0
    try:
        code = EngineChild(sys.stdin.buffer, out).run()
    except BaseException:
        import traceback

        traceback.print_exc()  # reaches the app's log through stderr
        code = 70
    finally:
        # Exit at once: llama.cpp's threads and Python's shutdown must not keep a dying engine (and
        # its model's memory) alive.
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
