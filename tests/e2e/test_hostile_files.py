"""Why the validator's checks are needed: real llama.cpp, given each hostile file of
tests/fixtures/hostile_gguf.py without the validator in front, aborts the whole process (SIGABRT,
which would take Hearth's window down if llama.cpp ran in it) or fails to load it.

Each file is loaded in a child Python (`Llama(path)`, then tokenizing a line of text for the
files that abort only there), so that an abort costs the child, not the test run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.hostile_gguf import HOSTILE_FILES, HostileFile

_PROBE = """
import sys
import llama_cpp

path, n_ctx, probe, verbose = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "verbose"
llm = llama_cpp.Llama(path, n_ctx=n_ctx, n_threads=1, verbose=verbose)
print("LOADED", flush=True)
if probe == "tokenize":
    llm.tokenize("Hello, wörld! ✓ 🙂\\n".encode())
    print("TOKENIZED", flush=True)
"""


def _run_llama_cpp(path: Path, case: HostileFile, verbose: bool = True) -> subprocess.CompletedProcess[str]:
    # ggml prints a backtrace with gdb on abort when it can: seconds per file, and no use here.
    env = dict(os.environ, GGML_NO_BACKTRACE="1")
    args = [str(path), str(case.n_ctx), case.probe, "verbose" if verbose else "quiet"]
    return subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def _param(case: HostileFile) -> object:
    # The starter's copies are 253 MB each and take a few seconds to write and load.
    return pytest.param(case, id=case.name, marks=[pytest.mark.slow] if case.needs_starter else [])


@pytest.mark.parametrize("case", [_param(c) for c in HOSTILE_FILES])
def test_llama_cpp_without_the_validator(case: HostileFile, tmp_path: Path) -> None:
    path = case.write(tmp_path)
    result = _run_llama_cpp(path, case)
    said = f"exit {result.returncode}\n--- stdout\n{result.stdout[-2000:]}\n--- stderr\n{result.stderr[-3000:]}"
    if case.llama == "abort":
        assert result.returncode == -signal.SIGABRT, said
        # A "tokenize" file loads, then aborts on the first text.
        assert ("LOADED" in result.stdout) == (case.probe == "tokenize"), said
    elif case.llama == "error":
        assert result.returncode == 1 and "Traceback" in result.stderr, said
        assert "LOADED" not in result.stdout, said
    else:
        assert result.returncode == 0, said
    assert case.llama_says in result.stderr, said


def test_quiet_llama_cpp_aborts_without_a_word(tmp_path: Path) -> None:
    """With verbose=False llama-cpp-python points stderr at /dev/null while it loads, so an abort
    there leaves nothing to show the user: the engine process must capture llama.cpp's log itself."""
    case = next(c for c in HOSTILE_FILES if c.name == "tiny-block-count-0")
    result = _run_llama_cpp(case.write(tmp_path), case, verbose=False)
    assert result.returncode == -signal.SIGABRT
    assert "GGML_ASSERT" not in result.stderr
