"""Network isolation: nothing leaves the machine unasked.

The window (start-up, loading the starter model, a chat, the Library and Downloads pages without a
search, About, Settings; tests/fixtures/window_driver.py `tour`) and the CLI's `probe`, `prompt`,
`ask` and `models` run in subprocesses watched twice:

- strace follows every process they start (the engine process, the llama.cpp build probes) and
  records each connect / sendto / sendmsg system call, whatever code makes it, native included: a
  connection to anything but loopback, anything to port 53 (DNS) or to the name-service cache
  daemon's socket fails the test;
- a `sitecustomize` on PYTHONPATH (tests/fixtures/netguard) refuses and records, with the Python
  stack that asked, every non-loopback connection and every host-name look-up, even one that
  /etc/hosts would answer without a packet.

HF_ENDPOINT is unset, so a request to the hub would go to huggingface.co. Two control runs prove
that both watchers see a connection and a look-up. strace is a system package (.ci/run installs
it); without it the test fails and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import reliability

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
GUARD = ROOT / "tests" / "fixtures" / "netguard"
_CALL = re.compile(r"^(?P<pid>\d+)\s+(?P<call>connect|sendto|sendmsg)\((?P<args>.*)$")
_INET = re.compile(
    r"sa_family=AF_INET6?, sin6?_port=htons\((?P<port>\d+)\),"
    r'.*?(?:inet_addr\("|inet_pton\(AF_INET6?, ")(?P<addr>[0-9a-fA-F:.]+)"'
)
_UNIX = re.compile(r'sa_family=AF_UNIX, sun_path=@?"(?P<path>[^"]*)"')


def watched(
    tmp_path: Path, name: str, argv: list[str], env: dict[str, str] | None = None
) -> tuple[int, str, list[str]]:
    """Run `argv` (a Python command line) under both watchers; (exit code, output, violations)."""
    strace = shutil.which("strace")
    assert strace, "strace is missing: the isolation test needs it (apt-get install strace)"
    trace, guard_log = tmp_path / f"{name}.strace", tmp_path / f"{name}.guard"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("HF_ENDPOINT", "HF_HUB_OFFLINE"))}
    environ.update(
        HEARTH_HOME=str(tmp_path / "home"),
        PYTHONPATH=os.pathsep.join((str(GUARD), str(ROOT))),
        HEARTH_NETGUARD_LOG=str(guard_log),
        QT_QPA_PLATFORM="offscreen",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",  # Settings reads the token: never the user's keyring
        **(env or {}),
    )
    command = [strace, "-f", "-qq", "--seccomp-bpf", "-e", "signal=none", "-e", "trace=connect,sendto,sendmsg"]
    result = subprocess.run(
        [*command, "-o", str(trace), sys.executable, *argv],
        capture_output=True, text=True, cwd=ROOT, env=environ, timeout=900,
    )  # fmt: skip
    violations = [f"strace: {v}" for v in _system_calls(trace.read_text(encoding="utf-8", errors="replace"))]
    if guard_log.exists():
        violations += [
            f"guard: {block.strip()}" for block in guard_log.read_text(encoding="utf-8").split("\n\n") if block.strip()
        ]
    return result.returncode, result.stdout + result.stderr, violations


def _system_calls(trace: str) -> list[str]:
    found = []
    for line in trace.splitlines():
        m = _CALL.match(line)
        if m is None:
            continue
        inet = _INET.search(m["args"])
        if inet is None and "AF_INET" in m["args"]:
            found.append(line)  # an internet address this parser cannot read: not known to be loopback
            continue
        if inet is not None:
            port, addr = int(inet["port"]), inet["addr"]
            loopback = addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1")
            if not loopback or port == 53:
                found.append(line)
            continue
        unix = _UNIX.search(m["args"])
        if unix is not None and "nscd" in unix["path"]:
            found.append(line)  # the name-service cache: a host-name look-up
    return found


def test_the_watchers_see_a_connection_and_a_look_up(tmp_path: Path) -> None:
    code = (
        "import socket\n"
        "try:\n    socket.create_connection(('192.0.2.1', 443), timeout=0.5)\nexcept OSError:\n    pass\n"
        "try:\n    socket.getaddrinfo('huggingface.co', 443)\nexcept OSError:\n    pass\n"
        "import ctypes\n"  # native code the Python guard cannot see: strace does
        "libc = ctypes.CDLL(None)\n"
        "s = socket.socket(); s.setblocking(False)\n"
        "addr = bytes([2, 0, 1, 187, 192, 0, 2, 2]) + bytes(8)\n"
        "libc.connect(s.fileno(), addr, 16)\n"
    )
    _, _, violations = watched(tmp_path, "control", ["-c", code])
    assert any(v.startswith("guard: PID") and "192.0.2.1" in v for v in violations), violations
    assert any(v.startswith("guard: PID") and "huggingface.co" in v for v in violations), violations
    assert any(v.startswith("strace:") and "192.0.2.2" in v for v in violations), violations


def test_nothing_leaves_the_machine(tiny_gptoss_path: Path, tmp_path: Path) -> None:
    conversation = tmp_path / "chat.json"
    conversation.write_text('[{"role": "user", "content": "Hi"}]', encoding="utf-8")
    runs = {
        "window tour": ["-m", "tests.fixtures.window_driver", "tour"],
        "probe": ["-m", "app", "probe"],
        "probe --model": ["-m", "app", "probe", "--json", "--model", str(tiny_gptoss_path)],
        "prompt": ["-m", "app", "prompt", "--model", str(tiny_gptoss_path), "--conversation", str(conversation)],
        "ask": ["-m", "app", "ask", "--max-tokens", "8", "--seed", "1", "What is the capital of France?"],
        "models": ["-m", "app", "models"],
        "models --json": ["-m", "app", "models", "--json"],
    }
    problems: dict[str, list[str]] = {}
    for i, (name, argv) in enumerate(runs.items()):
        code, output, violations = watched(tmp_path, f"run{i}", argv)
        assert code == 0, f"{name}: exit {code}\n{output[-3000:]}"
        if name == "window tour":
            assert "DRIVER DONE" in output, output[-3000:]
        if violations:
            problems[name] = violations
    reliability.report("network_isolation", runs=len(runs), violations=sum(map(len, problems.values())))
    assert problems == {}
