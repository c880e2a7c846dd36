"""The child process of the Python tool: limit itself, cut itself off the network, run the program.

`python -m app.core.tools.python_sandbox PROGRAM MEMORY_MB CPU_SECONDS` (python_tool.py starts it).
Like a notebook cell, the value of a last bare expression is printed.
"""

from __future__ import annotations

import ast
import sys
from typing import Any


def _limit(memory_mb: int, cpu_s: int) -> None:
    try:
        import resource
    except ImportError:  # Windows: the parent's timeout is the only limit
        return
    for name, value in (
        ("RLIMIT_AS", memory_mb << 20),
        ("RLIMIT_CPU", cpu_s),
        ("RLIMIT_FSIZE", 64 << 20),
        ("RLIMIT_NPROC", 0),  # no new processes (not enforced for root)
        ("RLIMIT_CORE", 0),
    ):
        limit = getattr(resource, name, None)
        if limit is None:
            continue
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


def _leave_the_network() -> bool:
    """A network namespace of our own (Linux, where unprivileged user namespaces are allowed):
    it holds no interface but a downed loopback, so nothing can be reached."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import os

    clone_newuser, clone_newnet = 0x10000000, 0x40000000
    uid, gid = os.getuid(), os.getgid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(clone_newuser | clone_newnet) != 0:
        return False
    try:  # map ourselves, so that the program keeps its own uid inside
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    except OSError:
        pass
    return True


def _refuse_sockets() -> None:
    import socket

    class NoNetwork(OSError):
        pass

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise NoNetwork("The network is not available to this program.")

    class Socket(socket.socket):
        def connect(self, *_args: Any) -> None:
            refuse()

        def connect_ex(self, *_args: Any) -> int:
            refuse()
            return 1

        def sendto(self, *_args: Any) -> int:
            refuse()
            return 0

    socket.socket = Socket  # type: ignore[misc]
    socket.create_connection = refuse
    socket.getaddrinfo = refuse


def main(argv: list[str]) -> int:
    program, memory_mb, cpu_s = argv[0], int(argv[1]), int(argv[2])
    with open(program, encoding="utf-8") as f:
        code = f.read()
    _leave_the_network()
    _refuse_sockets()
    _limit(memory_mb, cpu_s)
    sys.argv = ["program.py"]
    sys.path[:0] = ["."]
    try:
        tree = ast.parse(code, "program.py")
    except SyntaxError as exc:
        print(f"SyntaxError: {exc.msg} (line {exc.lineno})")
        return 1
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    assert last is None or isinstance(last, ast.Expr)
    scope: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(tree, "program.py", "exec"), scope)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "program.py", "eval"), scope)
            if value is not None:
                print(repr(value))
    except MemoryError:
        print(f"MemoryError: the program needed more than {memory_mb} MB.")
        return 1
    except BaseException:
        import traceback

        traceback.print_exc(file=sys.stdout)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
