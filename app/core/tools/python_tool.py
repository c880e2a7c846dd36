"""The opt-in Python tool: the model's program runs in a process of its own, never in the app.

The child (`python_sandbox`) gets a temporary working folder (deleted afterwards), a minimal
environment, and before the program starts it limits itself: address space, CPU time, file size,
no new processes, and no network — a new network namespace where Linux allows one without
privileges, and on every platform a `socket` module that refuses to connect (which a determined
program could undo: this keeps an honest model offline, it is not a jail). The app kills it on
timeout or Stop and keeps at most OUTPUT_CAP characters of what it printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from app.core.engine.types import CancelToken
from app.core.tools.base import ToolError, ToolOutput

TIMEOUT_S = 10.0
MEMORY_MB = 512
OUTPUT_CAP = 64_000  # characters kept of the program's output
_READ_LIMIT = OUTPUT_CAP * 4  # bytes read before the program is stopped for printing too much


def run_python_code(
    code: str,
    cancel: CancelToken | None = None,
    *,
    timeout_s: float = TIMEOUT_S,
    memory_mb: int = MEMORY_MB,
) -> ToolOutput:
    from app.core.llama_builds import python_command

    cancel = cancel or CancelToken()
    folder = Path(tempfile.mkdtemp(prefix="hearth-python-"))
    try:
        (folder / "program.py").write_text(code, encoding="utf-8")
        env = {
            "HOME": str(folder),
            "TMPDIR": str(folder),
            "TEMP": str(folder),
            "TMP": str(folder),
            "PYTHONIOENCODING": "utf-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PATH": os.defpath,
        }
        if os.environ.get("PYTHONPATH"):  # a source checkout: the sandbox module lives there
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        if sys.platform == "win32":
            env["SYSTEMROOT"] = os.environ.get("SYSTEMROOT", "")
        command = python_command(
            "app.core.tools.python_sandbox", str(folder / "program.py"), str(memory_mb), str(int(timeout_s) + 1)
        )
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=sys.platform != "win32",
        )
        output = bytearray()
        flooded = threading.Event()

        def read() -> None:
            assert process.stdout is not None
            while chunk := process.stdout.read1(65536):  # type: ignore[attr-defined]
                if len(output) < _READ_LIMIT:
                    output.extend(chunk)
                else:
                    flooded.set()
                    _kill(process)

        reader = threading.Thread(target=read, name="hearth-python-output", daemon=True)
        reader.start()
        cancel.on_cancel(lambda: _kill(process))
        timed_out = False
        while process.poll() is None:
            if time.monotonic() - started > timeout_s:
                timed_out = True
                _kill(process)
                break
            time.sleep(0.02)
        process.wait()
        reader.join(5)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    text = output.decode("utf-8", errors="replace")
    if len(text) > OUTPUT_CAP:
        text = text[:OUTPUT_CAP] + f"\n[… output cut at {OUTPUT_CAP:,} characters]"
    if cancel.is_set():
        raise ToolError("Stopped by the user.")
    if timed_out:
        raise ToolError(f"The program ran longer than {timeout_s:g} seconds and was stopped.{_tail(text)}")
    if flooded.is_set():
        return ToolOutput(text + "\n[The program printed too much and was stopped.]", is_error=True)
    if process.returncode != 0:
        return ToolOutput(text or f"The program ended with exit code {process.returncode}.", is_error=True)
    return ToolOutput(text or "(no output)")


def _tail(text: str) -> str:
    return f" Its output so far:\n{text[-2000:]}" if text.strip() else ""


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        if sys.platform != "win32":
            os.killpg(process.pid, 9)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass
