"""The built-in tools: the calculator (no eval, bounded), the clock, and the Python tool in a real
child process (limits, Stop, no network, output cap)."""

from __future__ import annotations

import datetime as dt
import sys
import threading

import pytest

from app.core.engine.types import CancelToken
from app.core.tools import builtin, calculator
from app.core.tools.base import ToolError, model_name, result_for_model
from app.core.tools.python_tool import OUTPUT_CAP, run_python_code


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("(2 + 3) * 4 / 7", "2.85714285714286"),
        ("2**64", "18446744073709551616"),
        ("2^10", "1024"),
        ("sqrt(2) * sin(pi / 6)", "0.707106781186547"),
        ("factorial(20)", "2432902008176640000"),
        ("log(8, 2)", "3"),
        ("-7 // 2", "-4"),
        ("10 % 3", "1"),
        ("3 × 4 − 2", "10"),
    ],
)
def test_calculator_evaluates_arithmetic(expression: str, value: str) -> None:
    assert calculator.evaluate(expression) == value


@pytest.mark.parametrize(
    ("expression", "sentence"),
    [
        ("__import__('os').system('true')", "Call is not allowed"),
        ("().__class__", "Attribute is not allowed"),
        ("open('/etc/passwd')", "Unknown function 'open'"),
        ("9**9**9", "exponent is too large"),
        ("10**5000", "more than 4,000 digits"),
        ("factorial(10**6)", "from 0 to 1,000"),
        ("1/0", "Division by zero"),
        ("x + 1", "Unknown name 'x'"),
        ("2 +", "not an arithmetic expression"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("[1] * 10", "List is not allowed"),
        ("'a' * 10", "Constant is not allowed"),
        ("1" + "+1" * 900, "too long to evaluate"),
        ("1" + "+1" * 1500, "longer than 2,000 characters"),
        ("", "empty"),
        ("sqrt(-1)", "cannot be evaluated"),
    ],
)
def test_calculator_refuses_what_is_not_bounded_arithmetic(expression: str, sentence: str) -> None:
    with pytest.raises(ToolError, match=sentence):
        calculator.evaluate(expression)


def test_the_clock_answers_in_the_zone_asked() -> None:
    token = CancelToken()
    local = builtin.current_time({}, token).text
    weekday, date = local.split()[:2]
    assert weekday in {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
    assert abs((dt.date.fromisoformat(date) - dt.date.today()).days) <= 1
    tokyo = builtin.current_time({"timezone": "Asia/Tokyo"}, token).text
    assert "UTC+09:00" in tokyo
    with pytest.raises(ToolError, match="Unknown time zone"):
        builtin.current_time({"timezone": "Mars/Olympus"}, token)


def test_builtin_tools_offer_python_only_when_opted_in() -> None:
    assert [s.name for s, _ in builtin.builtin_tools()] == ["current_time", "calculator"]
    with_python = builtin.builtin_tools(python=True)
    assert [s.name for s, _ in with_python][-1] == "python"
    assert with_python[-1][0].ask_every_time and not builtin.TIME.ask_every_time
    with pytest.raises(ToolError, match="takes"):
        builtin.calculate({"expr": "1+1"}, CancelToken())


def test_model_names_and_cut_results() -> None:
    assert model_name("create-issue") == "create_issue"
    assert model_name("fs/read.file") == "fs_read_file"
    assert model_name("9lives") == "t_9lives"
    assert model_name("<|end|>") == "end"
    big = "x" * 5_000_000
    for_model, whole = result_for_model(big)
    assert whole is big and len(for_model) < 16_200 and "5,000,000 characters" in for_model
    assert result_for_model("short") == ("short", None)


def test_python_tool_runs_a_program_and_prints_its_last_value() -> None:
    out = run_python_code("import math\nprint('hi')\nmath.factorial(10)")
    assert not out.is_error
    assert out.text.splitlines() == ["hi", "3628800"]


def test_python_tool_reports_errors_and_limits() -> None:
    raised = run_python_code("raise ValueError('boom')")
    assert raised.is_error and "ValueError: boom" in raised.text
    loop = pytest.raises(ToolError, match="longer than 1 seconds")
    with loop:
        run_python_code("while True: pass", timeout_s=1.0)
    flood = run_python_code("while True: print('x' * 1000)", timeout_s=20.0)
    assert flood.is_error and "printed too much" in flood.text and len(flood.text) <= OUTPUT_CAP + 200
    if sys.platform.startswith("linux"):
        memory = run_python_code("b = bytearray(2 << 30)", memory_mb=256)
        assert memory.is_error and "MemoryError" in memory.text


def test_python_tool_cannot_reach_the_network() -> None:
    out = run_python_code(
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=2)\n"
        "except OSError as e:\n"
        "    print('refused', type(e).__name__)\n"
    )
    assert out.text.startswith("refused"), out.text


def test_python_tool_stops_when_the_user_presses_stop() -> None:
    token = CancelToken()
    started = threading.Event()

    def stop_soon() -> None:
        started.wait(10)
        token.set()

    threading.Thread(target=stop_soon, daemon=True).start()
    with pytest.raises(ToolError, match="Stopped by the user"):
        started.set()
        run_python_code("import time\ntime.sleep(60)", token, timeout_s=60.0)


def test_python_tool_works_in_a_temporary_folder_that_goes_away() -> None:
    out = run_python_code("import os\nopen('f.txt', 'w').write('1')\nprint(os.getcwd())")
    folder = out.text.strip()
    assert "hearth-python-" in folder
    import os

    assert not os.path.exists(folder)
